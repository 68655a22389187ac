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
    BuildKernel(BuildKernelArgs),
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
    /// BPF and BTF are in the fast profile.
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

/// `--profile`: which kernel a command builds and boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Build options")]
pub struct ProfileOpt {
    /// Kernel configuration to build (and boot).
    #[arg(long, value_enum, default_value = "fast")]
    pub profile: Profile,
}

const JOBS_HELP: &str = "Parallel make jobs (default: number of CPUs)";

/// `--jobs`: make's parallelism for the kernel builds a command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Build options")]
pub struct JobsOpt {
    #[arg(long, value_name = "N", help = JOBS_HELP)]
    pub jobs: Option<usize>,
}

/// The guest machine of every command that boots a VM.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "VM options")]
pub struct VmOpts {
    /// Number of vCPUs.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub cpus: u32,
    /// Guest memory, as understood by vng (e.g. 2G).
    #[arg(long, value_name = "SIZE", default_value = "2G")]
    pub memory: String,
}

/// What `kernel::build` is asked to build.
#[derive(Debug, Clone)]
pub struct BuildArgs {
    pub profile: Profile,
    pub jobs: Option<usize>,
    /// Run make even when the inputs are unchanged since the last build.
    pub force: bool,
}

impl BuildArgs {
    /// `profile`, built with `make`'s jobs, unless it is up to date.
    pub fn of(profile: Profile, make: JobsOpt) -> BuildArgs {
        BuildArgs {
            profile,
            jobs: make.jobs,
            force: false,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct BuildKernelArgs {
    /// Run make even when the inputs are unchanged since the last build.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub kernel: ProfileOpt,
    #[command(flatten)]
    pub make: JobsOpt,
}

impl BuildKernelArgs {
    pub fn request(&self) -> BuildArgs {
        BuildArgs {
            force: self.force,
            ..BuildArgs::of(self.kernel.profile, self.make)
        }
    }
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
    ///   cross       `make vmlinux` of the series for arm64 and i386 (tinyconfig +
    ///               kernel-config/cross-<arch>.config): errors, and warnings on
    ///               lines the series wrote. arm64 uses aarch64-linux-gnu-gcc
    ///               from PATH, else Debian's cross gcc unpacked into
    ///               target/cross/ (downloaded once, not installed).
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
    /// Move the series to another 6.12.y of the base package.
    ///
    /// Fetches linux-source-6.12=VERSION (apt says where and its sha256),
    /// makes its source the new base commit in a worktree,
    /// target/kernel/rebase, and applies patches/series there one patch at
    /// a time, reporting each as applied clean, applied with a 3-way merge,
    /// or conflicted (with the files). A conflict stops there, `git am`
    /// style: resolve it in the tree, `git am --continue`, then
    /// `patches rebase --continue`. When every patch is in, patches/ is
    /// exported from the tree and patches/base.toml pins the new version;
    /// nothing is built. Until then patches/ is not touched.
    #[command(verbatim_doc_comment)]
    Rebase(RebaseArgs),
}

#[derive(Debug, clap::Args)]
pub struct RebaseArgs {
    /// The Debian version to move to, e.g. 6.12.118-1~deb12u1.
    #[arg(
        long,
        value_name = "VERSION",
        required_unless_present_any = ["resume", "abort"],
        conflicts_with_all = ["resume", "abort"]
    )]
    pub to: Option<String>,
    /// Only report how each patch applies: patches/ is not touched and no
    /// tree is left behind.
    #[arg(long, conflicts_with_all = ["resume", "abort"])]
    pub dry_run: bool,
    /// Go on after a conflict was resolved and `git am --continue`d (or
    /// `git am --skip`ped) in target/kernel/rebase.
    #[arg(long = "continue", id = "resume", conflicts_with = "abort")]
    pub resume: bool,
    /// Give up the rebase in progress: remove its tree; patches/ stays as
    /// it was.
    #[arg(long)]
    pub abort: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GateCheck {
    /// scripts/checkpatch.pl --strict.
    Checkpatch,
    /// Subject, body, Signed-off-by, whitespace.
    Format,
    /// scripts/kernel-doc -none -Wall on the touched files.
    KernelDoc,
    /// sparse and W=1 on the touched objects.
    Sparse,
    /// make vmlinux for arm64 (cross gcc) and i386.
    Cross,
    /// make vmlinux at every prefix of the series.
    Bisect,
}

impl GateCheck {
    pub fn name(self) -> &'static str {
        match self {
            GateCheck::Checkpatch => "checkpatch",
            GateCheck::Format => "format",
            GateCheck::KernelDoc => "kernel-doc",
            GateCheck::Sparse => "sparse",
            GateCheck::Cross => "cross",
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
    #[arg(long, value_name = "N", help = JOBS_HELP)]
    pub jobs: Option<usize>,
}

#[derive(Debug, clap::Args)]
pub struct VmArgs {
    /// Command to run in the guest; an interactive shell when empty.
    #[arg(last = true)]
    pub cmd: Vec<String>,
    #[command(flatten)]
    pub kernel: ProfileOpt,
    #[command(flatten)]
    pub vm: VmOpts,
}

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Seconds each selftest binary may run in the guest before it is
    /// killed and failed (the kernel's selftests: their `settings` timeout).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub test_timeout: u64,
    /// Only run selftest binaries whose name contains this string.
    pub filter: Option<String>,
    #[command(flatten)]
    pub kernel: ProfileOpt,
    #[command(flatten)]
    pub make: JobsOpt,
    #[command(flatten)]
    pub vm: VmOpts,
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct GuestRunArgs {
    /// Directory (shared with the host) for per-binary output and kernel logs.
    #[arg(long)]
    pub results: std::path::PathBuf,
    /// Seconds a test may run before its process group is killed, for
    /// tests that bring no timeout of their own.
    #[arg(long, value_name = "SECS")]
    pub test_timeout: u64,
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
    /// Seconds each liburing test may run in the guest before it is killed
    /// (the kernel's selftests: their `settings` timeout, times 4 under TCG);
    /// a guest still in a test 30 s after its timeout is killed, the test
    /// recorded as hung, and a new VM goes on with the next one.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub test_timeout: u64,
    /// Keep the results of an interrupted run and run only what is missing.
    #[arg(long)]
    pub resume: bool,
    /// Only tests whose name contains this string.
    pub filter: Option<String>,
    #[command(flatten)]
    pub make: JobsOpt,
    #[command(flatten)]
    pub vm: VmOpts,
}

#[derive(Debug, clap::Args)]
pub struct TraceArgs {
    /// Print the counters every SECS seconds while CMD runs (0: summary only).
    #[arg(long, default_value_t = 1.0, value_name = "SECS")]
    pub interval: f64,
    /// JSON output (one object per interval on stderr, the summary on stdout).
    #[arg(long)]
    pub json: bool,
    /// Command to run in the guest under the tracer.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<String>,
    #[command(flatten)]
    pub kernel: ProfileOpt,
    #[command(flatten)]
    pub vm: VmOpts,
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
    /// Seconds each run of the suite (in the VM; on the host with --host)
    /// may take before it is killed (default: the boot allowance plus 10
    /// minutes with --quick, 4 hours without).
    #[arg(long, value_name = "SECS")]
    pub run_timeout: Option<u64>,
    /// Under TCG, also count the guest instructions of every timed pass
    /// (a QEMU plugin, bench/qemu-plugin/insn_window.c, built with gcc;
    /// slows the guest down): the report gives instructions per message
    /// and judges the cost targets on them too.
    #[arg(long)]
    pub insns: bool,
    #[command(flatten)]
    pub kernel: ProfileOpt,
    #[command(flatten)]
    pub vm: VmOpts,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(line: &str) -> Result<Cmd, clap::Error> {
        Xtask::try_parse_from(std::iter::once("cargo xtask").chain(line.split_whitespace()))
            .map(|x| x.cmd)
    }

    #[test]
    fn the_interface_is_consistent() {
        Xtask::command().debug_assert();
    }

    #[test]
    fn every_option_is_described() {
        fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in c.get_arguments() {
                let id = a.get_id().as_str();
                if id != "help" && a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for s in c.get_subcommands() {
                walk(s, &format!("{path} {}", s.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Xtask::command(), "xtask", &mut missing);
        assert!(missing.is_empty(), "undescribed: {missing:?}");
    }

    #[test]
    fn every_command_that_boots_takes_the_vm_options() {
        for cmd in ["vm", "test", "regress", "bench", "trace -- true"] {
            let (name, rest) = cmd.split_once(' ').unwrap_or((cmd, ""));
            let vm = match parse(&format!("{name} --cpus 3 --memory 4G {rest}")).unwrap() {
                Cmd::Vm(a) => a.vm,
                Cmd::Test(a) => a.vm,
                Cmd::Regress(a) => a.vm,
                Cmd::Bench(a) => a.vm,
                Cmd::Trace(a) => a.vm,
                other => panic!("{other:?}"),
            };
            assert_eq!(
                vm,
                VmOpts {
                    cpus: 3,
                    memory: "4G".into()
                },
                "{cmd}"
            );
        }
        let Cmd::Trace(t) = parse("trace -- true").unwrap() else {
            panic!()
        };
        assert_eq!(
            t.vm,
            VmOpts {
                cpus: 2,
                memory: "2G".into()
            }
        );
    }

    #[test]
    fn timeouts_are_named_for_what_they_bound() {
        let Cmd::Test(t) = parse("test --profile debug --jobs 3 --test-timeout 9 mq").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (
                t.kernel.profile,
                t.make.jobs,
                t.test_timeout,
                t.filter.as_deref()
            ),
            (Profile::Debug, Some(3), 9, Some("mq"))
        );
        let Cmd::Regress(r) = parse("regress --quick").unwrap() else {
            panic!()
        };
        assert_eq!((r.test_timeout, r.make.jobs), (60, None));
        let Cmd::Bench(b) = parse("bench --run-timeout 5").unwrap() else {
            panic!()
        };
        assert_eq!(b.run_timeout, Some(5));
        for old in [
            "test --timeout 9",
            "regress --timeout 9",
            "bench --timeout 9",
        ] {
            assert!(parse(old).is_err(), "{old}");
        }
    }

    #[test]
    fn rebase_takes_one_of_to_continue_abort() {
        let Cmd::Patches(PatchesArgs {
            cmd: PatchesCmd::Rebase(r),
        }) = parse("patches rebase --to 6.12.118-1~deb12u1 --dry-run").unwrap()
        else {
            panic!()
        };
        assert_eq!(r.to.as_deref(), Some("6.12.118-1~deb12u1"));
        assert!(r.dry_run && !r.resume && !r.abort);
        let Cmd::Patches(PatchesArgs {
            cmd: PatchesCmd::Rebase(r),
        }) = parse("patches rebase --continue").unwrap()
        else {
            panic!()
        };
        assert!(r.resume && r.to.is_none());
        for bad in [
            "patches rebase",
            "patches rebase --dry-run",
            "patches rebase --to 6.12.118-1 --continue",
            "patches rebase --continue --abort",
            "patches rebase --abort --dry-run",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn build_kernel_asks_for_what_was_given() {
        let Cmd::BuildKernel(b) = parse("build-kernel --profile debug --jobs 4 --force").unwrap()
        else {
            panic!()
        };
        let r = b.request();
        assert_eq!(
            (r.profile, r.jobs, r.force),
            (Profile::Debug, Some(4), true)
        );
        let r = BuildArgs::of(Profile::Fast, JobsOpt { jobs: None });
        assert_eq!((r.profile, r.jobs, r.force), (Profile::Fast, None, false));
    }
}
