//! The kernel's own selftests (tools/testing/selftests/<dir>).
//!
//! `cargo xtask test` uses the kernel's own machinery: `make ... install`
//! on the host, then `run_kselftest.sh -t dir:prog` in the guest for each
//! program (one `guest-run` test each, so every program keeps its own
//! timeout backstop and kernel log); [`parse_runner`] turns the runner's TAP
//! back into the program's output and exit status. Each directory's
//! `config` file joins the kernel's fragments ([`config_fragments`]), as
//! `make kselftest-merge` would, and is verified like them.
//!
//! `cargo xtask regress` builds a directory's programs without installing
//! ([`build`]) and runs them directly under the same conventions (exit 0
//! pass, 4 skip, else fail; output kept as KTAP or one test case).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::guest::{Convention, GuestTest};
use crate::kconfig::Fragment;
use crate::results::Exit;

/// The in-tree kselftest directories `cargo xtask test` installs and runs:
/// the ones the two series touch.
pub const TARGETS: [&str; 2] = ["mqueue", "io_uring_ipc"];

/// Programs of [`TARGETS`] that `cargo xtask test` leaves out, with why.
/// mq_perf_tests measures throughput for minutes and proves nothing a
/// pass/fail run needs; `cargo xtask regress` runs it.
pub const NOT_IN_TEST: [&str; 1] = ["mqueue:mq_perf_tests"];

/// Seconds the guest waits beyond a program's own (runner-enforced)
/// timeout before it kills the runner.
const RUNNER_GRACE: u64 = 30;

/// The `config` files of `targets` in `tree` that exist, as fragments named
/// by their path in the tree (mqueue has none in 6.12).
pub fn config_fragments(tree: &Path, targets: &[&str]) -> Result<Vec<(String, Fragment)>> {
    let mut v = Vec::new();
    for t in targets {
        let rel = format!("tools/testing/selftests/{t}/config");
        let path = tree.join(&rel);
        if path.is_file() {
            v.push((rel, Fragment::load(&path)?));
        }
    }
    Ok(v)
}

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

/// `make -C tools/testing/selftests TARGETS=... install` from `tree`,
/// objects under `out`/build and the installed tree in `out`/install, then
/// one guest test per line of its kselftest-list.txt (`dir:prog`, named
/// `dir.prog`) that runs the installed `run_kselftest.sh -t dir:prog` in a
/// scratch copy (the host's tree is read-only in the guest).
pub fn install(
    sh: &Shell,
    tree: &Path,
    targets: &[&str],
    out: &Path,
    make_args: &[String],
) -> Result<Vec<GuestTest>> {
    let selftests = tree.join("tools/testing/selftests");
    let (build, inst) = (out.join("build"), out.join("install"));
    // A stale installed tree could keep a program the Makefile dropped.
    let _ = std::fs::remove_dir_all(&inst);
    std::fs::create_dir_all(&build)?;
    let targets_var = format!("TARGETS={}", targets.join(" "));
    let o = format!("O={}", build.display());
    let path = format!("KSFT_INSTALL_PATH={}", inst.display());
    println!(
        "[kselftest] make -C {} {targets_var} install",
        selftests.display()
    );
    let made = cmd!(
        sh,
        "make -s -C {selftests} {targets_var} {o} {path} {make_args...} install"
    )
    .quiet()
    .ignore_stdout()
    .run();
    if made.is_err() {
        bail!(
            "building the {} kselftests failed (the compiler's messages are above); \
             they need libpopt-dev and gcc: `cargo xtask deps` installs them",
            targets.join(", ")
        );
    }
    let list_path = inst.join("kselftest-list.txt");
    let list = std::fs::read_to_string(&list_path)
        .with_context(|| format!("make install wrote no {}", list_path.display()))?;
    let runner = inst.join("run_kselftest.sh");
    if !runner.is_file() {
        bail!("make install wrote no {}", runner.display());
    }
    let mut tests = Vec::new();
    for entry in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((dir, prog)) = entry.split_once(':') else {
            bail!("{}: `{entry}` is not dir:prog", list_path.display());
        };
        if !inst.join(dir).join(prog).is_file() {
            bail!("{entry} is listed but {dir}/{prog} was not installed");
        }
        let timeout = settings_timeout(&selftests.join(dir));
        tests.push(GuestTest {
            name: format!("{dir}.{prog}"),
            path: "/bin/sh".into(),
            args: vec![
                "-c".into(),
                format!(
                    "cp -a '{}'/. . && exec ./run_kselftest.sh -t '{entry}'",
                    inst.display()
                ),
            ],
            convention: Convention::KselftestRunner,
            timeout: Some(timeout + RUNNER_GRACE),
            scratch: true,
        });
    }
    for t in targets {
        if !tests.iter().any(|g| g.name.starts_with(&format!("{t}."))) {
            bail!("{}: no test of {t}", list_path.display());
        }
    }
    Ok(tests)
}

/// One program's run as `run_kselftest.sh` reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerResult {
    /// The program's own output (stdout and stderr), without the runner's
    /// `# ` prefix; lines the runner printed outside it are kept as they are.
    pub output: String,
    /// The program's exit as the runner saw it, from its result line:
    /// `ok` 0, `# SKIP` 4, `# exit=N` N, `# TIMEOUT N seconds` a timeout.
    /// None when there is no result line (the runner itself was killed).
    pub exit: Option<Exit>,
}

/// Read the output of `run_kselftest.sh -t dir:prog` (one program).
pub fn parse_runner(text: &str) -> RunnerResult {
    let mut output = String::new();
    let mut exit = None;
    let mut in_prog = false;
    for line in text.lines() {
        if let Some(hdr) = line.strip_prefix("# selftests: ") {
            if !in_prog && exit.is_none() && hdr.contains(": ") {
                in_prog = true;
                continue;
            }
        }
        let result = ["ok ", "not ok "]
            .iter()
            .any(|p| line.starts_with(p))
            .then(|| crate::ktap::parse_result(line))
            .flatten()
            .filter(|c| c.name.starts_with("selftests: "));
        if let Some(c) = result {
            let directive = line.split_once(" # ").map(|(_, d)| d.trim());
            exit = Some(match c.outcome {
                crate::results::Outcome::Pass => Exit::Code(0),
                crate::results::Outcome::Skip => Exit::Code(4),
                crate::results::Outcome::Fail => runner_failure(directive),
            });
            in_prog = false;
            continue;
        }
        if in_prog {
            match line.strip_prefix("# ") {
                Some(l) => output.push_str(l),
                // The runner's own "#" before a TIMEOUT result.
                None if line == "#" => continue,
                None => output.push_str(line),
            }
            output.push('\n');
        } else if !line.starts_with("TAP version")
            && !line.starts_with("1..")
            && !line.starts_with("# timeout set to")
            && !line.starts_with("# overriding timeout")
        {
            output.push_str(line);
            output.push('\n');
        }
    }
    RunnerResult { output, exit }
}

/// The program's output and exit from the runner's output `raw` and the
/// runner's own exit.
pub fn runner_verdict(raw: &str, runner_exit: Exit) -> (String, Exit) {
    let r = parse_runner(raw);
    match (r.exit, runner_exit) {
        // The runner exits 0 whatever its program did.
        (Some(e), Exit::Code(0)) => (r.output, e),
        (None, Exit::Code(0)) => (
            format!("{}run_kselftest.sh printed no result line\n", r.output),
            Exit::Code(1),
        ),
        // The runner itself failed, or was killed: its own exit stands.
        (_, e) => (r.output, e),
    }
}

/// The exit a failed runner result line names.
fn runner_failure(directive: Option<&str>) -> Exit {
    let d = directive.unwrap_or("");
    if let Some(code) = d.strip_prefix("exit=").and_then(|c| c.trim().parse().ok()) {
        return Exit::Code(code);
    }
    if let Some(secs) = d
        .strip_prefix("TIMEOUT ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
    {
        return Exit::Timeout(secs);
    }
    // A program the runner could not start (missing, not executable).
    Exit::Code(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_output_gives_the_programs_tap_and_exit() {
        let ok = "TAP version 13\n1..1\n# timeout set to 45\n\
                  # selftests: io_uring_ipc: io_uring_ipc_test\n# TAP version 13\n# 1..2\n\
                  # ok 1 create\n# ok 2 send # SKIP no ipc\n# # Totals: pass:1\n\
                  ok 1 selftests: io_uring_ipc: io_uring_ipc_test\n";
        let r = parse_runner(ok);
        assert_eq!(r.exit, Some(Exit::Code(0)));
        assert_eq!(
            r.output,
            "TAP version 13\n1..2\nok 1 create\nok 2 send # SKIP no ipc\n# Totals: pass:1\n"
        );
        let t = crate::ktap::tally_binary(
            "x",
            &crate::guest::to_ktap("x", &r.output, Convention::Kselftest, &Exit::Code(0)),
            &Exit::Code(0),
        );
        assert_eq!((t.passed, t.skipped, t.failed), (1, 1, 0));

        let failed = "TAP version 13\n1..1\n# selftests: mqueue: mq_open_tests\n\
                      # Using Default queue path - /test1\n# boom\n\
                      not ok 1 selftests: mqueue: mq_open_tests # exit=3\n";
        let r = parse_runner(failed);
        assert_eq!(r.exit, Some(Exit::Code(3)));
        assert_eq!(r.output, "Using Default queue path - /test1\nboom\n");

        let skipped = "1..1\n# selftests: mqueue: mq_peek_test\n\
                       ok 1 selftests: mqueue: mq_peek_test # SKIP\n";
        assert_eq!(parse_runner(skipped).exit, Some(Exit::Code(4)));
        let hung = "1..1\n# selftests: mqueue: mq_peek_test\n# waiting\n#\n\
                    not ok 1 selftests: mqueue: mq_peek_test # TIMEOUT 45 seconds\n";
        let r = parse_runner(hung);
        assert_eq!(r.exit, Some(Exit::Timeout(45)));
        assert_eq!(r.output, "waiting\n");
        let missing = "1..1\n# selftests: mqueue: gone\n# Warning: file gone is missing!\n\
                       not ok 1 selftests: mqueue: gone\n";
        assert_eq!(parse_runner(missing).exit, Some(Exit::Code(1)));
        // Killed under the runner: no result line, the partial output stays.
        let cut = "TAP version 13\n1..1\n# selftests: mqueue: mq_peek_test\n# ok 1 a\n";
        let r = parse_runner(cut);
        assert_eq!(r.exit, None);
        assert_eq!(r.output, "ok 1 a\n");
    }

    #[test]
    fn the_runner_exit_stands_when_the_runner_did_not_finish() {
        let out = "1..1\n# selftests: mqueue: a\nnot ok 1 selftests: mqueue: a # exit=2\n";
        assert_eq!(runner_verdict(out, Exit::Code(0)).1, Exit::Code(2));
        let cut = "1..1\n# selftests: mqueue: a\n# ok 1 x\n";
        assert_eq!(
            runner_verdict(cut, Exit::Timeout(75)),
            ("ok 1 x\n".to_string(), Exit::Timeout(75))
        );
        let (text, exit) = runner_verdict(cut, Exit::Code(0));
        assert_eq!(exit, Exit::Code(1));
        assert!(text.ends_with("printed no result line\n"));
    }

    #[test]
    fn selftest_configs_are_fragments() {
        let dir = std::env::temp_dir().join(format!("xtask-ksft-cfg-{}", std::process::id()));
        let sel = dir.join("tools/testing/selftests");
        std::fs::create_dir_all(sel.join("a")).unwrap();
        std::fs::create_dir_all(sel.join("b")).unwrap();
        std::fs::write(
            sel.join("b/config"),
            "CONFIG_FOO=y\n# CONFIG_BAR is not set\n",
        )
        .unwrap();
        let f = config_fragments(&dir, &["a", "b"]).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0, "tools/testing/selftests/b/config");
        assert_eq!(f[0].1.entries["CONFIG_FOO"], "y");
        assert_eq!(f[0].1.entries["CONFIG_BAR"], "n");
        std::fs::write(sel.join("a/config"), "FOO=y\n").unwrap();
        let err = config_fragments(&dir, &["a", "b"]).unwrap_err();
        assert!(format!("{err:#}").contains("a/config:1"), "{err:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
