//! `ipc-trace`: trace io_uring IPC channels and mq_timedreceive2() with BPF.
//!
//! Runs until interrupted (or `--duration`), or, given a command after `--`,
//! starts tracing, runs the command, stops when it exits and exits with its
//! status. Periodic output goes to stderr, the summary to stdout.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use ipc_trace::{Options, Tracer};

/// Per-channel message counts, errors and send-to-receive latency of
/// io_uring IPC channels, and mq_timedreceive2() peek/receive latency.
#[derive(Debug, Parser)]
#[command(name = "ipc-trace", version)]
struct Cli {
    /// Print the counters every SECS seconds while tracing (0: only the
    /// summary at the end).
    #[arg(long, short, default_value_t = 1.0, value_name = "SECS")]
    interval: f64,
    /// Stop after SECS seconds (default: when CMD exits, or on Ctrl-C).
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Only trace this process (thread group id).
    #[arg(long)]
    pid: Option<u32>,
    /// JSON output: one object per interval on stderr, the summary on stdout.
    #[arg(long)]
    json: bool,
    /// Command to run under the tracer.
    #[arg(last = true, value_name = "CMD")]
    cmd: Vec<String>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn secs(what: &str, v: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(v).with_context(|| format!("--{what} {v}: not a duration"))
}

fn main() {
    match run() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("ipc-trace: error: {e:#}");
            std::process::exit(2);
        }
    }
}

fn run() -> Result<i32> {
    let cli = Cli::parse();
    let interval = secs("interval", cli.interval)?;
    let duration = cli.duration.map(|d| secs("duration", d)).transpose()?;
    if cli.pid == Some(0) {
        bail!("--pid 0: not a process id");
    }
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    let tracer = Tracer::start(&Options { pid: cli.pid }).context("starting the tracer")?;
    let f = tracer.features();
    if !cli.json {
        eprintln!(
            "ipc-trace: attached (IPC tracepoints: {}, latency: {}, mq_timedreceive2: {})",
            yes(f.ipc_tracepoints),
            yes(f.ipc_seq),
            yes(f.raw_syscalls)
        );
    }
    let mut child = match cli.cmd.split_first() {
        Some((prog, args)) => Some(
            Command::new(prog)
                .args(args)
                .spawn()
                .with_context(|| format!("starting {prog}"))?,
        ),
        None => None,
    };
    let start = Instant::now();
    let mut next = start + interval;
    let mut code = 0;
    let mut last = None;
    loop {
        if let Some(c) = child.as_mut() {
            if let Some(status) = c.try_wait()? {
                use std::os::unix::process::ExitStatusExt;
                code = status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
                break;
            }
        }
        if STOP.load(Ordering::Relaxed) || duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        if !interval.is_zero() && Instant::now() >= next {
            let r = tracer.snapshot()?;
            if cli.json {
                eprintln!("{}", r.to_json());
            } else {
                eprint!("{}", r.changes_since(last.as_ref()));
            }
            last = Some(r);
            next += interval;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(c) = child.as_mut() {
        // Interrupted: the command got the same signal from the terminal;
        // wait for it so that its events are counted.
        if code == 0 && c.try_wait()?.is_none() {
            let status = c.wait()?;
            code = status.code().unwrap_or(130);
        }
    }
    let report = tracer.snapshot()?;
    drop(tracer);
    if cli.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    Ok(code)
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
