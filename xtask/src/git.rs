//! Running git on the kernel trees.

use std::path::Path;

use anyhow::Result;
use xshell::{cmd, Shell};

/// Identity used for commits the workspace makes itself (base, `git am`).
pub const GIT_NAME: &str = "uring-ipc xtask";
pub const GIT_EMAIL: &str = "xtask@uring-ipc.invalid";

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

/// Abort a `git am` in progress, if any.
pub fn am_abort(sh: &Shell, repo: &Path) {
    let _ = git(sh, repo)
        .args(["am", "--abort"])
        .ignore_stderr()
        .ignore_status()
        .run();
}

pub fn git_dir(sh: &Shell, tree: &Path) -> Result<std::path::PathBuf> {
    Ok(git(sh, tree)
        .args(["rev-parse", "--absolute-git-dir"])
        .read()?
        .into())
}
