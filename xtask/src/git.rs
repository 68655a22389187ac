//! Running git on the kernel trees.

use std::path::{Path, PathBuf};

use anyhow::Result;
use xshell::{cmd, Shell};

/// Identity used for commits the workspace makes itself (base, `git am`).
pub const GIT_NAME: &str = "uring-ipc xtask";
pub const GIT_EMAIL: &str = "xtask@uring-ipc.invalid";

/// git in `repo`, quiet, committing as the workspace.
pub fn git<'a>(sh: &'a Shell, repo: &Path) -> xshell::Cmd<'a> {
    cmd!(
        sh,
        "git -C {repo} -c user.name={GIT_NAME} -c user.email={GIT_EMAIL}"
    )
    .quiet()
}

/// The blob id of `path` in HEAD.
pub fn blob_at_head(sh: &Shell, repo: &Path, path: &str) -> xshell::Result<String> {
    git(sh, repo)
        .arg("rev-parse")
        .arg(format!("HEAD:{path}"))
        .ignore_stderr()
        .read()
}

/// What `git status --porcelain` says of the tracked files of `tree`:
/// empty when they are as committed.
pub fn tracked_changes(sh: &Shell, tree: &Path) -> Result<String> {
    Ok(git(sh, tree)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .read()?)
}

/// Whether `tree` is a git tree whose HEAD resolves (a worktree whose
/// repository was recreated is not).
pub fn has_head(sh: &Shell, tree: &Path) -> bool {
    tree.join(".git").exists()
        && git(sh, tree)
            .args(["rev-parse", "HEAD"])
            .ignore_stderr()
            .read()
            .is_ok()
}

/// Abort a `git am` in progress, if any.
fn am_abort(sh: &Shell, repo: &Path) {
    let _ = git(sh, repo)
        .args(["am", "--abort"])
        .ignore_stderr()
        .ignore_status()
        .run();
}

/// The git directory of the tree `tree` (a worktree's own).
pub fn git_dir(sh: &Shell, tree: &Path) -> Result<PathBuf> {
    Ok(git(sh, tree)
        .args(["rev-parse", "--absolute-git-dir"])
        .read()?
        .into())
}

/// A patch `git am` did not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotApplied {
    /// Its place in the list given to `am_on_base`.
    pub index: usize,
    /// git's reason, without its hints, line by line.
    pub reason: Vec<String>,
}

/// Reset `repo` to `base` (on `branch`, made or moved there, when given;
/// else on what is checked out), clean it, and `git am` each patch in turn.
/// The first patch that does not apply stops it: that `git am` is aborted,
/// the tree keeps the patches before it, and the patch is returned.
pub fn am_on_base(
    sh: &Shell,
    repo: &Path,
    branch: Option<&str>,
    patches: &[PathBuf],
) -> Result<Result<(), NotApplied>> {
    am_abort(sh, repo);
    match branch {
        Some(b) => git(sh, repo)
            .args(["checkout", "-q", "-f", "-B", b, "base"])
            .run()?,
        None => git(sh, repo)
            .args(["reset", "-q", "--hard", "base"])
            .run()?,
    }
    git(sh, repo).args(["clean", "-fdq"]).run()?;
    for (index, path) in patches.iter().enumerate() {
        let out = git(sh, repo)
            .args(["am", "-q", "--no-3way", "--keep-cr"])
            .arg(path)
            .ignore_status()
            .output()?;
        if !out.status.success() {
            am_abort(sh, repo);
            let reason = String::from_utf8_lossy(&out.stderr)
                .lines()
                .filter(|l| !l.starts_with("hint:"))
                .map(str::to_string)
                .collect();
            return Ok(Err(NotApplied { index, reason }));
        }
    }
    Ok(Ok(()))
}

/// Where a new worktree stands.
#[derive(Debug, Clone, Copy)]
pub enum At<'a> {
    /// At `base`, detached.
    Base,
    /// On this branch, made or moved to `base`.
    Branch(&'a str),
}

/// Add a worktree of `repo` at `path`. Worktrees whose directory is gone
/// are forgotten first, so `path` may be one of them.
pub fn add_worktree(sh: &Shell, repo: &Path, path: &Path, at: At) -> Result<()> {
    let _ = git(sh, repo).args(["worktree", "prune"]).run();
    let add = git(sh, repo).args(["worktree", "add", "-q", "--force"]);
    let add = match at {
        At::Base => add.arg("--detach"),
        At::Branch(b) => add.args(["-B", b]),
    };
    add.arg(path).arg("base").run()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn am_stops_at_the_first_patch_that_does_not_apply() {
        let sh = Shell::new().unwrap();
        let d = std::env::temp_dir().join(format!("xtask-git-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let repo = d.join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        let g = |args: &[&str]| git(&sh, &repo).args(args).read().unwrap();
        cmd!(sh, "git init -q -b build {repo}")
            .quiet()
            .run()
            .unwrap();
        std::fs::write(repo.join("a.txt"), "one\n").unwrap();
        g(&["add", "-A"]);
        g(&["commit", "-q", "-m", "base"]);
        g(&["tag", "base"]);
        std::fs::write(repo.join("a.txt"), "two\n").unwrap();
        g(&["commit", "-q", "-a", "-m", "a: two"]);
        let patch = PathBuf::from(g(&["format-patch", "-o", d.to_str().unwrap(), "base"]));

        // The same patch twice: the second finds "two" where it expects "one".
        let r = am_on_base(&sh, &repo, Some("series"), &[patch.clone(), patch.clone()]).unwrap();
        let e = r.unwrap_err();
        assert_eq!(e.index, 1);
        assert!(!e.reason.is_empty());
        assert!(e.reason.iter().all(|l| !l.starts_with("hint:")), "{e:?}");
        // The tree keeps the first patch, on the branch, with no `git am`
        // left in progress.
        assert_eq!(g(&["rev-parse", "--abbrev-ref", "HEAD"]), "series");
        assert_eq!(g(&["rev-list", "--count", "base..HEAD"]), "1");
        assert!(!git_dir(&sh, &repo).unwrap().join("rebase-apply").exists());

        // Untracked files go; without a branch the one checked out is reset.
        std::fs::write(repo.join("stray.txt"), "x\n").unwrap();
        assert_eq!(am_on_base(&sh, &repo, None, &[patch]).unwrap(), Ok(()));
        assert_eq!(g(&["rev-parse", "--abbrev-ref", "HEAD"]), "series");
        assert_eq!(g(&["rev-list", "--count", "base..HEAD"]), "1");
        assert!(!repo.join("stray.txt").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
