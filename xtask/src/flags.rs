//! Command-line interface of `cargo xtask`.

use clap::{Parser, Subcommand, ValueEnum};

/// Patched-kernel development and VM test workspace for io_uring IPC
/// channels and mq_timedreceive2().
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
pub struct Xtask {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Install the host packages the workspace needs (idempotent).
    Deps(DepsArgs),
    /// Fetch the pinned base kernel, apply patches/, configure and build it.
    BuildKernel(BuildArgs),
    /// Work on the patch series: apply, export, check.
    Patches(PatchesArgs),
    /// Boot the built kernel in a virtme-ng VM (a shell, or run CMD).
    Vm(VmArgs),
    /// Build kernel and selftests, run every selftest in the VM.
    Test(TestArgs),
    /// Run suites this project did not write (liburing's tests, the kernel's
    /// mqueue selftests) on the base and the patched kernel; fail on any test
    /// that passes on the base but not with the patches.
    Regress(RegressArgs),
    /// Run CMD in the VM under ipc-trace (BPF): per-channel IPC counts,
    /// errors and latency histograms, mq_timedreceive2 peek/receive latency.
    Trace(TraceArgs),
    /// IPC benchmarks in the patched kernel: io_uring IPC against pipes,
    /// sockets, shm+eventfd and POSIX mqueues; tables, JSON, plots and a
    /// report under target/bench/.
    Bench(BenchArgs),
    /// Runs inside the VM: executes selftest binaries (used by `test`).
    #[command(hide = true)]
    GuestRun(GuestRunArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// Small config, quick to build and boot.
    Fast,
    /// Adds lockdep, KASAN, DEBUG_LIST, DEBUG_ATOMIC_SLEEP and friends.
    Debug,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Fast => "fast",
            Profile::Debug => "debug",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct DepsArgs {
    /// Only report what is missing; install nothing.
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    #[arg(long, value_enum, default_value = "fast")]
    pub profile: Profile,
    /// Parallel make jobs (default: number of CPUs).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Run make even when the inputs are unchanged since the last build.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct PatchesArgs {
    #[command(subcommand)]
    pub cmd: PatchesCmd,
}

#[derive(Debug, Subcommand)]
pub enum PatchesCmd {
    /// Create target/kernel/dev: base + patches/series as commits to edit.
    Apply {
        /// Recreate the tree even if it has commits not yet exported.
        #[arg(long)]
        force: bool,
    },
    /// Regenerate patches/ and patches/series from the dev tree's commits.
    Export,
    /// The pre-submission gate: checkpatch, format, kernel-doc, sparse, W=1.
    ///
    /// Every check runs on every patch and each problem names the patch
    /// file to fix:
    ///
    ///   checkpatch  scripts/checkpatch.pl --strict: no ERROR, WARNING or CHECK.
    ///   format      `subsys/area: summary` subject, a body, a Signed-off-by
    ///               from the author, no trailing whitespace.
    ///   kernel-doc  scripts/kernel-doc -none -Wall on the .c/.h files the
    ///               series touches; only warnings the base lacks count.
    ///   sparse      the objects of the touched .c files built with C=2 W=1 in
    ///               the base and in the patched tree (fast profile config);
    ///               only new diagnostics count, compared without line numbers.
    ///   bisect      (with --bisect) `make vmlinux` at every prefix of the
    ///               series in target/kernel/build-bisect.
    ///
    /// Bisectability is opt-in because it is the one expensive check: the
    /// first run is a full kernel build (~10 minutes on 2 CPUs), then one
    /// incremental build per patch (~1-2 minutes each, more for a patch that
    /// edits a widely included header). Building only the touched objects
    /// per prefix would be cheaper but misses link errors and breakage in
    /// files that include a changed header. Prefixes whose tree already
    /// built are remembered and skipped, so rerunning after editing patch N
    /// rebuilds from N on. sparse + W=1 costs `make prepare` in two trees
    /// (a few minutes the first time) and seconds afterwards.
    #[command(verbatim_doc_comment)]
    Check(CheckArgs),
    /// Write each series as mails with a cover letter to target/patches/.
    ///
    /// patches/cover-letters.toml says where each series starts (by the
    /// subject of its first patch) and gives its cover subject and blurb;
    /// the newest benchmark report (target/bench/*.md) is appended. Output:
    /// target/patches/<series>/0000-cover-letter.patch and the numbered
    /// patches, ready for git send-email.
    CoverLetter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GateCheck {
    Checkpatch,
    Format,
    KernelDoc,
    Sparse,
    Bisect,
}

impl GateCheck {
    pub fn name(self) -> &'static str {
        match self {
            GateCheck::Checkpatch => "checkpatch",
            GateCheck::Format => "format",
            GateCheck::KernelDoc => "kernel-doc",
            GateCheck::Sparse => "sparse",
            GateCheck::Bisect => "bisect",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Also build every prefix of the series (slow; see above).
    #[arg(long)]
    pub bisect: bool,
    /// Run only these checks (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<GateCheck>,
    /// Check the series in DIR (a `series` file and its patches) instead of
    /// patches/, e.g. a scratch copy.
    #[arg(long, value_name = "DIR")]
    pub patch_dir: Option<std::path::PathBuf>,
    /// Parallel make jobs (default: number of CPUs).
    #[arg(long)]
    pub jobs: Option<usize>,
}

#[derive(Debug, clap::Args)]
pub struct VmArgs {
    #[arg(long, value_enum, default_value = "fast")]
    pub profile: Profile,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 2)]
    pub cpus: u32,
    /// Guest memory, as understood by vng (e.g. 2G).
    #[arg(long, default_value = "2G")]
    pub memory: String,
    /// Command to run in the guest; an interactive shell when empty.
    #[arg(last = true)]
    pub cmd: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    #[arg(long, value_enum, default_value = "fast")]
    pub profile: Profile,
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Per-selftest-binary timeout in seconds (killed and failed after it).
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 2)]
    pub cpus: u32,
    /// Only run selftest binaries whose name contains this string.
    pub filter: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct GuestRunArgs {
    /// Directory (shared with the host) for per-binary output and kernel logs.
    #[arg(long)]
    pub results: std::path::PathBuf,
    #[arg(long)]
    pub timeout: u64,
    /// More tests to run after BINARIES, with arguments and result
    /// conventions (TOML, written by the host).
    #[arg(long)]
    pub manifest: Option<std::path::PathBuf>,
    /// Selftest binaries to run, in order.
    pub binaries: Vec<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Suite {
    /// liburing's test suite (Debian source package), for the io_uring series.
    Liburing,
    /// The kernel's tools/testing/selftests/mqueue, for the mqueue series.
    Mqueue,
}

#[derive(Debug, clap::Args)]
pub struct RegressArgs {
    /// Run only the tests the list file marks as quick (what CI runs).
    #[arg(long)]
    pub quick: bool,
    /// Suites to run (default: all).
    #[arg(long, value_enum)]
    pub suite: Vec<Suite>,
    /// Per-test timeout in seconds inside the guest; the host reboots a
    /// guest that does not finish a test within this plus a grace period.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 2)]
    pub cpus: u32,
    /// Parallel make jobs for kernel builds (default: number of CPUs).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Keep the results of an interrupted run and run only what is missing.
    #[arg(long)]
    pub resume: bool,
    /// Only tests whose name contains this string.
    pub filter: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct TraceArgs {
    /// Kernel profile; BPF and BTF are in the fast profile.
    #[arg(long, value_enum, default_value = "fast")]
    pub profile: Profile,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 2)]
    pub cpus: u32,
    /// Print the counters every SECS seconds while CMD runs (0: summary only).
    #[arg(long, default_value_t = 1.0, value_name = "SECS")]
    pub interval: f64,
    /// JSON output (one object per interval on stderr, the summary on stdout).
    #[arg(long)]
    pub json: bool,
    /// Command to run in the guest under the tracer.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Smoke run (fewer sizes, receiver counts and messages; under a
    /// minute of guest time under TCG).
    #[arg(long)]
    pub quick: bool,
    /// Only measurements whose id contains PAT (repeatable), e.g.
    /// "broadcast", "uring-ipc", "p2p-pingpong/pipe".
    #[arg(long, value_name = "PAT")]
    pub filter: Vec<String>,
    /// Also run the baselines on the host kernel, for comparison.
    #[arg(long)]
    pub host: bool,
    #[arg(long, value_enum, default_value = "fast")]
    pub profile: Profile,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 2)]
    pub cpus: u32,
    /// Guest memory, as understood by vng.
    #[arg(long, default_value = "2G")]
    pub memory: String,
    /// Kill the VM after this many seconds (default: by mode and accelerator).
    #[arg(long)]
    pub timeout: Option<u64>,
}
