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
    std::fs::create_dir_all(out)?;
    let key = stamp::hash(&[request.render().as_bytes(), tree_key.as_bytes()]);
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

pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// Environment for reproducible, ccache-friendly kernel builds.
pub(crate) fn make_env(cmd: &mut Command) {
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

pub fn run_make(src: &Path, out: &Path, label: &str, jobs: usize) -> Result<()> {
    let cc = if crate::deps::which("ccache").is_some() {
        "ccache gcc"
    } else {
        "gcc"
    };
    let mut cmd = Command::new("make");
    cmd.arg("-C")
        .arg(src)
        .arg(format!("O={}", out.display()))
        .arg(format!("-j{jobs}"))
        .arg(format!("CC={cc}"))
        .arg("bzImage")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    make_env(&mut cmd);
    let count_file = out.join(".xtask-steps");
    let expected = std::fs::read_to_string(&count_file)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let mut progress = Progress::new(&format!("build {label}"), expected);
    println!(
        "[build] make -j{jobs} bzImage (CC={cc}) in {}",
        out.display()
    );
    let mut child = cmd.spawn().context("running make")?;
    let stderr = child.stderr.take().unwrap();
    // Compiler diagnostics go to stderr: show them as they come.
    let err_thread = std::thread::spawn(move || {
        let mut tail: Vec<String> = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            tail.push(line);
            if tail.len() > 200 {
                tail.remove(0);
            }
        }
        tail
    });
    for line in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        progress.line(&line);
    }
    let status = child.wait()?;
    let _ = err_thread.join();
    progress.finish();
    if !status.success() {
        bail!("kernel build failed ({status}); the compiler's messages are above");
    }
    // Remember the size of a full build, for the next one's percentage.
    if expected.map_or(progress.steps() > 100, |e: u64| {
        progress.steps() * 10 >= e * 8
    }) {
        std::fs::write(count_file, progress.steps().to_string())?;
    }
    Ok(())
}
