//! `cargo xtask bench`: build the `uring-ipc-bench` binary, boot the patched
//! kernel once, run the IPC benchmark suite in it (and, with `--host`, the
//! baselines on the host kernel too), then render tables, JSON, SVG plots
//! and a markdown report under target/bench/.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::flags::{BenchArgs, Profile};
use crate::progress::{fmt_duration, Progress};
use crate::vm::{self, Accel, VmSpec};

/// Arguments of `uring-ipc-bench list|run` that select measurements.
pub fn select_args(args: &BenchArgs) -> Vec<String> {
    let mut v = Vec::new();
    if args.quick {
        v.push("--quick".to_string());
    }
    for f in &args.filter {
        v.push("--filter".to_string());
        v.push(f.clone());
    }
    v
}

/// Seconds the whole guest run may take before it is killed.
pub fn budget(args: &BenchArgs, accel: &Accel) -> Duration {
    if let Some(t) = args.timeout {
        return Duration::from_secs(t);
    }
    let boot = match (accel, args.profile) {
        (Accel::Kvm, _) => 60,
        (Accel::Tcg(_), Profile::Fast) => 180,
        (Accel::Tcg(_), Profile::Debug) => 400,
    };
    let suite = if args.quick { 600 } else { 4 * 3600 };
    Duration::from_secs(boot + suite)
}

/// Run `command`, feeding its stdout into a progress display of `total`
/// steps (the suite prints "  BENCH   <id>" per measurement); kill its
/// process group after `budget`. Returns its status, or None if killed.
fn follow(
    mut command: Command,
    label: &str,
    total: u64,
    budget: Duration,
) -> Result<Option<ExitStatus>> {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    // Its own process group, so the watchdog takes QEMU down with vng.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let t0 = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {label}"))?;
    let pgid = child.id() as libc::pid_t;
    let stdout = child.stdout.take().expect("piped");
    let label_owned = label.to_string();
    let echo = std::thread::spawn(move || {
        let mut p = Progress::new(&label_owned, Some(total));
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            p.line(&l);
        }
        p.finish();
    });
    let stderr = child.stderr.take().expect("piped");
    let prefix = label.to_string();
    let echo_err = std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[{prefix}] {l}");
        }
    });
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if t0.elapsed() > budget {
            // SAFETY: kill() on the process group we created above.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = echo.join();
    let _ = echo_err.join();
    println!(
        "[{label}] finished in {} ({})",
        fmt_duration(t0.elapsed()),
        match status {
            Some(s) => s.to_string(),
            None => format!("killed after {}s", budget.as_secs()),
        }
    );
    Ok(status)
}

fn verdict(what: &str, status: Option<ExitStatus>, json: &Path) -> Option<String> {
    match status {
        None => Some(format!("{what}: killed by the watchdog")),
        Some(s) if !s.success() => Some(format!("{what}: {s}")),
        Some(_) if !json.exists() => Some(format!("{what}: wrote no {}", json.display())),
        Some(_) => None,
    }
}

pub fn run(sh: &Shell, args: &BenchArgs) -> Result<()> {
    crate::deps::require(sh, crate::deps::Need::Vm)?;
    let built = crate::kernel::build_profile(sh, args.profile)?;
    println!("[bench] cargo build --release -p uring-ipc-bench");
    cmd!(sh, "cargo build --quiet --release -p uring-ipc-bench").run()?;
    let bin = crate::target_dir().join("release/uring-ipc-bench");
    let select = select_args(args);
    let select = &select;
    let steps = cmd!(sh, "{bin} list --steps {select...}").quiet().read()?;
    let total: u64 = steps
        .trim()
        .parse()
        .with_context(|| format!("uring-ipc-bench list --steps printed {steps:?}"))?;
    if total == 0 {
        bail!("no benchmark matches --filter {:?}", args.filter);
    }

    let out = out_dir();
    let raw = out.join("raw");
    let _ = std::fs::remove_dir_all(&raw);
    std::fs::create_dir_all(&raw)?;
    let mut problems = Vec::new();

    let host_json = raw.join("host.json");
    if args.host {
        println!("[bench] baselines on the host kernel ({total} steps; io_uring IPC skips there)");
        let mut c = Command::new(&bin);
        c.arg("run")
            .args(select)
            .arg("--out")
            .arg(&host_json)
            .args(["--environment", "host", "--accel", host_accel()]);
        let status = follow(c, "host", total, budget(args, &Accel::Kvm))?;
        problems.extend(verdict("host run", status, &host_json));
    }

    let accel = vm::detect_accel();
    println!("{}", vm::describe(&accel, args.cpus, &built));
    println!("[bench] host load average: {}", host_load());
    let vm_json = raw.join("vm.json");
    let mut exec = vec![bin.display().to_string(), "run".to_string()];
    exec.extend(select.iter().cloned());
    exec.extend([
        "--out".into(),
        vm_json.display().to_string(),
        "--environment".into(),
        "vm".into(),
        "--accel".into(),
        accel.name().into(),
        "--accel-reason".into(),
        match &accel {
            Accel::Kvm => String::new(),
            Accel::Tcg(why) => why.clone(),
        },
        "--expect-kernel".into(),
        built.release.clone(),
        "--host-load".into(),
        host_load(),
        "--qemu".into(),
        qemu_version(),
    ]);
    let spec = VmSpec {
        kernel: &built,
        cpus: args.cpus,
        memory: &args.memory,
        rwdirs: vec![&raw],
        exec: Some(exec),
        console: false,
    };
    let budget = budget(args, &accel);
    println!(
        "[vm] booting; {total} steps{}; watchdog {}s",
        if args.quick { " (quick)" } else { "" },
        budget.as_secs()
    );
    let status = follow(vm::command(&spec, &accel)?, "bench", total, budget)?;
    problems.extend(verdict("VM run", status, &vm_json));

    if vm_json.exists() {
        let mut render = vec![
            "render".to_string(),
            "--vm".into(),
            vm_json.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ];
        if host_json.exists() {
            render.extend(["--host".into(), host_json.display().to_string()]);
        }
        cmd!(sh, "{bin} {render...}").run()?;
        println!(
            "[bench] {}: report.md, results.json, summary.txt, *.svg",
            out.display()
        );
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(())
}

/// The host's 1, 5 and 15 minute load averages: an emulated guest's
/// timings suffer from other work on the host.
fn host_load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// How the host itself runs: "native" only on bare metal. A host whose CPU
/// flags include "hypervisor" is itself a guest.
fn host_accel() -> &'static str {
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if flags
        .lines()
        .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"))
    {
        "virtualized (the host is itself a guest)"
    } else {
        "native"
    }
}

/// The first line of `qemu-system-x86_64 --version` (what vng runs).
fn qemu_version() -> String {
    Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// Where the rendered outputs go.
pub fn out_dir() -> PathBuf {
    crate::target_dir().join("bench")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(quick: bool, filter: &[&str]) -> BenchArgs {
        BenchArgs {
            quick,
            filter: filter.iter().map(|s| s.to_string()).collect(),
            host: false,
            profile: Profile::Fast,
            cpus: 2,
            memory: "2G".into(),
            timeout: None,
        }
    }

    #[test]
    fn selection_is_passed_through() {
        assert_eq!(select_args(&args(false, &[])), Vec::<String>::new());
        assert_eq!(
            select_args(&args(true, &["broadcast", "uring-ipc"])),
            ["--quick", "--filter", "broadcast", "--filter", "uring-ipc"]
        );
    }

    #[test]
    fn budgets() {
        let tcg = Accel::Tcg("test".into());
        assert_eq!(budget(&args(true, &[]), &tcg), Duration::from_secs(780));
        assert!(budget(&args(false, &[]), &tcg) > budget(&args(true, &[]), &tcg));
        let mut a = args(true, &[]);
        a.timeout = Some(5);
        assert_eq!(budget(&a, &Accel::Kvm), Duration::from_secs(5));
        assert!(out_dir().ends_with("target/bench"));
    }
}
