//! Clocks and latency statistics.

use hdrhistogram::Histogram;

use crate::model::Latency;

/// CPU time consumed by the calling thread, in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec for the kernel to fill in.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0, "CLOCK_THREAD_CPUTIME_ID is always available on Linux");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time (user + system) and context switches (voluntary +
/// involuntary) of every thread of this process, live or exited.
pub fn process_usage() -> (u64, u64) {
    // SAFETY: an all-zero rusage is valid for getrusage to fill in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is a valid rusage.
    let r = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(
        r, 0,
        "getrusage(RUSAGE_SELF) cannot fail with a valid pointer"
    );
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    (
        tv(ru.ru_utime) + tv(ru.ru_stime),
        (ru.ru_nvcsw + ru.ru_nivcsw) as u64,
    )
}

/// Idle plus iowait clock ticks of all CPUs, from the "cpu" line of
/// /proc/stat.
pub fn parse_idle_ticks(proc_stat: &str) -> Option<u64> {
    let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    Some(f.get(3)? + f.get(4).copied().unwrap_or(0))
}

/// System clock ticks per second (the unit of /proc/stat).
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Online CPUs.
pub fn online_cpus() -> u64 {
    // SAFETY: sysconf has no memory effects.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as u64
}

/// What a timed window cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    /// CPU of this process.
    pub self_ns: u64,
    /// Busy CPU of the system outside this process (0 if /proc/stat is
    /// unreadable). /proc/stat counts idle time in clock ticks, so this is
    /// off by up to `resolution_ns` either way, and can come out negative
    /// when little ran outside: it is left so, unbiased, for medians.
    pub outside_ns: i64,
    /// One clock tick per CPU at each end of the window.
    pub resolution_ns: u64,
    pub ctx_switches: u64,
    pub wall_ns: u64,
    /// Which timed window of this process this was (0, 1, ...): the key of
    /// its instruction count when the VM counts them (`insn_marker`).
    pub window: u64,
}

/// Timed windows finished so far by this process.
static WINDOWS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Marks the start (`true`) or the end of a timed window for the QEMU
/// plugin bench/qemu-plugin/insn_window.c, which counts the guest
/// instructions all vCPUs execute in between. The marker is a 9-byte NOP
/// (`nopw disp32(%rax,%rax,1)`, the displacement spelling "uip1" or
/// "uip0") that costs nothing without the plugin and on real hardware.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
pub fn insn_marker(start: bool) {
    // SAFETY: both are NOPs: no memory access, no register or flag change.
    unsafe {
        if start {
            std::arch::asm!(
                ".byte 0x66, 0x0f, 0x1f, 0x84, 0x00, 0x75, 0x69, 0x70, 0x31",
                options(nomem, nostack, preserves_flags)
            );
        } else {
            std::arch::asm!(
                ".byte 0x66, 0x0f, 0x1f, 0x84, 0x00, 0x75, 0x69, 0x70, 0x30",
                options(nomem, nostack, preserves_flags)
            );
        }
    }
}

/// No marker elsewhere: the plugin counts x86-64 guests only.
#[cfg(not(target_arch = "x86_64"))]
pub fn insn_marker(_start: bool) {}

/// A snapshot at the start of a timed window: process CPU and context
/// switches, the system's idle ticks and the time.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    cpu_ns: u64,
    csw: u64,
    idle_ticks: Option<u64>,
    at: std::time::Instant,
}

fn idle_now() -> Option<u64> {
    parse_idle_ticks(&std::fs::read_to_string("/proc/stat").ok()?)
}

impl Window {
    pub fn start() -> Window {
        let idle_ticks = idle_now();
        let (cpu_ns, csw) = process_usage();
        let w = Window {
            cpu_ns,
            csw,
            idle_ticks,
            at: std::time::Instant::now(),
        };
        insn_marker(true);
        w
    }

    /// The cost from `start` until now. The system was busy for
    /// (CPUs x wall time - idle time); what of that is not this process
    /// ran outside it on the process's behalf or not.
    pub fn finish(&self) -> Cost {
        insn_marker(false);
        let window = WINDOWS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let wall_ns = self.at.elapsed().as_nanos() as u64;
        let (cpu_ns, csw) = process_usage();
        let idle = idle_now();
        let self_ns = cpu_ns.saturating_sub(self.cpu_ns);
        let tick_ns = 1_000_000_000 / clock_ticks();
        let outside_ns = match (self.idle_ticks, idle) {
            (Some(a), Some(b)) => {
                let idle_ns = b.saturating_sub(a) * tick_ns;
                (online_cpus() * wall_ns) as i64 - idle_ns as i64 - self_ns as i64
            }
            _ => 0,
        };
        Cost {
            self_ns,
            outside_ns,
            resolution_ns: 2 * online_cpus() * tick_ns,
            ctx_switches: csw.saturating_sub(self.csw),
            wall_ns,
            window,
        }
    }
}

/// Round-trip times, recorded into an HDR histogram (3 significant digits,
/// 1 ns to 100 s).
pub struct Recorder {
    hist: Histogram<u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            hist: Histogram::new_with_bounds(1, 100_000_000_000, 3)
                .expect("valid histogram bounds"),
        }
    }

    pub fn record(&mut self, ns: u64) {
        self.hist.saturating_record(ns.max(1));
    }

    pub fn summary(&self) -> Option<Latency> {
        if self.hist.is_empty() {
            return None;
        }
        Some(Latency {
            samples: self.hist.len(),
            min: self.hist.min(),
            p50: self.hist.value_at_quantile(0.50),
            p90: self.hist.value_at_quantile(0.90),
            p99: self.hist.value_at_quantile(0.99),
            max: self.hist.max(),
            mean: self.hist.mean(),
        })
    }
}

/// `a / b`, the ratio the targets are stated in.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0 && a.is_finite() && b.is_finite()).then(|| a / b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut r = Recorder::new();
        assert!(r.summary().is_none());
        for v in 1..=1000u64 {
            r.record(v * 1000);
        }
        let s = r.summary().unwrap();
        assert_eq!(s.samples, 1000);
        // 3 significant digits: within 0.1%.
        let near = |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 * 0.001;
        assert!(near(s.p50, 500_000), "{}", s.p50);
        assert!(near(s.p90, 900_000), "{}", s.p90);
        assert!(near(s.p99, 990_000), "{}", s.p99);
        assert!(near(s.min, 1000) && near(s.max, 1_000_000));
        assert!((s.mean - 500_500.0).abs() < 1000.0);
    }

    #[test]
    fn outliers_do_not_move_the_median() {
        let mut r = Recorder::new();
        for _ in 0..99 {
            r.record(10_000);
        }
        r.record(50_000_000);
        let s = r.summary().unwrap();
        assert!(s.p50 <= 10_010);
        assert!(s.max >= 49_900_000);
    }

    #[test]
    fn cpu_clock_advances() {
        let a = thread_cpu_ns();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(thread_cpu_ns() > a);
    }

    #[test]
    fn proc_stat_idle() {
        let text = "cpu  100 2 30 4000 50 6 7 0 0 0\ncpu0 50 1 15 2000 25 3 3 0 0 0\n";
        assert_eq!(parse_idle_ticks(text), Some(4050));
        assert_eq!(parse_idle_ticks("cpu0 1 2 3 4\n"), None);
        assert_eq!(parse_idle_ticks("cpu  1 2 x 4 5\n"), None);
    }

    #[test]
    fn windows_count_this_process() {
        let w = Window::start();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        let c = w.finish();
        assert!(c.self_ns > 0 && c.wall_ns > 0);
        assert!(c.self_ns <= c.wall_ns * online_cpus() + 20_000_000);
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
        assert_eq!(ratio(1.0, 0.0), None);
    }
}
