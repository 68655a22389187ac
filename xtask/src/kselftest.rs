//! The kernel's own selftests (tools/testing/selftests/<dir>): built on the
//! host from a kernel tree with the selftests' Makefile, run in the guest by
//! `guest-run` under the kselftest conventions (exit 0 pass, 4 skip, else
//! fail; output kept as KTAP or wrapped into one test case).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::guest::{Convention, GuestTest};

/// Arguments the kselftest runner would not give but a program needs.
fn args_for(dir: &str, prog: &str) -> Vec<String> {
    match (dir, prog) {
        // The queue it creates, removes and recreates.
        ("mqueue", "mq_open_tests") => vec!["/test1".into()],
        _ => Vec::new(),
    }
}

/// The directory's `settings` timeout (kselftest's runner default: 45 s).
pub fn settings_timeout(src_dir: &Path) -> u64 {
    std::fs::read_to_string(src_dir.join("settings"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.trim().strip_prefix("timeout=")?.trim().parse().ok())
        })
        .unwrap_or(45)
}

/// The programs the directory's Makefile lists in TEST_GEN_PROGS (with
/// `\` continuations), in order.
pub fn gen_progs(makefile: &str) -> Vec<String> {
    let joined = makefile.replace("\\\n", " ");
    let mut progs = Vec::new();
    for l in joined.lines() {
        let Some((var, val)) = l.split_once(['=']) else {
            continue;
        };
        let var = var.trim_end_matches([':', '+', '?']).trim();
        if var == "TEST_GEN_PROGS" {
            if !l.contains("+=") {
                progs.clear();
            }
            progs.extend(val.split_whitespace().map(str::to_string));
        }
    }
    progs
}

/// Build tools/testing/selftests/`dir` of the kernel tree `tree` into
/// `out`, and describe its programs as guest tests named `dir.prog`.
pub fn build(sh: &Shell, tree: &Path, dir: &str, out: &Path) -> Result<Vec<GuestTest>> {
    build_with(sh, tree, dir, out, &[])
}

/// [`build`], passing `make_args` (e.g. `KHDR_INCLUDES=...`) to make.
pub fn build_with(
    sh: &Shell,
    tree: &Path,
    dir: &str,
    out: &Path,
    make_args: &[String],
) -> Result<Vec<GuestTest>> {
    let src_dir = tree.join("tools/testing/selftests").join(dir);
    let makefile = std::fs::read_to_string(src_dir.join("Makefile"))
        .with_context(|| format!("reading {}/Makefile", src_dir.display()))?;
    let progs = gen_progs(&makefile);
    if progs.is_empty() {
        bail!("{}/Makefile lists no TEST_GEN_PROGS", src_dir.display());
    }
    std::fs::create_dir_all(out)?;
    let output = format!("OUTPUT={}", out.display());
    println!(
        "[kselftest] make -C {} ({})",
        src_dir.display(),
        progs.join(" ")
    );
    let built = cmd!(sh, "make -s -C {src_dir} {output} {make_args...}")
        .quiet()
        .ignore_stdout()
        .run();
    if built.is_err() {
        bail!(
            "building the {dir} kselftests failed (the compiler's messages are above); \
             they need libpopt-dev and gcc: `cargo xtask deps` installs them"
        );
    }
    let timeout = settings_timeout(&src_dir);
    let mut tests = Vec::new();
    for p in &progs {
        let path: PathBuf = out.join(p);
        if !path.is_file() {
            bail!("make did not produce {}", path.display());
        }
        tests.push(GuestTest {
            name: format!("{dir}.{p}"),
            path,
            args: args_for(dir, p),
            convention: Convention::Kselftest,
            timeout: Some(timeout),
            scratch: true,
        });
    }
    Ok(tests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gen_progs() {
        let mk =
            "CFLAGS += -O2\nTEST_GEN_PROGS := mq_open_tests mq_perf_tests \\\n\tmq_peek_test\n\
                  TEST_GEN_PROGS += extra\ninclude ../lib.mk\n";
        assert_eq!(
            gen_progs(mk),
            vec!["mq_open_tests", "mq_perf_tests", "mq_peek_test", "extra"]
        );
        assert!(gen_progs("TEST_PROGS := run.sh\n").is_empty());
    }

    #[test]
    fn settings_default() {
        let dir = std::env::temp_dir().join(format!("xtask-ksft-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(settings_timeout(&dir), 45);
        std::fs::write(dir.join("settings"), "timeout=180\n").unwrap();
        assert_eq!(settings_timeout(&dir), 180);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
