//! A watched child process: vng (and the QEMU under it) on the host, or one
//! test binary in the guest.
//!
//! The child runs in a process group of its own, so that killing the group
//! takes down everything it started (QEMU with vng, a test's helpers with
//! the test). Its stdout and stderr are piped and read by two threads that
//! send every line over one channel; the watching thread handles the lines
//! as they come and decides when the child has run too long.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// How often [`Session::run_until`] asks whether the child has exited.
const TICK: Duration = Duration::from_millis(50);

/// Which of the child's streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of the child's output, without its line ending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub stream: Stream,
    pub text: String,
}

/// How [`Session::run_until`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The child exited by itself.
    Exited(ExitStatus),
    /// The deadline passed; the process group was killed.
    Killed,
}

pub struct Session {
    child: Child,
    pgid: libc::pid_t,
    lines: Receiver<Line>,
    started: Instant,
    /// The child was reaped (it exited, or was killed and waited for).
    reaped: bool,
}

impl Session {
    /// Start `command` in its own process group, stdin from /dev/null,
    /// stdout and stderr piped (both piped: vng reopens its stderr, which
    /// would truncate a log file given to it).
    pub fn spawn(mut command: Command) -> std::io::Result<Session> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn()?;
        let pgid = child.id() as libc::pid_t;
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout is piped");
        let err = child.stderr.take().expect("stderr is piped");
        read_lines(out, Stream::Stdout, tx.clone());
        read_lines(err, Stream::Stderr, tx);
        interrupts::forward_to(pgid);
        Ok(Session {
            child,
            pgid,
            lines,
            started: Instant::now(),
            reaped: false,
        })
    }

    /// When the child was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Hand `on_line` every line that arrives within `wait`, then say
    /// whether the child has exited (without waiting for it).
    pub fn poll(
        &mut self,
        wait: Duration,
        on_line: &mut dyn FnMut(Line),
    ) -> std::io::Result<Option<ExitStatus>> {
        let until = Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.lines.recv_timeout(left) {
                Ok(l) => on_line(l),
                Err(RecvTimeoutError::Timeout) => break,
                // Both pipes closed: the child has most likely exited.
                Err(RecvTimeoutError::Disconnected) => {
                    if self.try_wait()?.is_none() {
                        std::thread::sleep(left);
                    }
                    break;
                }
            }
        }
        self.try_wait()
    }

    fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        let status = self.child.try_wait()?;
        if status.is_some() {
            self.ended();
        }
        Ok(status)
    }

    /// Run until the child exits, handing its lines to `on_line`; at
    /// `deadline` (never, when None) kill its process group.
    pub fn run_until(
        &mut self,
        deadline: Option<Instant>,
        on_line: &mut dyn FnMut(Line),
    ) -> std::io::Result<End> {
        loop {
            let wait = deadline.map_or(TICK, |d| {
                d.saturating_duration_since(Instant::now()).min(TICK)
            });
            if let Some(status) = self.poll(wait, on_line)? {
                return Ok(End::Exited(status));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.kill();
                return Ok(End::Killed);
            }
        }
    }

    /// Kill the child's process group and reap the child.
    pub fn kill(&mut self) {
        if self.reaped {
            return;
        }
        // SAFETY: kill() on the process group this session created for its
        // child, which is not reaped yet, so the group id is still ours.
        unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
        let _ = self.child.wait();
        self.ended();
    }

    fn ended(&mut self) {
        self.reaped = true;
        interrupts::forget(self.pgid);
    }

    /// Hand `on_line` the rest of the child's output: blocks until its
    /// pipes close, that is until every process holding them has exited.
    pub fn finish(self, on_line: &mut dyn FnMut(Line)) {
        while let Ok(l) = self.lines.recv() {
            on_line(l);
        }
    }

    /// Hand `on_line` only what has already arrived: after a kill,
    /// processes outside the group (a daemon a test started) may keep the
    /// pipes open for as long as they live.
    pub fn abandon(self, on_line: &mut dyn FnMut(Line)) {
        while let Ok(l) = self.lines.try_recv() {
            on_line(l);
        }
    }
}

impl Drop for Session {
    /// A session given up on an error path takes its processes with it.
    fn drop(&mut self) {
        self.kill();
    }
}

/// A thread sending each line of `r` as it comes. Lines that are not
/// UTF-8 are decoded lossily, so that a stray byte does not stop the
/// reading and leave the child blocked on a full pipe.
fn read_lines(r: impl Read + Send + 'static, stream: Stream, tx: Sender<Line>) {
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if buf.last() == Some(&b'\n') {
                buf.pop();
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
            }
            let text = String::from_utf8_lossy(&buf).into_owned();
            if tx.send(Line { stream, text }).is_err() {
                break;
            }
        }
    });
}

/// Ctrl-C and friends reach the terminal's foreground process group only,
/// which a session's child has left: the signal is passed on to the live
/// session's group before this process ends as it would have anyway.
mod interrupts {
    use super::*;

    /// The process group of the session running now (0: none).
    static LIVE: AtomicI32 = AtomicI32::new(0);

    const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

    extern "C" fn pass_on(sig: libc::c_int) {
        let pgid = LIVE.load(Ordering::SeqCst);
        if pgid > 0 {
            // SAFETY: kill() is async-signal-safe; pgid is a live session's
            // process group.
            unsafe { libc::kill(-pgid, sig) };
        }
        // SAFETY: signal() and raise() are async-signal-safe; with the
        // default action restored, the signal ends this process once the
        // handler returns, as it would have without the handler.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }

    /// Install the handler (once; not for signals this process ignores)
    /// and make `pgid` the group it forwards to.
    pub fn forward_to(pgid: libc::pid_t) {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            for sig in SIGNALS {
                // SAFETY: sigaction() with a null new action only reads the
                // current disposition into `old`, a valid, zeroed sigaction.
                let ignored = unsafe {
                    let mut old: libc::sigaction = std::mem::zeroed();
                    libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                        && old.sa_sigaction == libc::SIG_IGN
                };
                if !ignored {
                    // SAFETY: pass_on only calls async-signal-safe functions
                    // and reads an atomic.
                    unsafe { libc::signal(sig, pass_on as *const () as libc::sighandler_t) };
                }
            }
        });
        LIVE.store(pgid, Ordering::SeqCst);
    }

    /// `pgid`'s session has ended.
    pub fn forget(pgid: libc::pid_t) {
        let _ = LIVE.compare_exchange(pgid, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        c
    }

    #[test]
    fn lines_arrive_tagged_and_the_exit_status_is_kept() {
        let mut s = Session::spawn(sh(
            "echo out; echo err >&2; printf 'a\\r\\nb\\377\\n'; exit 3",
        ))
        .unwrap();
        let mut lines = Vec::new();
        let end = s.run_until(None, &mut |l| lines.push(l)).unwrap();
        s.finish(&mut |l| lines.push(l));
        let End::Exited(status) = end else {
            panic!("{end:?}")
        };
        assert_eq!(status.code(), Some(3));
        let text = |stream| -> Vec<String> {
            lines
                .iter()
                .filter(|l| l.stream == stream)
                .map(|l| l.text.clone())
                .collect()
        };
        assert_eq!(text(Stream::Stdout), ["out", "a", "b\u{fffd}"]);
        assert_eq!(text(Stream::Stderr), ["err"]);
    }

    #[test]
    fn a_child_that_never_exits_is_killed_at_the_deadline_with_its_group() {
        // The grandchild (sleep) is in the same group and holds the pipes:
        // finish() returns only if the kill took it down too.
        let mut s = Session::spawn(sh("echo started; sleep 600; echo never")).unwrap();
        let t0 = Instant::now();
        let mut lines = Vec::new();
        let end = s
            .run_until(Some(t0 + Duration::from_millis(500)), &mut |l| {
                lines.push(l.text)
            })
            .unwrap();
        assert_eq!(end, End::Killed);
        s.finish(&mut |l| lines.push(l.text));
        assert!(t0.elapsed() < Duration::from_secs(30));
        assert_eq!(lines, ["started"]);
    }

    #[test]
    fn poll_reports_a_running_child_then_its_exit() {
        let mut s = Session::spawn(sh("read x; exit 0")).unwrap();
        // stdin is /dev/null: `read` fails at once and the shell exits 0.
        let mut status = None;
        for _ in 0..200 {
            status = s.poll(Duration::from_millis(50), &mut |_| {}).unwrap();
            if status.is_some() {
                break;
            }
        }
        assert!(status.is_some_and(|s| s.success()));
        let mut s = Session::spawn(sh("sleep 600")).unwrap();
        assert_eq!(
            s.poll(Duration::from_millis(50), &mut |_| {}).unwrap(),
            None
        );
        drop(s); // killed, not left behind
    }
}
