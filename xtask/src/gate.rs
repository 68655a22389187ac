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

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use regex::Regex;
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

use crate::flags::{CheckArgs, GateCheck, Profile};
use crate::kernel::{self, git, kernel_dir};
use crate::progress::{fmt_duration, Progress};
use crate::series::Series;

/// The profile whose config the build checks use.
const PROFILE: Profile = Profile::Fast;
/// Branch of the series worktree.
const SERIES_BRANCH: &str = "gate-series";

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

    fn hash(&self) -> Result<String> {
        let mut h = Sha256::new();
        for name in &self.series.patches {
            h.update(name.as_bytes());
            h.update([0]);
            let body = std::fs::read(self.dir.join(name))?;
            h.update((body.len() as u64).to_le_bytes());
            h.update(&body);
        }
        Ok(hex(&h.finalize()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
        let f = checkpatch(sh, &src, &input)?;
        record("checkpatch", f, String::new());
    }
    if checks.contains(&GateCheck::Format) {
        let f = format_check(&input)?;
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
                    let (f, n) = kernel_doc(sh, &trees, &input)?;
                    record("kernel-doc", f, format!("{n} files"));
                }
                if checks.contains(&GateCheck::Sparse) {
                    let (f, note) = sparse_w1(sh, &trees, &input, args.jobs)?;
                    record("sparse+W=1", f, note);
                }
                if checks.contains(&GateCheck::Bisect) {
                    let (f, note) = bisect(sh, &trees, &input, args.jobs)?;
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

// ---------------------------------------------------------------- checkpatch

/// checkpatch.pl --strict on every patch: any ERROR, WARNING or CHECK fails
/// that patch.
fn checkpatch(sh: &Shell, src: &Path, input: &Input) -> Result<Vec<Finding>> {
    let script = src.join("scripts/checkpatch.pl");
    let mut out = Vec::new();
    for (name, path) in input
        .series
        .patches
        .iter()
        .zip(input.series.paths(&input.dir))
    {
        let _d = sh.push_dir(src);
        let res = cmd!(
            sh,
            "perl {script} --strict --no-summary --show-types --color=never {path}"
        )
        .quiet()
        .ignore_status()
        .output()
        .context("running checkpatch.pl")?;
        let text = String::from_utf8_lossy(&res.stdout).into_owned();
        let n = checkpatch_findings(&text);
        if res.status.success() && n == 0 {
            println!("[checkpatch] {name}: clean");
        } else {
            println!("[checkpatch] {name}:\n{}", text.trim_end());
            let first = text
                .lines()
                .find(|l| is_checkpatch_finding(l))
                .unwrap_or("checkpatch.pl failed")
                .to_string();
            out.push(Finding {
                patch: Some(input.show(name)),
                check: "checkpatch",
                msg: format!("{n} finding(s), first: {first}"),
            });
        }
    }
    Ok(out)
}

fn is_checkpatch_finding(l: &str) -> bool {
    l.starts_with("ERROR:") || l.starts_with("WARNING:") || l.starts_with("CHECK:")
}

/// Number of ERROR, WARNING and CHECK reports in checkpatch output.
pub fn checkpatch_findings(output: &str) -> usize {
    output.lines().filter(|l| is_checkpatch_finding(l)).count()
}

// -------------------------------------------------------------------- format

fn format_check(input: &Input) -> Result<Vec<Finding>> {
    let mut out = Vec::new();
    for (name, path) in input
        .series
        .patches
        .iter()
        .zip(input.series.paths(&input.dir))
    {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let problems = crate::patchfmt::check(&text);
        if problems.is_empty() {
            println!("[format] {name}: ok");
        }
        for p in problems {
            println!("[format] {name}: {p}");
            out.push(Finding {
                patch: Some(input.show(name)),
                check: "format",
                msg: p.to_string(),
            });
        }
    }
    Ok(out)
}

// --------------------------------------------------------------------- trees

/// The two worktrees the tree-based checks use.
pub struct Trees {
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

/// Held by one xtask at a time for as long as it uses the gate's
/// worktrees (a bisect moves the series worktree from commit to commit).
/// Separate from target/kernel/.lock, which only covers single builds.
pub struct GateLock {
    _lock: crate::lock::FileLock,
}

impl GateLock {
    pub fn acquire() -> Result<GateLock> {
        crate::lock::FileLock::acquire(
            &gate_dir().join(".lock"),
            &format!(
                "[gate] another xtask is using {}; waiting for it",
                gate_dir().display()
            ),
        )
        .map(|l| GateLock { _lock: l })
    }
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
    let _ = git(sh, src).args(["worktree", "prune"]).run();
    git(sh, src)
        .args(["worktree", "add", "-q", "--force", "--detach"])
        .arg(path)
        .arg("base")
        .run()?;
    Ok(())
}

impl Trees {
    /// Worktrees ready at base and at the tip of the series. A patch that
    /// does not apply is a finding (Err inside Ok), not an error of the tool.
    /// The caller holds the GateLock.
    pub fn prepare(sh: &Shell, src: &Path, input: &Input) -> Result<Result<Trees, Finding>> {
        let base = gate_dir().join("base");
        let series = gate_dir().join("series");
        std::fs::create_dir_all(gate_dir())?;
        ensure_worktree(sh, src, &base)?;
        ensure_worktree(sh, src, &series)?;

        let base_sha = git(sh, &base).args(["rev-parse", "base"]).read()?;
        if git(sh, &base).args(["rev-parse", "HEAD"]).read()? != base_sha
            || !git(sh, &base)
                .args(["status", "--porcelain", "--untracked-files=no"])
                .read()?
                .is_empty()
        {
            git(sh, &base)
                .args(["checkout", "-q", "-f", "--detach", "base"])
                .run()?;
        }

        let key = format!("{}\n{}", base_sha, input.hash()?);
        let git_dir = PathBuf::from(
            git(sh, &series)
                .args(["rev-parse", "--absolute-git-dir"])
                .read()?,
        );
        let stamp = git_dir.join("uring-ipc-gate-series");
        let branch_ok = git(sh, &series)
            .args(["rev-parse", "--verify", "-q", SERIES_BRANCH])
            .ignore_stderr()
            .read()
            .is_ok();
        let clean = git(sh, &series)
            .args(["status", "--porcelain", "--untracked-files=no"])
            .read()?
            .is_empty();
        if branch_ok && clean && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&key) {
            // Possibly left at a prefix by an interrupted bisect.
            git(sh, &series)
                .args(["checkout", "-q", SERIES_BRANCH])
                .run()?;
        } else {
            let _ = std::fs::remove_file(&stamp);
            println!("[gate] applying the series in {}", series.display());
            let _ = git(sh, &series)
                .args(["am", "--abort"])
                .ignore_stderr()
                .ignore_status()
                .run();
            git(sh, &series)
                .args(["checkout", "-q", "-f", "-B", SERIES_BRANCH, "base"])
                .run()?;
            git(sh, &series).args(["clean", "-fdq"]).run()?;
            for (name, path) in input
                .series
                .patches
                .iter()
                .zip(input.series.paths(&input.dir))
            {
                let out = git(sh, &series)
                    .args(["am", "-q", "--no-3way", "--keep-cr"])
                    .arg(&path)
                    .ignore_status()
                    .output()?;
                if !out.status.success() {
                    let _ = git(sh, &series)
                        .args(["am", "--abort"])
                        .ignore_stderr()
                        .ignore_status()
                        .run();
                    let why = String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .filter(|l| !l.starts_with("hint:"))
                        .collect::<Vec<_>>()
                        .join("; ");
                    return Ok(Err(Finding {
                        patch: Some(input.show(name)),
                        check: "apply",
                        msg: format!("does not apply on base + the patches before it: {why}"),
                    }));
                }
            }
            std::fs::write(&stamp, &key)?;
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
        Ok(Ok(Trees {
            base,
            series,
            commits,
            touched,
        }))
    }

    /// The patch that last wrote `line` of `file` in the series tree, or
    /// None when the line comes from the base (or cannot be blamed).
    fn blame(&self, sh: &Shell, file: &str, line: usize) -> Option<String> {
        if line == 0 || !self.series.join(file).is_file() {
            return None;
        }
        let range = format!("{line},{line}");
        let out = git(sh, &self.series)
            .args(["blame", "--porcelain", "-L", &range, "HEAD", "--", file])
            .ignore_stderr()
            .read()
            .ok()?;
        let sha = out.split_whitespace().next()?;
        self.commits
            .iter()
            .find(|(c, _)| c == sha)
            .map(|(_, name)| name.clone())
    }
}

// ------------------------------------------------------------- diagnostics

/// One compiler, sparse or kernel-doc diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    /// Path relative to the tree when it lies inside it.
    pub file: String,
    pub line: usize,
    pub kind: String,
    pub msg: String,
    /// The line as printed.
    pub raw: String,
}

impl Diag {
    /// What stays the same when unrelated lines move: file, kind, message.
    pub fn key(&self) -> String {
        format!("{}: {}: {}", self.file, self.kind, self.msg)
    }
}

/// Parse `file:line[:col]: warning|error: message` lines. `file` is made
/// relative to `tree` (it may be printed relative to `cwd`, or absolute).
pub fn parse_diags(text: &str, tree: &Path, cwd: &Path) -> Vec<Diag> {
    let re = Regex::new(r"^([^:\s]+):(\d+):(?:\d+:)? (warning|error): (.*)$").unwrap();
    let tree_abs = real_path(tree);
    text.lines()
        .filter_map(|l| {
            let c = re.captures(l)?;
            let abs = real_path(&cwd.join(&c[1]));
            let file = abs
                .strip_prefix(&tree_abs)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| c[1].to_string());
            Some(Diag {
                file,
                line: c[2].parse().unwrap_or(0),
                kind: c[3].to_string(),
                msg: c[4].trim().to_string(),
                raw: l.to_string(),
            })
        })
        .collect()
}

/// `p` without `.` and `..` components, and with symlinks resolved when
/// it exists.
fn real_path(p: &Path) -> PathBuf {
    if let Ok(c) = std::fs::canonicalize(p) {
        return c;
    }
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Diagnostics in `new` beyond those in `old`, compared without line
/// numbers: a warning that was already there before the series, merely
/// moved, is not new. When a message occurs more often than before, the
/// surplus instances are returned (the last ones in `new`).
pub fn new_diags(old: &[Diag], new: &[Diag]) -> Vec<Diag> {
    let mut budget: BTreeMap<String, usize> = BTreeMap::new();
    for d in old {
        *budget.entry(d.key()).or_default() += 1;
    }
    let mut out = Vec::new();
    for d in new {
        match budget.get_mut(&d.key()) {
            Some(n) if *n > 0 => *n -= 1,
            _ => out.push(d.clone()),
        }
    }
    out
}

fn blame_findings(
    sh: &Shell,
    trees: &Trees,
    input: &Input,
    check: &'static str,
    diags: &[Diag],
) -> Vec<Finding> {
    diags
        .iter()
        .map(|d| {
            let who = trees.blame(sh, &d.file, d.line);
            let note = if who.is_none() {
                " (the line is from the base; the series made it warn)"
            } else {
                ""
            };
            Finding {
                patch: who.map(|n| input.show(&n)),
                check,
                msg: format!("{}:{}: {}: {}{note}", d.file, d.line, d.kind, d.msg),
            }
        })
        .collect()
}

// ---------------------------------------------------------------- kernel-doc

fn kernel_doc_diags(sh: &Shell, tree: &Path, file: &str) -> Result<Vec<Diag>> {
    let _d = sh.push_dir(tree);
    let out = cmd!(sh, "perl scripts/kernel-doc -none -Wall {file}")
        .quiet()
        .ignore_status()
        .output()
        .context("running scripts/kernel-doc")?;
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    Ok(parse_diags(&text, tree, tree))
}

/// kernel-doc -none -Wall on every .c/.h the series touches, in the base
/// and the patched tree.
fn kernel_doc(sh: &Shell, trees: &Trees, input: &Input) -> Result<(Vec<Finding>, usize)> {
    let files: Vec<&String> = trees
        .touched
        .iter()
        .filter(|f| f.ends_with(".c") || f.ends_with(".h"))
        .collect();
    let mut out = Vec::new();
    for f in &files {
        let new = kernel_doc_diags(sh, &trees.series, f)?;
        let old = if trees.base.join(f).is_file() {
            kernel_doc_diags(sh, &trees.base, f)?
        } else {
            Vec::new()
        };
        let fresh = new_diags(&old, &new);
        println!(
            "[kernel-doc] {f}: {} new warning(s) ({} before the series)",
            fresh.len(),
            old.len()
        );
        out.extend(blame_findings(sh, trees, input, "kernel-doc", &fresh));
    }
    Ok((out, files.len()))
}

// ------------------------------------------------------------------- builds

/// tinyconfig + the profile's fragments + olddefconfig in `out` for `tree`
/// as it is checked out. Unlike `build-kernel`, options the tree's Kconfig
/// does not offer are fine: the base and early prefixes of the series lack
/// the options later patches add.
fn configure_lenient(sh: &Shell, tree: &Path, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let request = kernel::merged_fragment(PROFILE)?;
    let tree_id = git(sh, tree).args(["rev-parse", "HEAD^{tree}"]).read()?;
    let mut h = Sha256::new();
    h.update(request.render().as_bytes());
    h.update(tree_id.as_bytes());
    let key = hex(&h.finalize());
    let stamp = out.join(".xtask-gate-config");
    let config = out.join(".config");
    if config.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(key.as_str()) {
        return Ok(());
    }
    let _ = std::fs::remove_file(&stamp);
    let o = format!("O={}", out.display());
    cmd!(sh, "make -s -C {tree} {o} tinyconfig")
        .quiet()
        .ignore_stdout()
        .run()?;
    let tiny = std::fs::read_to_string(&config)?;
    std::fs::write(&config, request.apply_to(&tiny))?;
    cmd!(sh, "make -s -C {tree} {o} olddefconfig")
        .quiet()
        .ignore_stdout()
        .run()?;
    let dropped: Vec<String> = request
        .verify(&std::fs::read_to_string(&config)?)
        .into_iter()
        .map(|(k, _, _)| k)
        .collect();
    if !dropped.is_empty() {
        println!(
            "[config] {}: this tree's Kconfig lacks {} (added later in the series)",
            out.file_name().unwrap_or_default().to_string_lossy(),
            dropped.join(" ")
        );
    }
    std::fs::write(&stamp, key)?;
    Ok(())
}

struct MakeResult {
    ok: bool,
    stderr: String,
}

/// make in `tree` with O=`out`, progress from kbuild's step lines, stderr
/// collected. Each make holds
/// target/kernel/.lock, so it never runs beside another kernel build, and a
/// long bisect lets other builds in between its steps.
fn make(tree: &Path, out: &Path, args: &[String], label: &str) -> Result<MakeResult> {
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
    kernel::make_env(&mut cmd);
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

fn jobs_arg(jobs: Option<usize>) -> String {
    format!(
        "-j{}",
        jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
    )
}

/// Kernel objects for the touched .c files: not user-space programs,
/// documentation or host tools.
pub fn kernel_objects(touched: &[String]) -> Vec<String> {
    const NOT_KERNEL: &[&str] = &["tools/", "Documentation/", "scripts/", "samples/", "usr/"];
    touched
        .iter()
        .filter(|f| f.ends_with(".c") && !NOT_KERNEL.iter().any(|p| f.starts_with(p)))
        .map(|f| format!("{}.o", &f[..f.len() - 2]))
        .collect()
}

/// Build `objects` with sparse (C=2, every file checked) and W=1 in `out`;
/// returns the diagnostics, the objects that were built and whether make
/// succeeded.
fn checked_objects(
    sh: &Shell,
    tree: &Path,
    out: &Path,
    objects: &[String],
    jobs: Option<usize>,
    which: &str,
) -> Result<(Vec<Diag>, Vec<String>, MakeResult)> {
    configure_lenient(sh, tree, out)?;
    let common = vec![jobs_arg(jobs), "W=1".to_string()];
    let mut prep = common.clone();
    prep.push("prepare".into());
    let r = make(tree, out, &prep, &format!("prepare {which}"))?;
    if !r.ok {
        bail!(
            "`make prepare` failed in {} for the {which} tree:\n{}",
            out.display(),
            tail(&r.stderr, 30)
        );
    }
    for o in objects {
        let _ = std::fs::remove_file(out.join(o));
    }
    let mut args = common;
    args.extend(["-k".to_string(), "C=2".to_string()]);
    args.extend(objects.iter().cloned());
    let r = make(tree, out, &args, &format!("sparse+W=1 {which}"))?;
    let built = objects
        .iter()
        .filter(|o| out.join(o).exists())
        .cloned()
        .collect();
    Ok((parse_diags(&r.stderr, tree, out), built, r))
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn sparse_w1(
    sh: &Shell,
    trees: &Trees,
    input: &Input,
    jobs: Option<usize>,
) -> Result<(Vec<Finding>, String)> {
    if crate::deps::which("sparse").is_none() {
        return Ok((
            vec![Finding {
                patch: None,
                check: "sparse",
                msg: "sparse is not installed: `cargo xtask deps` (Debian package `sparse`)".into(),
            }],
            String::new(),
        ));
    }
    let objects = kernel_objects(&trees.touched);
    if objects.is_empty() {
        return Ok((vec![], "no kernel .c files touched".into()));
    }
    let base_objects: Vec<String> = objects
        .iter()
        .filter(|o| {
            trees
                .base
                .join(format!("{}.c", &o[..o.len() - 2]))
                .is_file()
        })
        .cloned()
        .collect();
    println!(
        "[sparse+W=1] objects: {} ({} exist in the base)",
        objects.join(" "),
        base_objects.len()
    );
    let gd = gate_dir();
    let (old, _, _) = checked_objects(
        sh,
        &trees.base,
        &gd.join("build-base"),
        &base_objects,
        jobs,
        "base",
    )?;
    let (new, built, r) = checked_objects(
        sh,
        &trees.series,
        &gd.join("build-series"),
        &objects,
        jobs,
        "series",
    )?;
    let mut out = Vec::new();
    let skipped: Vec<&String> = objects.iter().filter(|o| !built.contains(o)).collect();
    let errors: Vec<&Diag> = new.iter().filter(|d| d.kind == "error").collect();
    if !r.ok && errors.is_empty() {
        // make failed without a compiler error: probably an object the
        // config does not build. Say which, as a skip with its reason.
        let why = tail(&r.stderr, 5);
        for o in &skipped {
            println!(
                "[sparse+W=1] SKIP {o}: not built with the {} config ({why})",
                PROFILE.name()
            );
        }
    }
    let fresh = new_diags(&old, &new);
    for d in &fresh {
        println!("[sparse+W=1] new: {}", d.raw);
    }
    out.extend(blame_findings(sh, trees, input, "sparse+W=1", &fresh));
    let note = format!(
        "{} objects checked, {} diagnostics before, {} after, {} new{}",
        built.len(),
        old.len(),
        new.len(),
        fresh.len(),
        if skipped.is_empty() {
            String::new()
        } else {
            format!(
                "; not built by the {} config: {}",
                PROFILE.name(),
                skipped
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    );
    Ok((out, note))
}

// ------------------------------------------------------------------- bisect

pub fn bisect_dir() -> PathBuf {
    kernel_dir().join("build-bisect")
}

/// One prefix of the series: the patch that ends it and what identifies
/// its build (the config request and the tree, not the commit).
pub struct Prefix {
    pub name: String,
    pub key: String,
}

/// What became of the prefixes.
pub struct BisectOutcome {
    pub findings: Vec<Finding>,
    pub built: usize,
    pub reused: usize,
}

/// Build each prefix not in `ok` with `build(i)`; a prefix that fails is a
/// finding naming its last patch, with the compiler's errors. Keys of
/// prefixes that build are added to `ok` and handed to `save`.
fn build_prefixes(
    prefixes: &[Prefix],
    ok: &mut Vec<String>,
    mut build: impl FnMut(usize) -> Result<MakeResult>,
    mut save: impl FnMut(&[String]) -> Result<()>,
    show: impl Fn(&str) -> String,
    tree: &Path,
    out: &Path,
) -> Result<BisectOutcome> {
    let n = prefixes.len();
    let mut res = BisectOutcome {
        findings: Vec::new(),
        built: 0,
        reused: 0,
    };
    for (i, p) in prefixes.iter().enumerate() {
        let step = format!("[bisect {}/{n}] {}", i + 1, p.name);
        if ok.contains(&p.key) {
            println!("{step}: built before, skipped");
            res.reused += 1;
            continue;
        }
        println!("{step}: make vmlinux");
        let t = Instant::now();
        let r = build(i)?;
        res.built += 1;
        if r.ok {
            println!("{step}: builds ({})", fmt_duration(t.elapsed()));
            ok.push(p.key.clone());
            save(ok)?;
            continue;
        }
        let errs: Vec<String> = parse_diags(&r.stderr, tree, out)
            .into_iter()
            .filter(|d| d.kind == "error")
            .map(|d| format!("{}:{}: {}", d.file, d.line, d.msg))
            .collect();
        let why = if errs.is_empty() {
            tail(&r.stderr, 8)
        } else {
            errs.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
        };
        println!("{step}: BUILD FAILED\n{}", tail(&r.stderr, 40));
        res.findings.push(Finding {
            patch: Some(show(&p.name)),
            check: "bisect",
            msg: format!(
                "the tree does not build with this patch applied on the ones \
                 before it ({} of {n}): {why}",
                i + 1
            ),
        });
    }
    Ok(res)
}

/// Build vmlinux at every prefix of the series, incrementally, in one
/// build directory. Prefixes whose tree already built with the same config
/// request are not built again.
fn bisect(
    sh: &Shell,
    trees: &Trees,
    input: &Input,
    jobs: Option<usize>,
) -> Result<(Vec<Finding>, String)> {
    let out = bisect_dir();
    std::fs::create_dir_all(&out)?;
    let request = kernel::merged_fragment(PROFILE)?.render();
    let ok_file = out.join(".xtask-bisect-ok");
    let mut ok: Vec<String> = std::fs::read_to_string(&ok_file)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    let mut prefixes = Vec::new();
    for (sha, name) in &trees.commits {
        let tree_id = git(sh, &trees.series)
            .arg("rev-parse")
            .arg(format!("{sha}^{{tree}}"))
            .read()?;
        let mut h = Sha256::new();
        h.update(request.as_bytes());
        h.update(tree_id.as_bytes());
        prefixes.push(Prefix {
            name: name.clone(),
            key: hex(&h.finalize()),
        });
    }
    let n = prefixes.len();
    let result = build_prefixes(
        &prefixes,
        &mut ok,
        |i| {
            git(sh, &trees.series)
                .args(["checkout", "-q", "--detach", &trees.commits[i].0])
                .run()?;
            configure_lenient(sh, &trees.series, &out)?;
            make(
                &trees.series,
                &out,
                &[jobs_arg(jobs), "vmlinux".to_string()],
                &format!("bisect {}/{n}", i + 1),
            )
        },
        |ok| Ok(std::fs::write(&ok_file, ok.join("\n") + "\n")?),
        |name| input.show(name),
        &trees.series,
        &out,
    );
    // Leave the worktree at the tip whatever happened.
    git(sh, &trees.series)
        .args(["checkout", "-q", SERIES_BRANCH])
        .run()?;
    let r = result?;
    Ok((
        r.findings,
        format!(
            "{n} prefixes: {} built, {} known good from an earlier run",
            r.built, r.reused
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(file: &str, line: usize, msg: &str) -> Diag {
        Diag {
            file: file.into(),
            line,
            kind: "warning".into(),
            msg: msg.into(),
            raw: String::new(),
        }
    }

    #[test]
    fn parses_gcc_sparse_and_kernel_doc_lines() {
        let tree = Path::new("/nonexistent/tree");
        let text = "\
/nonexistent/tree/io_uring/ipc.c:12:5: warning: symbol 'x' was not declared. Should it be static?
io_uring/ipc.c:40: warning: Function parameter or struct member 'ctx' not described in 'f'
In file included from ../tree/ipc/util.h:3,
../tree/ipc/mqueue.c:7:1: error: expected ';' before '}' token
make[2]: *** [scripts/Makefile.build:229: ipc/mqueue.o] Error 1
";
        let d = parse_diags(text, tree, tree);
        assert_eq!(d.len(), 3, "{d:?}");
        assert_eq!(d[0].file, "io_uring/ipc.c");
        assert_eq!(d[0].line, 12);
        assert_eq!(
            d[0].key(),
            "io_uring/ipc.c: warning: symbol 'x' was not declared. Should it be static?"
        );
        assert_eq!(d[1].file, "io_uring/ipc.c");
        assert_eq!(d[1].line, 40);
        assert_eq!(d[2].kind, "error");
        // Relative to the build directory, like kbuild prints with O=.
        let d = parse_diags(
            "../tree/ipc/mqueue.c:7:1: warning: w\n",
            tree,
            &tree.join("../out"),
        );
        assert_eq!(d[0].file, "ipc/mqueue.c");
    }

    #[test]
    fn only_new_diagnostics_count_whatever_their_line() {
        let old = vec![diag("a.c", 10, "unused x"), diag("a.c", 20, "unused y")];
        // Both moved down by five lines; one more "unused x" appeared.
        let new = vec![
            diag("a.c", 15, "unused x"),
            diag("a.c", 25, "unused y"),
            diag("a.c", 30, "unused x"),
            diag("b.c", 1, "shadowed z"),
        ];
        let fresh = new_diags(&old, &new);
        assert_eq!(
            fresh,
            vec![diag("a.c", 30, "unused x"), diag("b.c", 1, "shadowed z")]
        );
        assert!(new_diags(&new, &old).is_empty());
    }

    #[test]
    fn objects_only_for_kernel_c_files() {
        let touched: Vec<String> = [
            "io_uring/ipc.c",
            "io_uring/ipc.h",
            "tools/testing/selftests/mqueue/mq_peek_test.c",
            "Documentation/x.rst",
            "kernel/sys_ni.c",
            "scripts/syscall.tbl",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            kernel_objects(&touched),
            vec!["io_uring/ipc.o", "kernel/sys_ni.o"]
        );
    }

    #[test]
    fn counts_every_kind_of_checkpatch_finding() {
        let clean = "x.patch has no obvious style problems and is ready for submission.\n";
        assert_eq!(checkpatch_findings(clean), 0);
        let dirty = "WARNING:ENOSYS: ENOSYS means 'invalid syscall nr'\n#12: FILE: a.c:3:\n\
                     CHECK:PARENTHESIS_ALIGNMENT: Alignment should match\nERROR:CODE_INDENT: use tabs\n";
        assert_eq!(checkpatch_findings(dirty), 3);
    }

    #[test]
    fn a_prefix_that_does_not_build_names_its_patch() {
        let tree = Path::new("/nonexistent/series");
        let out = Path::new("/nonexistent/build");
        let prefixes: Vec<Prefix> = ["0001-a.patch", "0002-b.patch", "0003-c.patch"]
            .iter()
            .enumerate()
            .map(|(i, n)| Prefix {
                name: n.to_string(),
                key: format!("k{i}"),
            })
            .collect();
        let mut ok = vec!["k0".to_string()];
        let mut asked = Vec::new();
        let mut saved = Vec::new();
        let r = build_prefixes(
            &prefixes,
            &mut ok,
            |i| {
                asked.push(i);
                Ok(MakeResult {
                    ok: i != 1,
                    stderr: if i == 1 {
                        "../series/ipc/mqueue.c:90:9: error: implicit declaration of function \
                         'copy_msg_to_buf' [-Werror=implicit-function-declaration]\n"
                            .into()
                    } else {
                        String::new()
                    },
                })
            },
            |ok| {
                saved = ok.to_vec();
                Ok(())
            },
            |n| format!("scratch/{n}"),
            tree,
            out,
        )
        .unwrap();
        // The first prefix built in an earlier run and is not built again.
        assert_eq!(asked, vec![1, 2]);
        assert_eq!((r.built, r.reused), (2, 1));
        assert_eq!(r.findings.len(), 1);
        let f = r.findings[0].to_string();
        assert!(f.starts_with("scratch/0002-b.patch: bisect: "), "{f}");
        assert!(f.contains("(2 of 3)"), "{f}");
        assert!(f.contains("ipc/mqueue.c:90: implicit declaration"), "{f}");
        // Only prefixes that built are remembered.
        assert_eq!(saved, vec!["k0", "k2"]);
    }

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
