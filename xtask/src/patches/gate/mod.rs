//! `cargo xtask patches check`: the pre-submission gate.
//!
//! Checks that need only the patch files (checkpatch.pl --strict, the mail
//! format) run on each file. Checks that need trees work in worktrees of
//! target/kernel/src that nothing else touches:
//!
//!   target/kernel/gate/base/          the pristine base (`base` tag)
//!   target/kernel/gate/series/        base + the series, one commit per patch
//!   target/kernel/gate/build-base/    O= dirs for sparse + W=1 on the
//!   target/kernel/gate/build-series/    objects of the .c files the series touches
//!   target/kernel/gate/build-arm64/   O= dirs for vmlinux of the series
//!   target/kernel/gate/build-i386/      for other architectures
//!   target/kernel/build-bisect/       O= dir for building every prefix
//!
//! kernel-doc, sparse and W=1 compare the patched tree with the base and
//! only count what is new; every finding is blamed on the patch that wrote
//! the offending line.

pub mod bisect;
pub mod checkpatch;
pub mod cross;
pub mod diag;
pub mod kernel_doc;
pub mod sparse;

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Result};
use xshell::Shell;

use crate::flags::{CheckArgs, GateCheck, Profile};
use crate::git::git;
use crate::kbuild::{self, Check, Make, MakeResult, Stderr, Steps};
use crate::kernel;
use crate::patches::trees::{self, Input, SeriesTrees};
use crate::progress::fmt_duration;

/// The profile whose config the build checks use.
const PROFILE: Profile = Profile::Fast;

/// One thing the gate found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The patch to blame, as shown to the user (e.g. patches/0001-x.patch);
    /// None when no single patch is to blame.
    pub patch: Option<String>,
    pub check: &'static str,
    pub msg: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = self.patch.as_deref().unwrap_or("(series)");
        write!(f, "{who}: {}: {}", self.check, self.msg)
    }
}

fn wanted(args: &CheckArgs) -> Vec<GateCheck> {
    if !args.only.is_empty() {
        return args.only.clone();
    }
    let mut v = vec![
        GateCheck::Checkpatch,
        GateCheck::Format,
        GateCheck::KernelDoc,
        GateCheck::Sparse,
        GateCheck::Cross,
    ];
    if args.bisect {
        v.push(GateCheck::Bisect);
    }
    v
}

pub fn run(sh: &Shell, args: &CheckArgs) -> Result<()> {
    let t0 = Instant::now();
    let input = Input::load(args.patch_dir.as_deref())?;
    let checks = wanted(args);
    let src = kernel::prepare_base(sh)?;
    let mut findings: Vec<Finding> = Vec::new();
    let mut summary: Vec<String> = Vec::new();
    let mut record = |name: &str, found: Vec<Finding>, note: String| {
        let verdict = if found.is_empty() { "ok" } else { "FAILED" };
        summary.push(
            format!("  {name:<10} {verdict:<6} {note}")
                .trim_end()
                .to_string(),
        );
        findings.extend(found);
    };
    println!(
        "[gate] {} patches from {}: {}",
        input.series.patches.len(),
        input.dir.display(),
        checks
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", ")
    );

    if checks.contains(&GateCheck::Checkpatch) {
        let f = checkpatch::checkpatch(sh, &src, &input)?;
        record("checkpatch", f, String::new());
    }
    if checks.contains(&GateCheck::Format) {
        let f = checkpatch::format_check(&input)?;
        record("format", f, String::new());
    }
    let needs_trees = checks.iter().any(|c| {
        matches!(
            c,
            GateCheck::KernelDoc | GateCheck::Sparse | GateCheck::Cross | GateCheck::Bisect
        )
    });
    if needs_trees {
        let _trees = trees::lock()?;
        match SeriesTrees::prepare(sh, &src, &input)? {
            Err(f) => record("apply", vec![f], "later checks not run".into()),
            Ok(trees) => {
                if checks.contains(&GateCheck::KernelDoc) {
                    let (f, n) = kernel_doc::kernel_doc(sh, &trees, &input)?;
                    record("kernel-doc", f, format!("{n} files"));
                }
                if checks.contains(&GateCheck::Sparse) {
                    let (f, note) = sparse::sparse_w1(sh, &trees, &input, args.jobs)?;
                    record("sparse+W=1", f, note);
                }
                if checks.contains(&GateCheck::Cross) {
                    let (f, note) = cross::cross(sh, &trees, &input, args.jobs)?;
                    record("cross", f, note);
                }
                if checks.contains(&GateCheck::Bisect) {
                    let (f, note) = bisect::bisect(sh, &trees, &input, args.jobs)?;
                    record("bisect", f, note);
                }
            }
        }
    }

    println!(
        "[gate] summary ({}):\n{}",
        fmt_duration(t0.elapsed()),
        summary.join("\n")
    );
    if findings.is_empty() {
        println!(
            "[gate] {} patches pass: {}",
            input.series.patches.len(),
            checks
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(());
    }
    let lines: Vec<String> = findings.iter().map(|f| format!("  {f}")).collect();
    bail!(
        "the series is not ready to send, {} problem{}:\n{}",
        findings.len(),
        if findings.len() == 1 { "" } else { "s" },
        lines.join("\n")
    )
}

// ------------------------------------------- builds in the trees, for the checks

/// tinyconfig + the profile's fragments + olddefconfig in `out` for `tree`
/// as it is checked out. Unlike `build-kernel`, options the tree's Kconfig
/// does not offer are fine: the base and early prefixes of the series lack
/// the options later patches add.
fn configure(sh: &Shell, tree: &Path, out: &Path) -> Result<()> {
    let request = kernel::merged_fragment(PROFILE)?;
    let tree_id = git(sh, tree).args(["rev-parse", "HEAD^{tree}"]).read()?;
    kbuild::configure(sh, tree, out, &request, &tree_id, Check::Lenient)
}

/// make in `tree` with O=`out`, stderr collected. Each make holds
/// target/kernel/.lock, so it never runs beside another kernel build, and a
/// long bisect lets other builds in between its steps.
fn make(
    tree: &Path,
    out: &Path,
    jobs: Option<usize>,
    args: Vec<String>,
    label: &str,
) -> Result<MakeResult> {
    let _lock = kernel::TreeLock::acquire()?;
    Make {
        tree,
        out,
        jobs,
        args,
        label,
        stderr: Stderr::Collect,
        steps: Steps::PerLabel,
    }
    .run()
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_name_the_patch() {
        let f = Finding {
            patch: Some("patches/0002-x.patch".into()),
            check: "bisect",
            msg: "does not build".into(),
        };
        assert_eq!(
            f.to_string(),
            "patches/0002-x.patch: bisect: does not build"
        );
    }
}
