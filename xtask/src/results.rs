//! The results directory the guest and the host share (read-write 9p):
//! its layout, the exit records, and what a test's records mean.
//!
//! `cargo xtask test` uses target/vm-results/<profile>/, `regress`
//! target/regress/{base,patched}/. The guest (`guest-run`) writes:
//!
//! | file | what |
//! | --- | --- |
//! | `boot.dmesg` | the kernel log up to the first test |
//! | `uname` | the release the guest runs |
//! | `running` | the name of the test running now (removed at the end) |
//! | `<test>.out` | a non-KTAP test's output (stderr lines as `stderr: ...`) |
//! | `<test>.ktap` | its KTAP: the test's own, or made from `.out` |
//! | `<test>.secs` | how long it ran |
//! | `<test>.dmesg` | the kernel log written while it ran |
//! | `<test>.exit` | how it ended: one [`Exit`] record, written last |
//!
//! The host writes `console.log` (every boot's serial console) and, for a
//! test the guest could not finish, its `.exit` (`hang N`, `vm-died`) and
//! `<test>.console` (that boot's console). The host reads the files while
//! the VM runs: a test with an `.exit` has ended.

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

/// How a test ended, as its `.exit` record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// `exit N`: it exited with status N.
    Code(i32),
    /// `signal N`: a signal killed it.
    Signal(i32),
    /// `timeout N`: the guest killed it after N seconds.
    Timeout(u64),
    /// `hang N`: still running N seconds after it started, well past its
    /// timeout; the host killed the guest.
    Hang(u64),
    /// `vm-died`: the VM went away while it ran.
    VmDied,
}

impl Exit {
    /// The record of a process that ended with `status`.
    pub fn of(status: ExitStatus) -> Exit {
        match (status.code(), status.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(sig)) => Exit::Signal(sig),
            (None, None) => Exit::Signal(0),
        }
    }

    /// Parse a record as [`Exit`]'s `Display` writes it (surrounding
    /// white space allowed); None for anything else, an empty or
    /// half-written file included.
    pub fn parse(s: &str) -> Option<Exit> {
        let mut w = s.split_whitespace();
        let (word, value, rest) = (w.next()?, w.next(), w.next());
        if rest.is_some() {
            return None;
        }
        match (word, value) {
            ("vm-died", None) => Some(Exit::VmDied),
            (_, None) => None,
            ("exit", Some(v)) => v.parse().ok().map(Exit::Code),
            ("signal", Some(v)) => v.parse().ok().map(Exit::Signal),
            ("timeout", Some(v)) => v.parse().ok().map(Exit::Timeout),
            ("hang", Some(v)) => v.parse().ok().map(Exit::Hang),
            _ => None,
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit {c}"),
            Exit::Signal(s) => write!(f, "signal {s}"),
            Exit::Timeout(secs) => write!(f, "timeout {secs}"),
            Exit::Hang(secs) => write!(f, "hang {secs}"),
            Exit::VmDied => f.write_str("vm-died"),
        }
    }
}

/// What a test (or one KTAP case) came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Skip,
    Fail,
}

/// The per-test files of the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestFile {
    Out,
    Ktap,
    Secs,
    Dmesg,
    Exit,
    Console,
}

impl TestFile {
    fn extension(self) -> &'static str {
        match self {
            TestFile::Out => "out",
            TestFile::Ktap => "ktap",
            TestFile::Secs => "secs",
            TestFile::Dmesg => "dmesg",
            TestFile::Exit => "exit",
            TestFile::Console => "console",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultsDir {
    dir: PathBuf,
}

impl ResultsDir {
    pub fn new(dir: impl Into<PathBuf>) -> ResultsDir {
        ResultsDir { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn boot_dmesg(&self) -> PathBuf {
        self.dir.join("boot.dmesg")
    }

    pub fn uname(&self) -> PathBuf {
        self.dir.join("uname")
    }

    pub fn running(&self) -> PathBuf {
        self.dir.join("running")
    }

    /// Every boot's serial console.
    pub fn console(&self) -> PathBuf {
        self.dir.join("console.log")
    }

    pub fn file(&self, test: &str, which: TestFile) -> PathBuf {
        self.dir.join(format!("{test}.{}", which.extension()))
    }

    /// A test's file, empty when it does not exist (yet).
    pub fn read(&self, test: &str, which: TestFile) -> String {
        std::fs::read_to_string(self.file(test, which)).unwrap_or_default()
    }

    /// The release the guest reported, trimmed; empty when it did not.
    pub fn guest_release(&self) -> String {
        std::fs::read_to_string(self.uname())
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// The test the guest says it is running.
    pub fn running_test(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.running()).ok()?;
        let name = text.trim();
        (!name.is_empty()).then(|| name.to_string())
    }

    /// Whether `test` has ended: its `.exit` exists (it may still be
    /// being written).
    pub fn has_exit(&self, test: &str) -> bool {
        self.file(test, TestFile::Exit).exists()
    }

    /// How `test` ended; None while it has no complete record.
    pub fn exit(&self, test: &str) -> Option<Exit> {
        Exit::parse(&self.read(test, TestFile::Exit))
    }

    pub fn write_exit(&self, test: &str, exit: &Exit) -> std::io::Result<()> {
        std::fs::write(self.file(test, TestFile::Exit), format!("{exit}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Exit; 9] = [
        Exit::Code(0),
        Exit::Code(4),
        Exit::Code(77),
        Exit::Code(-1),
        Exit::Signal(9),
        Exit::Signal(0),
        Exit::Timeout(60),
        Exit::Hang(93),
        Exit::VmDied,
    ];

    #[test]
    fn exit_records_round_trip() {
        for e in ALL {
            assert_eq!(Exit::parse(&format!("{e}\n")), Some(e), "{e}");
        }
        assert_eq!(Exit::Hang(93).to_string(), "hang 93");
        assert_eq!(Exit::VmDied.to_string(), "vm-died");
        assert_eq!(Exit::Timeout(60).to_string(), "timeout 60");
    }

    #[test]
    fn exit_records_parse_as_the_guest_and_host_wrote_them() {
        assert_eq!(Exit::parse("exit 4\n"), Some(Exit::Code(4)));
        assert_eq!(Exit::parse("signal 9"), Some(Exit::Signal(9)));
        assert_eq!(Exit::parse("timeout 30"), Some(Exit::Timeout(30)));
        assert_eq!(Exit::parse("hang 90\n"), Some(Exit::Hang(90)));
        assert_eq!(Exit::parse("vm-died\n"), Some(Exit::VmDied));
        for bad in [
            "",
            "\n",
            "exi",
            "exit",
            "exit x",
            "hang",
            "vm-died 3",
            "exit 0 1",
        ] {
            assert_eq!(Exit::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn exit_of_a_status() {
        assert_eq!(Exit::of(ExitStatus::from_raw(3 << 8)), Exit::Code(3));
        assert_eq!(Exit::of(ExitStatus::from_raw(9)), Exit::Signal(9));
    }

    #[test]
    fn the_writer_and_the_reader_agree() {
        let d = ResultsDir::new(
            std::env::temp_dir().join(format!("xtask-results-{}", std::process::id())),
        );
        std::fs::create_dir_all(d.path()).unwrap();
        assert!(!d.has_exit("a"));
        assert_eq!(d.exit("a"), None);
        for e in ALL {
            d.write_exit("a", &e).unwrap();
            assert!(d.has_exit("a"));
            assert_eq!(d.exit("a"), Some(e));
        }
        assert_eq!(
            std::fs::read_to_string(d.file("a", TestFile::Exit)).unwrap(),
            "vm-died\n"
        );
        std::fs::write(d.file("a", TestFile::Exit), "").unwrap();
        assert!(d.has_exit("a"));
        assert_eq!(d.exit("a"), None);
        assert_eq!(d.running_test(), None);
        std::fs::write(d.running(), "liburing.poll\n").unwrap();
        assert_eq!(d.running_test().as_deref(), Some("liburing.poll"));
        assert!(d.file("x.y", TestFile::Ktap).ends_with("x.y.ktap"));
        std::fs::remove_dir_all(d.path()).unwrap();
    }
}
