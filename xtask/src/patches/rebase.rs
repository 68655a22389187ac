//! `cargo xtask patches rebase`: move the series to another 6.12.y of the
//! base package.
//!
//! `--to VERSION` asks apt where the package's .deb is and what its sha256
//! is, fetches it (local cache first, then apt) into target/kernel/dl/ and
//! verifies it. Its tarball becomes a new base commit, made the way
//! `prepare_base` makes one (no parent, fixed dates, the same message), so
//! it has the hash `build-kernel` will later give it. The commit is made in
//! the repository of target/kernel/src, which holds the old base: the
//! blobs the patches' `index` lines name are there for `git am -3`. A
//! worktree, target/kernel/rebase on branch `rebase`, starts at it (tag
//! `rebase-base`) and the patches go in one at a time: one that `git apply
//! --check` accepts is applied as it is (clean), else `git am -3` merges it
//! (3-way) or stops with conflicts, left for the user as `git am` leaves
//! them. Between a conflict and `--continue` the rebase is recorded in
//! target/kernel/rebase.json. When every patch is in, patches/ is exported
//! from the worktree, patches/base.toml is rewritten to pin the new
//! version, and the worktree is removed. Nothing is built.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use xshell::{cmd, Shell};

use super::series::Series;
use crate::fetch::{Fetcher, FileSpec, Pin};
use crate::flags::RebaseArgs;
use crate::git::{git, tracked_changes};
use crate::kernel::{self, kernel_dir, patch_dir, src_dir, BaseSource};

/// The branch of the rebase worktree and the tag of its base.
const BRANCH: &str = "rebase";
const BASE_TAG: &str = "rebase-base";

pub fn tree_dir() -> PathBuf {
    kernel_dir().join("rebase")
}
fn state_path() -> PathBuf {
    kernel_dir().join("rebase.json")
}
/// Where the new .deb is unpacked while its tarball is read.
fn unpack_dir() -> PathBuf {
    kernel_dir().join("rebase.unpacked")
}

pub fn run(sh: &Shell, args: &RebaseArgs) -> Result<()> {
    if args.abort {
        return abort(sh);
    }
    if args.resume {
        return resume(sh);
    }
    let to = args.to.as_deref().context("--to VERSION is required")?;
    start(sh, to, args.dry_run)
}

/// A Debian version of the base package: upstream `MAJOR.MINOR.SUBLEVEL`,
/// then `-REVISION` (e.g. 6.12.118-1~deb12u1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub sublevel: u32,
    pub revision: String,
}

impl Version {
    pub fn parse(s: &str) -> Result<Version> {
        let bad =
            |why: &str| anyhow::anyhow!("`{s}` is not a version like 6.12.118-1~deb12u1: {why}");
        let (upstream, revision) = s.rsplit_once('-').ok_or_else(|| bad("no -REVISION"))?;
        let revision_ok = !revision.is_empty()
            && revision
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.~".contains(c));
        if !revision_ok {
            return Err(bad(
                "the revision after '-' has characters Debian does not allow",
            ));
        }
        let nums = upstream
            .split('.')
            .map(|n| {
                (!n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
                    .then(|| n.parse::<u32>().ok())
                    .flatten()
            })
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| bad("the upstream part must be numbers separated by dots"))?;
        let [major, minor, sublevel] = nums[..] else {
            return Err(bad("the upstream part must be MAJOR.MINOR.SUBLEVEL"));
        };
        Ok(Version {
            major,
            minor,
            sublevel,
            revision: revision.to_string(),
        })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Version {
            major,
            minor,
            sublevel,
            revision,
        } = self;
        write!(f, "{major}.{minor}.{sublevel}-{revision}")
    }
}

/// Whether the series may move from `from` to `to` of `package` (named for
/// its MAJOR.MINOR, like linux-source-6.12): the same stable series, and
/// forward.
pub fn check_move(package: &str, from: &Version, to: &Version) -> Result<()> {
    let line = format!("{}.{}", to.major, to.minor);
    if !package.ends_with(&format!("-{line}")) || (from.major, from.minor) != (to.major, to.minor) {
        bail!(
            "{package} carries {}.{}.y; {to} is a {line} version (moving to another stable \
             series means another package in patches/base.toml)",
            from.major,
            from.minor
        );
    }
    if to == from {
        bail!("{to} is already the base (patches/base.toml)");
    }
    if to.sublevel < from.sublevel {
        bail!("{to} is older than the base, {from}: a rebase moves the series forward");
    }
    Ok(())
}

/// What apt knows about one version of a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptRecord {
    /// The .deb's path in the archive (`pool/...`).
    pub filename: String,
    pub sha256: String,
    pub sha1: Option<String>,
}

impl AptRecord {
    /// The first stanza of `apt-cache show` output.
    pub fn parse(text: &str) -> Result<AptRecord> {
        let (mut filename, mut sha256, mut sha1) = (None, None, None);
        for line in text.lines() {
            if line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                let v = Some(v.trim().to_string());
                match k {
                    "Filename" => filename = v,
                    "SHA256" => sha256 = v,
                    "SHA1" => sha1 = v,
                    _ => {}
                }
            }
        }
        let (Some(filename), Some(sha256)) = (filename, sha256) else {
            bail!("apt's record has no Filename or no SHA256");
        };
        Ok(AptRecord {
            filename,
            sha256,
            sha1,
        })
    }

    /// The .deb's file name.
    pub fn deb_name(&self) -> &str {
        self.filename.rsplit('/').next().unwrap_or(&self.filename)
    }

    /// The directory of the .deb in the archive.
    pub fn pool_dir(&self) -> &str {
        self.filename.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
    }
}

fn apt_record(package: &str, version: &str) -> Result<AptRecord> {
    let spec = format!("{package}={version}");
    let out = Command::new("apt-cache")
        .args(["show", "--no-all-versions", &spec])
        .output()
        .context("running apt-cache")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.trim().is_empty() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
        bail!(
            "apt does not know {spec}{}; `apt-cache policy {package}` lists the versions \
             it serves (run `apt-get update` first for a new one)",
            if why.is_empty() {
                String::new()
            } else {
                format!(" ({})", why.trim())
            }
        );
    }
    AptRecord::parse(&text).with_context(|| format!("apt-cache show {spec}"))
}

fn sha1_file(path: &Path) -> Result<String> {
    let out = Command::new("sha1sum")
        .arg(path)
        .output()
        .context("running sha1sum")?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.split_whitespace().next() {
        Some(h) if out.status.success() && h.len() == 40 => Ok(h.to_string()),
        _ => bail!("sha1sum {} failed", path.display()),
    }
}

/// How one patch went onto the new base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "how", rename_all = "kebab-case")]
pub enum Outcome {
    /// Applied as it is (`git apply` accepts it, at most with offsets).
    Clean,
    /// `git apply` refused these files; `git am -3` merged them.
    Merged { files: Vec<String> },
    /// Stopped here with these files in conflict, or (no files) for git's
    /// reason.
    Conflict {
        files: Vec<String>,
        reason: Vec<String>,
    },
    /// Conflicted, then resolved by hand and committed.
    Resolved,
    /// Conflicted, then dropped (`git am --skip`).
    Dropped,
}

/// The files `git apply --check` names in its errors, in order, once each.
pub fn refused_files(stderr: &str) -> Vec<String> {
    let mut files: Vec<String> = Vec::new();
    for line in stderr.lines() {
        let Some(e) = line.strip_prefix("error: ") else {
            continue;
        };
        let file = match e.strip_prefix("patch failed: ") {
            Some(at) => at.rsplit_once(':').map(|(f, _)| f).unwrap_or(at),
            None => match e.split_once(": ") {
                Some((f, _)) => f,
                None => continue,
            },
        };
        if !files.iter().any(|f| f == file) {
            files.push(file.to_string());
        }
    }
    files
}

fn lines_without_hints(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.starts_with("hint:") && !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Apply `patch` on HEAD of `tree` (clean, no `git am` in progress): as
/// it is when `git apply` accepts it, else with `git am -3`. A conflict is
/// left in progress, as `git am` leaves it.
pub fn apply_one(sh: &Shell, tree: &Path, patch: &Path) -> Result<Outcome> {
    let check = git(sh, tree)
        .args(["apply", "--check"])
        .arg(patch)
        .ignore_status()
        .output()?;
    if check.status.success() {
        let am = git(sh, tree)
            .args(["am", "-q", "--no-3way", "--keep-cr"])
            .arg(patch)
            .ignore_status()
            .output()?;
        if !am.status.success() {
            bail!(
                "git apply --check accepted {} but git am did not:\n  {}",
                patch.display(),
                lines_without_hints(&am.stderr).join("\n  ")
            );
        }
        return Ok(Outcome::Clean);
    }
    let refused = refused_files(&String::from_utf8_lossy(&check.stderr));
    let am = git(sh, tree)
        .args(["am", "-q", "-3", "--keep-cr"])
        .arg(patch)
        .ignore_status()
        .output()?;
    if am.status.success() {
        return Ok(Outcome::Merged { files: refused });
    }
    let files = git(sh, tree)
        .args(["diff", "--name-only", "--diff-filter=U"])
        .read()?
        .lines()
        .map(str::to_string)
        .collect();
    Ok(Outcome::Conflict {
        files,
        reason: lines_without_hints(&am.stderr),
    })
}

/// A rebase between runs: what was asked and how far it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub from: String,
    pub to: String,
    pub deb_name: String,
    pub deb_sha256: String,
    pub deb_sha1: String,
    /// apt's directory of the .deb (`pool/...`).
    pub pool_dir: String,
    pub tarball_sha256: String,
    /// patches/series when the rebase started.
    pub patches: Vec<String>,
    /// The patches applied so far, in order, and how.
    pub done: Vec<(String, Outcome)>,
}

impl State {
    fn load() -> Result<Option<State>> {
        let p = state_path();
        if !p.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&p)?;
        let s = serde_json::from_str(&text).with_context(|| format!("reading {}", p.display()))?;
        Ok(Some(s))
    }

    fn save(&self) -> Result<()> {
        std::fs::write(state_path(), serde_json::to_string_pretty(self)?)?;
        Ok(())
    }

    /// The conflict the rebase stopped at, if it did.
    fn stopped_at(&self) -> Option<&str> {
        match self.done.last() {
            Some((name, Outcome::Conflict { .. })) => Some(name),
            _ => None,
        }
    }
}

/// The per-patch table: every patch of `state`, done or not yet tried.
pub fn report(state: &State) -> String {
    let mut s = format!(
        "[rebase] patches/series onto {} (from {}):\n",
        state.to, state.from
    );
    let (mut clean, mut merged, mut conflicted, mut by_hand) = (0, 0, 0, 0);
    for (name, how) in &state.done {
        let (word, detail) = match how {
            Outcome::Clean => {
                clean += 1;
                ("clean", String::new())
            }
            Outcome::Merged { files } => {
                merged += 1;
                let f = if files.is_empty() {
                    String::new()
                } else {
                    format!("  (merged: {})", files.join(", "))
                };
                ("3-way", f)
            }
            Outcome::Conflict { files, reason } => {
                conflicted += 1;
                let f = if files.is_empty() {
                    format!("  (git: {})", reason.join("; "))
                } else {
                    format!("  (conflicts: {})", files.join(", "))
                };
                ("CONFLICT", f)
            }
            Outcome::Resolved => {
                by_hand += 1;
                ("resolved", "  (conflict resolved by hand)".to_string())
            }
            Outcome::Dropped => {
                by_hand += 1;
                (
                    "dropped",
                    "  (conflict skipped: not in the series)".to_string(),
                )
            }
        };
        s.push_str(&format!("  {word:<9} {name}{detail}\n"));
    }
    let untried = &state.patches[state.done.len().min(state.patches.len())..];
    for name in untried {
        s.push_str(&format!("  {:<9} {name}\n", "not tried"));
    }
    let mut summary = vec![
        format!("{clean} clean"),
        format!("{merged} with a 3-way merge"),
    ];
    if by_hand > 0 {
        summary.push(format!("{by_hand} by hand"));
    }
    if conflicted > 0 {
        summary.push(format!("{conflicted} conflicted"));
    }
    if !untried.is_empty() {
        summary.push(format!("{} not tried", untried.len()));
    }
    s.push_str(&format!(
        "  {} patches: {}\n",
        state.patches.len(),
        summary.join(", ")
    ));
    s
}

/// What patches/base.toml pins after a rebase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPin<'a> {
    pub version: &'a str,
    pub tarball_sha256: &'a str,
    pub deb_name: &'a str,
    pub deb_sha256: &'a str,
    pub deb_sha1: &'a str,
    /// apt's directory of the .deb (`pool/...`).
    pub pool_dir: &'a str,
}

/// Marks the note above a snapshot URL whose time was not updated.
const SNAPSHOT_NOTE: &str = "# UPDATE by hand:";

/// patches/base.toml `text` pinning `new` instead: the values change, every
/// comment and the layout stay. A snapshot.debian.org URL by path names a
/// time at which the archive carried the old .deb; the time the new one
/// arrived there is not known here, so the URL is kept with a note above
/// it saying it must be updated (until then that source fails and the one
/// by sha1, which does not depend on the time, serves the file).
pub fn rewrite_base_toml(text: &str, new: &NewPin) -> Result<String> {
    let mut out: Vec<String> = Vec::new();
    let mut table = String::new();
    let mut files_tables = 0;
    let mut replaced: Vec<&str> = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if t.starts_with(SNAPSHOT_NOTE) {
            // An older note and its continuation lines: written anew below.
            while lines.peek().is_some_and(|l| l.trim().starts_with("#   ")) {
                lines.next();
            }
            continue;
        }
        if let Some(h) = t.strip_prefix("[[").and_then(|h| h.strip_suffix("]]")) {
            table = h.trim().to_string();
            if table == "fetch.files" {
                files_tables += 1;
            }
        } else if let Some(h) = t.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            table = h.trim().to_string();
        }
        let key = t
            .split_once('=')
            .map(|(k, _)| k.trim())
            .filter(|_| !t.starts_with('#'));
        let value = match (table.as_str(), key) {
            ("", Some("version")) => Some(("version", new.version)),
            ("", Some("sha256")) => Some(("sha256", new.tarball_sha256)),
            ("fetch.files", Some("name")) if files_tables == 1 => Some(("name", new.deb_name)),
            ("fetch.files", Some("sha256")) if files_tables == 1 => {
                Some(("files.sha256", new.deb_sha256))
            }
            ("fetch.files", Some("sha1")) if files_tables == 1 => Some(("sha1", new.deb_sha1)),
            _ => None,
        };
        if let Some((what, v)) = value {
            let (k, _) = line.split_once('=').expect("a key line has '='");
            out.push(format!("{} = \"{v}\"", k.trim_end()));
            replaced.push(what);
            continue;
        }
        if table == "fetch" && t.starts_with('"') && t.contains("snapshot.debian.org/archive/") {
            let indent = &line[..line.len() - line.trim_start().len()];
            let mut note = vec![
                format!(
                    "{SNAPSHOT_NOTE} the time in the next URL predates {}",
                    new.version
                ),
                "#   (`patches rebase` cannot know when snapshot.debian.org first".to_string(),
                "#   archived it: its /mr/file/<sha1>/info says). Until it is updated".to_string(),
                "#   this source fails and the one by sha1 serves the same file.".to_string(),
            ];
            if !t.contains(&format!("/{}/", new.pool_dir)) {
                note.push(format!("#   apt now has the .deb under {}/.", new.pool_dir));
            }
            out.extend(note.into_iter().map(|n| format!("{indent}{n}")));
        }
        out.push(line.to_string());
    }
    for what in ["version", "sha256", "name", "files.sha256", "sha1"] {
        if !replaced.contains(&what) {
            bail!("patches/base.toml: no `{what}` to rewrite (the layout is not the expected one)");
        }
    }
    if files_tables != 1 {
        bail!("patches/base.toml: expected exactly one [[fetch.files]]");
    }
    let mut s = out.join("\n");
    s.push('\n');
    let b: BaseSource = toml::from_str(&s).context("the rewritten patches/base.toml")?;
    let f = &b.fetch.files[0];
    if b.version != new.version
        || b.sha256 != new.tarball_sha256
        || f.name != new.deb_name
        || f.sha256 != new.deb_sha256
        || f.sha1.as_deref() != Some(new.deb_sha1)
    {
        bail!("the rewritten patches/base.toml does not read back as the new pin");
    }
    Ok(s)
}

fn start(sh: &Shell, to: &str, dry_run: bool) -> Result<()> {
    if let Some(s) = State::load()? {
        bail!(
            "a rebase to {} is in progress in {}: resolve it and `cargo xtask patches rebase \
             --continue`, or `--abort` it",
            s.to,
            tree_dir().display()
        );
    }
    let base = BaseSource::load()?;
    let from = Version::parse(&base.version).context("patches/base.toml")?;
    let new = Version::parse(to)?;
    check_move(&base.package, &from, &new)?;
    let series = Series::load(&patch_dir())?;
    if !dry_run {
        if let Some(why) = super::dev_work(sh, &series)? {
            bail!("{why}: a rebase rewrites patches/");
        }
    }
    let rec = apt_record(&base.package, to)?;
    let spec = format!("{}={to}", base.package);
    println!(
        "[rebase] {spec}: {} (sha256 {} per apt)",
        rec.filename, rec.sha256
    );

    let pin = Pin {
        sources: vec!["cache".into(), "apt".into()],
        files: vec![FileSpec {
            name: rec.deb_name().to_string(),
            sha256: rec.sha256.clone(),
            sha1: rec.sha1.clone(),
        }],
    };
    pin.validate("apt-cache show")?;
    let dl = kernel_dir().join("dl");
    let mut fetcher = Fetcher::new(&pin, &spec, &dl, &crate::fetch::cache_dir());
    for (name, origin) in fetcher
        .fetch_all()
        .with_context(|| format!("getting {spec}"))?
    {
        if let crate::fetch::Origin::Source(s) = origin {
            println!("[rebase] {name}: sha256 ok, from {s}");
        }
    }
    let deb = fetcher.path(rec.deb_name());
    let deb_sha1 = sha1_file(&deb)?;
    if rec.sha1.as_deref().is_some_and(|s| s != deb_sha1) {
        bail!("{}: sha1 {deb_sha1} is not apt's", deb.display());
    }

    let unpacked = unpack_dir();
    let made = (|| -> Result<(String, String)> {
        let _ = std::fs::remove_dir_all(&unpacked);
        cmd!(sh, "dpkg-deb -x {deb} {unpacked}").quiet().run()?;
        let tarball = unpacked.join(&base.tarball);
        if !tarball.is_file() {
            bail!("{} has no {}", rec.deb_name(), base.tarball);
        }
        let tarball_sha256 = crate::fetch::sha256_file(&tarball)?;
        let _lock = kernel::TreeLock::acquire()?;
        // The old base: its blobs are what `git am -3` merges from.
        let src = kernel::prepare_base(sh)?;
        let msg = kernel::base_commit_message(&base.package, to, &tarball_sha256);
        let commit = make_base_tree(sh, &src, &tarball, &msg)?;
        Ok((tarball_sha256, commit))
    })();
    let _ = std::fs::remove_dir_all(&unpacked);
    let (tarball_sha256, commit) = made?;
    println!(
        "[rebase] {} is the new base {} (tag {BASE_TAG}) on branch {BRANCH}",
        tree_dir().display(),
        &commit[..12]
    );

    let mut state = State {
        from: base.version.clone(),
        to: to.to_string(),
        deb_name: rec.deb_name().to_string(),
        deb_sha256: rec.sha256.clone(),
        deb_sha1,
        pool_dir: rec.pool_dir().to_string(),
        tarball_sha256,
        patches: series.patches.clone(),
        done: Vec::new(),
    };
    go_on(sh, &mut state, dry_run)
}

/// A worktree of `src` at a new parentless commit of the tarball's source,
/// made as `prepare_base` makes the base commit; returns the commit.
fn make_base_tree(sh: &Shell, src: &Path, tarball: &Path, msg: &str) -> Result<String> {
    let tree = tree_dir();
    remove_tree(sh);
    println!("[rebase] extracting the new base into {}", tree.display());
    git(sh, src)
        .args([
            "worktree",
            "add",
            "-q",
            "--force",
            "--no-checkout",
            "-B",
            BRANCH,
        ])
        .arg(&tree)
        .arg("base")
        .run()?;
    git(sh, &tree).args(["read-tree", "--empty"]).run()?;
    cmd!(sh, "tar -xf {tarball} -C {tree} --strip-components=1")
        .quiet()
        .run()?;
    kernel::strip_debian_gitignore(&tree.join(".gitignore"))?;
    git(sh, &tree).args(["add", "-A", "--force"]).run()?;
    let root = git(sh, &tree).args(["write-tree"]).read()?;
    let commit = git(sh, &tree)
        .args(["commit-tree", &root, "-m", msg])
        .env("GIT_AUTHOR_DATE", kernel::BASE_DATE)
        .env("GIT_COMMITTER_DATE", kernel::BASE_DATE)
        .read()?;
    git(sh, &tree)
        .args(["update-ref", &format!("refs/heads/{BRANCH}"), &commit])
        .run()?;
    git(sh, &tree)
        .args(["tag", "-f", BASE_TAG, &commit])
        .ignore_stdout()
        .run()?;
    let dirty = tracked_changes(sh, &tree)?;
    if !dirty.is_empty() {
        bail!(
            "{} does not match its new base commit:\n{dirty}",
            tree.display()
        );
    }
    Ok(commit)
}

/// Remove the rebase worktree, its branch and tag (whatever exists).
fn remove_tree(sh: &Shell) {
    let (src, tree) = (src_dir(), tree_dir());
    if tree.exists() {
        let _ = git(sh, &src)
            .args(["worktree", "remove", "--force", "--force"])
            .arg(&tree)
            .ignore_stderr()
            .run();
        let _ = std::fs::remove_dir_all(&tree);
    }
    if src.join(".git").exists() {
        let _ = git(sh, &src).args(["worktree", "prune"]).run();
        let _ = git(sh, &src)
            .args(["branch", "-q", "-D", BRANCH])
            .ignore_stderr()
            .ignore_status()
            .run();
        let _ = git(sh, &src)
            .args(["tag", "-d", BASE_TAG])
            .ignore_stdout()
            .ignore_stderr()
            .ignore_status()
            .run();
    }
}

fn am_in_progress(sh: &Shell, tree: &Path) -> Result<bool> {
    let p = git(sh, tree)
        .args(["rev-parse", "--git-path", "rebase-apply"])
        .read()?;
    Ok(tree.join(p).exists())
}

/// Apply the patches not yet done; stop at a conflict (saving the state
/// for --continue) or finish.
fn go_on(sh: &Shell, state: &mut State, dry_run: bool) -> Result<()> {
    let tree = tree_dir();
    let todo: Vec<String> = state.patches[state.done.len()..].to_vec();
    println!(
        "[rebase] applying {} patch(es) from patches/series",
        todo.len()
    );
    for name in todo {
        let how = apply_one(sh, &tree, &patch_dir().join(&name))?;
        let conflict = matches!(how, Outcome::Conflict { .. });
        state.done.push((name.clone(), how));
        if !conflict {
            continue;
        }
        print!("{}", report(state));
        if dry_run {
            remove_tree(sh);
            bail!(
                "patches/{name} conflicts with {} (dry run: nothing changed)",
                state.to
            );
        }
        state.save()?;
        let rel = tree
            .strip_prefix(crate::project_root())
            .unwrap_or(&tree)
            .display()
            .to_string();
        println!(
            "[rebase] stopped at patches/{name}: `git am` is waiting in {rel}.\n\
             Resolve the conflicts there, then:\n\
             \x20 (cd {rel} && git add <files> && git am --continue)   # or `git am --skip` to drop the patch\n\
             \x20 cargo xtask patches rebase --continue\n\
             or give up with `cargo xtask patches rebase --abort`. patches/ is unchanged until \
             the rebase finishes."
        );
        bail!("patches/{name} conflicts with {}", state.to);
    }
    print!("{}", report(state));
    if dry_run {
        remove_tree(sh);
        println!(
            "[rebase] dry run: patches/ unchanged; rerun without --dry-run to move the series to {}",
            state.to
        );
        return Ok(());
    }
    finish(sh, state)
}

/// Every patch is in: export patches/ from the tree, pin the new base.
fn finish(sh: &Shell, state: &State) -> Result<()> {
    let tree = tree_dir();
    let path = patch_dir().join("base.toml");
    let text = std::fs::read_to_string(&path)?;
    let pin = NewPin {
        version: &state.to,
        tarball_sha256: &state.tarball_sha256,
        deb_name: &state.deb_name,
        deb_sha256: &state.deb_sha256,
        deb_sha1: &state.deb_sha1,
        pool_dir: &state.pool_dir,
    };
    // Made (and checked) first: nothing is written when it cannot be.
    let rewritten = rewrite_base_toml(&text, &pin)?;
    super::export_from(sh, &tree, BASE_TAG)?;
    std::fs::write(&path, &rewritten)?;
    println!("[rebase] patches/base.toml pins {}", state.to);
    if rewritten.contains(SNAPSHOT_NOTE) {
        println!(
            "[rebase] note: its snapshot.debian.org URL by path still names the old time; \
             see the `{SNAPSHOT_NOTE}` comment there"
        );
    }
    remove_tree(sh);
    let _ = std::fs::remove_file(state_path());
    println!(
        "[rebase] done: `git diff patches/` shows the rebased series; nothing was built \
         (`cargo xtask build-kernel` builds it)"
    );
    Ok(())
}

fn resume(sh: &Shell) -> Result<()> {
    let Some(mut state) = State::load()? else {
        bail!("no rebase in progress (start one with `cargo xtask patches rebase --to VERSION`)");
    };
    let tree = tree_dir();
    if !tree.join(".git").exists() {
        bail!(
            "the rebase tree {} is gone; `cargo xtask patches rebase --abort` and start again",
            tree.display()
        );
    }
    let Some(at) = state.stopped_at().map(str::to_string) else {
        bail!("the rebase did not stop at a conflict; `--abort` it and start again");
    };
    if am_in_progress(sh, &tree)? {
        bail!(
            "`git am` is still at patches/{at} in {}: resolve the conflicts, `git add` the \
             files and `git am --continue` there (or `git am --skip` to drop the patch) first",
            tree.display()
        );
    }
    let dirty = tracked_changes(sh, &tree)?;
    if !dirty.is_empty() {
        bail!(
            "{} has uncommitted changes; commit or discard them first:\n{dirty}",
            tree.display()
        );
    }
    let commits: usize = git(sh, &tree)
        .args(["rev-list", "--count", &format!("{BASE_TAG}..HEAD")])
        .read()?
        .parse()?;
    let before = state.done[..state.done.len() - 1]
        .iter()
        .filter(|(_, how)| *how != Outcome::Dropped)
        .count();
    let how = match commits {
        n if n > before => Outcome::Resolved,
        n if n == before => Outcome::Dropped,
        _ => bail!(
            "{} has {commits} commits over {BASE_TAG}, fewer than the {before} applied before \
             patches/{at}; `--abort` and start again",
            tree.display()
        ),
    };
    state.done.last_mut().expect("stopped at a patch").1 = how;
    go_on(sh, &mut state, false)
}

fn abort(sh: &Shell) -> Result<()> {
    let state = State::load()?;
    let tree = tree_dir();
    if state.is_none() && !tree.exists() {
        bail!("no rebase in progress");
    }
    if tree.join(".git").exists() {
        let _ = git(sh, &tree)
            .args(["am", "--abort"])
            .ignore_stderr()
            .ignore_status()
            .run();
    }
    remove_tree(sh);
    let _ = std::fs::remove_file(state_path());
    println!(
        "[rebase] aborted{}; patches/ unchanged",
        state.map(|s| format!(" (to {})", s.to)).unwrap_or_default()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn versions_parse_into_upstream_and_revision() {
        let x = v("6.12.118-1~deb12u1");
        assert_eq!((x.major, x.minor, x.sublevel), (6, 12, 118));
        assert_eq!(x.revision, "1~deb12u1");
        assert_eq!(x.to_string(), "6.12.118-1~deb12u1");
        // The revision is what follows the last '-'.
        assert_eq!(v("6.12.9-2+b1").revision, "2+b1");
        for bad in [
            "6.12.118",
            "6.12-1",
            "6.12.118.1-1",
            "6.12.x-1",
            "6..118-1",
            "6.12.118-",
            "6.12.118-1 ",
            "1:6.12.118-1",
            "",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_rebase_moves_forward_within_the_package() {
        let p = "linux-source-6.12";
        let from = v("6.12.117-1~deb12u1");
        check_move(p, &from, &v("6.12.118-1~deb12u1")).unwrap();
        // Another Debian revision of the same upstream release.
        check_move(p, &from, &v("6.12.117-2~deb12u1")).unwrap();
        let e = check_move(p, &from, &from).unwrap_err().to_string();
        assert!(e.contains("already"), "{e}");
        let e = check_move(p, &from, &v("6.12.115-2~deb12u1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("older"), "{e}");
        let e = check_move(p, &from, &v("6.13.1-1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("another package"), "{e}");
    }

    #[test]
    fn apt_records_give_the_file_and_its_checksums() {
        let text = "Package: linux-source-6.12\nVersion: 6.12.118-1~deb12u1\n\
                    Filename: pool/updates/main/l/linux-6.12/linux-source-6.12_6.12.118-1~deb12u1_all.deb\n\
                    Size: 153531472\nSHA256: 896aff\n\nPackage: other\nSHA1: ffff\n";
        let r = AptRecord::parse(text).unwrap();
        assert_eq!(r.deb_name(), "linux-source-6.12_6.12.118-1~deb12u1_all.deb");
        assert_eq!(r.pool_dir(), "pool/updates/main/l/linux-6.12");
        assert_eq!(r.sha256, "896aff");
        // Only the first stanza counts.
        assert_eq!(r.sha1, None);
        assert!(AptRecord::parse("Package: x\nSHA256: 00\n").is_err());
    }

    #[test]
    fn refused_files_come_from_git_apply_errors() {
        let err = "error: patch failed: io_uring/io_uring.c:3771\n\
                   error: io_uring/io_uring.c: patch does not apply\n\
                   error: patch failed: include/linux/io_uring_types.h:12\n\
                   error: include/linux/io_uring_types.h: patch does not apply\n\
                   error: io_uring/new.c: already exists in working directory\n\
                   Checking patch x...\n";
        assert_eq!(
            refused_files(err),
            vec![
                "io_uring/io_uring.c",
                "include/linux/io_uring_types.h",
                "io_uring/new.c"
            ]
        );
    }

    fn state(done: Vec<(&str, Outcome)>, all: &[&str]) -> State {
        State {
            from: "6.12.117-1~deb12u1".into(),
            to: "6.12.118-1~deb12u1".into(),
            deb_name: "d.deb".into(),
            deb_sha256: "0".repeat(64),
            deb_sha1: "1".repeat(40),
            pool_dir: "pool/x".into(),
            tarball_sha256: "2".repeat(64),
            patches: all.iter().map(|s| s.to_string()).collect(),
            done: done.into_iter().map(|(n, o)| (n.to_string(), o)).collect(),
        }
    }

    #[test]
    fn the_report_names_each_patch_and_what_happened() {
        let s = state(
            vec![
                ("0001-a.patch", Outcome::Clean),
                (
                    "0002-b.patch",
                    Outcome::Merged {
                        files: vec!["io_uring/io_uring.c".into()],
                    },
                ),
                (
                    "0003-c.patch",
                    Outcome::Conflict {
                        files: vec!["ipc/mqueue.c".into(), "ipc/msg.c".into()],
                        reason: vec![],
                    },
                ),
            ],
            &[
                "0001-a.patch",
                "0002-b.patch",
                "0003-c.patch",
                "0004-d.patch",
            ],
        );
        assert_eq!(
            report(&s),
            "[rebase] patches/series onto 6.12.118-1~deb12u1 (from 6.12.117-1~deb12u1):\n\
             \x20 clean     0001-a.patch\n\
             \x20 3-way     0002-b.patch  (merged: io_uring/io_uring.c)\n\
             \x20 CONFLICT  0003-c.patch  (conflicts: ipc/mqueue.c, ipc/msg.c)\n\
             \x20 not tried 0004-d.patch\n\
             \x20 4 patches: 1 clean, 1 with a 3-way merge, 1 conflicted, 1 not tried\n"
        );
        let s = state(
            vec![
                ("0001-a.patch", Outcome::Resolved),
                (
                    "0002-b.patch",
                    Outcome::Conflict {
                        files: vec![],
                        reason: vec!["error: sha1 information is lacking".into()],
                    },
                ),
            ],
            &["0001-a.patch", "0002-b.patch"],
        );
        let r = report(&s);
        assert!(r.contains("resolved  0001-a.patch"), "{r}");
        assert!(
            r.contains("(git: error: sha1 information is lacking)"),
            "{r}"
        );
        assert!(r.contains("2 patches: 0 clean, 0 with a 3-way merge, 1 by hand, 1 conflicted\n"));
    }

    #[test]
    fn the_state_survives_a_round_trip() {
        let s = state(
            vec![(
                "0001-a.patch",
                Outcome::Conflict {
                    files: vec!["f".into()],
                    reason: vec!["r".into()],
                },
            )],
            &["0001-a.patch"],
        );
        let back: State = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.stopped_at(), Some("0001-a.patch"));
    }

    const BASE_TOML: &str = include_str!("../../../patches/base.toml");

    fn new_pin() -> NewPin<'static> {
        NewPin {
            version: "6.12.118-1~deb12u1",
            tarball_sha256: "aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11",
            deb_name: "linux-source-6.12_6.12.118-1~deb12u1_all.deb",
            deb_sha256: "896aff3b39299fa0dd36fef4f5db56ab189182e39abbbb1227dafdc7fcfe3fc3",
            deb_sha1: "bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22",
            pool_dir: "pool/updates/main/l/linux-6.12",
        }
    }

    #[test]
    fn base_toml_is_rewritten_keeping_its_comments() {
        let pin = new_pin();
        let out = rewrite_base_toml(BASE_TOML, &pin).unwrap();
        let b: BaseSource = toml::from_str(&out).unwrap();
        assert_eq!(b.version, pin.version);
        assert_eq!(b.sha256, pin.tarball_sha256);
        assert_eq!(b.fetch.files[0].name, pin.deb_name);
        assert_eq!(b.fetch.files[0].sha256, pin.deb_sha256);
        assert_eq!(b.fetch.files[0].sha1.as_deref(), Some(pin.deb_sha1));
        // The sources stay, in order, the by-path one with a note above it.
        let old: BaseSource = toml::from_str(BASE_TOML).unwrap();
        assert_eq!(b.fetch.sources, old.fetch.sources);
        let note = out.find(SNAPSHOT_NOTE).expect("a note");
        let url = out.find("snapshot.debian.org/archive/").unwrap();
        assert!(note < url && out[note..url].contains(pin.version), "{out}");
        // Every comment of the original is still there, in order.
        let comments = |s: &str| -> Vec<String> {
            s.lines()
                .map(str::trim)
                .filter(|l| l.starts_with('#') && !l.starts_with(SNAPSHOT_NOTE))
                .filter(|l| !l.starts_with("#   "))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(comments(&out), comments(BASE_TOML));
        // Nothing of the old pin is left.
        assert!(!out.contains("6.12.117"), "{out}");
        assert!(!out.contains(&old.sha256));
        // Rewriting again replaces the note rather than adding one.
        let again = rewrite_base_toml(
            &out,
            &NewPin {
                version: "6.12.119-1~deb12u1",
                ..pin.clone()
            },
        )
        .unwrap();
        assert_eq!(again.matches(SNAPSHOT_NOTE).count(), 1, "{again}");
        assert_eq!(again.lines().count(), out.lines().count());
        // A pool directory other than the URL's is said.
        let moved = rewrite_base_toml(
            BASE_TOML,
            &NewPin {
                pool_dir: "pool/main/l/linux-6.12",
                ..pin.clone()
            },
        )
        .unwrap();
        assert!(moved.contains("under pool/main/l/linux-6.12/"), "{moved}");
    }

    #[test]
    fn base_toml_without_the_expected_keys_is_refused() {
        let no_sha1: String = BASE_TOML
            .lines()
            .filter(|l| !l.starts_with("sha1"))
            .map(|l| format!("{l}\n"))
            .collect();
        let e = rewrite_base_toml(&no_sha1, &new_pin())
            .unwrap_err()
            .to_string();
        assert!(e.contains("sha1"), "{e}");
    }

    /// A repository with an old base, three patches made on it, and a new
    /// parentless base where the first patch applies as it is, the second
    /// only with a merge and the third conflicts.
    #[test]
    fn patches_are_classified_clean_merged_or_conflicted() {
        let sh = Shell::new().unwrap();
        let d = std::env::temp_dir().join(format!("xtask-rebase-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let repo = d.join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        let g = |args: &[&str]| git(&sh, &repo).args(args).read().unwrap();
        cmd!(sh, "git init -q -b old {repo}").quiet().run().unwrap();
        let ten = |tag: &str| -> String { (1..=10).map(|i| format!("{tag}{i}\n")).collect() };
        let write = |f: &str, text: &str| std::fs::write(repo.join(f), text).unwrap();
        let edit = |f: &str, from: &str, to: &str| {
            let t = std::fs::read_to_string(repo.join(f)).unwrap();
            assert!(t.contains(from));
            write(f, &t.replacen(from, to, 1));
        };
        write("a.txt", &ten("a"));
        write("b.txt", &ten("b"));
        write("c.txt", &ten("c"));
        g(&["add", "-A"]);
        g(&["commit", "-q", "-m", "old base"]);
        g(&["tag", "old-base"]);
        edit("c.txt", "c5\n", "c5 patched\n");
        g(&["commit", "-q", "-a", "-m", "c: one"]);
        edit("b.txt", "b5\n", "b5 patched\n");
        g(&["commit", "-q", "-a", "-m", "b: two"]);
        edit("a.txt", "a5\n", "a5 patched\n");
        g(&["commit", "-q", "-a", "-m", "a: three"]);
        let out = d.join("out");
        let patches: Vec<PathBuf> = g(&["format-patch", "-o", out.to_str().unwrap(), "old-base"])
            .lines()
            .map(PathBuf::from)
            .collect();
        assert_eq!(patches.len(), 3);

        // The new base: b8 changes (inside the second patch's context,
        // not next to its change), a5 changes (the line the third changes).
        g(&["checkout", "-q", "-b", "new", "old-base"]);
        edit("b.txt", "b8\n", "b8 upstream\n");
        edit("a.txt", "a5\n", "a5 upstream\n");
        g(&["add", "-A"]);
        let root = g(&["write-tree"]);
        let commit = g(&["commit-tree", &root, "-m", "new base"]);
        g(&["reset", "-q", "--hard", &commit]);

        let got: Vec<Outcome> = patches
            .iter()
            .map(|p| apply_one(&sh, &repo, p).unwrap())
            .collect();
        assert_eq!(got[0], Outcome::Clean);
        assert_eq!(
            got[1],
            Outcome::Merged {
                files: vec!["b.txt".into()]
            }
        );
        let Outcome::Conflict { files, .. } = &got[2] else {
            panic!("{:?}", got[2]);
        };
        assert_eq!(files, &vec!["a.txt".to_string()]);
        // Left as `git am` leaves a conflict, on top of the two applied.
        assert!(am_in_progress(&sh, &repo).unwrap());
        assert_eq!(g(&["rev-list", "--count", &format!("{commit}..HEAD")]), "2");
        assert!(std::fs::read_to_string(repo.join("b.txt"))
            .unwrap()
            .contains("b5 patched\nb6\nb7\nb8 upstream\n"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
