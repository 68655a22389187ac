//! The results file: every figure of a run plus the conditions it ran under.
//! Written by `uring-ipc-bench run`, read by `uring-ipc-bench render`.

use serde::{Deserialize, Serialize};

/// Bumped when a field changes meaning.
pub const FORMAT_VERSION: u32 = 2;

/// What a measurement measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// One sender, one receiver, a long stream of messages.
    P2pStream,
    /// Two parties bouncing one message back and forth.
    P2pPingpong,
    /// One sender, N receivers, every receiver gets every message.
    Broadcast,
    /// One sender, N receivers, every message goes to one receiver.
    Multicast,
    /// One sender, N receivers, every message goes to whichever receiver
    /// takes it first (untargeted unicast: a work queue).
    UnicastAny,
}

impl Scenario {
    pub const ALL: [Scenario; 5] = [
        Scenario::P2pStream,
        Scenario::P2pPingpong,
        Scenario::Broadcast,
        Scenario::Multicast,
        Scenario::UnicastAny,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Scenario::P2pStream => "p2p-stream",
            Scenario::P2pPingpong => "p2p-pingpong",
            Scenario::Broadcast => "broadcast",
            Scenario::Multicast => "multicast",
            Scenario::UnicastAny => "unicast-any",
        }
    }
}

/// The conditions of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub format: u32,
    /// "vm" (the patched kernel in the VM) or "host".
    pub environment: String,
    /// uname -r of the kernel the benchmarks ran on.
    pub kernel: String,
    /// "kvm", "tcg" or "native" (host runs).
    pub accel: String,
    /// Why this accelerator (e.g. why KVM could not be used).
    pub accel_reason: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// UTC, ISO 8601.
    pub date: String,
    /// "quick" or "full".
    pub mode: String,
    pub filter: Vec<String>,
    pub counts: Counts,
    /// SENDs queued per io_uring submission by the batched io_uring
    /// mechanisms (`*-b<N>`); the others send one message per call.
    pub uring_send_batch: u32,
    /// RECVs a batched io_uring receiver keeps in flight (batch-1
    /// receivers keep one).
    pub uring_recv_depth: u32,
    /// Slots of each io_uring channel and each shm ring; every other
    /// mechanism's buffer is sized to the same bytes (see `buffering`).
    pub ring_entries: u32,
    /// How each mechanism's buffer was sized, as set and read back.
    #[serde(default)]
    pub buffering: Vec<String>,
    /// Cost of one IORING_OP_NOP submitted in batches: the floor of any
    /// io_uring operation on this machine (ns).
    pub uring_nop_ns: Option<f64>,
    /// Total time the suite took (s).
    pub elapsed_s: f64,
    /// Timed passes per measurement, run in rounds over the whole plan;
    /// medians and spreads are over the passes.
    #[serde(default = "one")]
    pub repeats: u32,
    /// Passes shorter than this (ms) were lengthened, at most 16 times, by
    /// a calibration pass in the first round (0: none).
    #[serde(default)]
    pub min_pass_ms: u64,
    /// The emulator of a VM run, as the host reported it ("" if unknown).
    #[serde(default)]
    pub qemu: String,
    /// System clock ticks per second (/proc/stat's unit).
    #[serde(default)]
    pub clock_ticks: u64,
    /// The host's load average when the run started (other work on the
    /// host slows an emulated guest unevenly).
    #[serde(default)]
    pub host_load: String,
}

fn one() -> u32 {
    1
}

impl Meta {
    pub fn is_tcg(&self) -> bool {
        self.accel == "tcg"
    }
}

/// How many messages the scenarios use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Messages of a timed stream (upper bound; large messages use fewer,
    /// see `stream_bytes`).
    pub stream_msgs: u64,
    /// Bytes one timed stream moves per receiver at most.
    pub stream_bytes: u64,
    /// Lower bound on the messages of a timed stream.
    pub stream_min_msgs: u64,
    /// Messages of the check pass before each timed stream, every byte of
    /// which the receivers verify.
    pub check_msgs: u64,
    /// Round trips of a ping-pong (after `pingpong_warmup`).
    pub pingpong_rounds: u64,
    pub pingpong_warmup: u64,
}

/// Round-trip latency percentiles, in nanoseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub samples: u64,
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    pub mean: f64,
}

/// One timed pass of a measurement; every figure is per message sent
/// (ping-pong: per round trip).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pass {
    /// CPU time of every thread of the benchmark process (sender,
    /// receivers, io_uring workers: getrusage(RUSAGE_SELF)), from the
    /// first send until every receiver had every message.
    pub cpu_self_ns: f64,
    /// Busy CPU time of the whole system outside the process over the same
    /// window (kworkers, softirq, interrupts: vCPUs x wall time minus the
    /// idle time of /proc/stat, minus `cpu_self_ns`); /proc/stat counts in
    /// clock ticks, so this is only as fine as `outside_resolution_ns`, and
    /// may be negative when almost nothing ran outside (kept so: unbiased).
    pub cpu_outside_ns: f64,
    /// How far `cpu_outside_ns` can be off either way (a clock tick per
    /// vCPU at each end of the pass, per message).
    #[serde(default)]
    pub outside_resolution_ns: f64,
    /// CPU time of the sending thread alone (CLOCK_THREAD_CPUTIME_ID).
    pub sender_cpu_ns: f64,
    /// Wall time from the first send until the last receiver had the last
    /// message (broadcast: every receiver every message).
    pub e2e_ns: f64,
    /// Voluntary and involuntary context switches of the process.
    pub ctx_switches: f64,
    /// Ping-pong only: round-trip percentiles of this pass.
    #[serde(default)]
    pub rtt: Option<Latency>,
    /// The timed window this pass was (stats::Cost::window).
    #[serde(default)]
    pub window: Option<u64>,
    /// Guest instructions all vCPUs executed per message in this pass, when
    /// the VM counted them (TCG with bench/qemu-plugin/insn_window.c):
    /// far steadier than times when the host is busy, though not immune
    /// (a vCPU the host stalls makes the guest take more timer ticks and
    /// wake-ups per message). Spin-wait loops are left out.
    #[serde(default)]
    pub insns: Option<f64>,
}

impl Pass {
    /// Total CPU per message: the process plus what it caused outside.
    pub fn cpu_total_ns(&self) -> f64 {
        self.cpu_self_ns + self.cpu_outside_ns
    }
}

/// A figure of a pass that tables, plots and targets use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Total CPU ns per message (process + outside).
    TotalCpu,
    /// CPU ns per message of the benchmark process alone.
    SelfCpu,
    /// CPU ns per message outside the process.
    OutsideCpu,
    /// CPU ns per message of the sending thread.
    SenderCpu,
    /// Messages per second, first send to last delivery.
    MsgsPerSec,
    /// Delivered megabytes (10^6) per second, every copy counted.
    MBPerSec,
    /// Context switches per message.
    CtxSwitches,
    /// Ping-pong round trip p50 (ns).
    RttP50,
    /// Ping-pong round trip p99 (ns).
    RttP99,
    /// Guest instructions per message, all vCPUs (TCG instruction counts).
    Insns,
}

impl Metric {
    /// Larger is better (throughput) rather than smaller (cost, latency).
    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::MsgsPerSec | Metric::MBPerSec)
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::TotalCpu => "total CPU ns/msg",
            Metric::SelfCpu => "process CPU ns/msg",
            Metric::OutsideCpu => "outside CPU ns/msg",
            Metric::SenderCpu => "sender CPU ns/msg",
            Metric::MsgsPerSec => "msgs/s",
            Metric::MBPerSec => "MB/s",
            Metric::CtxSwitches => "context switches/msg",
            Metric::RttP50 => "round trip p50 ns",
            Metric::RttP99 => "round trip p99 ns",
            Metric::Insns => "instructions/msg",
        }
    }
}

/// Median and range of a figure over the passes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    /// None when there is no finite value.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }

    /// (max - min) / median.
    pub fn relative_range(&self) -> f64 {
        if self.median > 0.0 {
            (self.max - self.min) / self.median
        } else {
            0.0
        }
    }
}

/// One measured point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub scenario: Scenario,
    pub mechanism: String,
    pub size: u32,
    pub receivers: u32,
    /// Messages sent in each timed pass (ping-pong: round trips).
    pub messages: u64,
    /// Copies of each message delivered (broadcast: one per receiver).
    pub copies: u32,
    /// Timed passes, in round order: pass i of every measurement ran in
    /// the same round, so ratios pair them.
    pub passes: Vec<Pass>,
    /// Messages whose content receivers checked byte for byte.
    pub verified_full: u64,
    /// Messages whose sequence number and length receivers checked.
    pub verified_seq: u64,
}

impl Measurement {
    /// `metric` of pass `p`.
    pub fn value(&self, p: &Pass, metric: Metric) -> Option<f64> {
        let v = match metric {
            Metric::TotalCpu => p.cpu_total_ns(),
            Metric::SelfCpu => p.cpu_self_ns,
            Metric::OutsideCpu => p.cpu_outside_ns,
            Metric::SenderCpu => p.sender_cpu_ns,
            Metric::MsgsPerSec => 1e9 / p.e2e_ns,
            Metric::MBPerSec => self.size as f64 * self.copies as f64 * 1e3 / p.e2e_ns,
            Metric::CtxSwitches => p.ctx_switches,
            Metric::RttP50 => p.rtt.as_ref()?.p50 as f64,
            Metric::RttP99 => p.rtt.as_ref()?.p99 as f64,
            Metric::Insns => p.insns?,
        };
        v.is_finite().then_some(v)
    }

    /// `metric` of every pass, in round order (None where undefined).
    pub fn series(&self, metric: Metric) -> Vec<Option<f64>> {
        self.passes.iter().map(|p| self.value(p, metric)).collect()
    }

    /// Median and range of `metric` over the passes.
    pub fn spread(&self, metric: Metric) -> Option<Spread> {
        Spread::of(self.series(metric).into_iter().flatten())
    }

    /// Median of `metric`.
    pub fn median(&self, metric: Metric) -> Option<f64> {
        self.spread(metric).map(|s| s.median)
    }
}

/// Ratios of `a` to `b` per round (pass i of each), where both exist.
pub fn paired_ratios(a: &Measurement, b: &Measurement, metric: Metric) -> Vec<f64> {
    a.series(metric)
        .into_iter()
        .zip(b.series(metric))
        .filter_map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) if y > 0.0 => Some(x / y),
            _ => None,
        })
        .collect()
}

/// A measurement that did not happen, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skip {
    pub id: String,
    pub reason: String,
}

/// A measurement that broke (wrong content, a failed system call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub id: String,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub meta: Meta,
    pub results: Vec<Measurement>,
    pub skipped: Vec<Skip>,
    pub failed: Vec<Failure>,
}

impl Run {
    pub fn find(
        &self,
        scenario: Scenario,
        mechanism: &str,
        size: u32,
        receivers: u32,
    ) -> Option<&Measurement> {
        self.results.iter().find(|m| {
            m.scenario == scenario
                && m.mechanism == mechanism
                && m.size == size
                && m.receivers == receivers
        })
    }

    /// Fill in each pass's `insns` from the instruction counts of the timed
    /// windows, as bench/qemu-plugin/insn_window.c writes them (lines
    /// `window <n> insns <count> [spin <count>]`: spin-wait loops are
    /// counted apart and left out). Returns how many passes got a count.
    pub fn attach_insns(&mut self, counts: &str) -> Result<usize, String> {
        let mut by_window = std::collections::HashMap::new();
        for (i, line) in counts.lines().enumerate() {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                ["window", n, "insns", c] | ["window", n, "insns", c, "spin", _] => {
                    let parse = |s: &str| {
                        s.parse::<u64>()
                            .map_err(|e| format!("line {}: {line:?}: {e}", i + 1))
                    };
                    by_window.insert(parse(n)?, parse(c)?);
                }
                ["window", _, "unopened"] | ["total", ..] | [] => {}
                _ => return Err(format!("line {}: unexpected {line:?}", i + 1)),
            }
        }
        let mut n = 0;
        for m in &mut self.results {
            let per = m.messages.max(1) as f64;
            for p in &mut m.passes {
                p.insns = p
                    .window
                    .and_then(|w| by_window.get(&w))
                    .map(|&c| c as f64 / per);
                n += usize::from(p.insns.is_some());
            }
        }
        Ok(n)
    }

    /// Some pass has an instruction count.
    pub fn has_insns(&self) -> bool {
        self.results
            .iter()
            .any(|m| m.passes.iter().any(|p| p.insns.is_some()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain data serialises")
    }

    pub fn from_json(s: &str) -> Result<Run, serde_json::Error> {
        serde_json::from_str(s)
    }
}

/// The name of a measurement, as `--filter` matches it and progress shows it.
pub fn measurement_id(scenario: Scenario, mechanism: &str, size: u32, receivers: u32) -> String {
    match scenario {
        Scenario::P2pStream | Scenario::P2pPingpong => {
            format!("{}/{mechanism}/{}", scenario.id(), fmt_size(size))
        }
        _ => format!(
            "{}/{mechanism}/{}/{receivers}r",
            scenario.id(),
            fmt_size(size)
        ),
    }
}

/// 64 -> "64B", 4096 -> "4KiB".
pub fn fmt_size(size: u32) -> String {
    if size >= 1024 && size / 1024 * 1024 == size {
        format!("{}KiB", size / 1024)
    } else {
        format!("{size}B")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample_meta(accel: &str) -> Meta {
        Meta {
            format: FORMAT_VERSION,
            environment: "vm".into(),
            kernel: "6.12.117-uring-ipc".into(),
            accel: accel.into(),
            accel_reason: "test".into(),
            vcpus: 2,
            memory_mib: 1987,
            date: "2026-11-23T12:00:00Z".into(),
            mode: "quick".into(),
            filter: vec![],
            counts: Counts {
                stream_msgs: 100,
                stream_bytes: 1 << 20,
                stream_min_msgs: 10,
                check_msgs: 10,
                pingpong_rounds: 50,
                pingpong_warmup: 5,
            },
            uring_send_batch: 16,
            uring_recv_depth: 8,
            ring_entries: 128,
            buffering: vec!["pipe: 8192 bytes".into()],
            uring_nop_ns: Some(100.0),
            elapsed_s: 1.5,
            repeats: 3,
            min_pass_ms: 200,
            qemu: "QEMU emulator version 7.2.22".into(),
            clock_ticks: 100,
            host_load: "0.50 0.40 0.30".into(),
        }
    }

    /// A pass whose total CPU is `cpu` (80% in the process).
    pub fn pass(cpu: f64) -> Pass {
        Pass {
            cpu_self_ns: cpu * 0.8,
            cpu_outside_ns: cpu * 0.2,
            outside_resolution_ns: 10.0,
            sender_cpu_ns: cpu * 0.5,
            e2e_ns: cpu * 1.5,
            ctx_switches: 0.5,
            rtt: None,
            window: None,
            insns: None,
        }
    }

    /// A point with passes of total CPU `cpus`.
    pub fn point_passes(
        scenario: Scenario,
        mech: &str,
        size: u32,
        r: u32,
        cpus: &[f64],
    ) -> Measurement {
        Measurement {
            scenario,
            mechanism: mech.into(),
            size,
            receivers: r,
            messages: 100,
            copies: if scenario == Scenario::Broadcast {
                r
            } else {
                1
            },
            passes: cpus
                .iter()
                .map(|&cpu| {
                    let mut p = pass(cpu);
                    if scenario == Scenario::P2pPingpong {
                        p.rtt = Some(Latency {
                            samples: 50,
                            min: cpu as u64 / 2,
                            p50: cpu as u64,
                            p90: cpu as u64 * 2,
                            p99: cpu as u64 * 3,
                            max: cpu as u64 * 4,
                            mean: cpu * 1.2,
                        });
                    }
                    p
                })
                .collect(),
            verified_full: 10,
            verified_seq: 100,
        }
    }

    /// A point whose passes' total CPU is `cpu`, 1.25 `cpu` and 0.75 `cpu`
    /// (median `cpu`).
    pub fn point(scenario: Scenario, mech: &str, size: u32, r: u32, cpu: f64) -> Measurement {
        point_passes(scenario, mech, size, r, &[cpu, cpu * 1.25, cpu * 0.75])
    }

    #[test]
    fn json_round_trip() {
        let run = Run {
            meta: sample_meta("tcg"),
            results: vec![
                point(Scenario::P2pStream, "pipe", 64, 1, 212.5),
                point(Scenario::P2pPingpong, "uring", 32768, 1, 9000.0),
            ],
            skipped: vec![Skip {
                id: "p2p-stream/mq/32KiB".into(),
                reason: "EINVAL".into(),
            }],
            failed: vec![],
        };
        let text = run.to_json();
        assert!(text.contains("\"p2p-pingpong\""));
        let back = Run::from_json(&text).unwrap();
        assert_eq!(back, run);
        assert!(back.meta.is_tcg());
        assert_eq!(
            back.find(Scenario::P2pStream, "pipe", 64, 1)
                .and_then(|m| m.median(Metric::TotalCpu)),
            Some(212.5)
        );
        assert!(back.find(Scenario::P2pStream, "pipe", 65, 1).is_none());
        assert!(Run::from_json("{\"meta\": 1}").is_err());
    }

    #[test]
    fn spreads_and_metrics() {
        let s = Spread::of([3.0, 1.0, 2.0, f64::NAN]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(Spread::of([4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert!(Spread::of([]).is_none());
        assert!((s.relative_range() - 1.0).abs() < 1e-12);
        let m = point_passes(Scenario::Broadcast, "x", 1000, 4, &[100.0]);
        let p = &m.passes[0];
        assert!((m.value(p, Metric::TotalCpu).unwrap() - 100.0).abs() < 1e-9);
        assert!((m.value(p, Metric::SelfCpu).unwrap() - 80.0).abs() < 1e-9);
        // 150 ns per message: 6.67M msgs/s, 4 copies of 1000 B each.
        assert!((m.value(p, Metric::MsgsPerSec).unwrap() - 1e9 / 150.0).abs() < 1e-3);
        assert!((m.value(p, Metric::MBPerSec).unwrap() - 4000.0 * 1e3 / 150.0).abs() < 1e-6);
        assert!(m.value(p, Metric::RttP50).is_none());
        assert!(Metric::MBPerSec.higher_is_better() && !Metric::TotalCpu.higher_is_better());
    }

    #[test]
    fn instruction_counts_attach_by_window() {
        let mut m = point_passes(Scenario::P2pStream, "pipe", 64, 1, &[10.0, 20.0, 30.0]);
        m.messages = 1000;
        for (i, p) in m.passes.iter_mut().enumerate() {
            // Windows 3, 5 and 7: the ones in between were calibration.
            p.window = Some(3 + 2 * i as u64);
        }
        let mut run = Run {
            meta: sample_meta("tcg"),
            results: vec![m],
            skipped: vec![],
            failed: vec![],
        };
        assert!(!run.has_insns());
        let counts = "window 0 unopened\nwindow 3 insns 2500000 spin 99\n\
                      window 5 insns 3000000\nwindow 6 insns 1\n\
                      total insns 9 windows 8 vcpu_overflow 0\n";
        assert_eq!(run.attach_insns(counts), Ok(2));
        let m = &run.results[0];
        let got: Vec<_> = m.passes.iter().map(|p| p.insns).collect();
        assert_eq!(got, vec![Some(2500.0), Some(3000.0), None]);
        assert_eq!(m.median(Metric::Insns), Some(2750.0));
        assert!(run.has_insns());
        assert!(run.attach_insns("window x insns 1").is_err());
        assert!(run.attach_insns("garbage").is_err());
    }

    #[test]
    fn ratios_pair_passes_by_round() {
        let a = point_passes(Scenario::P2pStream, "a", 64, 1, &[10.0, 30.0, 20.0]);
        let b = point_passes(Scenario::P2pStream, "b", 64, 1, &[5.0, 30.0]);
        assert_eq!(paired_ratios(&a, &b, Metric::TotalCpu), vec![2.0, 1.0]);
    }

    #[test]
    fn ids_and_sizes() {
        assert_eq!(fmt_size(64), "64B");
        assert_eq!(fmt_size(32768), "32KiB");
        assert_eq!(fmt_size(1000), "1000B");
        assert_eq!(
            measurement_id(Scenario::Broadcast, "pipe", 32768, 16),
            "broadcast/pipe/32KiB/16r"
        );
        assert_eq!(
            measurement_id(Scenario::P2pPingpong, "uring", 64, 1),
            "p2p-pingpong/uring/64B"
        );
    }
}
