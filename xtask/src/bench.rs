//! `cargo xtask bench`: build the `uring-ipc-bench` binary, boot the patched
//! kernel once, run the IPC benchmark suite in it (and, with `--host`, the
//! baselines on the host kernel too), then render tables, JSON, SVG plots
//! and a markdown report under target/bench/.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::flags::BenchArgs;
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

/// How long the whole guest run may take before it is killed.
pub fn budget(args: &BenchArgs, accel: &Accel) -> Duration {
    if let Some(t) = args.run_timeout {
        return Duration::from_secs(t);
    }
    let suite = if args.quick { 600 } else { 4 * 3600 };
    vm::boot_allowance(accel, args.kernel.profile) + Duration::from_secs(suite)
}

/// Run `command`, feeding its stdout into a progress display of `total`
/// steps (the suite prints "  BENCH   <id>" per measurement); kill its
/// process group after `budget`.
fn follow(command: Command, label: &str, total: u64, budget: Duration) -> Result<vm::End> {
    let mut session = vm::Session::spawn(command).with_context(|| format!("starting {label}"))?;
    let t0 = session.started();
    let mut progress = Progress::new(label, Some(total));
    let mut on_line = |l: vm::Line| match l.stream {
        vm::Stream::Stdout => progress.line(&l.text),
        vm::Stream::Stderr => eprintln!("[{label}] {}", l.text),
    };
    let end = session.run_until(Some(t0 + budget), &mut on_line)?;
    session.finish(&mut on_line);
    progress.finish();
    println!(
        "[{label}] finished in {} ({})",
        fmt_duration(t0.elapsed()),
        match end {
            vm::End::Exited(s) => s.to_string(),
            vm::End::Killed => format!("killed after {}s", budget.as_secs()),
        }
    );
    Ok(end)
}

fn verdict(what: &str, end: vm::End, json: &Path) -> Option<String> {
    match end {
        vm::End::Killed => Some(format!("{what}: killed by the watchdog")),
        vm::End::Exited(s) if !s.success() => Some(format!("{what}: {s}")),
        vm::End::Exited(_) if !json.exists() => {
            Some(format!("{what}: wrote no {}", json.display()))
        }
        vm::End::Exited(_) => None,
    }
}

pub fn run(sh: &Shell, args: &BenchArgs) -> Result<()> {
    crate::deps::require(sh, crate::deps::Need::Vm)?;
    let built = crate::kernel::build_profile(sh, args.kernel.profile)?;
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
        let end = follow(c, "host", total, budget(args, &Accel::Kvm))?;
        problems.extend(verdict("host run", end, &host_json));
    }

    let accel = vm::detect_accel();
    println!("{}", vm::describe(&accel, args.vm.cpus, &built));
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
    let insns = raw.join("insns.txt");
    let qemu_opts = if args.insns {
        if matches!(accel, Accel::Kvm) {
            bail!("--insns counts instructions with a TCG plugin; this host runs the VM on KVM");
        }
        let plugin = insn_plugin(sh)?;
        vec![format!(
            "-plugin {},out={}",
            plugin.display(),
            insns.display()
        )]
    } else {
        Vec::new()
    };
    let spec = VmSpec {
        kernel: &built,
        vm: &args.vm,
        rwdirs: vec![&raw],
        exec: Some(exec),
        console: false,
        qemu_opts,
    };
    let budget = budget(args, &accel);
    println!(
        "[vm] booting; {total} steps{}; watchdog {}s",
        if args.quick { " (quick)" } else { "" },
        budget.as_secs()
    );
    let end = follow(vm::command(&spec, &accel)?, "bench", total, budget)?;
    problems.extend(verdict("VM run", end, &vm_json));

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
        if args.insns && insns.exists() {
            render.extend(["--insns".into(), insns.display().to_string()]);
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

/// Build the instruction-counting QEMU plugin into target/bench/.
fn insn_plugin(sh: &Shell) -> Result<PathBuf> {
    let src = crate::project_root().join("bench/qemu-plugin/insn_window.c");
    let dir = crate::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let so = dir.join("insn_window.so");
    println!("[bench] gcc {} (TCG instruction counts)", src.display());
    cmd!(
        sh,
        "gcc -shared -fPIC -O2 -Wall -Wextra -Wno-unused-parameter -Werror -fvisibility=hidden -o {so} {src}"
    )
    .quiet()
    .run()
    .context("building the QEMU plugin (needs gcc)")?;
    Ok(so)
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
    use crate::flags::{Profile, ProfileOpt, VmOpts};

    fn args(quick: bool, filter: &[&str]) -> BenchArgs {
        BenchArgs {
            quick,
            filter: filter.iter().map(|s| s.to_string()).collect(),
            host: false,
            run_timeout: None,
            insns: false,
            kernel: ProfileOpt {
                profile: Profile::Fast,
            },
            vm: VmOpts {
                cpus: 2,
                memory: "2G".into(),
            },
        }
    }

    #[test]
    fn the_instruction_counting_plugin_builds() {
        let sh = Shell::new().unwrap();
        let so = insn_plugin(&sh).expect("gcc builds bench/qemu-plugin/insn_window.c");
        let bytes = std::fs::read(&so).unwrap();
        // A shared object that exports what QEMU looks up.
        assert_eq!(&bytes[..4], b"\x7fELF");
        for sym in ["qemu_plugin_install", "qemu_plugin_version"] {
            assert!(
                bytes.windows(sym.len()).any(|w| w == sym.as_bytes()),
                "{sym} missing from {}",
                so.display()
            );
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
        a.run_timeout = Some(5);
        assert_eq!(budget(&a, &Accel::Kvm), Duration::from_secs(5));
        assert!(out_dir().ends_with("target/bench"));
    }
}
