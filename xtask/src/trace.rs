//! `cargo xtask trace -- CMD`: boot the kernel and run CMD in the guest
//! under `ipc-trace`, which attaches before CMD starts, detaches after it
//! exits and prints the per-channel counts and latency histograms.

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::flags::TraceArgs;
use crate::vm::{self, VmSpec};

pub fn run(sh: &Shell, args: &TraceArgs) -> Result<()> {
    if args.cmd.is_empty() {
        bail!("nothing to trace: give the command after `--`, e.g. `cargo xtask trace -- target/release/ipc-workload`");
    }
    if !args.interval.is_finite() || args.interval < 0.0 {
        bail!(
            "--interval {}: expected a number of seconds >= 0",
            args.interval
        );
    }
    crate::deps::require(sh, crate::deps::Need::Vm)?;
    let built = crate::kernel::build_profile(sh, args.kernel.profile)?;
    // The tracer, its workload and the selftests (the usual things to trace).
    println!("[trace] cargo build --release -p ipc-trace -p selftests");
    cmd!(
        sh,
        "cargo build --quiet --release -p ipc-trace -p selftests --bins"
    )
    .run()?;
    let tracer = crate::target_dir().join("release/ipc-trace");
    let mut exec = vec![
        tracer.display().to_string(),
        "--interval".to_string(),
        args.interval.to_string(),
    ];
    if args.json {
        exec.push("--json".into());
    }
    exec.push("--".into());
    exec.extend(args.cmd.iter().cloned());

    let accel = vm::detect_accel();
    println!("{}", vm::describe(&accel, args.vm.cpus, &built));
    let spec = VmSpec {
        kernel: &built,
        vm: &args.vm,
        rwdirs: vec![],
        exec: Some(exec),
        console: false,
        qemu_opts: vec![],
    };
    let mut session = vm::Session::spawn(vm::command(&spec, &accel)?).context("starting vng")?;
    let mut relay = |l: vm::Line| match l.stream {
        vm::Stream::Stdout => println!("{}", l.text),
        vm::Stream::Stderr => eprintln!("{}", l.text),
    };
    let end = session.run_until(None, &mut relay)?;
    session.finish(&mut relay);
    let vm::End::Exited(status) = end else {
        bail!("the VM was killed")
    };
    match status.code() {
        Some(0) => Ok(()),
        // ipc-trace exits with CMD's status, or 2 when tracing failed.
        Some(c) => {
            eprintln!("[trace] guest command exited with status {c}");
            std::process::exit(c)
        }
        None => bail!("vng was killed ({status})"),
    }
}
