//! The in-guest half of `cargo xtask test`: runs each selftest binary with a
//! timeout, streams its KTAP (indented, as a subtest) to the console and
//! stores it in the shared results directory together with the kernel log
//! written while it ran. The host reads those files after the VM exits.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::flags::GuestRunArgs;

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

pub fn run(args: &GuestRunArgs) -> Result<()> {
    let dir = &args.results;
    std::fs::write(dir.join("boot.dmesg"), read_clear_kmsg())?;
    std::fs::write(dir.join("uname"), uname_release())?;
    say("KTAP version 1");
    say(&format!("# guest kernel {}", uname_release()));
    say(&format!("1..{}", args.binaries.len()));
    let mut all_ok = true;
    for (i, bin) in args.binaries.iter().enumerate() {
        let name = bin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (exit, verdict) = run_one(bin, &name, dir, args.timeout)?;
        std::fs::write(dir.join(format!("{name}.dmesg")), read_clear_kmsg())?;
        std::fs::write(dir.join(format!("{name}.exit")), format!("{exit}\n"))?;
        let line = match verdict {
            Verdict::Ok => format!("ok {} {name}", i + 1),
            Verdict::Skip => format!("ok {} {name} # SKIP", i + 1),
            Verdict::Fail => {
                all_ok = false;
                format!("not ok {} {name} # {exit}", i + 1)
            }
        };
        say(&line);
    }
    // SAFETY: sync() has no preconditions; flush results to the 9p share.
    unsafe { libc::sync() };
    std::process::exit(if all_ok { 0 } else { 1 });
}

enum Verdict {
    Ok,
    Skip,
    Fail,
}

fn uname_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn run_one(bin: &Path, name: &str, dir: &Path, timeout: u64) -> Result<(String, Verdict)> {
    say(&format!("# selftest: {name}"));
    let ktap_path = dir.join(format!("{name}.ktap"));
    let mut ktap = std::fs::File::create(&ktap_path)?;
    let mut child = Command::new(bin)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id() as libc::pid_t;
    let stderr = child.stderr.take().unwrap();
    let err_thread = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            say(&format!("    # stderr: {l}"));
            lines.push(l);
        }
        lines
    });
    let stdout = child.stdout.take().unwrap();
    // Written as it comes, so a hung binary's partial output survives.
    let out_thread = std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            say(&format!("    {l}"));
            let _ = writeln!(ktap, "{l}");
        }
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if start.elapsed() > Duration::from_secs(timeout) {
            // SAFETY: kill() on our child's process group; no memory involved.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // A timed-out binary's grandchildren may still hold the pipes: only wait
    // for the readers when the binary ended by itself.
    if status.is_some() {
        let _ = out_thread.join();
        let _ = err_thread.join();
    }
    let (exit, verdict) = match status {
        None => {
            say(&format!("    # {name}: killed after {timeout}s"));
            (format!("timeout {timeout}"), Verdict::Fail)
        }
        Some(s) => match (s.code(), s.signal()) {
            (Some(0), _) => ("exit 0".to_string(), Verdict::Ok),
            (Some(4), _) => ("exit 4".to_string(), Verdict::Skip),
            (Some(c), _) => (format!("exit {c}"), Verdict::Fail),
            (None, Some(sig)) => (format!("signal {sig}"), Verdict::Fail),
            (None, None) => ("signal 0".to_string(), Verdict::Fail),
        },
    };
    Ok((exit, verdict))
}
