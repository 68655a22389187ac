//! `cargo xtask test`: build kernel + selftests, boot once, run every
//! selftest binary in the guest, judge KTAP, exit status and kernel log.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::flags::{BuildArgs, GuestRunArgs, TestArgs};
use crate::guest::{GuestTest, Manifest};
use crate::ktap::{tally_binary, Tally};
use crate::results::{Exit, ResultsDir, TestFile};
use crate::vm::{self, VmSpec};

/// Names of the selftest binaries, in the order they run.
pub fn selftest_names() -> Result<Vec<String>> {
    // The bin targets of the selftests package, as cargo sees them (a
    // binary may be src/bin/NAME.rs or src/bin/NAME/main.rs).
    #[derive(serde::Deserialize)]
    struct Metadata {
        packages: Vec<Package>,
    }
    #[derive(serde::Deserialize)]
    struct Package {
        name: String,
        targets: Vec<Target>,
    }
    #[derive(serde::Deserialize)]
    struct Target {
        name: String,
        kind: Vec<String>,
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = crate::project_root().join("Cargo.toml");
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(&manifest)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata --manifest-path {}: {}",
            manifest.display(),
            out.status
        );
    }
    let meta: Metadata =
        serde_json::from_slice(&out.stdout).context("parsing the output of cargo metadata")?;
    let selftests = meta
        .packages
        .into_iter()
        .find(|p| p.name == "selftests")
        .context("cargo metadata lists no selftests package")?;
    let mut names: Vec<String> = selftests
        .targets
        .into_iter()
        .filter(|t| t.kind.iter().any(|k| k == "bin"))
        .map(|t| t.name)
        .collect();
    names.sort();
    // The smoke test goes first: if it fails, nothing else is trustworthy.
    if let Some(i) = names.iter().position(|n| n == "smoke") {
        let s = names.remove(i);
        names.insert(0, s);
    }
    Ok(names)
}

/// Build the selftest binaries (release: they run under emulation).
pub fn build_selftests(sh: &Shell) -> Result<PathBuf> {
    println!("[selftests] cargo build --release -p selftests");
    cmd!(sh, "cargo build --quiet --release -p selftests --bins").run()?;
    Ok(crate::target_dir().join("release"))
}

/// C helpers the Rust selftests run, as (environment variable, binary).
/// `*_compat32.c` files are built with `gcc -m32 -static`, to drive the ia32
/// compat entry points of new system calls.
pub fn build_c_helpers(sh: &Shell) -> Result<Vec<(String, PathBuf)>> {
    let src_dir = crate::project_root().join("selftests/c");
    let out_dir = crate::target_dir().join("selftests-c");
    std::fs::create_dir_all(&out_dir)?;
    let mut helpers = Vec::new();
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&src_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    sources.sort();
    for c in sources {
        let stem = c.file_stem().unwrap().to_string_lossy().into_owned();
        let bin = out_dir.join(&stem);
        let m32 = stem.ends_with("_compat32").then_some("-m32");
        cmd!(
            sh,
            "gcc {m32...} -static -O2 -Wall -Wextra -Werror -o {bin} {c}"
        )
        .quiet()
        .run()?;
        let var = if m32.is_some() {
            "URING_IPC_COMPAT32".to_string()
        } else {
            format!("URING_IPC_{}", stem.to_uppercase())
        };
        helpers.push((var, bin));
    }
    Ok(helpers)
}

/// The kernel's own selftests for what the series changes
/// ([`crate::kselftest::TARGETS`]), installed from the patched tree by its
/// own `make install` against the UAPI headers `built` installed (which
/// define the IPC interface), each run by `run_kselftest.sh` in the guest.
pub fn build_kselftests(sh: &Shell, built: &crate::kernel::Built) -> Result<Vec<GuestTest>> {
    let _lock = crate::kernel::TreeLock::acquire()?;
    let src = crate::kernel::src_dir();
    let out = crate::target_dir().join("kselftest/patched");
    let headers = crate::uapi::headers_dir(built).join("include");
    let khdr = format!("KHDR_INCLUDES=-isystem {}", headers.display());
    let tests = crate::kselftest::install(sh, &src, &crate::kselftest::TARGETS, &out, &[khdr])?;
    Ok(tests
        .into_iter()
        .filter(|t| {
            !crate::kselftest::NOT_IN_TEST
                .iter()
                .any(|n| t.name == n.replace(':', "."))
        })
        .collect())
}

pub fn run(sh: &Shell, args: &TestArgs) -> Result<()> {
    crate::deps::require(sh, crate::deps::Need::All)?;
    let built = crate::kernel::build(sh, &BuildArgs::of(args.kernel.profile, args.make))?;
    let uapi_absent = crate::uapi::check(sh, &built)?;
    let bin_dir = build_selftests(sh)?;
    let helpers = build_c_helpers(sh)?;
    let wanted = |n: &str| args.filter.as_deref().is_none_or(|f| n.contains(f));
    let rust_names: Vec<String> = selftest_names()?
        .into_iter()
        .filter(|n| wanted(n))
        .collect();
    let kselftests: Vec<GuestTest> = build_kselftests(sh, &built)?
        .into_iter()
        .filter(|t| wanted(&t.name))
        .collect();
    let mut names = rust_names.clone();
    names.extend(kselftests.iter().map(|t| t.name.clone()));
    if names.is_empty() {
        bail!("no selftest binary matches {:?}", args.filter);
    }

    let results = ResultsDir::new(
        crate::target_dir()
            .join("vm-results")
            .join(args.kernel.profile.name()),
    );
    let _ = std::fs::remove_dir_all(results.path());
    std::fs::create_dir_all(results.path())?;
    let manifest = results.path().join("kselftests.toml");
    Manifest {
        tests: kselftests.clone(),
    }
    .write(&manifest)?;
    let xtask = vm::guest_xtask(results.path())?;
    let mut exec: Vec<String> = vec![
        "env".to_string(),
        format!("URING_IPC_EXPECT_RELEASE={}", built.release),
    ];
    exec.extend(
        helpers
            .iter()
            .map(|(var, bin)| format!("{var}={}", bin.display())),
    );
    exec.extend(crate::guest::command_line(
        &xtask,
        &GuestRunArgs {
            results: results.path().to_path_buf(),
            test_timeout: args.test_timeout,
            manifest: Some(manifest),
            binaries: rust_names.iter().map(|n| bin_dir.join(n)).collect(),
        },
    ));

    let accel = vm::detect_accel();
    println!("{}", vm::describe(&accel, args.vm.cpus, &built));
    let spec = VmSpec {
        kernel: &built,
        vm: &args.vm,
        rwdirs: vec![results.path()],
        exec: Some(exec),
        console: true,
        qemu_opts: vec![],
    };
    let kselftest_time: u64 = kselftests
        .iter()
        .map(|t| t.timeout.unwrap_or(args.test_timeout))
        .sum();
    let budget = vm::boot_allowance(&accel, args.kernel.profile)
        + Duration::from_secs(args.test_timeout * rust_names.len() as u64 + kselftest_time + 30);
    println!(
        "[vm] booting; {} selftest binaries; watchdog {}s",
        names.len(),
        budget.as_secs()
    );
    // Everything vng prints goes to console.log; the terminal gets what
    // is not a kernel console line (printk's "[ seconds] " prefix).
    let console_path = results.console();
    let mut console = std::fs::File::create(&console_path)
        .with_context(|| format!("creating {}", console_path.display()))?;
    let mut on_line = |l: vm::Line| {
        let _ = writeln!(console, "{}", l.text);
        if !is_printk(&l.text) {
            match l.stream {
                vm::Stream::Stdout => println!("{}", l.text),
                vm::Stream::Stderr => eprintln!("[vng] {}", l.text),
            }
        }
    };
    let mut session = vm::Session::spawn(vm::command(&spec, &accel)?).context("starting vng")?;
    let t0 = session.started();
    let end = session.run_until(Some(t0 + budget), &mut on_line)?;
    session.finish(&mut on_line);
    let (status, watchdog_fired) = match end {
        vm::End::Exited(s) => (Some(s), false),
        vm::End::Killed => (None, true),
    };
    println!(
        "[vm] finished in {} ({})",
        crate::progress::fmt_duration(t0.elapsed()),
        match status {
            Some(s) => format!("vng {s}"),
            None => "killed by the watchdog".into(),
        }
    );

    let report = judge(&results, &names)?;
    for n in &names {
        let ktap = results.read(n, TestFile::Ktap);
        println!("# selftest: {n}");
        for l in ktap.lines() {
            println!("    {l}");
        }
    }
    let guest_release = results.guest_release();
    if guest_release.trim() != built.release {
        println!(
            "# the guest ran kernel {:?}, expected {:?}",
            guest_release.trim(),
            built.release
        );
    }
    for p in &report.tally.problems {
        println!("# problem: {p}");
    }
    for (origin, s) in &report.splats {
        println!("{}", crate::postmortem::show_splat(&built, origin, s));
    }
    let vm_failed = watchdog_fired || status.is_some_and(|s| !s.success()) || !report.complete;
    if vm_failed {
        let why = if watchdog_fired {
            format!("the VM hung (killed after {}s)", budget.as_secs())
        } else if !report.complete {
            "the guest did not finish every selftest binary".to_string()
        } else {
            "vng exited with an error".to_string()
        };
        println!(
            "{}",
            crate::postmortem::boot_failure(&built, &console_path, &why)
        );
    }
    if let Some(s) = status.filter(|s| !s.success()) {
        // The verdict comes from the shared results directory, which is
        // complete (every binary has its .exit file) or already failed above.
        println!(
            "# note: vng exited with {s}; results were read from {}",
            results.path().display()
        );
    }
    if !uapi_absent.is_empty() {
        println!(
            "# uapi items not in this kernel's headers: {}",
            uapi_absent.join(", ")
        );
    }
    let t = &report.tally;
    println!(
        "# {} kernel {} ({}), {} vCPUs",
        args.kernel.profile.name(),
        built.release,
        accel.name(),
        args.vm.cpus
    );
    println!(
        "{} passed, {} failed, {} skipped",
        t.passed, t.failed, t.skipped
    );
    if watchdog_fired {
        bail!("the VM did not finish within {}s", budget.as_secs());
    }
    if t.failed > 0 || !report.splats.is_empty() {
        bail!(
            "{} failed test case(s), {} kernel splat(s)",
            t.failed,
            report.splats.len()
        );
    }
    if guest_release.trim() != built.release {
        bail!("the selftests did not run in the kernel that was built");
    }
    Ok(())
}

pub struct Report {
    pub tally: Tally,
    pub splats: Vec<(String, crate::splat::Splat)>,
    /// Every binary has its exit file (the guest did not die under one).
    pub complete: bool,
}

/// A kernel console line: printk's `[ seconds.micros] ` prefix.
fn is_printk(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('[') else {
        return false;
    };
    let Some((stamp, _)) = rest.split_once(']') else {
        return false;
    };
    let stamp = stamp.trim();
    !stamp.is_empty()
        && stamp.chars().all(|c| c.is_ascii_digit() || c == '.')
        && stamp.contains('.')
}

/// Read the guest's result files and judge them.
pub fn judge(results: &ResultsDir, names: &[String]) -> Result<Report> {
    let mut tally = Tally::default();
    let mut splats = Vec::new();
    let mut complete = true;
    let boot = std::fs::read_to_string(results.boot_dmesg()).unwrap_or_default();
    for s in crate::splat::find(&boot) {
        splats.push(("boot".to_string(), s));
    }
    for n in names {
        let ktap = results.read(n, TestFile::Ktap);
        // No record: the guest died, or was killed, under this binary.
        let exit = results.exit(n);
        complete &= exit.is_some();
        let exit = exit.unwrap_or(Exit::VmDied);
        tally.add(&tally_binary(n, &ktap, &exit));
        let log = results.read(n, TestFile::Dmesg);
        for s in crate::splat::find(&log) {
            splats.push((n.clone(), s));
        }
    }
    Ok(Report {
        tally,
        splats,
        complete,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge_reads_results_and_splats() {
        let dir = std::env::temp_dir().join(format!("xtask-judge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("boot.dmesg"), "[0.1] booting\n").unwrap();
        std::fs::write(
            dir.join("a.ktap"),
            "KTAP version 1\n1..2\nok 1 x\nok 2 y # SKIP z\n",
        )
        .unwrap();
        std::fs::write(dir.join("a.exit"), "exit 0\n").unwrap();
        std::fs::write(
            dir.join("a.dmesg"),
            "[1.0] BUG: KASAN: use-after-free in f\n",
        )
        .unwrap();
        let r = judge(&ResultsDir::new(&dir), &["a".into(), "b".into()]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!((r.tally.passed, r.tally.skipped), (1, 1));
        // b never ran: no plan and missing exit.
        assert_eq!(r.tally.failed, 2);
        assert_eq!(r.splats.len(), 1);
        assert_eq!(r.splats[0].0, "a");
        assert!(!r.complete);
    }

    #[test]
    fn printk_lines_are_told_apart() {
        assert!(is_printk("[    0.123456] Linux version 6.12"));
        assert!(is_printk("[12345.000001] WARNING: CPU: 0"));
        assert!(!is_printk("[vng] something"));
        assert!(!is_printk("[selftests] ok"));
        assert!(!is_printk("KTAP version 1"));
    }
}
