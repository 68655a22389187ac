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
//!   target/kernel/build-bisect/       O= dir for building every prefix
//!
//! kernel-doc, sparse and W=1 compare the patched tree with the base and
//! only count what is new; every finding is blamed on the patch that wrote
//! the offending line.

pub mod bisect;
pub mod checkpatch;
pub mod diag;
pub mod kernel_doc;
pub mod sparse;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::flags::{CheckArgs, GateCheck, Profile};
use crate::git::git;
use crate::kbuild::{self, Check};
use crate::kernel;
use crate::patches::trees::{GateLock, Input, Trees};
use crate::progress::{fmt_duration, Progress};

/// The profile whose config the build checks use.
pub(crate) const PROFILE: Profile = Profile::Fast;

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
            GateCheck::KernelDoc | GateCheck::Sparse | GateCheck::Bisect
        )
    });
    if needs_trees {
        let _gate = GateLock::acquire()?;
        match Trees::prepare(sh, &src, &input)? {
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

// ------------------------------------------------------------------- builds

/// tinyconfig + the profile's fragments + olddefconfig in `out` for `tree`
/// as it is checked out. Unlike `build-kernel`, options the tree's Kconfig
/// does not offer are fine: the base and early prefixes of the series lack
/// the options later patches add.
pub(crate) fn configure(sh: &Shell, tree: &Path, out: &Path) -> Result<()> {
    let request = kernel::merged_fragment(PROFILE)?;
    let tree_id = git(sh, tree).args(["rev-parse", "HEAD^{tree}"]).read()?;
    kbuild::configure(sh, tree, out, &request, &tree_id, Check::Lenient)
}

pub(crate) struct MakeResult {
    pub ok: bool,
    pub stderr: String,
}

/// make in `tree` with O=`out`, progress from kbuild's step lines, stderr
/// collected. Each make holds
/// target/kernel/.lock, so it never runs beside another kernel build, and a
/// long bisect lets other builds in between its steps.
pub(crate) fn make(tree: &Path, out: &Path, args: &[String], label: &str) -> Result<MakeResult> {
    let _lock = kernel::TreeLock::acquire()?;
    let cc = if crate::deps::which("ccache").is_some() {
        "ccache gcc"
    } else {
        "gcc"
    };
    let mut cmd = Command::new("make");
    cmd.arg("-C")
        .arg(tree)
        .arg(format!("O={}", out.display()))
        .arg(format!("CC={cc}"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::kbuild::make_env(&mut cmd);
    let count_file = out.join(format!(".xtask-steps-{}", label.replace([' ', '/'], "-")));
    let expected = std::fs::read_to_string(&count_file)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let mut progress = Progress::new(label, expected);
    let mut child = cmd.spawn().context("running make")?;
    let stderr = child.stderr.take().unwrap();
    let err_thread = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    for line in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        progress.line(&line);
    }
    let status = child.wait()?;
    let stderr = err_thread.join().unwrap_or_default();
    progress.finish();
    if status.success() && progress.steps() > 0 {
        std::fs::write(count_file, progress.steps().to_string())?;
    }
    Ok(MakeResult {
        ok: status.success(),
        stderr,
    })
}

pub(crate) fn jobs_arg(jobs: Option<usize>) -> String {
    format!(
        "-j{}",
        jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
    )
}

pub(crate) fn tail(text: &str, n: usize) -> String {
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
