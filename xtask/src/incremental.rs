//! Incremental builds that stay correct when the source tree is a new copy.
//!
//! make trusts mtimes. Within one copy of the source tree they are right:
//! `apply_series` gives every file whose content changes a new mtime. But a
//! build directory can outlive its tree (restored from a cache, or the tree
//! re-extracted from the tarball): the new tree's files carry the tarball's
//! mtimes, so a file the old series patched and the new one does not is
//! older than its object and would never be rebuilt.
//!
//! So every build directory records what it was built from (`.xtask-tree`):
//! the identity of the tree copy, the base tree, and the blob of every file
//! the series changed. Before a build:
//!
//! - same tree copy: nothing to do, mtimes are continuous;
//! - another copy of the same base: every file of the tree is re-dated
//!   older than any object, then the files whose content differs from what
//!   was built (by the recorded blobs) are dated now, so make rebuilds
//!   exactly those (libbpf CI's prepare-incremental-build idea);
//! - no record or another base: the build directory is discarded.
//!
//! The record is removed before make runs and written after it succeeds,
//! so a failed build never leaves a record that does not match its objects.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use xshell::Shell;

use crate::git::{git, git_dir};

/// File in a build directory: what it was last built from.
const RECORD: &str = ".xtask-tree";
/// File in a tree's git directory: which copy of the tree this is.
const INSTANCE: &str = "uring-ipc-instance";
/// What re-dated files are set to: older than any object a build made.
const OLD: Duration = Duration::from_secs(946_684_800); // 2000-01-01

/// What a tree holds, as far as a build directory cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeState {
    pub instance: String,
    /// `base^{tree}`: the pristine source.
    pub base: String,
    /// Every path the series changes, with its blob at HEAD ("-": deleted).
    pub changed: BTreeMap<String, String>,
}

impl TreeState {
    pub fn render(&self) -> String {
        let mut s = format!("instance {}\nbase {}\n", self.instance, self.base);
        for (p, b) in &self.changed {
            s.push_str(&format!("{b} {p}\n"));
        }
        s
    }

    pub fn parse(text: &str) -> Option<TreeState> {
        let mut lines = text.lines();
        let instance = lines.next()?.strip_prefix("instance ")?.to_string();
        let base = lines.next()?.strip_prefix("base ")?.to_string();
        let mut changed = BTreeMap::new();
        for l in lines {
            let (b, p) = l.split_once(' ')?;
            changed.insert(p.to_string(), b.to_string());
        }
        Some(TreeState {
            instance,
            base,
            changed,
        })
    }

    /// The paths whose content differs between two states of the same base.
    pub fn differing(&self, other: &TreeState) -> Vec<String> {
        let mut paths: Vec<&String> = self.changed.keys().chain(other.changed.keys()).collect();
        paths.sort();
        paths.dedup();
        paths
            .into_iter()
            .filter(|p| self.changed.get(*p) != other.changed.get(*p))
            .cloned()
            .collect()
    }
}

/// Mark `tree` (a fresh copy, just made) with a new instance id.
pub fn mark_new_copy(git_dir: &Path) -> Result<()> {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let id = format!("{nanos:x}-{:x}", std::process::id());
    std::fs::write(git_dir.join(INSTANCE), id)?;
    Ok(())
}

/// The state of `tree` (HEAD against the `base` tag). A tree made before
/// instance ids existed gets one now; `adopted` says so.
pub fn tree_state(sh: &Shell, tree: &Path) -> Result<(TreeState, bool)> {
    let gd = git_dir(sh, tree)?;
    let mut adopted = false;
    if !gd.join(INSTANCE).exists() {
        mark_new_copy(&gd)?;
        adopted = true;
    }
    let instance = std::fs::read_to_string(gd.join(INSTANCE))?
        .trim()
        .to_string();
    let base = git(sh, tree).args(["rev-parse", "base^{tree}"]).read()?;
    let raw = git(sh, tree)
        .args([
            "diff",
            "--raw",
            "--no-abbrev",
            "--no-renames",
            "-z",
            "base",
            "HEAD",
        ])
        .read()?;
    // `:old-mode new-mode old-blob new-blob status\0path\0`, repeated.
    let mut changed = BTreeMap::new();
    let mut it = raw.split('\0').filter(|s| !s.is_empty());
    while let (Some(meta), Some(path)) = (it.next(), it.next()) {
        let new_blob = meta.split_whitespace().nth(3).unwrap_or("-");
        let blob = if new_blob.chars().all(|c| c == '0') {
            "-"
        } else {
            new_blob
        };
        changed.insert(path.to_string(), blob.to_string());
    }
    Ok((
        TreeState {
            instance,
            base,
            changed,
        },
        adopted,
    ))
}

/// What `prepare` did to a build directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// Nothing to do (same tree copy, or no build directory yet).
    Kept,
    /// Another copy of the same base: every file re-dated, these dated now.
    Redated(Vec<String>),
    /// Thrown away, with the reason.
    Discarded(String),
}

/// Make `out` safe to build incrementally from `tree`; returns what it did
/// and the tree's state, to `record` after a successful build.
pub fn prepare(sh: &Shell, tree: &Path, out: &Path) -> Result<(Prepared, TreeState)> {
    let (now, adopted) = tree_state(sh, tree)?;
    if !out.exists() {
        return Ok((Prepared::Kept, now));
    }
    let record = std::fs::read_to_string(out.join(RECORD))
        .ok()
        .and_then(|t| TreeState::parse(&t));
    let what = match record {
        Some(r) if r.instance == now.instance => Prepared::Kept,
        // A tree older than instance ids built this directory itself.
        None if adopted => Prepared::Kept,
        Some(r) if r.base == now.base => {
            let differ = now.differing(&r);
            redate(sh, tree, &differ)?;
            Prepared::Redated(differ)
        }
        Some(_) => Prepared::Discarded("it was built from another base".into()),
        None => Prepared::Discarded("it does not record what it was built from".into()),
    };
    if let Prepared::Discarded(_) = what {
        std::fs::remove_dir_all(out).with_context(|| format!("removing {}", out.display()))?;
    } else {
        let _ = std::fs::remove_file(out.join(RECORD));
    }
    Ok((what, now))
}

/// Write the record after a successful build.
pub fn record(out: &Path, state: &TreeState) -> Result<()> {
    std::fs::write(out.join(RECORD), state.render())?;
    Ok(())
}

/// Every tracked file of `tree` gets the old date, then `fresh` gets now.
fn redate(sh: &Shell, tree: &Path, fresh: &[String]) -> Result<()> {
    let old = SystemTime::UNIX_EPOCH + OLD;
    let files = git(sh, tree).args(["ls-files", "-z"]).read()?;
    for f in files.split('\0').filter(|f| !f.is_empty()) {
        set_mtime(&tree.join(f), old);
    }
    let now = SystemTime::now();
    for f in fresh {
        set_mtime(&tree.join(f), now);
    }
    Ok(())
}

fn set_mtime(path: &Path, t: SystemTime) {
    // Symlinks and vanished files are skipped: make follows the links to
    // files that are dated themselves.
    if path.is_symlink() {
        return;
    }
    if let Ok(f) = std::fs::File::options().write(true).open(path) {
        let _ = f.set_modified(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use xshell::cmd;

    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A fresh copy of the base (files dated like a tarball's, long ago),
    /// with `patches` applied as one commit each: (file, new content).
    fn tree(sh: &Shell, dir: &Path, patches: &[(&str, &str)]) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("a.c"), "a base\n").unwrap();
        std::fs::write(dir.join("b.c"), "b base\n").unwrap();
        let g = |args: &[&str]| git(sh, dir).args(args).run().unwrap();
        cmd!(sh, "git init -q -b build {dir}")
            .quiet()
            .run()
            .unwrap();
        g(&["add", "-A"]);
        g(&["commit", "-q", "-m", "base"]);
        g(&["tag", "base"]);
        let tarball_time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
        for f in ["a.c", "b.c"] {
            set_mtime(&dir.join(f), tarball_time);
        }
        for (f, text) in patches {
            std::fs::write(dir.join(f), text).unwrap();
            g(&["commit", "-q", "-a", "-m", f]);
        }
        mark_new_copy(&git_dir(sh, dir).unwrap()).unwrap();
    }

    /// A tiny "kernel build": one object per source, the image links them.
    fn make(sh: &Shell, src: &Path, out: &Path) -> String {
        std::fs::write(
            out.join("Makefile"),
            "image: a.o b.o\n\tcat $^ > $@\n%.o: $(SRC)/%.c\n\tcp $< $@\n",
        )
        .unwrap();
        let s = format!("SRC={}", src.display());
        cmd!(sh, "make -s -C {out} {s}").quiet().run().unwrap();
        std::fs::read_to_string(out.join("image")).unwrap()
    }

    fn copy_dir(sh: &Shell, from: &Path, to: &Path) {
        let _ = std::fs::remove_dir_all(to);
        // -a keeps mtimes, like restoring a cache.
        cmd!(sh, "cp -a {from} {to}").quiet().run().unwrap();
    }

    #[test]
    fn a_dropped_patch_is_gone_from_an_image_built_in_a_restored_build_dir() {
        let sh = Shell::new().unwrap();
        let d = std::env::temp_dir().join(format!("xtask-incr-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let _guard = Scratch(d.clone());
        let (tree_a, tree_b, out, saved) =
            (d.join("a"), d.join("b"), d.join("out"), d.join("saved"));

        // Series A patches both files; build it and record the tree.
        tree(
            &sh,
            &tree_a,
            &[("a.c", "a patched\n"), ("b.c", "b patched\n")],
        );
        let (what, state) = prepare(&sh, &tree_a, &out).unwrap();
        assert_eq!(what, Prepared::Kept);
        std::fs::create_dir_all(&out).unwrap();
        assert_eq!(make(&sh, &tree_a, &out), "a patched\nb patched\n");
        record(&out, &state).unwrap();
        copy_dir(&sh, &out, &saved);

        // Series B drops the patch to b.c; a new copy of the base tree (as
        // on a fresh runner) gets the old build directory back.
        tree(&sh, &tree_b, &[("a.c", "a patched twice\n")]);

        // Without preparing, make trusts b.o: the dropped change stays.
        assert_eq!(
            make(&sh, &tree_b, &out),
            "a patched twice\nb patched\n",
            "the fake build should show the stale object it guards against"
        );

        copy_dir(&sh, &saved, &out);
        let (what, state) = prepare(&sh, &tree_b, &out).unwrap();
        assert_eq!(what, Prepared::Redated(vec!["a.c".into(), "b.c".into()]));
        assert_eq!(make(&sh, &tree_b, &out), "a patched twice\nb base\n");
        record(&out, &state).unwrap();

        // The same tree copy again: nothing re-dated, nothing rebuilt.
        let before = std::fs::metadata(out.join("image"))
            .unwrap()
            .modified()
            .unwrap();
        let (what, state) = prepare(&sh, &tree_b, &out).unwrap();
        assert_eq!(what, Prepared::Kept);
        make(&sh, &tree_b, &out);
        record(&out, &state).unwrap();
        let after = std::fs::metadata(out.join("image"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after);

        // A directory that says nothing about its tree is not trusted.
        std::fs::remove_file(out.join(RECORD)).unwrap();
        let (what, _) = prepare(&sh, &tree_b, &out).unwrap();
        assert!(matches!(what, Prepared::Discarded(_)), "{what:?}");
        assert!(!out.exists());
    }

    #[test]
    fn records_round_trip_and_differ_by_content() {
        let mut a = TreeState {
            instance: "1".into(),
            base: "t".into(),
            changed: BTreeMap::from([("x.c".into(), "b1".into()), ("y.h".into(), "-".into())]),
        };
        assert_eq!(TreeState::parse(&a.render()), Some(a.clone()));
        let mut b = a.clone();
        b.instance = "2".into();
        assert!(a.differing(&b).is_empty());
        b.changed.insert("z.c".into(), "b2".into());
        a.changed.insert("x.c".into(), "b3".into());
        assert_eq!(a.differing(&b), vec!["x.c".to_string(), "z.c".to_string()]);
    }
}
