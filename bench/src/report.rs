//! Tables, plots and the markdown report of a run.

use crate::model::{fmt_size, measurement_id, paired_ratios, Meta, Metric, Run, Scenario, Spread};
use crate::svg::{Chart, Series};
use crate::table::{fmt_ns, fmt_ratio, fmt_us, Table};
use crate::targets::{self, URING, URING_BATCHED};

/// The warning every output of a TCG run carries.
pub const TCG_WARNING: &str = "TCG (software emulation): absolute numbers are not meaningful; \
     compare mechanisms only as ratios inside this run";

/// The same, short enough for a plot.
pub const TCG_PLOT_BANNER: &str = "TCG run: absolute numbers are not meaningful, only ratios";

pub fn banner(meta: &Meta) -> String {
    if meta.is_tcg() {
        format!("*** {TCG_WARNING} ***")
    } else {
        String::new()
    }
}

/// Mechanisms of a scenario in the order they first appear.
fn mechanisms(run: &Run, s: Scenario) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for m in run.results.iter().filter(|m| m.scenario == s) {
        if !v.contains(&m.mechanism) {
            v.push(m.mechanism.clone());
        }
    }
    v
}

fn values<T: Copy + Ord>(it: impl Iterator<Item = T>) -> Vec<T> {
    let mut v: Vec<T> = it.collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn sizes(run: &Run, s: Scenario) -> Vec<u32> {
    values(
        run.results
            .iter()
            .filter(|m| m.scenario == s)
            .map(|m| m.size),
    )
}

fn receivers(run: &Run, s: Scenario, size: u32) -> Vec<u32> {
    values(
        run.results
            .iter()
            .filter(|m| m.scenario == s && m.size == size)
            .map(|m| m.receivers),
    )
}

fn header(first: &str, rest: impl IntoIterator<Item = String>) -> Vec<String> {
    std::iter::once(first.to_string()).chain(rest).collect()
}

/// A figure in a metric's own format.
pub fn fmt_metric(metric: Metric, v: f64) -> String {
    match metric {
        Metric::MsgsPerSec => format!("{v:.0}"),
        Metric::MBPerSec => format!("{v:.1}"),
        Metric::CtxSwitches => format!("{v:.2}"),
        Metric::RttP50 | Metric::RttP99 => fmt_us(v as u64),
        Metric::Insns => format!("{v:.0}"),
        _ => fmt_ns(v),
    }
}

/// Median, and the half-range in percent of the median when there are
/// several passes: "1234 ±5%".
pub fn fmt_spread(metric: Metric, s: &Spread) -> String {
    if s.n > 1 {
        format!(
            "{} ±{:.0}%",
            fmt_metric(metric, s.median),
            s.relative_range() * 50.0
        )
    } else {
        fmt_metric(metric, s.median)
    }
}

fn cell(run: &Run, metric: Metric, c: (Scenario, &str, u32, u32)) -> String {
    run.find(c.0, c.1, c.2, c.3)
        .and_then(|m| m.spread(metric))
        .map(|s| fmt_spread(metric, &s))
        .unwrap_or_else(|| "-".into())
}

/// Median of the per-round ratios a / b.
fn ratio_cell(
    run: &Run,
    metric: Metric,
    a: (Scenario, &str, u32, u32),
    b: (Scenario, &str, u32, u32),
) -> String {
    match (run.find(a.0, a.1, a.2, a.3), run.find(b.0, b.1, b.2, b.3)) {
        (Some(x), Some(y)) => Spread::of(paired_ratios(x, y, metric))
            .map(|s| fmt_ratio(s.median))
            .unwrap_or_else(|| "-".into()),
        _ => "-".into(),
    }
}

const SPREAD_NOTE: &str =
    "median over the passes; ±: half the range (max - min) in percent of the median";

/// The terminal/markdown tables of a run, one per scenario (and size).
pub fn tables(run: &Run) -> Vec<Table> {
    let mut out = Vec::new();
    let tag = if run.meta.is_tcg() { " [TCG]" } else { "" };
    let env = &run.meta.environment;

    let s = Scenario::P2pStream;
    let zs = sizes(run, s);
    if !zs.is_empty() {
        for (metric, what) in [
            (Metric::TotalCpu, "total CPU ns/msg (process + outside)"),
            (Metric::MsgsPerSec, "end-to-end msgs/s"),
        ] {
            let mut t = Table::new(
                format!("Point-to-point stream, {what} ({env}){tag}"),
                header("mechanism", zs.iter().map(|&z| fmt_size(z))),
            );
            for mech in mechanisms(run, s) {
                t.row(header(
                    &mech,
                    zs.iter().map(|&z| cell(run, metric, (s, &mech, z, 1))),
                ));
            }
            if metric == Metric::TotalCpu {
                for (a, base) in [
                    (URING, "pipe"),
                    (URING, "shm-eventfd"),
                    (URING_BATCHED, "pipe"),
                ] {
                    let cells: Vec<String> = zs
                        .iter()
                        .map(|&z| ratio_cell(run, metric, (s, a, z, 1), (s, base, z, 1)))
                        .collect();
                    if cells.iter().any(|c| c != "-") {
                        t.row(header(&format!("{a} / {base}"), cells));
                    }
                }
            }
            t.notes.push(format!(
                "{SPREAD_NOTE}; {}",
                if metric.higher_is_better() {
                    "first send to last delivery; higher is better"
                } else {
                    "lower is better; ratios: median of the per-round ratios"
                }
            ));
            out.push(t);
        }
    }

    let s = Scenario::P2pPingpong;
    let zs = sizes(run, s);
    if !zs.is_empty() {
        let mut t = Table::new(
            format!("Point-to-point ping-pong, round trip p50/p99 in us ({env}){tag}"),
            header("mechanism", zs.iter().map(|&z| fmt_size(z))),
        );
        for mech in mechanisms(run, s) {
            t.row(header(
                &mech,
                zs.iter().map(|&z| {
                    let m = run.find(s, &mech, z, 1);
                    match (
                        m.and_then(|m| m.spread(Metric::RttP50)),
                        m.and_then(|m| m.spread(Metric::RttP99)),
                    ) {
                        (Some(a), Some(b)) => format!(
                            "{}/{} ±{:.0}%",
                            fmt_us(a.median as u64),
                            fmt_us(b.median as u64),
                            a.relative_range() * 50.0
                        ),
                        _ => "-".into(),
                    }
                }),
            ));
        }
        t.notes.push(
            "HDR histogram per pass; medians of the passes' p50 and p99; ±: spread of p50; lower is better"
                .into(),
        );
        out.push(t);
    }

    for (s, what) in [
        (
            Scenario::Broadcast,
            "every receiver gets every message; fd and shm-eventfd baselines write one copy per receiver",
        ),
        (
            Scenario::Multicast,
            "each message goes to one receiver; baselines are one shared work queue",
        ),
        (
            Scenario::UnicastAny,
            "each message goes to whichever receiver takes it first (untargeted unicast); \
             baselines are one shared work queue",
        ),
    ] {
        for z in sizes(run, s) {
            let rs = receivers(run, s, z);
            let (first, last) = (rs[0], *rs.last().expect("not empty"));
            for (metric, label) in [
                (Metric::TotalCpu, "total CPU ns/msg"),
                (Metric::MsgsPerSec, "end-to-end msgs/s"),
            ] {
                let mut t = Table::new(
                    format!(
                        "{} {}, {label} by receivers ({env}){tag}",
                        match s {
                            Scenario::Broadcast => "Broadcast",
                            Scenario::Multicast => "Multicast",
                            _ => "Untargeted unicast",
                        },
                        fmt_size(z)
                    ),
                    header(
                        "mechanism",
                        rs.iter()
                            .map(|r| r.to_string())
                            .chain([format!("{first}->{last}")]),
                    ),
                );
                for mech in mechanisms(run, s) {
                    let growth = if last > first {
                        ratio_cell(run, metric, (s, &mech, z, last), (s, &mech, z, first))
                    } else {
                        "-".into()
                    };
                    t.row(header(
                        &mech,
                        rs.iter()
                            .map(|&r| cell(run, metric, (s, &mech, z, r)))
                            .chain([growth]),
                    ));
                }
                t.notes.push(format!(
                    "{what}; per message sent; last column: change from {first} to {last} receivers; {SPREAD_NOTE}"
                ));
                out.push(t);
            }
        }
    }
    if !run.results.is_empty() {
        out.push(detail(run));
    }
    out
}

/// Every figure of every measurement (medians).
pub fn detail(run: &Run) -> Table {
    let tag = if run.meta.is_tcg() { " [TCG]" } else { "" };
    let mut metrics = vec![
        Metric::TotalCpu,
        Metric::SelfCpu,
        Metric::OutsideCpu,
        Metric::SenderCpu,
        Metric::MsgsPerSec,
        Metric::MBPerSec,
        Metric::CtxSwitches,
    ];
    if run.has_insns() {
        metrics.push(Metric::Insns);
    }
    let mut t = Table::new(
        format!("Every measurement, medians ({}){tag}", run.meta.environment),
        header(
            "measurement",
            [
                "passes".to_string(),
                "msgs/pass".to_string(),
                "total CPU range".to_string(),
            ]
            .into_iter()
            .chain(metrics.iter().map(|m| m.name().to_string()))
            .chain(["outside resolution ns/msg".to_string()]),
        ),
    );
    for m in &run.results {
        let range = m
            .spread(Metric::TotalCpu)
            .map(|s| format!("{}-{}", fmt_ns(s.min), fmt_ns(s.max)))
            .unwrap_or_else(|| "-".into());
        t.row(header(
            &measurement_id(m.scenario, &m.mechanism, m.size, m.receivers),
            [m.passes.len().to_string(), m.messages.to_string(), range]
                .into_iter()
                .chain(metrics.iter().map(|&k| {
                    m.median(k)
                        .map(|v| fmt_metric(k, v))
                        .unwrap_or_else(|| "-".into())
                }))
                .chain(
                    [Spread::of(m.passes.iter().map(|p| p.outside_resolution_ns))
                        .map(|s| format!("±{}", fmt_ns(s.median)))
                        .unwrap_or_else(|| "-".into())],
                ),
        ));
    }
    t.notes.push(
        "per message sent (ping-pong: per round trip); MB/s counts every delivered copy; \
         outside CPU: busy time of the system outside the process, to one clock tick per vCPU"
            .into(),
    );
    t
}

fn sizes_ticks(zs: &[u32]) -> Vec<(f64, String)> {
    zs.iter().map(|&z| (z as f64, fmt_size(z))).collect()
}

fn median_of(run: &Run, metric: Metric, c: (Scenario, &str, u32, u32)) -> Option<f64> {
    run.find(c.0, c.1, c.2, c.3)?.median(metric)
}

/// (file name, chart) for every plot of a run.
pub fn charts(run: &Run) -> Vec<(String, Chart)> {
    let banner = if run.meta.is_tcg() {
        TCG_PLOT_BANNER.to_string()
    } else {
        String::new()
    };
    let env = &run.meta.environment;
    let mut out = Vec::new();
    let s = Scenario::P2pPingpong;
    let zs = sizes(run, s);
    if !zs.is_empty() {
        let mut series = Vec::new();
        for (i, mech) in mechanisms(run, s).iter().enumerate() {
            for (metric, pct, dashed) in [
                (Metric::RttP50, "p50", false),
                (Metric::RttP99, "p99", true),
            ] {
                series.push(Series {
                    name: format!("{mech} {pct}"),
                    points: zs
                        .iter()
                        .filter_map(|&z| Some((z as f64, median_of(run, metric, (s, mech, z, 1))?)))
                        .collect(),
                    dashed,
                    color: i,
                });
            }
        }
        out.push((
            format!("{env}-latency-vs-size.svg"),
            Chart {
                title: format!(
                    "Ping-pong round trip vs message size ({env}, {})",
                    run.meta.kernel
                ),
                banner: banner.clone(),
                x_label: "message size".into(),
                y_label: "round trip (ns)".into(),
                x_ticks: sizes_ticks(&zs),
                series,
            },
        ));
    }
    let s = Scenario::P2pStream;
    let zs = sizes(run, s);
    if !zs.is_empty() {
        for (metric, file, what) in [
            (Metric::TotalCpu, "total-cpu", "total CPU ns/msg"),
            (Metric::MBPerSec, "throughput", "end-to-end MB/s"),
        ] {
            let series = mechanisms(run, s)
                .iter()
                .enumerate()
                .map(|(i, mech)| Series {
                    name: mech.clone(),
                    points: zs
                        .iter()
                        .filter_map(|&z| Some((z as f64, median_of(run, metric, (s, mech, z, 1))?)))
                        .collect(),
                    dashed: false,
                    color: i,
                })
                .collect();
            out.push((
                format!("{env}-p2p-{file}-vs-size.svg"),
                Chart {
                    title: format!("Point-to-point stream: {what} vs message size ({env})"),
                    banner: banner.clone(),
                    x_label: "message size".into(),
                    y_label: what.into(),
                    x_ticks: sizes_ticks(&zs),
                    series,
                },
            ));
        }
    }
    for s in [
        Scenario::Broadcast,
        Scenario::Multicast,
        Scenario::UnicastAny,
    ] {
        for z in sizes(run, s) {
            let rs = receivers(run, s, z);
            for (metric, file, what) in [
                (Metric::TotalCpu, "total-cpu", "total CPU ns/msg"),
                (Metric::MsgsPerSec, "throughput", "end-to-end msgs/s"),
            ] {
                let series = mechanisms(run, s)
                    .iter()
                    .enumerate()
                    .map(|(i, mech)| Series {
                        name: mech.clone(),
                        points: rs
                            .iter()
                            .filter_map(|&r| {
                                Some((r as f64, median_of(run, metric, (s, mech, z, r))?))
                            })
                            .collect(),
                        dashed: false,
                        color: i,
                    })
                    .collect();
                out.push((
                    format!("{env}-{}-{}-{file}-vs-receivers.svg", s.id(), fmt_size(z)),
                    Chart {
                        title: format!("{} {}: {what} vs receivers ({env})", s.id(), fmt_size(z)),
                        banner: banner.clone(),
                        x_label: "receivers".into(),
                        y_label: what.into(),
                        x_ticks: rs.iter().map(|&r| (r as f64, r.to_string())).collect(),
                        series,
                    },
                ));
            }
        }
    }
    out
}

pub fn meta_table(m: &Meta) -> Table {
    let mut t = Table::new(
        format!("Conditions ({})", m.environment),
        vec!["condition".into(), "value".into()],
    );
    t.align_left = true;
    let c = &m.counts;
    let rows = [
        ("kernel", m.kernel.clone()),
        (
            "accelerator",
            if m.accel_reason.is_empty() {
                m.accel.clone()
            } else {
                format!("{} ({})", m.accel, m.accel_reason)
            },
        ),
        (
            "emulator",
            if m.qemu.is_empty() {
                "-".to_string()
            } else {
                format!("{}; vCPU threads not pinned", m.qemu)
            },
        ),
        ("vCPUs", m.vcpus.to_string()),
        ("memory", format!("{} MiB", m.memory_mib)),
        ("date", m.date.clone()),
        (
            "mode",
            if m.filter.is_empty() {
                m.mode.clone()
            } else {
                format!("{} (filter: {})", m.mode, m.filter.join(", "))
            },
        ),
        (
            "stream messages",
            format!(
                "{}..{} per pass (at most {} KiB per receiver){}, after a {}-message check pass",
                c.stream_min_msgs,
                c.stream_msgs,
                c.stream_bytes >> 10,
                if m.min_pass_ms > 0 {
                    format!(", lengthened up to 16x to last {} ms (calibrated in round 1)", m.min_pass_ms)
                } else {
                    String::new()
                },
                c.check_msgs
            ),
        ),
        (
            "ping-pong",
            format!("{} timed round trips after {} checked ones", c.pingpong_rounds, c.pingpong_warmup),
        ),
        (
            "io_uring",
            format!(
                "SINGLE_ISSUER|DEFER_TASKRUN; {URING}, msg-ring: 1 SQE per io_uring_enter, 1 RECV in flight; \
                 {URING_BATCHED}, *-b{}: {} SQEs per io_uring_enter, {} RECVs in flight",
                m.uring_send_batch, m.uring_send_batch, m.uring_recv_depth
            ),
        ),
        (
            "buffering",
            format!(
                "{} slots of one message in every channel and ring; {}",
                m.ring_entries,
                if m.buffering.is_empty() {
                    "other mechanisms at their defaults".to_string()
                } else {
                    m.buffering.join("; ")
                }
            ),
        ),
        (
            "io_uring NOP floor",
            m.uring_nop_ns
                .map(|n| format!("{} ns/op", fmt_ns(n)))
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "timed passes",
            format!(
                "{} per measurement, in rounds over the whole plan; medians and ranges reported",
                m.repeats
            ),
        ),
        (
            "CPU accounting",
            format!(
                "process: getrusage(RUSAGE_SELF), all threads; outside: {} vCPUs x wall - idle (/proc/stat, {} ticks/s) - process",
                m.vcpus,
                m.clock_ticks
            ),
        ),
        ("host load average", m.host_load.clone()),
        ("suite time", format!("{:.1} s", m.elapsed_s)),
    ];
    for (k, v) in rows {
        t.row(vec![k.into(), v]);
    }
    t
}

/// The cost targets again, judged on guest instructions per message.
fn insn_targets(vm: &Run) -> Table {
    targets::table_titled(
        &targets::evaluate_on(vm, Metric::Insns),
        "Cost targets on guest instructions per message (TCG instruction counts, \
         all vCPUs, spin-wait loops left out: far steadier than times on a busy host)",
    )
}

/// Everything printed to the terminal.
pub fn text(vm: &Run, host: Option<&Run>) -> String {
    let mut s = String::new();
    let b = banner(&vm.meta);
    if !b.is_empty() {
        s.push_str(&format!("{b}\n\n"));
    }
    s.push_str(&meta_table(&vm.meta).render_text());
    for t in tables(vm) {
        s.push('\n');
        s.push_str(&t.render_text());
    }
    if let Some(h) = host {
        s.push('\n');
        s.push_str(&meta_table(&h.meta).render_text());
        for t in tables(h) {
            s.push('\n');
            s.push_str(&t.render_text());
        }
    }
    s.push('\n');
    s.push_str(&targets::table(&targets::evaluate(vm)).render_text());
    if vm.has_insns() {
        s.push('\n');
        s.push_str(&insn_targets(vm).render_text());
    }
    for r in std::iter::once(vm).chain(host) {
        for sk in &r.skipped {
            s.push_str(&format!(
                "SKIP ({}) {}: {}\n",
                r.meta.environment, sk.id, sk.reason
            ));
        }
        for f in &r.failed {
            s.push_str(&format!(
                "FAIL ({}) {}: {}\n",
                r.meta.environment, f.id, f.error
            ));
        }
    }
    if !b.is_empty() {
        s.push_str(&format!("\n{b}\n"));
    }
    s
}

const METHOD: &str = "\
Each measurement runs one sender thread and its receiver threads in one
process; every endpoint is created in the thread that uses it. A timed pass
runs from the first send until every receiver has had its last message
(broadcast: every receiver every message). Per message sent (ping-pong: per
round trip) it records: the CPU time of the whole process, every thread
(getrusage(RUSAGE_SELF); io_uring workers are threads of the process, and
softirq work that interrupts its threads is charged to them); the busy time
of the system outside the process (vCPUs x wall time, minus the idle time
/proc/stat reports, minus the process's CPU), whose resolution is one clock
tick per vCPU at each end of the pass and is given per measurement; their
sum, total CPU, which the targets use; the sending thread's CPU time
(CLOCK_THREAD_CPUTIME_ID); end-to-end throughput; and the process's context
switches. Every measurement runs at least five passes in a full run (three
in a quick run), in rounds over the whole plan so that a stretch of
interference hits every mechanism alike; the tables give the median and the
spread. A target's ratio is formed per round, and the verdict is MET or
MISSED only when every round's ratio is on the same side of the bound,
otherwise UNDECIDED with the range.

Batching: every mechanism without a -b16 or -mshot suffix moves one message per
system call: write(2), mq_send(3), a copy into a shared ring plus an
eventfd write or a futex wake when a reader sleeps, one IORING_OP_MSG_RING
or one IORING_OP_IPC_SEND per io_uring_enter with one IPC_RECV in flight per
receiver. uring-ipc-b16 queues 16 IPC_SENDs per io_uring_enter and keeps 8
IPC_RECVs in flight; pipe-uring-b16 is the same amortisation on a pipe: 16
linked IORING_OP_WRITEs per io_uring_enter on a ring with the same flags,
and reads of up to 8 messages per read(2). uring-ipc-mshot sends as
uring-ipc-b16 does; each receiver keeps one multishot IPC_RECV filling 8
provided buffers (as many as -b16 has RECVs in flight), one CQE per message.
Compare -b16 and -mshot rows with each other, the rest with each other.

Buffering: io_uring IPC channels and every shared-memory ring hold 128
messages; pipes get F_SETPIPE_SZ of 128 messages' bytes, sockets SO_SNDBUF
of the same bytes (the kernel doubles it and charges its per-message
overhead to it, so a socket holds fewer small messages), datagram sockets a
queue length of 128 (net.unix.max_dgram_qlen, set in the VM only), POSIX
queues mq_maxmsg 128; the conditions table gives what the kernel reported.

Mechanisms: fan-out baselines pipe, unix-stream, unix-dgram and
shm-eventfd send one copy per receiver; shm-bcast is one ring written once,
read by every receiver through its own cursor, with futex wakeups only for
sleepers (broadcast without a kernel); msg-ring copies each message once
into a shared ring and posts one MSG_RING CQE per receiver, receivers hand
slots back with MSG_RING. Multicast and untargeted unicast (unicast-any:
each message to whichever receiver takes it first) baselines are one pipe
or datagram socket read by all receivers. io_uring rings use IORING_SETUP_SINGLE_ISSUER |
IORING_SETUP_DEFER_TASKRUN. No variant polls. Before every measurement a
check pass sends messages whose every byte the receivers verify; in the
timed passes receivers check each message's length and sequence number,
and after each pass every receiver must have got exactly the messages it
was owed. Ping-pong verifies every reply.";

/// The markdown report, for a cover letter.
pub fn markdown(vm: &Run, host: Option<&Run>, plots: &[String]) -> String {
    let mut s = String::from("# io_uring IPC channels: benchmark report\n\n");
    if vm.meta.is_tcg() {
        s.push_str(&format!(
            "> **Warning: this run used {TCG_WARNING}.** Under TCG system calls, \
             memory copies and context switches are emulated with different relative \
             costs than on hardware; only the ratios below mean anything, and even \
             they are distorted.\n\n"
        ));
    }
    s.push_str(&meta_table(&vm.meta).render_markdown());
    s.push_str("\n## Targets\n\n");
    s.push_str(&targets::table(&targets::evaluate(vm)).render_markdown());
    if vm.has_insns() {
        s.push('\n');
        s.push_str(&insn_targets(vm).render_markdown());
    }
    s.push_str("\n## Results\n\n");
    for t in tables(vm) {
        s.push_str(&t.render_markdown());
        s.push('\n');
    }
    if let Some(h) = host {
        s.push_str("## Baselines on the host kernel\n\n");
        s.push_str(
            "The same binary on the unpatched host kernel, for comparison; \
             io_uring IPC is skipped there.\n\n",
        );
        s.push_str(&meta_table(&h.meta).render_markdown());
        s.push('\n');
        for t in tables(h) {
            s.push_str(&t.render_markdown());
            s.push('\n');
        }
    }
    if !plots.is_empty() {
        s.push_str("## Plots\n\n");
        for p in plots {
            s.push_str(&format!("![{p}]({p})\n\n"));
        }
    }
    let skipped: Vec<String> = std::iter::once(vm)
        .chain(host)
        .flat_map(|r| {
            r.skipped
                .iter()
                .map(move |k| format!("- SKIP ({}) `{}`: {}", r.meta.environment, k.id, k.reason))
                .chain(r.failed.iter().map(move |f| {
                    format!(
                        "- **FAIL** ({}) `{}`: {}",
                        r.meta.environment, f.id, f.error
                    )
                }))
        })
        .collect();
    if !skipped.is_empty() {
        s.push_str("## Skipped and failed\n\n");
        s.push_str(&skipped.join("\n"));
        s.push_str("\n\n");
    }
    s.push_str("## Method\n\n");
    s.push_str(METHOD);
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::{point, sample_meta};
    use crate::model::Scenario::*;

    fn run(accel: &str) -> Run {
        Run {
            meta: sample_meta(accel),
            results: vec![
                point(P2pStream, "pipe", 64, 1, 200.0),
                point(P2pStream, URING, 64, 1, 600.0),
                point(P2pPingpong, "pipe", 64, 1, 20_000.0),
                point(P2pPingpong, "pipe", 32768, 1, 40_000.0),
                point(Broadcast, "pipe", 32768, 1, 1000.0),
                point(Broadcast, "pipe", 32768, 16, 27_000.0),
                point(Broadcast, URING, 32768, 1, 900.0),
                point(Broadcast, URING, 32768, 16, 1800.0),
            ],
            skipped: vec![crate::model::Skip {
                id: "p2p-stream/posix-mq/64B".into(),
                reason: "no mqueue".into(),
            }],
            failed: vec![],
        }
    }

    #[test]
    fn scenario_tables() {
        let ts = tables(&run("kvm"));
        let titles: Vec<&str> = ts.iter().map(|t| t.title.as_str()).collect();
        assert_eq!(ts.len(), 6, "{titles:?}");
        let p2p = ts[0].render_text();
        assert!(p2p.starts_with("Point-to-point stream, total CPU"), "{p2p}");
        // Passes 200, 250, 150: median 200, range 100 = ±25%.
        assert!(p2p.contains("pipe              200 ±25%"), "{p2p}");
        assert!(p2p.contains("uring-ipc / pipe     3.00x"), "{p2p}");
        assert!(ts[1].title.contains("msgs/s"));
        let pp = ts[2].render_text();
        assert!(
            pp.contains("pipe       20.0/60.0 ±25%  40.0/120.0 ±25%"),
            "{pp}"
        );
        let b = ts[3].render_text();
        assert!(b.starts_with("Broadcast 32KiB, total CPU"), "{b}");
        assert!(b.contains("pipe       1000 ±25%  27000 ±25%  27.0x"), "{b}");
        assert!(b.contains("uring-ipc   900 ±25%   1800 ±25%  2.00x"), "{b}");
        let d = ts[5].render_text();
        assert!(d.contains("broadcast/uring-ipc/32KiB/16r"), "{d}");
    }

    #[test]
    fn tcg_is_flagged_everywhere() {
        let r = run("tcg");
        let t = text(&r, None);
        assert!(t.starts_with("*** TCG"));
        assert!(t.trim_end().ends_with("***"));
        assert!(tables(&r).iter().all(|t| t.title.contains("[TCG]")));
        assert!(charts(&r).iter().all(|(_, c)| c.banner.contains("TCG")));
        let md = markdown(&r, None, &["a.svg".into()]);
        assert!(md.contains("**Warning: this run used TCG"));
        assert!(md.contains("![a.svg](a.svg)"));
        assert!(md.contains("SKIP (vm) `p2p-stream/posix-mq/64B`: no mqueue"));
        let k = run("kvm");
        assert!(!text(&k, None).contains("TCG"));
        assert!(!markdown(&k, None, &[]).contains("TCG"));
    }

    #[test]
    fn charts_per_scenario() {
        let c = charts(&run("kvm"));
        let names: Vec<&str> = c.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "vm-latency-vs-size.svg",
                "vm-p2p-total-cpu-vs-size.svg",
                "vm-p2p-throughput-vs-size.svg",
                "vm-broadcast-32KiB-total-cpu-vs-receivers.svg",
                "vm-broadcast-32KiB-throughput-vs-receivers.svg",
            ]
        );
        // p50 and p99 per mechanism.
        assert_eq!(c[0].1.series.len(), 2);
        assert_eq!(
            c[0].1.series[1].points,
            vec![(64.0, 60_000.0), (32768.0, 120_000.0)]
        );
    }

    #[test]
    fn host_section() {
        let mut h = run("native");
        h.meta.environment = "host".into();
        let md = markdown(&run("kvm"), Some(&h), &[]);
        assert!(md.contains("## Baselines on the host kernel"));
        assert!(md.contains("Conditions (host)"));
    }
}
