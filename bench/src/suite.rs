//! The benchmark matrix and the threads that run one measurement.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use liburing_ipc::ipc::Delivery;

use uring_ipc_bench::model::{
    measurement_id, Counts, Failure, Measurement, Meta, Pass, Run, Scenario, Skip,
};
use uring_ipc_bench::payload;
use uring_ipc_bench::stats::{thread_cpu_ns, Cost, Recorder, Window};

use crate::transport::{
    Fabric, FdCopies, FdKind, FdPing, FdQueue, MqPing, MqStream, PingFabric, ShmBcast, ShmCopies,
    ShmPing,
};
use crate::uring::{MsgRing, PipeUring, UringPing, UringStream};

pub use uring_ipc_bench::targets::{URING, URING_BATCHED, URING_MSHOT};

/// The batched pipe baseline: IORING_OP_WRITE batches into a pipe.
pub const PIPE_BATCHED: &str = "pipe-uring-b16";

/// Mechanisms per scenario, in table order. Everything but the `-b16`
/// variants moves one message per system call (or io_uring_enter).
pub fn mechanisms(s: Scenario) -> &'static [&'static str] {
    match s {
        Scenario::P2pStream => &[
            "pipe",
            "unix-stream",
            "unix-dgram",
            "shm-eventfd",
            "posix-mq",
            "msg-ring",
            URING,
            PIPE_BATCHED,
            URING_BATCHED,
            URING_MSHOT,
        ],
        Scenario::P2pPingpong => &[
            "pipe",
            "unix-stream",
            "unix-dgram",
            "shm-eventfd",
            "posix-mq",
            URING,
        ],
        Scenario::Broadcast => &[
            "pipe",
            "unix-stream",
            "unix-dgram",
            "shm-eventfd",
            "shm-bcast",
            "msg-ring",
            URING,
            URING_BATCHED,
            URING_MSHOT,
        ],
        Scenario::Multicast | Scenario::UnicastAny => {
            &["pipe-queue", "dgram-queue", URING, URING_BATCHED]
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub quick: bool,
    pub filters: Vec<String>,
    pub counts: Counts,
    pub p2p_sizes: Vec<u32>,
    pub fan_sizes: Vec<u32>,
    pub receivers: Vec<u32>,
    pub batch: u32,
    pub depth: u32,
    pub entries: u32,
    /// Longest one measurement may take before the run is declared hung.
    pub deadline: Duration,
    /// Timed passes per measurement, in rounds over the whole plan.
    pub repeats: u32,
    /// Shortest wall time of a timed pass (0: no calibration). The
    /// outside-CPU figure comes from /proc/stat, which counts in clock
    /// ticks: a pass must span many of them to mean anything. The first
    /// round times a pass of the configured length and lengthens the
    /// measurement's passes to reach this (at most `max_scale` times).
    pub min_pass: Duration,
    pub max_scale: u64,
}

impl Config {
    pub fn new(quick: bool, filters: Vec<String>) -> Config {
        let counts = if quick {
            Counts {
                stream_msgs: 200,
                stream_bytes: 512 << 10,
                stream_min_msgs: 16,
                check_msgs: 8,
                pingpong_rounds: 30,
                pingpong_warmup: 3,
            }
        } else {
            Counts {
                stream_msgs: 2000,
                stream_bytes: 4 << 20,
                stream_min_msgs: 128,
                check_msgs: 64,
                pingpong_rounds: 300,
                pingpong_warmup: 30,
            }
        };
        Config {
            quick,
            filters,
            counts,
            p2p_sizes: if quick {
                vec![64, 32768]
            } else {
                vec![64, 1024, 16384, 32768]
            },
            fan_sizes: vec![64, 32768],
            receivers: if quick { vec![1, 4] } else { vec![1, 4, 16] },
            batch: 16,
            depth: 8,
            entries: 128,
            deadline: Duration::from_secs(if quick { 120 } else { 900 }),
            repeats: if quick { 3 } else { 5 },
            min_pass: Duration::from_millis(if quick { 0 } else { 100 }),
            max_scale: 16,
        }
    }

    /// Every (scenario, mechanism, size, receivers) of the run, filtered.
    pub fn plan(&self) -> Vec<(Scenario, &'static str, u32, u32)> {
        let mut v = Vec::new();
        for s in Scenario::ALL {
            for &m in mechanisms(s) {
                match s {
                    Scenario::P2pStream | Scenario::P2pPingpong => {
                        v.extend(self.p2p_sizes.iter().map(|&z| (s, m, z, 1)))
                    }
                    _ => {
                        // A work queue is about handing out and waking, not
                        // copying: small messages only.
                        let small_only = s == Scenario::UnicastAny;
                        for &z in self.fan_sizes.iter().filter(|&&z| !small_only || z <= 4096) {
                            v.extend(self.receivers.iter().map(|&r| (s, m, z, r)));
                        }
                    }
                }
            }
        }
        v.retain(|&(s, m, z, r)| {
            let id = measurement_id(s, m, z, r);
            self.filters.is_empty() || self.filters.iter().any(|f| id.contains(f.as_str()))
        });
        v
    }

    /// Progress steps of a run: every measurement once per round
    /// (measurements that get skipped count too).
    pub fn steps(&self) -> usize {
        self.plan().len() * self.repeats.max(1) as usize
    }

    /// Bytes every channel, ring and kernel buffer holds for messages of
    /// `size` bytes: `entries` messages.
    pub fn capacity(&self, size: u32) -> usize {
        self.entries as usize * size as usize
    }

    /// Messages of one timed stream.
    pub fn stream_len(&self, size: u32, receivers: u32) -> u64 {
        let c = &self.counts;
        (c.stream_bytes / (size as u64 * receivers.max(1) as u64))
            .clamp(c.stream_min_msgs, c.stream_msgs)
    }
}

/// An environment limit, not a broken path: the measurement is skipped.
#[derive(Debug)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unavailable {}

fn fabric(
    cfg: &Config,
    s: Scenario,
    mech: &str,
    size: u32,
    receivers: u32,
) -> Result<Box<dyn Fabric>> {
    let (z, r) = (size as usize, receivers as usize);
    let cap = cfg.capacity(size);
    let unavailable = |e: anyhow::Error| anyhow!(Unavailable(format!("{e:#}")));
    // Multishot receivers come with batched senders and as many provided
    // buffers as the batched variant has RECVs in flight.
    let uring = |d: Delivery, batched: bool, multishot: bool| -> Box<dyn Fabric> {
        let (b, depth) = if batched || multishot {
            (cfg.batch as usize, cfg.depth as usize)
        } else {
            (1, 1)
        };
        Box::new(UringStream::new(d, z, cfg.entries, b, depth, multishot))
    };
    Ok(match (s, mech) {
        (_, "pipe") => Box::new(FdCopies::new(FdKind::Pipe, mech, z, r, cap)?),
        (_, "unix-stream") => Box::new(FdCopies::new(FdKind::UnixStream, mech, z, r, cap)?),
        (_, "unix-dgram") => Box::new(FdCopies::new(FdKind::UnixDgram, mech, z, r, cap)?),
        (_, "shm-eventfd") => Box::new(ShmCopies::new(cfg.entries, z, r)?),
        (_, "shm-bcast") => Box::new(ShmBcast::new(cfg.entries, z, r)?),
        (_, "msg-ring") => Box::new(MsgRing::new(cfg.entries, z, r)?),
        (_, "posix-mq") => Box::new(MqStream::new(z, cfg.entries as i64).map_err(unavailable)?),
        (_, "pipe-queue") => {
            Box::new(FdQueue::new(FdKind::Pipe, mech, z, cap).map_err(unavailable)?)
        }
        (_, "dgram-queue") => Box::new(FdQueue::new(FdKind::UnixDgram, mech, z, cap)?),
        (Scenario::P2pStream, PIPE_BATCHED) => Box::new(PipeUring::new(
            mech,
            z,
            cap,
            cfg.batch as usize,
            cfg.depth as usize,
        )?),
        (Scenario::P2pStream, URING) => uring(Delivery::Unicast, false, false),
        (Scenario::P2pStream, URING_BATCHED) => uring(Delivery::Unicast, true, false),
        (Scenario::P2pStream, URING_MSHOT) => uring(Delivery::Unicast, true, true),
        (Scenario::Broadcast, URING_MSHOT) => uring(Delivery::Broadcast, true, true),
        (Scenario::Broadcast, URING) => uring(Delivery::Broadcast, false, false),
        (Scenario::Broadcast, URING_BATCHED) => uring(Delivery::Broadcast, true, false),
        (Scenario::Multicast, URING) => uring(Delivery::Multicast, false, false),
        (Scenario::Multicast, URING_BATCHED) => uring(Delivery::Multicast, true, false),
        (Scenario::UnicastAny, URING) => uring(Delivery::Unicast, false, false),
        (Scenario::UnicastAny, URING_BATCHED) => uring(Delivery::Unicast, true, false),
        _ => bail!("no stream mechanism {mech} for {}", s.id()),
    })
}

fn ping_fabric(cfg: &Config, mech: &str, size: u32) -> Result<Box<dyn PingFabric>> {
    let z = size as usize;
    Ok(match mech {
        "pipe" => Box::new(FdPing::new(FdKind::Pipe, z)?),
        "unix-stream" => Box::new(FdPing::new(FdKind::UnixStream, z)?),
        "unix-dgram" => Box::new(FdPing::new(FdKind::UnixDgram, z)?),
        "shm-eventfd" => Box::new(ShmPing::new(cfg.entries, z)?),
        "posix-mq" => Box::new(MqPing::new(z).map_err(|e| anyhow!(Unavailable(format!("{e:#}"))))?),
        URING => Box::new(UringPing::new(z, cfg.entries)),
        _ => bail!("no ping-pong mechanism {mech}"),
    })
}

/// Threads are named so that profiles tell senders from receivers.
fn named(name: &str) -> std::thread::Builder {
    std::thread::Builder::new().name(name.to_string())
}

/// What a timed stream or ping-pong yields.
#[derive(Debug)]
struct StreamOut {
    /// The process's CPU and what ran outside it, first send to last
    /// delivery (plus the few barrier wakeups that end the pass).
    cost: Cost,
    sender_cpu_ns: u64,
    /// First send until the last receiver had the last message.
    e2e_ns: u64,
}

/// Run one stream: `n` messages from one sender to `receivers` receivers.
/// `every`: each receiver gets every message (else each message goes to
/// one receiver, and STOP messages end the run). `full`: receivers check
/// every byte (the check pass), else sequence numbers and lengths.
fn stream(
    fabric: &dyn Fabric,
    receivers: usize,
    size: usize,
    n: u64,
    every: bool,
    full: bool,
) -> Result<StreamOut> {
    let ready = Barrier::new(receivers + 1);
    let go = Barrier::new(receivers + 1);
    let done = Barrier::new(receivers + 1);
    let broken = AtomicBool::new(false);
    std::thread::scope(|sc| {
        let sender = named("tx").spawn_scoped(sc, || -> Result<(Cost, u64, Instant)> {
            let tx = fabric.tx();
            if tx.is_err() {
                broken.store(true, Ordering::SeqCst);
            }
            ready.wait();
            go.wait();
            let r = (|| {
                let mut tx = tx?;
                if broken.load(Ordering::SeqCst) {
                    bail!("a receiver could not be set up");
                }
                let b = tx.batch() as u64;
                let window = Window::start();
                let (c0, t0) = (thread_cpu_ns(), Instant::now());
                let mut seq = 0;
                while seq < n {
                    let k = b.min(n - seq);
                    for i in 0..k {
                        let buf = tx.buf(i as usize);
                        if full {
                            payload::fill(buf, seq + i);
                        } else {
                            payload::stamp(buf, seq + i);
                        }
                    }
                    tx.send(k as usize)?;
                    seq += k;
                }
                let sender_cpu = thread_cpu_ns() - c0;
                if !every {
                    tx.stop(receivers)?;
                }
                Ok((window, sender_cpu, t0, tx))
            })();
            if r.is_err() {
                broken.store(true, Ordering::SeqCst);
            }
            // Every receiver is done with its last message when this
            // returns. The sender's ring owns an io_uring channel: keep it
            // until then.
            done.wait();
            r.map(|(window, sender_cpu, t0, _tx)| (window.finish(), sender_cpu, t0))
        })?;
        let rxs: Vec<_> = (0..receivers)
            .map(|i| {
                let (ready, go, done, broken) = (&ready, &go, &done, &broken);
                named(&format!("rx{i}")).spawn_scoped(
                    sc,
                    move || -> Result<(Vec<u64>, Option<Instant>)> {
                        ready.wait();
                        let rx = fabric.rx(i);
                        if rx.is_err() {
                            broken.store(true, Ordering::SeqCst);
                        }
                        go.wait();
                        let r = (|| {
                            let mut rx = rx?;
                            if broken.load(Ordering::SeqCst) {
                                bail!("setup failed");
                            }
                            let mut seen = Vec::with_capacity(if every { n as usize } else { 0 });
                            let mut stopped = false;
                            let mut last = None;
                            while !stopped && (!every || (seen.len() as u64) < n) {
                                let max = if every {
                                    (n - seen.len() as u64) as usize
                                } else {
                                    usize::MAX
                                };
                                let before = seen.len();
                                rx.recv(max, &mut |m| {
                                    let seq = if full {
                                        payload::check_full(m, size)
                                    } else {
                                        payload::check_len(m, size)
                                    }
                                    .map_err(|e| anyhow!("receiver {i}: {e}"))?;
                                    if seq == payload::STOP {
                                        stopped = true;
                                    } else {
                                        seen.push(seq);
                                    }
                                    Ok(())
                                })?;
                                // A work queue's receiver stops on STOP:
                                // note when its last real message came.
                                if !every && seen.len() > before {
                                    last = Some(Instant::now());
                                }
                            }
                            if every {
                                last = Some(Instant::now());
                            }
                            Ok((seen, last, rx))
                        })();
                        if r.is_err() {
                            broken.store(true, Ordering::SeqCst);
                        }
                        done.wait();
                        r.map(|(seen, last, _rx)| (seen, last))
                    },
                )
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        let out = sender.join().map_err(|_| anyhow!("sender panicked"))?;
        let mut all = Vec::new();
        let mut first_err = None;
        let mut last: Option<Instant> = None;
        for (i, h) in rxs.into_iter().enumerate() {
            match h.join().map_err(|_| anyhow!("receiver {i} panicked"))? {
                Ok((mut seen, t)) => {
                    last = last.max(t);
                    if every {
                        payload::check_complete(&mut seen, n, &format!("receiver {i}"))
                            .map_err(|e| anyhow!(e))?;
                    } else {
                        all.extend(seen);
                    }
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let (cost, sender_cpu_ns, t0) = out?;
        if !every {
            payload::check_complete(&mut all, n, "the receivers together")
                .map_err(|e| anyhow!(e))?;
        }
        let e2e_ns = last
            .map(|t| t.saturating_duration_since(t0).as_nanos() as u64)
            .unwrap_or(cost.wall_ns);
        Ok(StreamOut {
            cost,
            sender_cpu_ns,
            e2e_ns,
        })
    })
}

/// Run a ping-pong; returns the client's round-trip histogram and the
/// cost of the timed rounds.
fn pingpong(
    f: &dyn PingFabric,
    size: usize,
    warmup: u64,
    rounds: u64,
) -> Result<(Recorder, StreamOut)> {
    let ready = Barrier::new(2);
    let go = Barrier::new(2);
    let done = Barrier::new(2);
    let broken = AtomicBool::new(false);
    let total = warmup + rounds;
    std::thread::scope(|sc| {
        let client = named("client").spawn_scoped(sc, || -> Result<(Recorder, StreamOut)> {
            let peer = f.client();
            if peer.is_err() {
                broken.store(true, Ordering::SeqCst);
            }
            ready.wait();
            go.wait();
            let r = (|| {
                let mut peer = peer?;
                if broken.load(Ordering::SeqCst) {
                    bail!("the server could not be set up");
                }
                let mut msg = vec![0u8; size];
                let mut buf = vec![0u8; size + 64];
                let mut rec = Recorder::new();
                let (mut c0, mut w0, mut window) =
                    (thread_cpu_ns(), Instant::now(), Window::start());
                for seq in 0..total {
                    let check = seq < warmup;
                    if seq == warmup {
                        window = Window::start();
                        (c0, w0) = (thread_cpu_ns(), Instant::now());
                    }
                    if check {
                        payload::fill(&mut msg, seq);
                    } else {
                        payload::stamp(&mut msg, seq);
                    }
                    let t0 = Instant::now();
                    let n = peer.send_recv(&msg, &mut buf)?;
                    let dt = t0.elapsed().as_nanos() as u64;
                    let got = if check {
                        payload::check_full(&buf[..n], size)
                    } else {
                        payload::check_len(&buf[..n], size)
                    }
                    .map_err(|e| anyhow!("client: {e}"))?;
                    if got != seq {
                        bail!("client: reply {got} to message {seq}");
                    }
                    if !check {
                        rec.record(dt);
                    }
                }
                let out = StreamOut {
                    cost: window.finish(),
                    sender_cpu_ns: thread_cpu_ns() - c0,
                    e2e_ns: w0.elapsed().as_nanos() as u64,
                };
                Ok((rec, out, peer))
            })();
            if r.is_err() {
                broken.store(true, Ordering::SeqCst);
            }
            done.wait();
            r.map(|(rec, out, _peer)| (rec, out))
        })?;
        let server = named("server").spawn_scoped(sc, || -> Result<()> {
            ready.wait();
            let peer = f.server();
            if peer.is_err() {
                broken.store(true, Ordering::SeqCst);
            }
            go.wait();
            let r = (|| {
                let mut peer = peer?;
                if broken.load(Ordering::SeqCst) {
                    bail!("the client could not be set up");
                }
                let mut a = vec![0u8; size + 64];
                let mut b = vec![0u8; size + 64];
                let mut n = peer.recv(&mut a)?;
                for seq in 0..total {
                    let got = if seq < warmup {
                        payload::check_full(&a[..n], size)
                    } else {
                        payload::check_len(&a[..n], size)
                    }
                    .map_err(|e| anyhow!("server: {e}"))?;
                    if got != seq {
                        bail!("server: message {got}, expected {seq}");
                    }
                    if seq + 1 == total {
                        peer.send(&a[..n])?;
                    } else {
                        n = peer.send_recv(&a[..n], &mut b)?;
                        std::mem::swap(&mut a, &mut b);
                    }
                }
                Ok(peer)
            })();
            if r.is_err() {
                broken.store(true, Ordering::SeqCst);
            }
            done.wait();
            r.map(|_| ())
        })?;
        let c = client.join().map_err(|_| anyhow!("client panicked"))?;
        let s = server.join().map_err(|_| anyhow!("server panicked"))?;
        s?;
        c
    })
}

/// A pass's figures per message (ping-pong: per round trip).
fn pass_of(out: &StreamOut, n: u64, rtt: Option<uring_ipc_bench::model::Latency>) -> Pass {
    let per = |ns: u64| ns as f64 / n.max(1) as f64;
    Pass {
        cpu_self_ns: per(out.cost.self_ns),
        cpu_outside_ns: out.cost.outside_ns as f64 / n.max(1) as f64,
        outside_resolution_ns: per(out.cost.resolution_ns),
        sender_cpu_ns: per(out.sender_cpu_ns),
        e2e_ns: per(out.e2e_ns),
        ctx_switches: out.cost.ctx_switches as f64 / n.max(1) as f64,
        rtt,
        window: Some(out.cost.window),
        insns: None,
    }
}

/// The length of a measurement's timed passes: `n`, lengthened so that a
/// pass that took `took_ns` for `n` messages takes `min_pass`.
fn calibrated(cfg: &Config, n: u64, took_ns: u64) -> u64 {
    let want = cfg.min_pass.as_nanos() as u64;
    if want == 0 || took_ns >= want {
        return n;
    }
    let scaled = (n as u128 * want as u128 / took_ns.max(1) as u128) as u64;
    scaled.clamp(n, n * cfg.max_scale)
}

/// One round of a measurement: a timed pass added to `prev` (the first
/// round, `prev` None, runs the check pass first, and a calibration pass
/// that sets the length of every timed pass).
fn measure(
    cfg: &Config,
    s: Scenario,
    mech: &str,
    size: u32,
    receivers: u32,
    prev: Option<Measurement>,
) -> Result<Measurement> {
    let c = &cfg.counts;
    let z = size as usize;
    if s == Scenario::P2pPingpong {
        let mut m = match prev {
            Some(m) => m,
            None => {
                let mut rounds = c.pingpong_rounds;
                if !cfg.min_pass.is_zero() {
                    let f = ping_fabric(cfg, mech, size)?;
                    let (_, out) = pingpong(f.as_ref(), z, c.pingpong_warmup, rounds)?;
                    rounds = calibrated(cfg, rounds, out.e2e_ns);
                }
                Measurement {
                    scenario: s,
                    mechanism: mech.to_string(),
                    size,
                    receivers,
                    messages: rounds,
                    copies: 1,
                    passes: vec![],
                    verified_full: 0,
                    verified_seq: 0,
                }
            }
        };
        let rounds = m.messages;
        let f = ping_fabric(cfg, mech, size)?;
        let (rec, out) = pingpong(f.as_ref(), z, c.pingpong_warmup, rounds)?;
        let lat = rec
            .summary()
            .ok_or_else(|| anyhow!("no round trip recorded"))?;
        m.passes.push(pass_of(&out, rounds, Some(lat)));
        m.verified_full += c.pingpong_warmup * 2;
        m.verified_seq += rounds * 2;
        return Ok(m);
    }
    let every = !matches!(s, Scenario::Multicast | Scenario::UnicastAny);
    let r = receivers as usize;
    let copies = if every { receivers } else { 1 };
    let mut m = match prev {
        Some(m) => m,
        None => {
            // Check pass: every byte of every message verified.
            let f = fabric(cfg, s, mech, size, receivers)?;
            stream(f.as_ref(), r, z, c.check_msgs, every, true)?;
            let mut n = cfg.stream_len(size, receivers);
            if !cfg.min_pass.is_zero() {
                let f = fabric(cfg, s, mech, size, receivers)?;
                let out = stream(f.as_ref(), r, z, n, every, false)?;
                n = calibrated(cfg, n, out.e2e_ns);
            }
            Measurement {
                scenario: s,
                mechanism: mech.to_string(),
                size,
                receivers,
                messages: n,
                copies,
                passes: vec![],
                verified_full: c.check_msgs * copies as u64,
                verified_seq: 0,
            }
        }
    };
    let n = m.messages;
    let f = fabric(cfg, s, mech, size, receivers)?;
    let out = stream(f.as_ref(), r, z, n, every, false)?;
    m.passes.push(pass_of(&out, n, None));
    m.verified_seq += n * copies as u64;
    Ok(m)
}

/// The results so far, shared with the hang watchdog.
pub struct State {
    pub run: Run,
    pub out: std::path::PathBuf,
    pub current: Option<String>,
}

impl State {
    pub fn save(&self) -> Result<()> {
        let tmp = self.out.with_extension("json.tmp");
        std::fs::write(&tmp, self.run.to_json())?;
        std::fs::rename(&tmp, &self.out)?;
        Ok(())
    }
}

/// Exit the process (with the results saved) if one measurement hangs.
fn watchdog(state: Arc<Mutex<State>>, deadline: Duration, started: Arc<Mutex<Instant>>) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(500));
        let t = *started.lock().unwrap();
        if t.elapsed() < deadline {
            continue;
        }
        let mut st = state.lock().unwrap();
        if let Some(id) = st.current.take() {
            let msg = format!("no progress for {}s: hung", deadline.as_secs());
            println!("# FAIL {id}: {msg}");
            st.run.failed.push(Failure { id, error: msg });
            let _ = st.save();
            std::process::exit(3);
        }
    });
}

pub fn run(cfg: &Config, meta: Meta, out: std::path::PathBuf) -> Result<Run> {
    let t_start = Instant::now();
    let state = Arc::new(Mutex::new(State {
        run: Run {
            meta,
            results: vec![],
            skipped: vec![],
            failed: vec![],
        },
        out,
        current: None,
    }));
    let started = Arc::new(Mutex::new(Instant::now()));
    watchdog(state.clone(), cfg.deadline, started.clone());
    let uring_missing = crate::uring::unsupported_reason();
    if uring_missing.is_none() {
        let nop = crate::uring::nop_cost(if cfg.quick { 20_000 } else { 200_000 }, cfg.batch)?;
        state.lock().unwrap().run.meta.uring_nop_ns = Some(nop);
        println!(
            "# io_uring NOP floor: {nop:.0} ns/op (batches of {})",
            cfg.batch
        );
    }
    {
        // The datagram queue length is a system-wide setting: changed only
        // in the benchmark's own VM, never on a host.
        let mut st = state.lock().unwrap();
        let qlen = if st.run.meta.environment == "vm" {
            crate::transport::set_dgram_qlen(cfg.entries)
        } else {
            crate::transport::dgram_qlen()
        };
        st.run.meta.buffering = vec![
            format!("unix-dgram, dgram-queue: {qlen}"),
            format!("posix-mq: {}", crate::transport::lift_mq_rlimit()),
        ];
    }
    let plan = cfg.plan();
    println!("# {} measurements, {} round(s)", plan.len(), cfg.repeats);
    // Rounds over the whole plan rather than repeats back to back, so that
    // a stretch of interference from outside hits every mechanism alike.
    for round in 0..cfg.repeats.max(1) {
        for &(s, mech, size, r) in &plan {
            let id = measurement_id(s, mech, size, r);
            let same = |x: &Measurement| {
                x.scenario == s && x.mechanism == mech && x.size == size && x.receivers == r
            };
            let prev = if round == 0 {
                None
            } else {
                let st = state.lock().unwrap();
                match st.run.results.iter().find(|x| same(x)) {
                    Some(m) => Some(m.clone()),
                    // Skipped or failed in an earlier round.
                    None => {
                        drop(st);
                        println!("  BENCH   {id} (round {}, not measured)", round + 1);
                        continue;
                    }
                }
            };
            if round == 0 {
                println!("  BENCH   {id}");
            } else {
                println!("  BENCH   {id} (round {})", round + 1);
            }
            let _ = std::io::stdout().flush();
            if mech.starts_with(URING) {
                if let Some(why) = &uring_missing {
                    println!("# SKIP {id}: {why}");
                    state.lock().unwrap().run.skipped.push(Skip {
                        id,
                        reason: why.clone(),
                    });
                    continue;
                }
            }
            state.lock().unwrap().current = Some(id.clone());
            *started.lock().unwrap() = Instant::now();
            let res = measure(cfg, s, mech, size, r, prev);
            let mut st = state.lock().unwrap();
            st.current = None;
            match res {
                Ok(m) => {
                    let p = m.passes.last().expect("a pass was just added");
                    let rtt = p
                        .rtt
                        .as_ref()
                        .map(|l| format!(", rtt p50 {} ns p99 {} ns", l.p50, l.p99))
                        .unwrap_or_default();
                    println!(
                        "# {id}: {:.0} ns/msg total cpu ({:.0} process + {:.0} outside, {:.0} sender), {:.0} ns/msg end to end{rtt}",
                        p.cpu_total_ns(),
                        p.cpu_self_ns,
                        p.cpu_outside_ns,
                        p.sender_cpu_ns,
                        p.e2e_ns
                    );
                    st.run.results.retain(|x| !same(x));
                    st.run.results.push(m);
                }
                Err(e) if e.downcast_ref::<Unavailable>().is_some() => {
                    println!("# SKIP {id}: {e:#}");
                    st.run.skipped.push(Skip {
                        id,
                        reason: format!("{e:#}"),
                    });
                }
                Err(e) => {
                    println!("# FAIL {id}: {e:#}");
                    st.run.failed.push(Failure {
                        id,
                        error: format!("{e:#}"),
                    });
                }
            }
            st.run.meta.elapsed_s = t_start.elapsed().as_secs_f64();
            // Saving costs a lot under emulation: once per round, and
            // whenever something failed (a hang is saved by the watchdog).
            if !st.run.failed.is_empty() {
                st.save()?;
            }
        }
        state.lock().unwrap().save()?;
    }
    // Table order, whatever the order of the rounds.
    let mut st = state.lock().unwrap();
    st.run
        .meta
        .buffering
        .extend(crate::transport::buffer_notes());
    let order: Vec<String> = plan
        .iter()
        .map(|&(s, m, z, r)| measurement_id(s, m, z, r))
        .collect();
    st.run.results.sort_by_key(|m| {
        let id = measurement_id(m.scenario, &m.mechanism, m.size, m.receivers);
        order.iter().position(|o| *o == id)
    });
    st.save()?;
    Ok(st.run.clone())
}
