//! Tables, plots and the markdown report of a run.

use crate::model::{fmt_size, Meta, Run, Scenario};
use crate::stats::ratio;
use crate::svg::{Chart, Series};
use crate::table::{fmt_ns, fmt_ratio, fmt_us, Table};
use crate::targets::{self, URING};

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

/// The terminal/markdown tables of a run, one per scenario (and size).
pub fn tables(run: &Run) -> Vec<Table> {
    let mut out = Vec::new();
    let tag = if run.meta.is_tcg() { " [TCG]" } else { "" };
    let env = &run.meta.environment;

    let s = Scenario::P2pStream;
    let zs = sizes(run, s);
    if !zs.is_empty() {
        let mut t = Table::new(
            format!("Point-to-point stream, sender CPU ns/msg ({env}){tag}"),
            header("mechanism", zs.iter().map(|&z| fmt_size(z))),
        );
        for mech in mechanisms(run, s) {
            t.row(header(
                &mech,
                zs.iter().map(|&z| {
                    run.find(s, &mech, z, 1)
                        .map(|m| fmt_ns(m.sender_cpu_ns))
                        .unwrap_or_else(|| "-".into())
                }),
            ));
        }
        for base in ["pipe", "shm-eventfd"] {
            let cells: Vec<String> = zs
                .iter()
                .map(|&z| {
                    let u = run.find(s, URING, z, 1).map(|m| m.sender_cpu_ns);
                    let b = run.find(s, base, z, 1).map(|m| m.sender_cpu_ns);
                    match (u, b) {
                        (Some(u), Some(b)) => ratio(u, b).map(fmt_ratio).unwrap_or("-".into()),
                        _ => "-".into(),
                    }
                })
                .collect();
            if cells.iter().any(|c| c != "-") {
                t.row(header(&format!("{URING} / {base}"), cells));
            }
        }
        t.notes.push(
            "CPU time of the sending thread over the timed stream, per message; lower is better"
                .into(),
        );
        out.push(t);
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
                    run.find(s, &mech, z, 1)
                        .and_then(|m| m.latency.as_ref())
                        .map(|l| format!("{}/{}", fmt_us(l.p50), fmt_us(l.p99)))
                        .unwrap_or_else(|| "-".into())
                }),
            ));
        }
        t.notes
            .push("HDR histogram over the timed round trips; lower is better".into());
        out.push(t);
    }

    for (s, what) in [
        (
            Scenario::Broadcast,
            "every receiver gets every message; baselines write one copy per receiver",
        ),
        (
            Scenario::Multicast,
            "each message goes to one receiver; baselines are one shared work queue",
        ),
    ] {
        for z in sizes(run, s) {
            let rs = receivers(run, s, z);
            let (first, last) = (rs[0], *rs.last().expect("not empty"));
            let mut t = Table::new(
                format!(
                    "{} {}, sender CPU ns/msg by receivers ({env}){tag}",
                    if s == Scenario::Broadcast {
                        "Broadcast"
                    } else {
                        "Multicast"
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
                let cost = |r: u32| run.find(s, &mech, z, r).map(|m| m.sender_cpu_ns);
                let growth = match (cost(first), cost(last)) {
                    (Some(a), Some(b)) if last > first => {
                        ratio(b, a).map(fmt_ratio).unwrap_or("-".into())
                    }
                    _ => "-".into(),
                };
                t.row(header(
                    &mech,
                    rs.iter()
                        .map(|&r| cost(r).map(fmt_ns).unwrap_or_else(|| "-".into()))
                        .chain([growth]),
                ));
            }
            t.notes.push(format!(
                "{what}; last column: slowdown from {first} to {last} receivers"
            ));
            out.push(t);
        }
    }
    out
}

fn sizes_ticks(zs: &[u32]) -> Vec<(f64, String)> {
    zs.iter().map(|&z| (z as f64, fmt_size(z))).collect()
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
            for (pct, dashed) in [("p50", false), ("p99", true)] {
                series.push(Series {
                    name: format!("{mech} {pct}"),
                    points: zs
                        .iter()
                        .filter_map(|&z| {
                            let l = run.find(s, mech, z, 1)?.latency.as_ref()?;
                            Some((z as f64, if dashed { l.p99 } else { l.p50 } as f64))
                        })
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
        let series = mechanisms(run, s)
            .iter()
            .enumerate()
            .map(|(i, mech)| Series {
                name: mech.clone(),
                points: zs
                    .iter()
                    .filter_map(|&z| Some((z as f64, run.find(s, mech, z, 1)?.sender_cpu_ns)))
                    .collect(),
                dashed: false,
                color: i,
            })
            .collect();
        out.push((
            format!("{env}-sender-cost-vs-size.svg"),
            Chart {
                title: format!("Point-to-point sender cost vs message size ({env})"),
                banner: banner.clone(),
                x_label: "message size".into(),
                y_label: "sender CPU ns/msg".into(),
                x_ticks: sizes_ticks(&zs),
                series,
            },
        ));
    }
    for s in [Scenario::Broadcast, Scenario::Multicast] {
        for z in sizes(run, s) {
            let rs = receivers(run, s, z);
            let series = mechanisms(run, s)
                .iter()
                .enumerate()
                .map(|(i, mech)| Series {
                    name: mech.clone(),
                    points: rs
                        .iter()
                        .filter_map(|&r| Some((r as f64, run.find(s, mech, z, r)?.sender_cpu_ns)))
                        .collect(),
                    dashed: false,
                    color: i,
                })
                .collect();
            out.push((
                format!("{env}-{}-{}-vs-receivers.svg", s.id(), fmt_size(z)),
                Chart {
                    title: format!(
                        "{} {}: sender cost vs receivers ({env})",
                        s.id(),
                        fmt_size(z)
                    ),
                    banner: banner.clone(),
                    x_label: "receivers".into(),
                    y_label: "sender CPU ns/msg".into(),
                    x_ticks: rs.iter().map(|&r| (r as f64, r.to_string())).collect(),
                    series,
                },
            ));
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
                "{}..{} per measurement (at most {} MiB per receiver), after a {}-message check pass",
                c.stream_min_msgs,
                c.stream_msgs,
                c.stream_bytes >> 20,
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
                "SINGLE_ISSUER|DEFER_TASKRUN, {} SENDs per submit, {} RECVs in flight, {}-slot channels",
                m.uring_send_batch, m.uring_recv_depth, m.ring_entries
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
            format!("{} per stream measurement, the cheapest reported", m.repeats),
        ),
        ("host load average", m.host_load.clone()),
        ("suite time", format!("{:.1} s", m.elapsed_s)),
    ];
    for (k, v) in rows {
        t.row(vec![k.into(), v]);
    }
    t
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
process; every endpoint is created in the thread that uses it. Sender cost
is the CPU time (CLOCK_THREAD_CPUTIME_ID) of the sending thread over a
timed stream, divided by the number of messages; the sender waits (blocks)
when the receivers fall behind, which costs it no CPU time. Baselines use
one system call per message (write(2), mq_send(3), or a copy into a shared
ring plus an eventfd write); fan-out baselines send one copy per receiver,
multicast baselines are one pipe or datagram socket read by all receivers.
io_uring IPC rings use IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
senders queue a batch of IPC_SEND (IOIPC_SEND_WAIT) and submit it with one
io_uring_enter; receivers keep several blocking IPC_RECV in flight. No
variant polls. Before every timed stream a check pass sends messages whose
every byte the receivers verify; in the timed pass receivers check each
message's length and sequence number, and after it every receiver must have
got exactly the messages it was owed. Ping-pong verifies every reply.";

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
        assert_eq!(ts.len(), 3);
        let p2p = ts[0].render_text();
        assert!(p2p.contains("uring-ipc / pipe  3.00x"), "{p2p}");
        let pp = ts[1].render_text();
        assert!(pp.contains("pipe       20.0/60.0  40.0/120.0"), "{pp}");
        let b = ts[2].render_text();
        assert!(b.starts_with("Broadcast 32KiB"), "{b}");
        assert!(b.contains("pipe       1000  27000  27.0x"), "{b}");
        assert!(b.contains("uring-ipc   900   1800  2.00x"), "{b}");
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
                "vm-sender-cost-vs-size.svg",
                "vm-broadcast-32KiB-vs-receivers.svg"
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
