//! The results file: every figure of a run plus the conditions it ran under.
//! Written by `uring-ipc-bench run`, read by `uring-ipc-bench render`.

use serde::{Deserialize, Serialize};

/// Bumped when a field changes meaning.
pub const FORMAT_VERSION: u32 = 1;

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
}

impl Scenario {
    pub const ALL: [Scenario; 4] = [
        Scenario::P2pStream,
        Scenario::P2pPingpong,
        Scenario::Broadcast,
        Scenario::Multicast,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Scenario::P2pStream => "p2p-stream",
            Scenario::P2pPingpong => "p2p-pingpong",
            Scenario::Broadcast => "broadcast",
            Scenario::Multicast => "multicast",
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
    /// SENDs queued per io_uring submission in the streaming scenarios.
    pub uring_send_batch: u32,
    /// RECVs a io_uring receiver keeps in flight.
    pub uring_recv_depth: u32,
    /// Slots of each io_uring channel and each shm ring.
    pub ring_entries: u32,
    /// Cost of one IORING_OP_NOP submitted in batches: the floor of any
    /// io_uring operation on this machine (ns).
    pub uring_nop_ns: Option<f64>,
    /// Total time the suite took (s).
    pub elapsed_s: f64,
    /// Timed passes per stream measurement; the cheapest one is reported
    /// (interference from other work only ever adds time).
    #[serde(default = "one")]
    pub repeats: u32,
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

/// One measured point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub scenario: Scenario,
    pub mechanism: String,
    pub size: u32,
    pub receivers: u32,
    /// Messages sent in the timed part.
    pub messages: u64,
    /// Sender thread CPU time per message (ns): the sender-side cost. For
    /// ping-pong: the client's CPU time per round trip.
    pub sender_cpu_ns: f64,
    /// Sender wall-clock time per message (ns), until its last send
    /// returned. For ping-pong: per round trip.
    pub sender_wall_ns: f64,
    /// Sender CPU ns/msg of every timed pass (the figure above is the least).
    #[serde(default)]
    pub passes_cpu_ns: Vec<f64>,
    /// Ping-pong only.
    pub latency: Option<Latency>,
    /// Messages whose content receivers checked byte for byte.
    pub verified_full: u64,
    /// Messages whose sequence number and length receivers checked.
    pub verified_seq: u64,
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
            uring_nop_ns: Some(100.0),
            elapsed_s: 1.5,
            repeats: 3,
            host_load: "0.50 0.40 0.30".into(),
        }
    }

    pub fn point(scenario: Scenario, mech: &str, size: u32, r: u32, cpu: f64) -> Measurement {
        Measurement {
            scenario,
            mechanism: mech.into(),
            size,
            receivers: r,
            messages: 100,
            sender_cpu_ns: cpu,
            sender_wall_ns: cpu * 1.5,
            passes_cpu_ns: vec![cpu, cpu * 1.1, cpu * 1.3],
            latency: (scenario == Scenario::P2pPingpong).then_some(Latency {
                samples: 50,
                min: cpu as u64 / 2,
                p50: cpu as u64,
                p90: cpu as u64 * 2,
                p99: cpu as u64 * 3,
                max: cpu as u64 * 4,
                mean: cpu * 1.2,
            }),
            verified_full: 10,
            verified_seq: 100,
        }
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
                .map(|m| m.sender_cpu_ns),
            Some(212.5)
        );
        assert!(back.find(Scenario::P2pStream, "pipe", 65, 1).is_none());
        assert!(Run::from_json("{\"meta\": 1}").is_err());
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
