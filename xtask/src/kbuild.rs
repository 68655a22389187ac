//! Configuring and building a kernel tree out of tree (O=).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::kconfig::Fragment;
use crate::progress::Progress;
use crate::stamp::{self, Stamp};

/// What `configure` does with requested options the final .config lacks.
#[derive(Debug, Clone, Copy)]
pub enum Check<'a> {
    /// Fail, naming them: the kernels that are booted get exactly what
    /// kernel-config/ asks for. The string names the request for the log.
    Strict(&'a str),
    /// Say which they are and go on: the base and the early prefixes of the
    /// series lack the options later patches add.
    Lenient,
}

/// tinyconfig + `request` + olddefconfig in `out`, for `tree` as it is
/// checked out, then checked as `check` says. Skipped when `request` and
/// `tree_key` (what identifies the source) are those of the last run.
pub fn configure(
    sh: &Shell,
    tree: &Path,
    out: &Path,
    request: &Fragment,
    tree_key: &str,
    check: Check,
) -> Result<()> {
    configure_with(sh, tree, out, request, tree_key, check, &[])
}

/// [`configure`] with make variables (`ARCH=arm64`, `CROSS_COMPILE=...`)
/// for another architecture; every make in `out` must pass the same ones.
pub fn configure_with(
    sh: &Shell,
    tree: &Path,
    out: &Path,
    request: &Fragment,
    tree_key: &str,
    check: Check,
    vars: &[String],
) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let vars_key = vars.join(" ");
    let mut inputs = vec![request.render().into_bytes(), tree_key.as_bytes().to_vec()];
    // Native builds keep the key they always had (no reconfiguration).
    if !vars.is_empty() {
        inputs.push(vars_key.into_bytes());
    }
    let parts: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
    let key = stamp::hash(&parts);
    let stamp = Stamp::new(out.join(".xtask-config"), key);
    let config = out.join(".config");
    if config.exists() && stamp.holds() {
        return Ok(());
    }
    stamp.clear();
    if let Check::Strict(what) = check {
        println!("[config] tinyconfig + {what}");
    }
    let o = format!("O={}", out.display());
    cmd!(sh, "make -s -C {tree} {o} {vars...} tinyconfig")
        .quiet()
        .ignore_stdout()
        .run()?;
    let tiny = std::fs::read_to_string(&config)?;
    std::fs::write(&config, request.apply_to(&tiny))?;
    cmd!(sh, "make -s -C {tree} {o} {vars...} olddefconfig")
        .quiet()
        .ignore_stdout()
        .run()?;
    let bad = request.verify(&std::fs::read_to_string(&config)?);
    match check {
        Check::Strict(_) if !bad.is_empty() => {
            let lines: Vec<String> = bad
                .iter()
                .map(|(k, want, got)| format!("  {k}: requested {want}, got {got}"))
                .collect();
            bail!(
                "Kconfig did not keep these options (a dependency is missing or they \
                 are not user-settable); fix kernel-config/:\n{}",
                lines.join("\n")
            );
        }
        Check::Lenient if !bad.is_empty() => {
            let dropped: Vec<&str> = bad.iter().map(|(k, _, _)| k.as_str()).collect();
            println!(
                "[config] {}: this tree's Kconfig lacks {} (added later in the series)",
                out.file_name().unwrap_or_default().to_string_lossy(),
                dropped.join(" ")
            );
        }
        _ => {}
    }
    stamp.write()?;
    Ok(())
}

/// Parallel make jobs: `jobs`, or one per CPU.
pub fn jobs(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    })
}

/// The compiler: gcc, through ccache when it is installed.
pub fn cc() -> &'static str {
    if crate::deps::which("ccache").is_some() {
        "ccache gcc"
    } else {
        "gcc"
    }
}

/// Environment for reproducible, ccache-friendly kernel builds.
fn make_env(cmd: &mut Command) {
    cmd.env("KBUILD_BUILD_USER", "uring-ipc")
        .env("KBUILD_BUILD_HOST", "xtask")
        .env("KBUILD_BUILD_TIMESTAMP", "2025-01-01")
        // Set (even empty) LOCALVERSION stops setlocalversion from appending
        // "+" for a git tree that is not at a release tag.
        .env("LOCALVERSION", "")
        .env("CCACHE_BASEDIR", crate::project_root())
        .env("CCACHE_NOHASHDIR", "1")
        .env(
            "CCACHE_SLOPPINESS",
            "time_macros,include_file_mtime,include_file_ctime",
        )
        .env_remove("ARCH")
        .env_remove("CROSS_COMPILE");
}

/// What becomes of make's stderr, where the compiler's messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    /// Shown as they come; a failed make is an error.
    Echo,
    /// Kept in the result; a failed make is for the caller to judge.
    Collect,
}

/// Where the progress line learns how many steps to expect: a count an
/// earlier run left in the build directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steps {
    /// `.xtask-steps`, the size of the last full build: a run that did much
    /// less (an incremental build) leaves it alone.
    FullBuild,
    /// `.xtask-steps-<label>`, the size of the last successful run with
    /// this label.
    PerLabel,
}

/// How a make ended.
#[derive(Debug)]
pub struct MakeResult {
    pub ok: bool,
    /// Everything make wrote to stderr, with `Stderr::Collect`.
    pub stderr: String,
}

/// One make in `tree` with O=`out`, with the compiler and environment of
/// every kernel build here; kbuild's step lines drive a progress line.
pub struct Make<'a> {
    pub tree: &'a Path,
    pub out: &'a Path,
    /// Parallel jobs; None: one per CPU.
    pub jobs: Option<usize>,
    /// Targets and variables.
    pub args: Vec<String>,
    /// What the progress line calls the build.
    pub label: &'a str,
    pub stderr: Stderr,
    pub steps: Steps,
}

impl Make<'_> {
    pub fn run(&self) -> Result<MakeResult> {
        let mut cmd = Command::new("make");
        cmd.arg("-C")
            .arg(self.tree)
            .arg(format!("O={}", self.out.display()))
            .arg(format!("-j{}", jobs(self.jobs)))
            .arg(format!("CC={}", cc()))
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        make_env(&mut cmd);
        let count_file = match self.steps {
            Steps::FullBuild => self.out.join(".xtask-steps"),
            Steps::PerLabel => self.out.join(format!(
                ".xtask-steps-{}",
                self.label.replace([' ', '/'], "-")
            )),
        };
        let expected = std::fs::read_to_string(&count_file)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let mut progress = Progress::new(self.label, expected);
        let mut child = cmd.spawn().context("running make")?;
        let stderr = child.stderr.take().unwrap();
        let echo = self.stderr == Stderr::Echo;
        let err_thread = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if echo {
                    eprintln!("{line}");
                } else {
                    all.push_str(&line);
                    all.push('\n');
                }
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
        if echo && !status.success() {
            bail!("kernel build failed ({status}); the compiler's messages are above");
        }
        // Remember the size of the build, for the next one's percentage.
        let steps = progress.steps();
        let remember = match self.steps {
            Steps::FullBuild => expected.map_or(steps > 100, |e: u64| steps * 10 >= e * 8),
            Steps::PerLabel => steps > 0,
        };
        if status.success() && remember {
            std::fs::write(count_file, steps.to_string())?;
        }
        Ok(MakeResult {
            ok: status.success(),
            stderr,
        })
    }
}
