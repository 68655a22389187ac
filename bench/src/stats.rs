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
    fn ratios() {
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
        assert_eq!(ratio(1.0, 0.0), None);
    }
}
