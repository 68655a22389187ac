//! `uring-ipc-bench`: IPC benchmarks, run in the patched kernel's VM by
//! `cargo xtask bench`.
//!
//! - `run` measures and writes a JSON results file (progress on stdout in
//!   kbuild style, "  BENCH   <id>", one line per measurement);
//! - `list` prints the measurements `run` would do;
//! - `render` turns results files into tables, SVG plots and a markdown
//!   report.

mod suite;
mod transport;
mod uring;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use uring_ipc_bench::model::{measurement_id, Meta, Run, FORMAT_VERSION};
use uring_ipc_bench::report;

#[derive(Debug, Parser)]
#[command(name = "uring-ipc-bench")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, clap::Args)]
struct Select {
    /// Smoke run: fewer sizes, receiver counts and messages.
    #[arg(long)]
    quick: bool,
    /// Only measurements whose id contains this (repeatable), e.g.
    /// "broadcast", "uring-ipc", "p2p-stream/pipe/64B".
    #[arg(long)]
    filter: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the suite and write its results.
    Run {
        #[command(flatten)]
        select: Select,
        /// Results file (JSON).
        #[arg(long)]
        out: PathBuf,
        /// "vm" or "host".
        #[arg(long, default_value = "vm")]
        environment: String,
        /// Accelerator of the VM ("kvm", "tcg"), as the host detected it.
        #[arg(long, default_value = "unknown")]
        accel: String,
        #[arg(long, default_value = "")]
        accel_reason: String,
        /// Refuse to run on any other kernel release.
        #[arg(long)]
        expect_kernel: Option<String>,
        /// The host's load average, recorded with the results.
        #[arg(long, default_value = "")]
        host_load: String,
        /// The emulator the VM ran in (e.g. `qemu-system-x86_64 --version`).
        #[arg(long, default_value = "")]
        qemu: String,
    },
    /// Print the ids of the measurements `run` would do.
    List {
        #[command(flatten)]
        select: Select,
        /// Print only the number of progress lines `run` prints.
        #[arg(long)]
        steps: bool,
    },
    /// Render results into tables, plots and a report.
    Render {
        /// Results of the run in the patched kernel.
        #[arg(long)]
        vm: PathBuf,
        /// Results of the same suite on the host kernel.
        #[arg(long)]
        host: Option<PathBuf>,
        /// Output directory (report.md, results.json, summary.txt, *.svg).
        #[arg(long)]
        out: PathBuf,
        /// Instruction counts of the VM run's timed windows, as
        /// bench/qemu-plugin/insn_window.c writes them.
        #[arg(long)]
        insns: Option<PathBuf>,
    },
}

fn uname_release() -> String {
    // SAFETY: an all-zero utsname is valid for uname to fill in.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is a valid utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".into();
    }
    // SAFETY: uname NUL-terminates release.
    unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn memory_mib() -> u64 {
    // SAFETY: an all-zero sysinfo is valid for sysinfo to fill in.
    let mut si: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: si is a valid sysinfo.
    if unsafe { libc::sysinfo(&mut si) } != 0 {
        return 0;
    }
    (si.totalram as u64 * si.mem_unit as u64) >> 20
}

fn vcpus() -> u32 {
    // SAFETY: sysconf has no memory effects.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(0) as u32
}

fn load(path: &PathBuf) -> Result<Run> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let run = Run::from_json(&text).with_context(|| format!("parsing {}", path.display()))?;
    if run.meta.format != FORMAT_VERSION {
        bail!(
            "{}: results format {}, this binary reads {FORMAT_VERSION}",
            path.display(),
            run.meta.format
        );
    }
    Ok(run)
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::List { select, steps } => {
            let cfg = suite::Config::new(select.quick, select.filter);
            if steps {
                println!("{}", cfg.steps());
                return Ok(());
            }
            for (s, m, z, r) in cfg.plan() {
                println!("{}", measurement_id(s, m, z, r));
            }
            Ok(())
        }
        Cmd::Run {
            select,
            out,
            environment,
            accel,
            accel_reason,
            expect_kernel,
            host_load,
            qemu,
        } => {
            let release = uname_release();
            if let Some(want) = expect_kernel.filter(|w| *w != release) {
                bail!("running on kernel {release}, expected {want}");
            }
            let cfg = suite::Config::new(select.quick, select.filter.clone());
            if cfg.plan().is_empty() {
                bail!("no measurement matches {:?}", select.filter);
            }
            let meta = Meta {
                format: FORMAT_VERSION,
                environment,
                kernel: release,
                accel,
                accel_reason,
                vcpus: vcpus(),
                memory_mib: memory_mib(),
                date: uring_ipc_bench::date::now(),
                mode: if cfg.quick { "quick" } else { "full" }.into(),
                filter: select.filter,
                counts: cfg.counts.clone(),
                uring_send_batch: cfg.batch,
                uring_recv_depth: cfg.depth,
                ring_entries: cfg.entries,
                buffering: vec![],
                clock_ticks: uring_ipc_bench::stats::clock_ticks(),
                min_pass_ms: cfg.min_pass.as_millis() as u64,
                qemu,
                uring_nop_ns: None,
                elapsed_s: 0.0,
                repeats: cfg.repeats,
                host_load: if host_load.is_empty() {
                    std::fs::read_to_string("/proc/loadavg")
                        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                        .unwrap_or_default()
                } else {
                    host_load
                },
            };
            if meta.is_tcg() {
                println!("# {}", report::TCG_WARNING);
            }
            let run = suite::run(&cfg, meta, out.clone())?;
            println!(
                "# {} measured, {} skipped, {} failed in {:.1}s; results in {}",
                run.results.len(),
                run.skipped.len(),
                run.failed.len(),
                run.meta.elapsed_s,
                out.display()
            );
            if !run.failed.is_empty() {
                bail!("{} measurement(s) failed", run.failed.len());
            }
            Ok(())
        }
        Cmd::Render {
            vm,
            host,
            out,
            insns,
        } => {
            let mut vm = load(&vm)?;
            if let Some(f) = insns {
                let text = std::fs::read_to_string(&f)
                    .with_context(|| format!("reading {}", f.display()))?;
                let n = vm
                    .attach_insns(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
                println!("instruction counts for {n} timed passes");
            }
            let host = host.as_ref().map(load).transpose()?;
            std::fs::create_dir_all(&out)?;
            let mut plots = Vec::new();
            for r in std::iter::once(&vm).chain(host.as_ref()) {
                for (name, chart) in report::charts(r) {
                    std::fs::write(out.join(&name), chart.render())?;
                    plots.push(name);
                }
            }
            let text = report::text(&vm, host.as_ref());
            std::fs::write(out.join("summary.txt"), &text)?;
            std::fs::write(
                out.join("report.md"),
                report::markdown(&vm, host.as_ref(), &plots),
            )?;
            let mut all = vec![vm.clone()];
            all.extend(host);
            std::fs::write(
                out.join("results.json"),
                serde_json::to_string_pretty(&all)?,
            )?;
            print!("{text}");
            Ok(())
        }
    }
}
