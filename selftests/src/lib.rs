//! A kselftest-style harness printing KTAP v1.
//!
//! Each case runs in a forked child with a timeout, so a crash or hang fails
//! that case only. A case returns `Ok(())` (pass) or an [`Outcome`] error:
//! `Fail(why)` or `Skip(why)`. A binary whose probe fails prints
//! `1..0 # SKIP why` and exits 4. Exit status: 0 all passed (or some
//! skipped), 1 any failed, 4 everything skipped.
//!
//! Command line: `BINARY [-l] [FILTER]`; `-l` lists cases, FILTER selects
//! cases whose name contains it.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

pub mod ipc;
pub mod uring;
pub mod util;

/// Why a case did not pass.
#[derive(Debug)]
pub enum Outcome {
    Fail(String),
    Skip(String),
}

pub type TestResult = Result<(), Outcome>;

/// Any error converts into a failure carrying its message, so `?` works on
/// library results inside tests.
impl<E: std::fmt::Display> From<E> for Outcome {
    fn from(e: E) -> Outcome {
        Outcome::Fail(e.to_string())
    }
}

/// Fail the case unless `cond` holds.
#[macro_export]
macro_rules! check {
    ($cond:expr) => {
        if !$cond {
            return Err($crate::Outcome::Fail(format!("{}:{}: check failed: {}", file!(), line!(), stringify!($cond))));
        }
    };
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::Outcome::Fail(format!("{}:{}: {}", file!(), line!(), format!($($fmt)+))));
        }
    };
}

/// Fail the case unless `a == b`, printing both.
#[macro_export]
macro_rules! check_eq {
    ($a:expr, $b:expr $(,)?) => {{
        let (a, b) = (&$a, &$b);
        if a != b {
            return Err($crate::Outcome::Fail(format!(
                "{}:{}: {} == {}: left {:?}, right {:?}",
                file!(),
                line!(),
                stringify!($a),
                stringify!($b),
                a,
                b
            )));
        }
    }};
}

/// Skip the case with a reason.
#[macro_export]
macro_rules! skip {
    ($($fmt:tt)+) => {
        return Err($crate::Outcome::Skip(format!($($fmt)+)))
    };
}

/// Pass if `r` failed with errno `want`; fail naming what happened instead.
/// Say what was tried with [`Context::context`].
pub fn expect_errno<T: std::fmt::Debug>(
    r: Result<T, liburing_ipc::Error>,
    want: i32,
) -> TestResult {
    match r {
        Err(e) if e.errno() == Some(want) => Ok(()),
        other => Err(Outcome::Fail(format!(
            "expected {}, got {other:?}",
            util::errno_name(want)
        ))),
    }
}

/// Name what a check was about in its failure message.
pub trait Context {
    /// A failure's message is prefixed with `what: `; a pass or a skip is
    /// left as it is.
    fn context(self, what: &str) -> Self;
}

impl<T> Context for Result<T, Outcome> {
    fn context(self, what: &str) -> Self {
        self.map_err(|o| match o {
            Outcome::Fail(why) => Outcome::Fail(format!("{what}: {why}")),
            skip => skip,
        })
    }
}

/// One test case.
pub struct Case {
    pub name: &'static str,
    pub run: fn() -> TestResult,
}

/// `cases![a, b, c]` builds the case list from test function names;
/// `cases![topic: [a, b], other: [c]]` from functions of the modules
/// `topic` and `other`, in that order. A case is named after its function.
#[macro_export]
macro_rules! cases {
    ($($f:ident),* $(,)?) => {
        &[$($crate::Case { name: stringify!($f), run: $f }),*]
    };
    ($($m:ident: [$($f:ident),* $(,)?]),* $(,)?) => {
        &[$($($crate::Case { name: stringify!($f), run: $m::$f }),*),*]
    };
}

pub struct Suite {
    name: &'static str,
    cases: &'static [Case],
    probe: Option<fn() -> Result<(), String>>,
    timeout: Duration,
}

fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

impl Suite {
    /// A suite of `cases`, whose names must differ (cases of several
    /// modules could share one).
    pub fn new(name: &'static str, cases: &'static [Case]) -> Suite {
        if let Some(dup) = duplicate_name(cases) {
            panic!("{name}: two cases are named {dup}");
        }
        let secs = std::env::var("SELFTEST_CASE_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(120);
        Suite {
            name,
            cases,
            probe: None,
            timeout: Duration::from_secs(secs),
        }
    }

    /// A check that the whole binary needs; on Err(reason) every case skips.
    pub fn probe(mut self, p: fn() -> Result<(), String>) -> Suite {
        self.probe = Some(p);
        self
    }

    pub fn timeout(mut self, t: Duration) -> Suite {
        self.timeout = t;
        self
    }

    /// Run and exit with the kselftest status.
    pub fn run(self) -> ! {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.iter().any(|a| a == "-l") {
            for c in self.cases {
                println!("{}", c.name);
            }
            std::process::exit(0);
        }
        let filter = args.iter().find(|a| !a.starts_with('-')).cloned();
        let selected: Vec<&Case> = self
            .cases
            .iter()
            .filter(|c| filter.as_deref().is_none_or(|f| c.name.contains(f)))
            .collect();
        out("KTAP version 1");
        out(&format!("# {}: {}", self.name, kernel_release()));
        if let Some(p) = self.probe {
            if let Err(why) = p() {
                out(&format!("1..0 # SKIP {why}"));
                std::process::exit(4);
            }
        }
        out(&format!("1..{}", selected.len()));
        let (mut pass, mut fail, mut skip) = (0, 0, 0);
        for (i, c) in selected.iter().enumerate() {
            let t0 = Instant::now();
            match run_forked(c, self.timeout) {
                Ok(()) => {
                    pass += 1;
                    out(&format!("ok {} {}", i + 1, c.name));
                }
                Err(Outcome::Skip(why)) => {
                    skip += 1;
                    out(&format!(
                        "ok {} {} # SKIP {}",
                        i + 1,
                        c.name,
                        one_line(&why)
                    ));
                }
                Err(Outcome::Fail(why)) => {
                    fail += 1;
                    for l in why.lines() {
                        out(&format!("# {l}"));
                    }
                    out(&format!("not ok {} {}", i + 1, c.name));
                }
            }
            let el = t0.elapsed();
            if el > Duration::from_secs(2) {
                out(&format!("# {} took {:.1}s", c.name, el.as_secs_f64()));
            }
        }
        out(&format!(
            "# Totals: pass:{pass} fail:{fail} xfail:0 xpass:0 skip:{skip} error:0"
        ));
        let code = if fail > 0 {
            1
        } else if pass == 0 && skip > 0 {
            4
        } else {
            0
        };
        std::process::exit(code);
    }
}

/// A name two of `cases` share, if any.
fn duplicate_name(cases: &[Case]) -> Option<&'static str> {
    let mut seen = std::collections::BTreeSet::new();
    cases.iter().map(|c| c.name).find(|n| !seen.insert(*n))
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Run a case in a child process. The child reports its outcome through a
/// pipe: "P", "S<reason>" or "F<reason>". No report means it crashed.
fn run_forked(c: &Case, timeout: Duration) -> TestResult {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Outcome::Fail(format!(
            "pipe2: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: both fds were just created and are owned here alone.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let _ = std::io::stdout().flush();
    // SAFETY: the harness is single-threaded when it forks; the child only
    // runs the case and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Outcome::Fail(format!(
            "fork: {}",
            std::io::Error::last_os_error()
        )));
    }
    if pid == 0 {
        drop(rd);
        // Own process group: the parent can kill everything the case spawned.
        // SAFETY: setpgid on ourselves.
        unsafe { libc::setpgid(0, 0) };
        let msg = match (c.run)() {
            Ok(()) => "P".to_string(),
            Err(Outcome::Skip(w)) => format!("S{w}"),
            Err(Outcome::Fail(w)) => format!("F{w}"),
        };
        let mut w = std::fs::File::from(wr);
        let _ = w.write_all(msg.as_bytes());
        drop(w);
        let _ = std::io::stdout().flush();
        // SAFETY: _exit skips atexit handlers and destructors inherited from
        // the parent, which must not run twice.
        unsafe { libc::_exit(0) };
    }
    drop(wr);
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::fs::File::from(rd).read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let mut status = 0;
    let timed_out = loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break false;
        }
        if start.elapsed() > timeout {
            // SAFETY: kill the case's process group, then reap the child.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            break true;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // Children of the case that are still alive would hold the pipe open.
    // SAFETY: signalling the case's process group, which we created.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let msg = reader.join().unwrap_or_default();
    if timed_out {
        return Err(Outcome::Fail(format!(
            "timed out after {}s",
            timeout.as_secs()
        )));
    }
    if libc::WIFSIGNALED(status) {
        return Err(Outcome::Fail(format!(
            "killed by signal {}",
            libc::WTERMSIG(status)
        )));
    }
    match msg.chars().next() {
        Some('P') => Ok(()),
        Some('S') => Err(Outcome::Skip(msg[1..].to_string())),
        Some('F') => Err(Outcome::Fail(msg[1..].to_string())),
        _ => Err(Outcome::Fail(format!(
            "case exited without a verdict (status {status:#x})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass() -> TestResult {
        Ok(())
    }

    mod first {
        pub fn a_case() -> super::TestResult {
            Ok(())
        }
    }

    mod second {
        pub fn another() -> super::TestResult {
            Ok(())
        }
    }

    #[test]
    fn cases_of_modules_keep_their_order_and_shared_names_are_found() {
        const BOTH: &[Case] = cases![second: [another], first: [a_case]];
        let names: Vec<&str> = BOTH.iter().map(|c| c.name).collect();
        assert_eq!(names, ["another", "a_case"]);
        assert_eq!(duplicate_name(BOTH), None);
        const TWICE: &[Case] = cases![pass, pass];
        assert_eq!(duplicate_name(TWICE), Some("pass"));
    }

    #[test]
    fn context_names_failures_only() {
        let fail: TestResult = Err(Outcome::Fail("expected EINVAL".into()));
        match fail.context("zero entries") {
            Err(Outcome::Fail(why)) => assert_eq!(why, "zero entries: expected EINVAL"),
            other => panic!("{other:?}"),
        }
        let skip: TestResult = Err(Outcome::Skip("no tracefs".into()));
        assert!(matches!(skip.context("x"), Err(Outcome::Skip(w)) if w == "no tracefs"));
        assert!(Ok::<(), Outcome>(()).context("x").is_ok());
    }
}
