//! `cargo xtask patches apply|export|check|cover-letter`: the patch-editing
//! workflow.
//!
//! apply  -> target/kernel/dev, a git worktree: base + one commit per patch
//! (edit, `git commit --amend` or `git rebase -i base`, add commits) ->
//! export -> patches/*.patch + patches/series -> check (the pre-submission
//! gate, gate/) -> cover-letter (cover.rs).

pub mod cover;
pub mod gate;
pub mod mail;
pub mod rebase;
pub mod series;
pub mod trees;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use xshell::Shell;

use crate::flags::{PatchesArgs, PatchesCmd};
use crate::git::{add_worktree, git, has_head, tracked_changes, At};
use crate::kernel::{self, dev_dir, patch_dir};
use series::Series;

pub fn run(sh: &Shell, args: &PatchesArgs) -> Result<()> {
    crate::deps::require(sh, crate::deps::Need::Build)?;
    match args.cmd {
        PatchesCmd::Apply { force } => apply(sh, force),
        PatchesCmd::Export => export(sh),
        PatchesCmd::Check(ref a) => gate::run(sh, a),
        PatchesCmd::CoverLetter => cover::run(sh),
        PatchesCmd::Rebase(ref a) => rebase::run(sh, a),
    }
}

fn apply(sh: &Shell, force: bool) -> Result<()> {
    let src = kernel::prepare_base(sh)?;
    let dev = dev_dir();
    let series = Series::load(&patch_dir())?;
    let orphaned = dev.join(".git").exists() && !has_head(sh, &dev);
    if orphaned {
        // Its repository was recreated (new base): nothing in it can be kept.
        println!(
            "[patches] {} belongs to an old base tree; recreating it",
            dev.display()
        );
        std::fs::remove_dir_all(&dev)?;
    }
    if dev.join(".git").exists() {
        if !force {
            if let Some(why) = dev_work(sh, &series)? {
                bail!("{why}, or rerun with --force to discard them");
            }
        }
    } else {
        println!("[patches] creating worktree {}", dev.display());
        add_worktree(sh, &src, &dev, At::Branch("dev"))?;
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

/// Render `base`..HEAD of `repo` as patches in a fresh directory. The options
/// make the output depend only on the commits: no commit hashes, no git
/// version signature, no [PATCH n/m] numbering (which would change every
/// subject when a patch is added), and fixed-width blob abbreviations.
fn format_patches(sh: &Shell, repo: &Path, base: &str) -> Result<(PathBuf, Vec<String>)> {
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
        .arg(format!("{base}..HEAD"))
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

/// What the dev tree holds that patches/ lacks, if anything: uncommitted
/// changes or commits not exported (a tree of an older base holds nothing
/// that can be kept).
fn dev_work(sh: &Shell, series: &Series) -> Result<Option<String>> {
    let dev = dev_dir();
    if !has_head(sh, &dev) {
        return Ok(None);
    }
    let dirty = git(sh, &dev).args(["status", "--porcelain"]).read()?;
    if !dirty.is_empty() {
        return Ok(Some(format!(
            "{} has uncommitted changes; commit and `cargo xtask patches export` them",
            dev.display()
        )));
    }
    if unexported(sh, &dev, series)? {
        return Ok(Some(format!(
            "{} has commits that differ from patches/; run `cargo xtask patches export` first",
            dev.display()
        )));
    }
    Ok(None)
}

fn unexported(sh: &Shell, dev: &Path, series: &Series) -> Result<bool> {
    let (tmp, names) = format_patches(sh, dev, "base")?;
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
    let dirty = tracked_changes(sh, &dev)?;
    if !dirty.is_empty() {
        bail!(
            "{} has uncommitted changes; commit them first:\n{dirty}",
            dev.display()
        );
    }
    export_from(sh, &dev, "base")
}

/// Write `base`..HEAD of `repo` to patches/ and patches/series, removing
/// the patches it no longer has.
fn export_from(sh: &Shell, repo: &Path, base: &str) -> Result<()> {
    let old = Series::load(&patch_dir()).unwrap_or(Series { patches: vec![] });
    let (tmp, names) = format_patches(sh, repo, base)?;
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
