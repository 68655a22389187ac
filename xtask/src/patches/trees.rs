//! The series as git trees: worktrees of target/kernel/src under
//! target/kernel/gate/ with the pristine base and with base + the series,
//! one commit per patch. The gate's tree checks build and blame in them,
//! the cover letters are written from them.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::git::{add_worktree, am_on_base, git, git_dir, tracked_changes, At};
use crate::kernel::{self, kernel_dir};
use crate::lock::FileLock;
use crate::patches::gate::Finding;
use crate::patches::series::Series;
use crate::stamp::Stamp;

/// Branch of the series worktree.
pub const SERIES_BRANCH: &str = "gate-series";

/// The series being checked and where its files live.
pub struct Input {
    pub dir: PathBuf,
    pub series: Series,
}

impl Input {
    pub fn load(dir: Option<&Path>) -> Result<Input> {
        let dir = match dir {
            Some(d) => std::fs::canonicalize(d)
                .with_context(|| format!("patch directory {}", d.display()))?,
            None => kernel::patch_dir(),
        };
        let series = Series::load(&dir)?;
        if series.patches.is_empty() {
            bail!("{}/series lists no patches", dir.display());
        }
        Ok(Input { dir, series })
    }

    /// How a patch is named in messages: its path from the project root.
    pub fn show(&self, name: &str) -> String {
        let p = self.dir.join(name);
        p.strip_prefix(crate::project_root())
            .map(|r| r.display().to_string())
            .unwrap_or_else(|_| p.display().to_string())
    }

    /// Each patch's name and file, in series order.
    pub fn files(&self) -> impl Iterator<Item = (&String, PathBuf)> {
        self.series.patches.iter().zip(self.series.paths(&self.dir))
    }
}

/// The base and the series, each in a worktree of its own.
pub struct SeriesTrees {
    pub base: PathBuf,
    pub series: PathBuf,
    /// (commit, patch file name), in series order.
    pub commits: Vec<(String, String)>,
    /// Files the series adds or modifies, relative to the tree.
    pub touched: Vec<String>,
}

pub fn gate_dir() -> PathBuf {
    kernel_dir().join("gate")
}

/// The lock on the series trees, held by one xtask at a time for as long
/// as it uses them (a bisect moves the series worktree from commit to
/// commit). Separate from target/kernel/.lock, which only covers single
/// builds. Released when dropped.
pub fn lock() -> Result<FileLock> {
    FileLock::acquire(
        &gate_dir().join(".lock"),
        &format!(
            "[gate] another xtask is using {}; waiting for it",
            gate_dir().display()
        ),
    )
}

/// A worktree of `src` at `path`, recreated when it belongs to an older
/// base tree or is broken.
fn ensure_worktree(sh: &Shell, src: &Path, path: &Path) -> Result<()> {
    if path.join(".git").exists() {
        let ok = git(sh, path)
            .args(["rev-parse", "--verify", "-q", "base"])
            .ignore_stderr()
            .read()
            .is_ok();
        if ok {
            return Ok(());
        }
        println!("[gate] {} is stale; recreating it", path.display());
        std::fs::remove_dir_all(path)?;
    }
    // `worktree add/prune` edit the shared repository's list of worktrees.
    let _lock = kernel::TreeLock::acquire()?;
    println!("[gate] creating worktree {} (a minute)", path.display());
    add_worktree(sh, src, path, At::Base)?;
    Ok(())
}

impl SeriesTrees {
    /// Worktrees ready at base and at the tip of the series. A patch that
    /// does not apply is a finding (Err inside Ok), not an error of the tool.
    /// The caller holds `lock()`.
    pub fn prepare(sh: &Shell, src: &Path, input: &Input) -> Result<Result<SeriesTrees, Finding>> {
        let base = gate_dir().join("base");
        let series = gate_dir().join("series");
        std::fs::create_dir_all(gate_dir())?;
        ensure_worktree(sh, src, &base)?;
        ensure_worktree(sh, src, &series)?;

        let base_sha = git(sh, &base).args(["rev-parse", "base"]).read()?;
        if git(sh, &base).args(["rev-parse", "HEAD"]).read()? != base_sha
            || !tracked_changes(sh, &base)?.is_empty()
        {
            git(sh, &base)
                .args(["checkout", "-q", "-f", "--detach", "base"])
                .run()?;
        }

        let key = format!("{}\n{}", base_sha, input.series.hash(&input.dir)?);
        let stamp = Stamp::new(git_dir(sh, &series)?.join("uring-ipc-gate-series"), key);
        let branch_ok = git(sh, &series)
            .args(["rev-parse", "--verify", "-q", SERIES_BRANCH])
            .ignore_stderr()
            .read()
            .is_ok();
        let clean = tracked_changes(sh, &series)?.is_empty();
        if branch_ok && clean && stamp.holds() {
            // Possibly left at a prefix by an interrupted bisect.
            git(sh, &series)
                .args(["checkout", "-q", SERIES_BRANCH])
                .run()?;
        } else {
            stamp.clear();
            println!("[gate] applying the series in {}", series.display());
            let paths = input.series.paths(&input.dir);
            if let Err(e) = am_on_base(sh, &series, Some(SERIES_BRANCH), &paths)? {
                return Ok(Err(Finding {
                    patch: Some(input.show(&input.series.patches[e.index])),
                    check: "apply",
                    msg: format!(
                        "does not apply on base + the patches before it: {}",
                        e.reason.join("; ")
                    ),
                }));
            }
            stamp.write()?;
        }

        let list = git(sh, &series)
            .args(["rev-list", "--reverse", "base..HEAD"])
            .read()?;
        let shas: Vec<String> = list.lines().map(str::to_string).collect();
        if shas.len() != input.series.patches.len() {
            bail!(
                "{} has {} commits over base for {} patches; delete it and rerun",
                series.display(),
                shas.len(),
                input.series.patches.len()
            );
        }
        let commits = shas
            .into_iter()
            .zip(input.series.patches.iter().cloned())
            .collect();
        let touched = git(sh, &series)
            .args(["diff", "--name-only", "--diff-filter=AMR", "base", "HEAD"])
            .read()?
            .lines()
            .map(str::to_string)
            .collect();
        Ok(Ok(SeriesTrees {
            base,
            series,
            commits,
            touched,
        }))
    }
}
