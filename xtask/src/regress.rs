//! `cargo xtask regress`: run test suites this project did not write on the
//! unpatched base kernel and on the patched kernel, and report every test
//! that passes on the base but not with the patches.
//!
//! Suites: liburing's tests (Debian source package) for the io_uring series,
//! the kernel's tools/testing/selftests/mqueue for the mqueue series. The
//! same host-built binaries run on both kernels.
//!
//! Some tests can wedge a TCG guest so that not even the in-guest timeout
//! gets to run. The host therefore watches each test (the guest names the
//! running test in the shared results directory): a test still running after its
//! timeout plus a grace period is recorded as hung, the VM is killed, and a
//! fresh VM continues with the next test. Results are files written as each
//! test ends (target/regress/<kernel>/), so `--resume` continues a run that
//! was interrupted.
//!
//! ci/regress.toml lists tests that are not run (with a reason each: known
//! hangs under TCG, flaky tests) and the quick selection CI runs.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use xshell::Shell;

use crate::flags::{BuildArgs, GuestRunArgs, Profile, RegressArgs, Suite};
use crate::guest::{GuestTest, Manifest};
use crate::kernel::Built;
use crate::progress::fmt_duration;
use crate::results::{Exit, Outcome, ResultsDir, TestFile};
use crate::vm::{self, Accel, VmSpec};

/// Seconds a guest may take past a test's own timeout before the host
/// declares it wedged (the in-guest kill and the log writes need time
/// under emulation).
const GRACE: Duration = Duration::from_secs(30);

/// Factor on kselftest `settings` timeouts under software emulation.
const TCG_KSELFTEST_SLOWDOWN: u64 = 4;

/// ci/regress.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListFile {
    #[serde(default)]
    pub skip: Vec<SkipEntry>,
    #[serde(default)]
    pub quick: Quick,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkipEntry {
    /// Full test name, e.g. `liburing.35fa71a030ca`.
    pub test: String,
    /// Why it is not run. Required: an unexplained skip is a hidden failure.
    pub reason: String,
    /// `tcg`: skipped only under software emulation; `always`: everywhere.
    pub when: When,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum When {
    Tcg,
    Always,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quick {
    /// Full test names run by `--quick`.
    #[serde(default)]
    pub tests: Vec<String>,
}

impl ListFile {
    pub fn path() -> PathBuf {
        crate::project_root().join("ci/regress.toml")
    }

    pub fn parse(text: &str, origin: &str) -> Result<ListFile> {
        let l: ListFile = toml::from_str(text).with_context(|| format!("parsing {origin}"))?;
        for s in &l.skip {
            if s.reason.trim().is_empty() {
                bail!("{origin}: skip entry for {} has no reason", s.test);
            }
        }
        Ok(l)
    }

    pub fn load() -> Result<ListFile> {
        let p = Self::path();
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        Self::parse(&text, &p.display().to_string())
    }

    /// The reason `test` is not run here, if it is listed.
    pub fn skip_reason(&self, test: &str, accel: &Accel) -> Option<String> {
        self.skip.iter().find_map(|s| {
            let applies = s.when == When::Always || matches!(accel, Accel::Tcg(_));
            (s.test == test && applies).then(|| s.reason.clone())
        })
    }
}

/// One test's result on one kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    pub outcome: Outcome,
    /// The guest's or the host's record of how it ended.
    pub exit: Exit,
    /// Headlines of kernel splats logged while it ran.
    pub splats: Vec<String>,
}

impl TestResult {
    fn word(&self) -> String {
        let w = match self.outcome {
            Outcome::Pass => "pass".to_string(),
            Outcome::Skip => "skip".to_string(),
            Outcome::Fail if matches!(self.exit, Exit::Hang(_)) => "HANG".to_string(),
            Outcome::Fail => format!("FAIL ({})", self.exit),
        };
        if self.splats.is_empty() {
            w
        } else {
            format!("{w} +splat")
        }
    }
}

/// `t`'s result, once it has a complete exit record.
fn read_result(dir: &ResultsDir, t: &GuestTest) -> Option<TestResult> {
    let exit = dir.exit(&t.name)?;
    let log = dir.read(&t.name, TestFile::Dmesg);
    let ktap = dir.read(&t.name, TestFile::Ktap);
    Some(TestResult {
        outcome: outcome_of(t, &exit, &ktap),
        exit,
        splats: crate::splat::find(&log)
            .into_iter()
            .map(|s| s.headline)
            .collect(),
    })
}

/// A binary's outcome from its exit record and its KTAP: kselftest_harness
/// exits 0 when every case skipped (an unpatched kernel), which is a skip,
/// not a pass; any failed case fails it whatever the exit status.
fn outcome_of(t: &GuestTest, exit: &Exit, ktap: &str) -> Outcome {
    let by_exit = t.convention.judge(exit);
    if by_exit == Outcome::Fail {
        return by_exit;
    }
    // The KTAP tally knows only kselftest's exit codes: a skip by the
    // test's own convention (liburing's 77) is told to it as kselftest's.
    let tally_exit = if by_exit == Outcome::Skip {
        Exit::Code(4)
    } else {
        *exit
    };
    let tally = crate::ktap::tally_binary(&t.name, ktap, &tally_exit);
    if tally.failed > 0 {
        Outcome::Fail
    } else if tally.passed == 0 && tally.skipped > 0 {
        Outcome::Skip
    } else {
        by_exit
    }
}

/// Run `tests` on `kernel`, one VM per chunk: a VM runs tests until one
/// hangs (then it is killed and the next VM starts after that test) or
/// until all are done. Returns each test's result.
fn run_on_kernel(
    label: &str,
    kernel: &Built,
    tests: &[GuestTest],
    dir: &ResultsDir,
    args: &RegressArgs,
    accel: &Accel,
) -> Result<BTreeMap<String, TestResult>> {
    std::fs::create_dir_all(dir.path())?;
    let xtask = crate::vm::guest_xtask(&crate::target_dir().join("regress"))?;
    let mut pending: VecDeque<&GuestTest> =
        tests.iter().filter(|t| !dir.has_exit(&t.name)).collect();
    let total = tests.len();
    let t0 = Instant::now();
    let mut boot_failures = 0;
    let mut console = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.console())?;
    // Tests whose result was already shown.
    let mut reported: std::collections::BTreeSet<String> = tests
        .iter()
        .filter(|t| dir.has_exit(&t.name))
        .map(|t| t.name.clone())
        .collect();
    let limits = Limits {
        tests,
        default_timeout: args.test_timeout,
        grace: GRACE,
        boot: vm::boot_allowance(accel, Profile::Fast),
    };
    if pending.len() < total {
        println!(
            "[regress {label}] resuming: {} of {total} tests already have results",
            total - pending.len()
        );
    }
    let mut vms = 0;
    while !pending.is_empty() {
        vms += 1;
        let manifest = dir.path().join("manifest.toml");
        Manifest {
            tests: pending.iter().map(|t| (*t).clone()).collect(),
        }
        .write(&manifest)?;
        let exec = crate::guest::command_line(
            &xtask,
            &GuestRunArgs {
                results: dir.path().to_path_buf(),
                test_timeout: args.test_timeout,
                manifest: Some(manifest),
                binaries: vec![],
            },
        );
        let spec = VmSpec {
            kernel,
            vm: &args.vm,
            rwdirs: vec![dir.path()],
            exec: Some(exec),
            console: true,
            qemu_opts: vec![],
        };
        let _ = std::fs::remove_file(dir.running());
        let mut session = vm::Session::spawn(vm::command(&spec, accel)?).context("starting vng")?;
        // This boot's console, kept for the post-mortem of a test that
        // hangs or kills the guest (console.log holds every boot).
        let mut boot_console: VecDeque<String> = VecDeque::new();
        let mut keep = |l: vm::Line| {
            let text = match l.stream {
                vm::Stream::Stdout => l.text,
                vm::Stream::Stderr => format!("[vng] {}", l.text),
            };
            let _ = writeln!(console, "{text}");
            if boot_console.len() == BOOT_CONSOLE_LINES {
                boot_console.pop_front();
            }
            boot_console.push_back(text);
        };
        let end = watch(&mut session, dir, &limits, &mut keep, &mut || {
            report_new(label, dir, tests, &mut reported, t0)
        })?;
        // Drain what the VM printed before it went away.
        session.finish(&mut keep);
        record_end(label, dir, &end, &boot_console, limits.boot)?;
        if end.started_a_test() {
            boot_failures = 0;
        } else {
            boot_failures += 1;
            if boot_failures >= 2 {
                bail!(
                    "the {label} kernel did not start the tests twice in a row; \
                     see {}",
                    dir.console().display()
                );
            }
        }
        let release = dir.guest_release();
        if end.started_a_test() && release != kernel.release {
            bail!(
                "the guest ran kernel {:?}, expected {:?}",
                release,
                kernel.release
            );
        }
        report_new(label, dir, tests, &mut reported, t0);
        pending.retain(|t| !dir.has_exit(&t.name));
    }
    println!(
        "[regress {label}] {total} tests in {} ({vms} VM boot{})",
        fmt_duration(t0.elapsed()),
        if vms == 1 { "" } else { "s" }
    );
    let mut results = BTreeMap::new();
    for t in tests {
        if let Some(r) = read_result(dir, t) {
            results.insert(t.name.clone(), r);
        }
    }
    Ok(results)
}

/// Console lines of one boot kept for a hang's post-mortem.
const BOOT_CONSOLE_LINES: usize = 4000;

/// How often the host looks at the guest's progress.
const POLL: Duration = Duration::from_millis(200);

/// How long the guest may go without progress.
struct Limits<'a> {
    tests: &'a [GuestTest],
    /// A test's timeout when it has none of its own (`--test-timeout`).
    default_timeout: u64,
    /// Time a guest may take past a test's timeout.
    grace: Duration,
    /// Time from vng's start until the guest starts its first test.
    boot: Duration,
}

impl Limits<'_> {
    fn of(&self, test: &str) -> Duration {
        let secs = self
            .tests
            .iter()
            .find(|t| t.name == test)
            .and_then(|t| t.timeout)
            .unwrap_or(self.default_timeout);
        Duration::from_secs(secs) + self.grace
    }
}

/// How one VM of a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum VmEnd {
    /// `test` was still running `secs` after it started, past its limit:
    /// the guest was killed.
    Hung { test: String, secs: u64 },
    /// No test started within the boot allowance: the guest was killed.
    NoStart,
    /// The VM exited by itself; `last` is the last test the guest started.
    Exited { last: Option<String> },
}

impl VmEnd {
    fn started_a_test(&self) -> bool {
        !matches!(self, VmEnd::NoStart | VmEnd::Exited { last: None })
    }
}

/// Follow one VM: the guest names the test it runs in the results
/// directory; kill the VM when that test, or the boot, takes longer than
/// `limits` allow. `on_line` gets the console, `on_tick` is called at
/// every look at the results.
fn watch(
    session: &mut vm::Session,
    dir: &ResultsDir,
    limits: &Limits,
    on_line: &mut dyn FnMut(vm::Line),
    on_tick: &mut dyn FnMut(),
) -> Result<VmEnd> {
    // The test the guest announced last, and when.
    let mut current: Option<(String, Instant)> = None;
    loop {
        let exited = session.poll(POLL, on_line)?.is_some();
        if let Some(now) = dir.running_test() {
            if current.as_ref().is_none_or(|(c, _)| *c != now) {
                current = Some((now, Instant::now()));
            }
        }
        on_tick();
        if exited {
            return Ok(VmEnd::Exited {
                last: current.map(|(c, _)| c),
            });
        }
        match &current {
            Some((test, since)) if since.elapsed() > limits.of(test) => {
                session.kill();
                return Ok(VmEnd::Hung {
                    test: test.clone(),
                    secs: since.elapsed().as_secs(),
                });
            }
            None if session.started().elapsed() > limits.boot => {
                session.kill();
                return Ok(VmEnd::NoStart);
            }
            _ => {}
        }
    }
}

/// Record what the guest could not: a hung test, or one under which the
/// VM went away, gets its exit record and this boot's console.
fn record_end(
    label: &str,
    dir: &ResultsDir,
    end: &VmEnd,
    boot_console: &VecDeque<String>,
    boot_allowance: Duration,
) -> Result<()> {
    let save_console = |name: &str| {
        let text: String = boot_console.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(dir.file(name, TestFile::Console), text)
    };
    match end {
        VmEnd::Hung { test, secs } => {
            dir.write_exit(test, &Exit::Hang(*secs))?;
            save_console(test)?;
            println!(
                "[regress {label}] {test} still running after {secs}s: \
                 guest killed, continuing in a new VM"
            );
        }
        VmEnd::NoStart => println!(
            "[regress {label}] the guest did not start its tests within {}s",
            boot_allowance.as_secs()
        ),
        VmEnd::Exited { last: Some(cur) } => {
            // The last test finished (it has its .exit), or the guest died
            // under it.
            if !dir.has_exit(cur) {
                dir.write_exit(cur, &Exit::VmDied)?;
                save_console(cur)?;
                println!("[regress {label}] the VM went away while {cur} ran");
            }
        }
        VmEnd::Exited { last: None } => {
            println!("[regress {label}] the VM exited before running any test")
        }
    }
    Ok(())
}

/// What the patched kernel said about a regressed test: its splats,
/// decoded, or, when it hung or took the guest down, that boot's console.
fn post_mortem(kernel: &Built, dir: &ResultsDir, name: &str) -> String {
    let console = dir.file(name, TestFile::Console);
    if console.exists() {
        return crate::postmortem::boot_failure(
            kernel,
            &console,
            &format!("{name} hung or the guest died under it"),
        );
    }
    let log = dir.read(name, TestFile::Dmesg);
    let shown: Vec<String> = crate::splat::find(&log)
        .iter()
        .map(|s| crate::postmortem::show_splat(kernel, name, s))
        .collect();
    if shown.is_empty() {
        format!(
            "# {name}: no kernel splat; output in {}",
            dir.path().display()
        )
    } else {
        shown.join("\n")
    }
}

/// One progress line per test that finished since the last call.
fn report_new(
    label: &str,
    dir: &ResultsDir,
    tests: &[GuestTest],
    reported: &mut std::collections::BTreeSet<String>,
    t0: Instant,
) {
    for t in tests {
        if reported.contains(&t.name) {
            continue;
        }
        let Some(r) = read_result(dir, t) else {
            continue;
        };
        reported.insert(t.name.clone());
        let took = std::fs::read_to_string(dir.file(&t.name, TestFile::Secs))
            .map(|s| format!("{}s", s.trim()))
            .unwrap_or_else(|_| r.exit.to_string());
        println!(
            "[regress {label} {}/{} {}] {}: {} ({took})",
            reported.len(),
            tests.len(),
            fmt_duration(t0.elapsed()),
            t.name,
            r.word()
        );
    }
}

/// How a test's results on the two kernels compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Same,
    Regression,
    Fixed,
    Listed,
}

/// The comparison for one test: a regression is a test that passes on the
/// base (without a kernel splat) and does not pass, or splats, when
/// patched; or one that skips on the base and fails when patched. A skip
/// is how a program says "this kernel lacks the feature", judged from the
/// error an unknown opcode or register command gets: a patched kernel
/// must give the same answer for every number it does not implement.
pub fn compare(base: Option<&TestResult>, patched: Option<&TestResult>) -> Comparison {
    let clean_pass = |r: Option<&TestResult>| {
        r.is_some_and(|r| r.outcome == Outcome::Pass && r.splats.is_empty())
    };
    let clean_skip = |r: Option<&TestResult>| {
        r.is_some_and(|r| r.outcome == Outcome::Skip && r.splats.is_empty())
    };
    if clean_skip(base) && !clean_skip(patched) && !clean_pass(patched) {
        return Comparison::Regression;
    }
    match (clean_pass(base), clean_pass(patched)) {
        (true, false) => Comparison::Regression,
        (false, true) if base.is_some_and(|b| b.outcome == Outcome::Fail) => Comparison::Fixed,
        _ => Comparison::Same,
    }
}

fn suite_of(name: &str) -> &str {
    name.split_once('.').map_or(name, |(s, _)| s)
}

pub fn run(sh: &Shell, args: &RegressArgs) -> Result<()> {
    crate::deps::require(sh, crate::deps::Need::All)?;
    let list = ListFile::load()?;
    let t_start = Instant::now();
    let jobs = crate::kbuild::jobs(args.make.jobs);
    let suites: Vec<Suite> = if args.suite.is_empty() {
        vec![Suite::Liburing, Suite::Mqueue]
    } else {
        args.suite.clone()
    };

    // Kernels first: they are what takes long when something changed.
    let patched = crate::kernel::build(sh, &BuildArgs::of(Profile::Fast, args.make))?;
    let base = crate::kernel::build_base(sh, args.make.jobs)?;

    let mut tests: Vec<GuestTest> = Vec::new();
    if suites.contains(&Suite::Liburing) {
        let dir = crate::liburing::prepare(sh, jobs)?;
        tests.extend(crate::liburing::tests(&dir, args.test_timeout)?);
    }
    if suites.contains(&Suite::Mqueue) {
        // The patched tree's selftests (a superset of the base tree's), the
        // same binaries on both kernels.
        let _lock = crate::kernel::TreeLock::acquire()?;
        let out = crate::target_dir().join("regress/kselftest/mqueue");
        let mut ksft = crate::kselftest::build(sh, &crate::kernel::src_dir(), "mqueue", &out)?;
        if matches!(vm::detect_accel(), Accel::Tcg(_)) {
            // The directory's timeout is meant for hardware: mq_perf_tests
            // took about 4-6 minutes under TCG against 180 s in `settings`.
            for t in &mut ksft {
                t.timeout = t.timeout.map(|s| s * TCG_KSELFTEST_SLOWDOWN);
            }
        }
        tests.extend(ksft);
    }
    let quick: Vec<&str> = list.quick.tests.iter().map(String::as_str).collect();
    for q in &quick {
        if !tests.iter().any(|t| t.name == *q) && suites.contains(&suite_enum(q)?) {
            bail!(
                "{}: quick test {q} does not exist",
                ListFile::path().display()
            );
        }
    }
    tests.retain(|t| {
        (!args.quick || quick.contains(&t.name.as_str()))
            && args.filter.as_deref().is_none_or(|f| t.name.contains(f))
    });
    if tests.is_empty() {
        bail!("no test matches the selection");
    }
    let accel = vm::detect_accel();
    let mut listed: BTreeMap<String, String> = BTreeMap::new();
    tests.retain(|t| match list.skip_reason(&t.name, &accel) {
        Some(r) => {
            listed.insert(t.name.clone(), r);
            false
        }
        None => true,
    });

    let root = crate::target_dir().join("regress");
    let mut all: BTreeMap<&str, BTreeMap<String, TestResult>> = BTreeMap::new();
    for (label, kernel) in [("base", &base), ("patched", &patched)] {
        let dir = ResultsDir::new(root.join(label));
        if !args.resume {
            let _ = std::fs::remove_dir_all(dir.path());
        }
        println!("{}", vm::describe(&accel, args.vm.cpus, kernel));
        println!(
            "[regress {label}] {} tests ({} listed as not run), per-test timeout {}s",
            tests.len(),
            listed.len(),
            args.test_timeout
        );
        all.insert(
            label,
            run_on_kernel(label, kernel, &tests, &dir, args, &accel)?,
        );
    }

    // The report: KTAP (one case per test: "no regression") and a table.
    let mut names: Vec<&str> = tests.iter().map(|t| t.name.as_str()).collect();
    names.extend(listed.keys().map(String::as_str));
    names.sort();
    let mut ktap = String::new();
    ktap.push_str("KTAP version 1\n");
    ktap.push_str(&format!(
        "# base {} / patched {} ({}, {} vCPUs)\n",
        base.release,
        patched.release,
        accel.name(),
        args.vm.cpus
    ));
    ktap.push_str(&format!("1..{}\n", names.len()));
    let mut table = vec![[
        "suite".to_string(),
        "test".to_string(),
        "base".to_string(),
        "patched".to_string(),
        "verdict".to_string(),
    ]];
    let mut regressions = Vec::new();
    let mut fixed = 0;
    for (i, n) in names.iter().enumerate() {
        let b = all["base"].get(*n);
        let p = all["patched"].get(*n);
        let show = |r: Option<&TestResult>| r.map_or("-".to_string(), |r| r.word());
        let (verdict, bw, pw) = match listed.get(*n) {
            Some(reason) => (Comparison::Listed, "not run".to_string(), reason.clone()),
            None => (compare(b, p), show(b), show(p)),
        };
        let line = match verdict {
            Comparison::Listed => {
                format!("ok {} {n} # SKIP listed in ci/regress.toml: {pw}", i + 1)
            }
            Comparison::Regression => {
                regressions.push(n.to_string());
                format!("not ok {} {n} # REGRESSION: base {bw}, patched {pw}", i + 1)
            }
            Comparison::Fixed => {
                fixed += 1;
                format!("ok {} {n} # base {bw}, patched {pw}", i + 1)
            }
            Comparison::Same => format!("ok {} {n} # base {bw}, patched {pw}", i + 1),
        };
        ktap.push_str(&line);
        ktap.push('\n');
        let (suite, test) = n.split_once('.').unwrap_or(("", n));
        table.push([
            suite.to_string(),
            test.to_string(),
            bw,
            if verdict == Comparison::Listed {
                "not run".into()
            } else {
                pw
            },
            match verdict {
                Comparison::Same => "same",
                Comparison::Regression => "REGRESSION",
                Comparison::Fixed => "fixed",
                Comparison::Listed => "listed",
            }
            .to_string(),
        ]);
    }
    let ktap_path = root.join("report.ktap");
    std::fs::write(&ktap_path, &ktap)?;
    print!("{ktap}");
    let widths: Vec<usize> = (0..5)
        .map(|c| table.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for (i, r) in table.iter().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            text.push_str(&rule.join("  "));
            text.push('\n');
        }
    }
    std::fs::write(root.join("report.txt"), &text)?;
    println!("\n{text}");
    for label in ["base", "patched"] {
        let r = &all[label];
        let count = |o: Outcome| r.values().filter(|x| x.outcome == o).count();
        let hangs = r
            .values()
            .filter(|x| matches!(x.exit, Exit::Hang(_)))
            .count();
        let splats = r.values().filter(|x| !x.splats.is_empty()).count();
        let per_suite: BTreeMap<&str, usize> = r.keys().fold(BTreeMap::new(), |mut m, k| {
            *m.entry(suite_of(k)).or_default() += 1;
            m
        });
        println!(
            "# {label:7} {}: {} passed, {} failed ({hangs} hung), {} skipped, {splats} with a kernel splat; {:?}",
            if label == "base" { &base.release } else { &patched.release },
            count(Outcome::Pass),
            count(Outcome::Fail),
            count(Outcome::Skip),
            per_suite
        );
    }
    println!(
        "# {} listed as not run (ci/regress.toml), {fixed} fixed by the patches; {} in {}",
        listed.len(),
        if args.quick {
            "quick selection"
        } else {
            "full run"
        },
        fmt_duration(t_start.elapsed())
    );
    println!("# report: {} and report.txt", ktap_path.display());
    println!("{} regression(s)", regressions.len());
    for n in &regressions {
        println!(
            "{}",
            post_mortem(&patched, &ResultsDir::new(root.join("patched")), n)
        );
    }
    if !regressions.is_empty() {
        bail!(
            "{} test(s) pass on the base kernel but not with the patches: {}",
            regressions.len(),
            regressions.join(", ")
        );
    }
    Ok(())
}

fn suite_enum(name: &str) -> Result<Suite> {
    match suite_of(name) {
        "liburing" => Ok(Suite::Liburing),
        "mqueue" => Ok(Suite::Mqueue),
        s => bail!("unknown suite {s:?} in test name {name:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(outcome: Outcome, splat: bool) -> TestResult {
        TestResult {
            outcome,
            exit: Exit::Code(0),
            splats: if splat { vec!["BUG: x".into()] } else { vec![] },
        }
    }

    #[test]
    fn regressions_are_base_passes_lost() {
        use Outcome::*;
        let pass = r(Pass, false);
        assert_eq!(compare(Some(&pass), Some(&pass)), Comparison::Same);
        assert_eq!(
            compare(Some(&pass), Some(&r(Fail, false))),
            Comparison::Regression
        );
        assert_eq!(
            compare(Some(&pass), Some(&r(Skip, false))),
            Comparison::Regression
        );
        assert_eq!(compare(Some(&pass), None), Comparison::Regression);
        assert_eq!(
            compare(Some(&pass), Some(&r(Pass, true))),
            Comparison::Regression
        );
        assert_eq!(
            compare(Some(&r(Fail, false)), Some(&r(Fail, false))),
            Comparison::Same
        );
        assert_eq!(
            compare(Some(&r(Skip, false)), Some(&pass)),
            Comparison::Same
        );
        // A feature probe that says "unsupported" on the base must say
        // so on the patched kernel too, not fail.
        let skip = r(Skip, false);
        assert_eq!(compare(Some(&skip), Some(&skip)), Comparison::Same);
        assert_eq!(
            compare(Some(&skip), Some(&r(Fail, false))),
            Comparison::Regression
        );
        assert_eq!(
            compare(Some(&skip), Some(&r(Skip, true))),
            Comparison::Regression
        );
        assert_eq!(compare(Some(&skip), None), Comparison::Regression);
        assert_eq!(
            compare(Some(&r(Fail, false)), Some(&pass)),
            Comparison::Fixed
        );
        assert_eq!(
            compare(Some(&r(Pass, true)), Some(&r(Fail, false))),
            Comparison::Same
        );
    }

    #[test]
    fn the_checked_in_list_parses_and_explains_itself() {
        let l = ListFile::load().unwrap();
        assert!(!l.quick.tests.is_empty());
        for t in l.quick.tests.iter().chain(l.skip.iter().map(|s| &s.test)) {
            suite_enum(t).unwrap();
        }
        let tcg = Accel::Tcg("test".into());
        for s in &l.skip {
            assert!(l.skip_reason(&s.test, &tcg).is_some());
            assert_eq!(
                l.skip_reason(&s.test, &Accel::Kvm).is_some(),
                s.when == When::Always
            );
        }
    }

    #[test]
    fn all_skipped_tap_is_a_skip() {
        let t = GuestTest {
            name: "mqueue.mq_peek_test".into(),
            path: "/x".into(),
            args: vec![],
            convention: crate::guest::Convention::Kselftest,
            timeout: None,
            scratch: false,
        };
        let skipped = "TAP version 13\n1..2\nok 1 a # SKIP no syscall\nok 2 b # SKIP no syscall\n";
        assert_eq!(outcome_of(&t, &Exit::Code(0), skipped), Outcome::Skip);
        let mixed = "TAP version 13\n1..2\nok 1 a\nok 2 b # SKIP no syscall\n";
        assert_eq!(outcome_of(&t, &Exit::Code(0), mixed), Outcome::Pass);
        let failed = "TAP version 13\n1..2\nok 1 a\nnot ok 2 b\n";
        assert_eq!(outcome_of(&t, &Exit::Code(0), failed), Outcome::Fail);
        let wrapped = crate::guest::to_ktap("x", "text\n", t.convention, &Exit::Code(0));
        assert_eq!(outcome_of(&t, &Exit::Code(0), &wrapped), Outcome::Pass);
        assert_eq!(outcome_of(&t, &Exit::Timeout(60), mixed), Outcome::Fail);
    }

    #[test]
    fn a_liburing_skip_is_a_skip() {
        let t = guest_test("liburing.epwait", None);
        for (exit, want) in [
            (Exit::Code(77), Outcome::Skip),
            (Exit::Code(0), Outcome::Pass),
            (Exit::Code(1), Outcome::Fail),
            (Exit::Code(4), Outcome::Fail),
        ] {
            let k = crate::guest::to_ktap(&t.name, "", t.convention, &exit);
            assert_eq!(outcome_of(&t, &exit, &k), want, "{exit}");
        }
    }

    fn guest_test(name: &str, timeout: Option<u64>) -> GuestTest {
        GuestTest {
            name: name.into(),
            path: "/x".into(),
            args: vec![],
            convention: crate::guest::Convention::Liburing,
            timeout,
            scratch: false,
        }
    }

    /// A fake guest: a shell script in the place of vng, and its results
    /// directory.
    fn fake_guest(what: &str, script: &str) -> (ResultsDir, vm::Session) {
        let dir = std::env::temp_dir().join(format!("xtask-regress-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let script = script.replace("$RESULTS", &vm::shell_quote(&dir.display().to_string()));
        let mut c = std::process::Command::new("sh");
        c.arg("-c").arg(script);
        (ResultsDir::new(dir), vm::Session::spawn(c).unwrap())
    }

    fn limits(tests: &[GuestTest], boot: Duration) -> Limits<'_> {
        Limits {
            tests,
            default_timeout: 60,
            grace: Duration::from_millis(300),
            boot,
        }
    }

    /// Watch the fake guest, then record its end as `run_on_kernel` does.
    fn watch_and_record(dir: &ResultsDir, mut s: vm::Session, limits: &Limits) -> VmEnd {
        let mut console = VecDeque::new();
        let mut keep = |l: vm::Line| console.push_back(l.text);
        let end = watch(&mut s, dir, limits, &mut keep, &mut || {}).unwrap();
        s.finish(&mut keep);
        record_end("patched", dir, &end, &console, limits.boot).unwrap();
        end
    }

    #[test]
    fn a_guest_that_hangs_in_a_test_is_killed_and_the_test_recorded_as_a_hang() {
        let tests = [guest_test("liburing.stuck", Some(0))];
        let (dir, s) = fake_guest(
            "hang",
            "echo booted; echo liburing.stuck > $RESULTS/running; sleep 600",
        );
        let t0 = Instant::now();
        let end = watch_and_record(&dir, s, &limits(&tests, Duration::from_secs(60)));
        assert!(t0.elapsed() < Duration::from_secs(30));
        assert_eq!(
            end,
            VmEnd::Hung {
                test: "liburing.stuck".into(),
                secs: 0
            }
        );
        assert!(end.started_a_test());
        let r = read_result(&dir, &tests[0]).unwrap();
        assert_eq!((r.outcome, r.word().as_str()), (Outcome::Fail, "HANG"));
        assert_eq!(dir.exit("liburing.stuck"), Some(Exit::Hang(0)));
        let console =
            std::fs::read_to_string(dir.file("liburing.stuck", TestFile::Console)).unwrap();
        assert_eq!(console, "booted\n");
        std::fs::remove_dir_all(dir.path()).unwrap();
    }

    #[test]
    fn a_guest_that_dies_under_a_test_gets_it_recorded_as_vm_died() {
        let tests = [
            guest_test("liburing.a", None),
            guest_test("liburing.b", None),
        ];
        let (dir, s) = fake_guest(
            "died",
            "echo liburing.a > $RESULTS/running; \
             printf 'KTAP version 1\\n1..1\\nok 1 liburing.a\\n' > $RESULTS/liburing.a.ktap; \
             echo 'exit 0' > $RESULTS/liburing.a.exit; \
             echo liburing.b > $RESULTS/running; exit 1",
        );
        let end = watch_and_record(&dir, s, &limits(&tests, Duration::from_secs(60)));
        assert_eq!(
            end,
            VmEnd::Exited {
                last: Some("liburing.b".into())
            }
        );
        assert_eq!(read_result(&dir, &tests[0]).unwrap().word(), "pass");
        let b = read_result(&dir, &tests[1]).unwrap();
        assert_eq!(b.word(), "FAIL (vm-died)");
        assert_eq!(dir.exit("liburing.b"), Some(Exit::VmDied));
        assert!(dir.file("liburing.b", TestFile::Console).exists());
        std::fs::remove_dir_all(dir.path()).unwrap();
    }

    #[test]
    fn a_guest_that_never_starts_a_test_is_killed_after_the_boot_allowance() {
        let tests = [guest_test("liburing.a", None)];
        let (dir, s) = fake_guest("boot", "sleep 600");
        let end = watch_and_record(&dir, s, &limits(&tests, Duration::from_millis(300)));
        assert_eq!(end, VmEnd::NoStart);
        assert!(!end.started_a_test());
        assert!(read_result(&dir, &tests[0]).is_none());
        std::fs::remove_dir_all(dir.path()).unwrap();
    }

    #[test]
    fn skip_entries_need_reasons() {
        let bad = "[[skip]]\ntest = \"liburing.x\"\nreason = \" \"\nwhen = \"tcg\"\n";
        assert!(ListFile::parse(bad, "t").is_err());
        let unknown = "[[skip]]\ntest = \"liburing.x\"\nreason = \"r\"\nwhen = \"sometimes\"\n";
        assert!(ListFile::parse(unknown, "t").is_err());
    }
}
