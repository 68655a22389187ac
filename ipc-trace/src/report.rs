//! Counters read from the BPF maps, turned into a report: a text table with
//! log2 histograms for people, JSON for scripts.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::{Error, Features, Result};

/// Number of log2 buckets per histogram (src/bpf/intf.h: IPCT_SLOTS).
pub const SLOTS: usize = 64;
/// Histogram index by channel mode (intf.h: IPCT_MODE_*).
pub const MODES: [&str; 4] = ["unicast", "broadcast", "multicast", "unknown"];
/// mq_timedreceive2() kinds (intf.h: IPCT_MQ_*).
pub const MQ_KINDS: [&str; 2] = ["peek", "receive"];

/// One value of the `channels` map (intf.h: struct ipct_chan).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawChannel {
    pub id: u32,
    pub sends: u64,
    pub send_bytes: u64,
    pub send_enobufs: u64,
    pub send_epipe: u64,
    pub send_other_err: u64,
    pub recvs: u64,
    pub recv_bytes: u64,
    pub recv_eagain: u64,
    pub recv_epipe: u64,
    pub recv_other_err: u64,
    pub lat_matched: u64,
    pub lat_unmatched: u64,
    /// IOIPC_F_* of the channel, when the kernel reports it.
    pub flags: Option<u32>,
}

/// Size of struct ipct_chan: twelve u64 counters, then flags, flags_known.
pub const CHAN_VALUE_SIZE: usize = 12 * 8 + 2 * 4;

impl RawChannel {
    /// Decode a map value in the layout of struct ipct_chan.
    pub fn parse(id: u32, b: &[u8]) -> Result<RawChannel> {
        if b.len() != CHAN_VALUE_SIZE {
            return Err(Error::Layout(format!(
                "channel value of {} bytes, expected {CHAN_VALUE_SIZE}",
                b.len()
            )));
        }
        let u64_at = |i: usize| u64::from_ne_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
        let u32_at = |off: usize| u32::from_ne_bytes(b[off..off + 4].try_into().unwrap());
        let flags = u32_at(96);
        let known = u32_at(100) != 0;
        Ok(RawChannel {
            id,
            sends: u64_at(0),
            send_bytes: u64_at(1),
            send_enobufs: u64_at(2),
            send_epipe: u64_at(3),
            send_other_err: u64_at(4),
            recvs: u64_at(5),
            recv_bytes: u64_at(6),
            recv_eagain: u64_at(7),
            recv_epipe: u64_at(8),
            recv_other_err: u64_at(9),
            lat_matched: u64_at(10),
            lat_unmatched: u64_at(11),
            flags: known.then_some(flags),
        })
    }
}

/// One mq_timedreceive2() kind (intf.h: struct ipct_mq).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawMq {
    pub calls: u64,
    pub bytes: u64,
    pub eagain: u64,
    pub other_err: u64,
}

/// Everything the BPF side counts.
#[derive(Debug, Clone)]
pub struct RawCounters {
    pub channels: Vec<RawChannel>,
    pub ipc_lat: [[u64; SLOTS]; 4],
    pub mq: [RawMq; 2],
    pub mq_lat: [[u64; SLOTS]; 2],
    pub dropped: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelReport {
    pub id: u32,
    /// unicast, broadcast, multicast, or unknown (old tracepoint layout).
    pub mode: &'static str,
    pub private: Option<bool>,
    pub sent: u64,
    pub sent_bytes: u64,
    pub send_enobufs: u64,
    pub send_epipe: u64,
    pub send_other_errors: u64,
    pub received: u64,
    pub received_bytes: u64,
    pub recv_eagain: u64,
    pub recv_epipe: u64,
    pub recv_other_errors: u64,
    /// Receives whose send was seen (they are in the latency histogram).
    pub latency_matched: u64,
    /// Receives whose send was not seen: sent before tracing started, or
    /// the receive completed before the send's tracepoint fired.
    pub latency_unmatched: u64,
}

/// Bucket `[low, high]` in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bucket {
    pub low: u64,
    pub high: u64,
    pub count: u64,
}

/// A log2 histogram, with only the buckets from the first to the last
/// non-empty one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Histogram {
    pub name: String,
    /// The channel mode of a send->recv histogram.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    pub unit: &'static str,
    pub count: u64,
    pub buckets: Vec<Bucket>,
}

impl Histogram {
    pub fn from_slots(name: String, slots: &[u64; SLOTS]) -> Histogram {
        let first = slots.iter().position(|&c| c != 0);
        let last = slots.iter().rposition(|&c| c != 0);
        let buckets = match (first, last) {
            (Some(f), Some(l)) => (f..=l)
                .map(|i| Bucket {
                    low: if i == 0 { 0 } else { 1u64 << i },
                    high: if i == SLOTS - 1 {
                        u64::MAX
                    } else {
                        (1u64 << (i + 1)) - 1
                    },
                    count: slots[i],
                })
                .collect(),
            _ => Vec::new(),
        };
        Histogram {
            name,
            mode: None,
            unit: "ns",
            count: slots.iter().sum(),
            buckets,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MqReport {
    /// peek (MQ_PEEK) or receive.
    pub kind: &'static str,
    pub calls: u64,
    pub bytes: u64,
    pub eagain: u64,
    pub other_errors: u64,
    pub latency: Histogram,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub elapsed_secs: f64,
    pub features: Features,
    pub channels: Vec<ChannelReport>,
    /// Send-to-receive latency per channel mode.
    pub latency: Vec<Histogram>,
    pub mq: Vec<MqReport>,
    /// Events lost because a BPF map was full.
    pub dropped: u64,
}

fn mode_of(flags: Option<u32>) -> &'static str {
    use uapi_headers::io_uring::{IOIPC_F_BROADCAST, IOIPC_F_MULTICAST};
    match flags {
        None => MODES[3],
        Some(f) if f & IOIPC_F_BROADCAST != 0 => MODES[1],
        Some(f) if f & IOIPC_F_MULTICAST != 0 => MODES[2],
        Some(_) => MODES[0],
    }
}

impl Report {
    pub fn build(elapsed: Duration, features: &Features, raw: RawCounters) -> Report {
        let mut channels: Vec<ChannelReport> = raw
            .channels
            .iter()
            .map(|c| ChannelReport {
                id: c.id,
                mode: mode_of(c.flags),
                private: c
                    .flags
                    .map(|f| f & uapi_headers::io_uring::IOIPC_F_PRIVATE != 0),
                sent: c.sends,
                sent_bytes: c.send_bytes,
                send_enobufs: c.send_enobufs,
                send_epipe: c.send_epipe,
                send_other_errors: c.send_other_err,
                received: c.recvs,
                received_bytes: c.recv_bytes,
                recv_eagain: c.recv_eagain,
                recv_epipe: c.recv_epipe,
                recv_other_errors: c.recv_other_err,
                latency_matched: c.lat_matched,
                latency_unmatched: c.lat_unmatched,
            })
            .collect();
        channels.sort_by_key(|c| c.id);
        let latency = MODES
            .iter()
            .zip(raw.ipc_lat.iter())
            .map(|(m, s)| Histogram {
                mode: Some(m),
                ..Histogram::from_slots(format!("send->recv {m}"), s)
            })
            .collect();
        let mq = MQ_KINDS
            .iter()
            .zip(raw.mq.iter().zip(raw.mq_lat.iter()))
            .map(|(k, (m, s))| MqReport {
                kind: k,
                calls: m.calls,
                bytes: m.bytes,
                eagain: m.eagain,
                other_errors: m.other_err,
                latency: Histogram::from_slots(format!("mq_timedreceive2 {k}"), s),
            })
            .collect();
        Report {
            elapsed_secs: elapsed.as_secs_f64(),
            features: features.clone(),
            channels,
            latency,
            mq,
            dropped: raw.dropped,
        }
    }

    /// The channel with this id, if any event of it was seen.
    pub fn channel(&self, id: u32) -> Option<&ChannelReport> {
        self.channels.iter().find(|c| c.id == id)
    }

    pub fn latency(&self, mode: &str) -> Option<&Histogram> {
        self.latency.iter().find(|h| h.mode == Some(mode))
    }

    pub fn mq(&self, kind: &str) -> Option<&MqReport> {
        self.mq.iter().find(|m| m.kind == kind)
    }

    /// One line per channel that changed since `prev`, plus mq activity:
    /// the periodic output.
    pub fn changes_since(&self, prev: Option<&Report>) -> String {
        let mut out = String::new();
        let t = self.elapsed_secs;
        for c in &self.channels {
            let p = prev.and_then(|p| p.channel(c.id));
            let d = |f: fn(&ChannelReport) -> u64| f(c) - p.map_or(0, f);
            let (sent, recv) = (d(|c| c.sent), d(|c| c.received));
            let errs = d(|c| c.send_enobufs + c.send_epipe + c.send_other_errors)
                + d(|c| c.recv_eagain + c.recv_epipe + c.recv_other_errors);
            if sent + recv + errs == 0 {
                continue;
            }
            out.push_str(&format!(
                "[{t:7.1}s] channel {} {}: +{sent} sent (+{} B), +{recv} received (+{} B), +{errs} errors; total {} sent, {} received\n",
                c.id,
                c.mode,
                d(|c| c.sent_bytes),
                d(|c| c.received_bytes),
                c.sent,
                c.received
            ));
        }
        for m in &self.mq {
            let before = prev.and_then(|p| p.mq(m.kind)).map_or(0, |p| p.calls);
            if m.calls > before {
                out.push_str(&format!(
                    "[{t:7.1}s] mq_timedreceive2 {}: +{} calls; total {}\n",
                    m.kind,
                    m.calls - before,
                    m.calls
                ));
            }
        }
        out
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serializes")
    }
}

fn human_ns(v: u64) -> String {
    match v {
        u64::MAX => "inf".into(),
        v if v >= 10_000_000_000 => format!("{}s", v / 1_000_000_000),
        v if v >= 10_000_000 => format!("{}ms", v / 1_000_000),
        v if v >= 10_000 => format!("{}us", v / 1_000),
        v => format!("{v}ns"),
    }
}

impl fmt::Display for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {} samples", self.name, self.count)?;
        let max = self.buckets.iter().map(|b| b.count).max().unwrap_or(0);
        for b in &self.buckets {
            let width = if max == 0 {
                0
            } else {
                (b.count * 40).div_ceil(max) as usize
            };
            writeln!(
                f,
                "  {:>8} .. {:<8} {:>9} |{:<40}|",
                human_ns(b.low),
                human_ns(b.high),
                b.count,
                "*".repeat(width)
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "ipc-trace: {:.1}s traced", self.elapsed_secs)?;
        if !self.features.ipc_tracepoints {
            writeln!(
                f,
                "  (no io_uring IPC tracepoints in this kernel: channels not traced)"
            )?;
        } else if !self.features.ipc_seq {
            writeln!(
                f,
                "  (the IPC tracepoints carry no sequence number: no send->recv latency)"
            )?;
        }
        if self.channels.is_empty() {
            writeln!(f, "channels: no IPC traffic seen")?;
        } else {
            writeln!(
                f,
                "{:>7} {:<11} | {:>8} {:>10} {:>7} {:>5} {:>5} | {:>8} {:>10} {:>6} {:>5} {:>5} | {:>8} {:>9}",
                "channel", "mode", "sent", "bytes", "ENOBUFS", "EPIPE", "other",
                "recv", "bytes", "EAGAIN", "EPIPE", "other", "matched", "unmatched"
            )?;
            for c in &self.channels {
                let mode = match c.private {
                    Some(true) => format!("{}+p", c.mode),
                    _ => c.mode.to_string(),
                };
                writeln!(
                    f,
                    "{:>7} {:<11} | {:>8} {:>10} {:>7} {:>5} {:>5} | {:>8} {:>10} {:>6} {:>5} {:>5} | {:>8} {:>9}",
                    c.id, mode, c.sent, c.sent_bytes, c.send_enobufs, c.send_epipe,
                    c.send_other_errors, c.received, c.received_bytes, c.recv_eagain,
                    c.recv_epipe, c.recv_other_errors, c.latency_matched, c.latency_unmatched
                )?;
            }
        }
        for h in self.latency.iter().filter(|h| h.count > 0) {
            write!(f, "{h}")?;
        }
        for m in &self.mq {
            if m.calls == 0 {
                continue;
            }
            writeln!(
                f,
                "mq_timedreceive2 {}: {} calls, {} bytes, {} EAGAIN, {} other errors",
                m.kind, m.calls, m.bytes, m.eagain, m.other_errors
            )?;
            write!(f, "{}", m.latency)?;
        }
        if self.dropped > 0 {
            writeln!(f, "warning: {} events dropped (BPF map full)", self.dropped)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_channel_values_in_intf_h_layout() {
        let mut b = Vec::new();
        for i in 1..=12u64 {
            b.extend_from_slice(&i.to_ne_bytes());
        }
        b.extend_from_slice(&5u32.to_ne_bytes());
        b.extend_from_slice(&1u32.to_ne_bytes());
        let c = RawChannel::parse(7, &b).unwrap();
        assert_eq!((c.id, c.sends, c.recvs, c.lat_unmatched), (7, 1, 6, 12));
        assert_eq!(c.flags, Some(5));
        b[100] = 0;
        assert_eq!(RawChannel::parse(7, &b).unwrap().flags, None);
        assert!(RawChannel::parse(7, &b[..50]).is_err());
    }

    #[test]
    fn histogram_keeps_the_non_empty_range() {
        let mut s = [0u64; SLOTS];
        s[3] = 2;
        s[5] = 1;
        let h = Histogram::from_slots("x".into(), &s);
        assert_eq!(h.count, 3);
        assert_eq!(h.buckets.len(), 3);
        assert_eq!((h.buckets[0].low, h.buckets[0].high), (8, 15));
        assert_eq!(h.buckets[1].count, 0);
        assert!(Histogram::from_slots("e".into(), &[0; SLOTS])
            .buckets
            .is_empty());
    }

    fn raw(sends: u64) -> RawCounters {
        RawCounters {
            channels: vec![RawChannel {
                id: 3,
                sends,
                send_bytes: sends * 10,
                flags: Some(0),
                ..Default::default()
            }],
            ipc_lat: [[0; SLOTS]; 4],
            mq: [RawMq::default(); 2],
            mq_lat: [[0; SLOTS]; 2],
            dropped: 0,
        }
    }

    #[test]
    fn periodic_lines_show_changes_only() {
        let f = Features {
            ipc_tracepoints: true,
            ipc_seq: true,
            ipc_channel_flags: true,
            raw_syscalls: true,
        };
        let a = Report::build(Duration::from_secs(1), &f, raw(4));
        let b = Report::build(Duration::from_secs(2), &f, raw(6));
        let first = a.changes_since(None);
        assert!(
            first.contains("channel 3 unicast: +4 sent (+40 B)"),
            "{first}"
        );
        let second = b.changes_since(Some(&a));
        assert!(second.contains("+2 sent (+20 B)"), "{second}");
        assert_eq!(b.changes_since(Some(&b)), "");
        let json: serde_json::Value = serde_json::from_str(&b.to_json()).unwrap();
        assert_eq!(json["channels"][0]["sent"], 6);
        assert_eq!(json["channels"][0]["mode"], "unicast");
        assert_eq!(json["latency"][1]["mode"], "broadcast");
        assert_eq!(b.latency("multicast").map(|h| h.count), Some(0));
    }

    #[test]
    fn modes_follow_channel_flags() {
        use uapi_headers::io_uring::*;
        assert_eq!(mode_of(None), "unknown");
        assert_eq!(mode_of(Some(0)), "unicast");
        assert_eq!(
            mode_of(Some(IOIPC_F_BROADCAST | IOIPC_F_PRIVATE)),
            "broadcast"
        );
        assert_eq!(mode_of(Some(IOIPC_F_MULTICAST)), "multicast");
    }
}
