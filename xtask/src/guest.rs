//! The in-guest half of `cargo xtask test` and `cargo xtask regress`: runs
//! each test binary with a timeout, streams its output (indented, as a
//! subtest) to the console and stores it in the shared results directory
//! together with its exit status and the kernel log written while it ran.
//! The host reads those files, also while the VM is still running.
//!
//! Binaries follow one of three conventions (see [`Convention`]). Output that
//! is not KTAP (liburing's tests, most kselftests) is kept as `<name>.out`
//! and turned into a one-case KTAP document, `<name>.ktap`, judged by the
//! exit status.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::flags::GuestRunArgs;
use crate::results::{Exit, Outcome, ResultsDir, TestFile};
use crate::vm::{End, Line, Session, Stream};

/// How a test binary reports its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Convention {
    /// This workspace's selftests: KTAP on stdout; exit 0 pass, 4 all
    /// skipped, anything else fail.
    #[default]
    Ktap,
    /// Kernel selftests: exit 0 pass, 4 skip (KSFT_SKIP), anything else
    /// fail. Output may be TAP (kselftest.h) or free text.
    Kselftest,
    /// liburing's test suite: exit 0 pass, 77 skip, anything else fail.
    Liburing,
    /// The kernel's `run_kselftest.sh` running one kselftest program: the
    /// program's output and exit are read back from the runner's TAP
    /// ([`crate::kselftest::parse_runner`]), then judged as [`Kselftest`].
    ///
    /// [`Kselftest`]: Convention::Kselftest
    KselftestRunner,
}

impl Convention {
    /// What a binary's exit means under this convention (its output aside).
    pub fn judge(self, exit: &Exit) -> Outcome {
        let skip_code = match self {
            Convention::Ktap | Convention::Kselftest | Convention::KselftestRunner => 4,
            Convention::Liburing => 77,
        };
        match exit {
            Exit::Code(0) => Outcome::Pass,
            Exit::Code(c) if *c == skip_code => Outcome::Skip,
            _ => Outcome::Fail,
        }
    }
}

/// One test binary to run in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestTest {
    /// Unique within a run; names the result files.
    pub name: String,
    pub path: std::path::PathBuf,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub convention: Convention,
    /// Seconds before the binary's process group is killed (default: the
    /// run's --test-timeout).
    #[serde(default)]
    pub timeout: Option<u64>,
    /// Run in a fresh empty directory under the guest's /tmp (for tests
    /// that create files in their working directory; the host's tree is
    /// read-only in the guest).
    #[serde(default)]
    pub scratch: bool,
}

/// The list of tests a `guest-run --manifest FILE` executes, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default, rename = "test")]
    pub tests: Vec<GuestTest>,
}

impl Manifest {
    pub fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, toml::to_string(self)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    pub fn read(path: &Path) -> Result<Manifest> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// Whether free-form output already is (K)TAP: it has a plan line.
fn has_plan(output: &str) -> bool {
    output.lines().any(|l| {
        l.strip_prefix("1..")
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    })
}

/// The KTAP document stored for a binary that is not a `Ktap` selftest.
/// TAP output (kselftest.h) is kept, with nameless result lines
/// (`ok 1 # SKIP why`) given the binary's name; anything else becomes one
/// test case named after the binary, its output as comment lines, and the
/// verdict taken from the exit status.
pub fn to_ktap(name: &str, output: &str, convention: Convention, exit: &Exit) -> String {
    let mut doc = String::new();
    if has_plan(output) {
        if !output.starts_with("KTAP version") && !output.starts_with("TAP version") {
            doc.push_str("KTAP version 1\n");
        }
        for l in output.lines() {
            let named = ["ok ", "not ok "].iter().find_map(|p| {
                let rest = l.strip_prefix(p)?;
                let (num, tail) = rest.split_once(' ')?;
                num.parse::<u32>().ok()?;
                tail.starts_with("# ")
                    .then(|| format!("{p}{num} {name} {tail}"))
            });
            doc.push_str(named.as_deref().unwrap_or(l));
            doc.push('\n');
        }
        return doc;
    }
    doc.push_str("KTAP version 1\n1..1\n");
    for l in output.lines() {
        doc.push_str("# ");
        doc.push_str(l);
        doc.push('\n');
    }
    let line = match convention.judge(exit) {
        Outcome::Pass => format!("ok 1 {name}"),
        Outcome::Skip => format!("ok 1 {name} # SKIP {exit}"),
        Outcome::Fail => format!("not ok 1 {name} # {exit}"),
    };
    doc.push_str(&line);
    doc.push('\n');
    doc
}

/// The guest's command line that runs `guest-run` (the copy of xtask at
/// `xtask`) with `args`: the one place its arguments are spelled out.
pub fn command_line(xtask: &Path, args: &GuestRunArgs) -> Vec<String> {
    let mut v = vec![
        xtask.display().to_string(),
        "guest-run".to_string(),
        "--results".to_string(),
        args.results.display().to_string(),
        "--test-timeout".to_string(),
        args.test_timeout.to_string(),
    ];
    if let Some(m) = &args.manifest {
        v.extend(["--manifest".to_string(), m.display().to_string()]);
    }
    v.extend(args.binaries.iter().map(|b| b.display().to_string()));
    v
}

const SYSLOG_ACTION_READ_CLEAR: libc::c_int = 4;
const SYSLOG_ACTION_SIZE_BUFFER: libc::c_int = 10;

/// Read and clear the kernel log buffer, so each binary gets the messages
/// printed while it ran.
fn read_clear_kmsg() -> String {
    // SAFETY: SIZE_BUFFER takes no buffer and returns the log size.
    let size = unsafe { libc::klogctl(SYSLOG_ACTION_SIZE_BUFFER, std::ptr::null_mut(), 0) };
    if size <= 0 {
        return String::new();
    }
    let mut buf = vec![0u8; size as usize];
    // SAFETY: buf is valid for writes of `size` bytes for the whole call.
    let n = unsafe { libc::klogctl(SYSLOG_ACTION_READ_CLEAR, buf.as_mut_ptr().cast(), size) };
    if n <= 0 {
        return String::new();
    }
    buf.truncate(n as usize);
    String::from_utf8_lossy(&buf).into_owned()
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// /dev/stdout and /dev/stderr as the tests need them. virtme-ng links
/// them to its own console ports (/dev/virtio-ports/virtme.dev_stdout), so
/// `>> /dev/stdout` in a test (kselftest's runner.sh appends every
/// program's output so) bypasses the pipe guest-run reads and the output is
/// lost to the record. While guest-run runs they name each process's own
/// descriptors, as on a udev system; [`StdLinks::restore`] puts vng's back
/// for what runs after it.
struct StdLinks {
    saved: Vec<(&'static str, Option<std::path::PathBuf>)>,
}

impl StdLinks {
    const LINKS: [(&'static str, &'static str); 4] = [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ];

    fn set() -> StdLinks {
        let mut saved = Vec::new();
        for (link, target) in Self::LINKS {
            let old = std::fs::read_link(link).ok();
            if old.as_deref() == Some(Path::new(target)) {
                continue;
            }
            if old.is_some() {
                let _ = std::fs::remove_file(link);
            } else if std::fs::symlink_metadata(link).is_ok() {
                // Not a link: leave it alone.
                continue;
            }
            if std::os::unix::fs::symlink(target, link).is_ok() {
                saved.push((link, old));
            }
        }
        StdLinks { saved }
    }

    fn restore(self) {
        for (link, old) in self.saved {
            let _ = std::fs::remove_file(link);
            if let Some(old) = old {
                let _ = std::os::unix::fs::symlink(old, link);
            }
        }
    }
}

pub fn run(args: &GuestRunArgs) -> Result<()> {
    let dir = &ResultsDir::new(&args.results);
    let links = StdLinks::set();
    std::fs::write(dir.boot_dmesg(), read_clear_kmsg())?;
    std::fs::write(dir.uname(), uname_release())?;
    let mut tests: Vec<GuestTest> = args
        .binaries
        .iter()
        .map(|bin| GuestTest {
            name: bin
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: bin.clone(),
            args: Vec::new(),
            convention: Convention::Ktap,
            timeout: None,
            scratch: false,
        })
        .collect();
    if let Some(m) = &args.manifest {
        tests.extend(Manifest::read(m)?.tests);
    }
    say("KTAP version 1");
    say(&format!("# guest kernel {}", uname_release()));
    say(&format!("1..{}", tests.len()));
    let mut all_ok = true;
    for (i, t) in tests.iter().enumerate() {
        let name = t.name.as_str();
        // What runs now, for a host that watches for wedged guests.
        std::fs::write(dir.running(), format!("{name}\n"))?;
        // SAFETY: sync() has no preconditions.
        unsafe { libc::sync() };
        let started = Instant::now();
        let exit = run_one(t, dir, t.timeout.unwrap_or(args.test_timeout))?;
        let secs = started.elapsed().as_secs_f64();
        std::fs::write(dir.file(name, TestFile::Secs), format!("{secs:.1}\n"))?;
        std::fs::write(dir.file(name, TestFile::Dmesg), read_clear_kmsg())?;
        dir.write_exit(name, &exit)?;
        // SAFETY: sync() has no preconditions; the host reads results while
        // the VM runs, and may have to kill a wedged guest.
        unsafe { libc::sync() };
        let line = match t.convention.judge(&exit) {
            Outcome::Pass => format!("ok {} {name}", i + 1),
            Outcome::Skip => format!("ok {} {name} # SKIP", i + 1),
            Outcome::Fail => {
                all_ok = false;
                format!("not ok {} {name} # {exit}", i + 1)
            }
        };
        say(&line);
    }
    let _ = std::fs::remove_file(dir.running());
    links.restore();
    // SAFETY: sync() has no preconditions; flush results to the 9p share.
    unsafe { libc::sync() };
    std::process::exit(if all_ok { 0 } else { 1 });
}

fn uname_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Run one test, keep its output, and say how it ended.
fn run_one(t: &GuestTest, dir: &ResultsDir, timeout: u64) -> Result<Exit> {
    let name = t.name.as_str();
    say(&format!("# selftest: {name}"));
    // Written as it comes, so a hung binary's partial output survives.
    let (raw_path, ktap_path) = (
        dir.file(name, TestFile::Out),
        dir.file(name, TestFile::Ktap),
    );
    let raw_out = match t.convention {
        Convention::Ktap => ktap_path.clone(),
        _ => raw_path.clone(),
    };
    let mut out_file = std::fs::File::create(&raw_out)?;
    let scratch = t
        .scratch
        .then(|| std::env::temp_dir().join(format!("uring-ipc-{name}")));
    let mut command = Command::new(&t.path);
    command.args(&t.args);
    if let Some(d) = &scratch {
        let _ = std::fs::remove_dir_all(d);
        std::fs::create_dir_all(d)?;
        command.current_dir(d);
    }
    let mut session =
        Session::spawn(command).with_context(|| format!("starting {}", t.path.display()))?;
    // A Ktap binary's stderr is commentary; free-form output keeps both.
    let keep_err = t.convention != Convention::Ktap;
    let mut on_line = |l: Line| {
        let kept = match l.stream {
            Stream::Stdout => {
                say(&format!("    {}", l.text));
                Some(format!("{}\n", l.text))
            }
            Stream::Stderr => {
                say(&format!("    # stderr: {}", l.text));
                keep_err.then(|| format!("stderr: {}\n", l.text))
            }
        };
        if let Some(k) = kept {
            let _ = out_file.write_all(k.as_bytes());
        }
    };
    let deadline = session.started() + Duration::from_secs(timeout);
    let status = match session.run_until(Some(deadline), &mut on_line)? {
        End::Exited(s) => {
            session.finish(&mut on_line);
            Some(s)
        }
        End::Killed => {
            // The binary's grandchildren may still hold the pipes (outside
            // its group): do not wait for them.
            session.abandon(&mut on_line);
            None
        }
    };
    let mut exit = match status {
        None => {
            say(&format!("    # {name}: killed after {timeout}s"));
            Exit::Timeout(timeout)
        }
        Some(s) => Exit::of(s),
    };
    if let Some(d) = &scratch {
        let _ = std::fs::remove_dir_all(d);
    }
    if t.convention != Convention::Ktap {
        let mut raw = std::fs::read_to_string(&raw_path).unwrap_or_default();
        let mut convention = t.convention;
        if convention == Convention::KselftestRunner {
            (raw, exit) = crate::kselftest::runner_verdict(&raw, exit);
            convention = Convention::Kselftest;
        }
        std::fs::write(&ktap_path, to_ktap(name, &raw, convention, &exit))?;
    }
    Ok(exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conventions_judge_exit_records() {
        assert_eq!(Convention::Kselftest.judge(&Exit::Code(0)), Outcome::Pass);
        assert_eq!(Convention::Kselftest.judge(&Exit::Code(4)), Outcome::Skip);
        assert_eq!(Convention::Kselftest.judge(&Exit::Code(77)), Outcome::Fail);
        assert_eq!(Convention::Liburing.judge(&Exit::Code(77)), Outcome::Skip);
        assert_eq!(Convention::Liburing.judge(&Exit::Code(4)), Outcome::Fail);
        assert_eq!(Convention::Ktap.judge(&Exit::Signal(9)), Outcome::Fail);
        assert_eq!(
            Convention::Liburing.judge(&Exit::Timeout(60)),
            Outcome::Fail
        );
        assert_eq!(Convention::Liburing.judge(&Exit::Hang(90)), Outcome::Fail);
        assert_eq!(Convention::Liburing.judge(&Exit::VmDied), Outcome::Fail);
    }

    #[test]
    fn free_text_becomes_one_case() {
        let k = to_ktap(
            "mq_open_tests",
            "Test series 1\nPASS\n",
            Convention::Kselftest,
            &Exit::Code(0),
        );
        assert_eq!(
            k,
            "KTAP version 1\n1..1\n# Test series 1\n# PASS\nok 1 mq_open_tests\n"
        );
        let k = to_ktap("a.t", "", Convention::Liburing, &Exit::Code(77));
        assert!(k.ends_with("ok 1 a.t # SKIP exit 77\n"));
        let k = to_ktap("a.t", "boom\n", Convention::Liburing, &Exit::Code(1));
        assert!(k.ends_with("not ok 1 a.t # exit 1\n"));
        let t = crate::ktap::tally_binary("a.t", &k, &Exit::Code(1));
        assert_eq!((t.passed, t.failed), (0, 1));
    }

    #[test]
    fn tap_output_is_kept_and_nameless_results_named() {
        let out = "TAP version 13\n1..2\nok 1 global.peek\nok 2 # SKIP not root\n";
        let k = to_ktap("mq_peek_test", out, Convention::Kselftest, &Exit::Code(0));
        assert!(k.starts_with("TAP version 13\n1..2\nok 1 global.peek\n"));
        assert!(k.contains("ok 2 mq_peek_test # SKIP not root\n"));
        let t = crate::ktap::tally_binary("mq_peek_test", &k, &Exit::Code(0));
        assert_eq!((t.passed, t.skipped, t.failed), (1, 1, 0));
        let k = to_ktap(
            "x",
            "1..0 # SKIP Not running as root\n",
            Convention::Kselftest,
            &Exit::Code(4),
        );
        let t = crate::ktap::tally_binary("x", &k, &Exit::Code(4));
        assert_eq!((t.skipped, t.failed), (1, 0));
    }

    #[test]
    fn guest_run_command_line_parses_back() {
        use clap::Parser;
        let args = GuestRunArgs {
            results: "/r/vm-results/fast".into(),
            test_timeout: 300,
            manifest: Some("/r/kselftests.toml".into()),
            binaries: vec!["/b/smoke".into(), "/b/io_uring_ipc".into()],
        };
        for args in [
            args.clone(),
            GuestRunArgs {
                manifest: None,
                binaries: vec![],
                ..args
            },
        ] {
            let line = command_line(Path::new("/r/xtask-guest"), &args);
            assert_eq!(line[0], "/r/xtask-guest");
            let parsed = crate::flags::Xtask::try_parse_from(
                std::iter::once("cargo xtask").chain(line[1..].iter().map(String::as_str)),
            )
            .unwrap();
            match parsed.cmd {
                crate::flags::Cmd::GuestRun(p) => assert_eq!(p, args),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn manifest_round_trips() {
        let m = Manifest {
            tests: vec![GuestTest {
                name: "mq_open_tests".into(),
                path: "/x/mq_open_tests".into(),
                args: vec!["/test1".into()],
                convention: Convention::Kselftest,
                timeout: Some(60),
                scratch: true,
            }],
        };
        let text = toml::to_string(&m).unwrap();
        assert_eq!(toml::from_str::<Manifest>(&text).unwrap(), m);
        assert!(
            toml::from_str::<Manifest>("[[test]]\nname = \"a\"\npath = \"/a\"\nbogus = 1\n")
                .is_err()
        );
    }
}
