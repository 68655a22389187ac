//! `cargo xtask patches apply|export|check`: the patch-editing workflow.
//!
//! apply  -> target/kernel/dev, a git worktree: base + one commit per patch
//! (edit, `git commit --amend` or `git rebase -i base`, add commits) ->
//! export -> patches/*.patch + patches/series -> check -> checkpatch.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::flags::{PatchesArgs, PatchesCmd};
use crate::kernel::{self, dev_dir, git, patch_dir};
use crate::series::Series;

pub fn run(sh: &Shell, args: &PatchesArgs) -> Result<()> {
    crate::deps::require(sh, crate::deps::Need::Build)?;
    match args.cmd {
        PatchesCmd::Apply { force } => apply(sh, force),
        PatchesCmd::Export => export(sh),
        PatchesCmd::Check => check(sh).map(|_| ()),
    }
}

fn apply(sh: &Shell, force: bool) -> Result<()> {
    let src = kernel::prepare_base(sh)?;
    let dev = dev_dir();
    let series = Series::load(&patch_dir())?;
    let orphaned = dev.join(".git").exists()
        && git(sh, &dev)
            .args(["rev-parse", "HEAD"])
            .ignore_stderr()
            .read()
            .is_err();
    if orphaned {
        // Its repository was recreated (new base): nothing in it can be kept.
        println!(
            "[patches] {} belongs to an old base tree; recreating it",
            dev.display()
        );
        std::fs::remove_dir_all(&dev)?;
    }
    if dev.join(".git").exists() {
        let dirty = git(sh, &dev).args(["status", "--porcelain"]).read()?;
        if !dirty.is_empty() && !force {
            bail!(
                "{} has uncommitted changes; commit and `cargo xtask patches export` them, \
                 or rerun with --force to discard them",
                dev.display()
            );
        }
        if !force && unexported(sh, &dev, &series)? {
            bail!(
                "{} has commits that differ from patches/; run `cargo xtask patches export` \
                 first, or --force to discard them",
                dev.display()
            );
        }
    } else {
        println!("[patches] creating worktree {}", dev.display());
        let _ = git(sh, &src).args(["worktree", "prune"]).run();
        git(sh, &src)
            .args(["worktree", "add", "-q", "--force", "-B", "dev"])
            .arg(&dev)
            .arg("base")
            .run()?;
    }
    kernel::apply_series(sh, &dev, &series, "uring-ipc-dev-series")?;
    let log = git(sh, &dev)
        .args(["log", "--oneline", "base..HEAD"])
        .read()?;
    println!(
        "[patches] {} is base + {} commits:\n{log}\n\
         edit and commit there, then `cargo xtask patches export`",
        dev.display(),
        series.patches.len()
    );
    Ok(())
}

/// Render base..HEAD of `repo` as patches in a fresh directory. The options
/// make the output depend only on the commits: no commit hashes, no git
/// version signature, no [PATCH n/m] numbering (which would change every
/// subject when a patch is added), and fixed-width blob abbreviations.
fn format_patches(sh: &Shell, repo: &Path) -> Result<(PathBuf, Vec<String>)> {
    let out = crate::target_dir().join("kernel/export.tmp");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let files = git(sh, repo)
        .args([
            "format-patch",
            "--zero-commit",
            "--no-signature",
            "--no-numbered",
            "--abbrev=12",
            "-o",
        ])
        .arg(&out)
        .arg("base..HEAD")
        .read()?;
    let names = files
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            Path::new(l)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    Ok((out, names))
}

fn unexported(sh: &Shell, dev: &Path, series: &Series) -> Result<bool> {
    let (tmp, names) = format_patches(sh, dev)?;
    if names != series.patches {
        return Ok(true);
    }
    for n in &names {
        if std::fs::read(tmp.join(n))? != std::fs::read(patch_dir().join(n))? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn export(sh: &Shell) -> Result<()> {
    let dev = dev_dir();
    if !dev.join(".git").exists() {
        bail!(
            "no dev tree at {}: run `cargo xtask patches apply` first",
            dev.display()
        );
    }
    let dirty = git(sh, &dev)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .read()?;
    if !dirty.is_empty() {
        bail!(
            "{} has uncommitted changes; commit them first:\n{dirty}",
            dev.display()
        );
    }
    let old = Series::load(&patch_dir()).unwrap_or(Series { patches: vec![] });
    let (tmp, names) = format_patches(sh, &dev)?;
    let mut changed = 0;
    for n in &names {
        let new = std::fs::read(tmp.join(n))?;
        let dst = patch_dir().join(n);
        if std::fs::read(&dst).ok().as_deref() != Some(new.as_slice()) {
            std::fs::write(&dst, new)?;
            println!("[patches] wrote patches/{n}");
            changed += 1;
        }
    }
    for n in &old.patches {
        if !names.contains(n) {
            std::fs::remove_file(patch_dir().join(n))?;
            println!("[patches] removed patches/{n}");
            changed += 1;
        }
    }
    let series = Series { patches: names };
    let text = series.render();
    if std::fs::read_to_string(patch_dir().join("series"))
        .ok()
        .as_deref()
        != Some(text.as_str())
    {
        std::fs::write(patch_dir().join("series"), text)?;
    }
    println!(
        "[patches] {} patches, {changed} changed",
        series.patches.len()
    );
    Ok(())
}

/// checkpatch.pl --strict on every patch of the series. Returns the number of
/// patches checked; fails naming each patch with errors, warnings or checks.
pub fn check(sh: &Shell) -> Result<usize> {
    let src = kernel::prepare_base(sh)?;
    let series = Series::load(&patch_dir())?;
    let checkpatch = src.join("scripts/checkpatch.pl");
    let mut bad = Vec::new();
    for (name, path) in series.patches.iter().zip(series.paths(&patch_dir())) {
        let _d = sh.push_dir(&src);
        let out = cmd!(
            sh,
            "perl {checkpatch} --strict --no-summary --show-types --color=never {path}"
        )
        .quiet()
        .ignore_status()
        .output()
        .context("running checkpatch.pl")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let findings = checkpatch_findings(&text);
        if out.status.success() && findings == 0 {
            println!("[checkpatch] {name}: clean");
        } else {
            println!("[checkpatch] {name}:\n{}", text.trim_end());
            bad.push(name.clone());
        }
    }
    if !bad.is_empty() {
        bail!("checkpatch --strict is not clean for: {}", bad.join(", "));
    }
    println!("[checkpatch] {} patches clean", series.patches.len());
    Ok(series.patches.len())
}

/// Number of ERROR, WARNING and CHECK reports in checkpatch output.
fn checkpatch_findings(output: &str) -> usize {
    output
        .lines()
        .filter(|l| l.starts_with("ERROR:") || l.starts_with("WARNING:") || l.starts_with("CHECK:"))
        .count()
}

#[cfg(test)]
mod tests {
    use super::checkpatch_findings;

    #[test]
    fn counts_every_kind_of_finding() {
        let clean = "x.patch has no obvious style problems and is ready for submission.\n";
        assert_eq!(checkpatch_findings(clean), 0);
        let dirty = "WARNING:ENOSYS: ENOSYS means 'invalid syscall nr'\n#12: FILE: a.c:3:\n\
                     CHECK:PARENTHESIS_ALIGNMENT: Alignment should match\nERROR:CODE_INDENT: use tabs\n";
        assert_eq!(checkpatch_findings(dirty), 3);
    }
}
