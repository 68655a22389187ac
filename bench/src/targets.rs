//! The performance targets of the io_uring IPC series, evaluated as ratios
//! inside one run. A ratio is formed per round (pass i of one measurement
//! against pass i of the other, which ran in the same round), and a target
//! is met or missed only when every round's ratio is on the same side of
//! the bound; otherwise it is undecided.

use crate::model::{fmt_size, paired_ratios, Metric, Run, Scenario, Spread};
use crate::table::{fmt_ratio, Table};

/// io_uring IPC at batch 1: one IPC_SEND per io_uring_enter, one IPC_RECV
/// in flight per receiver (like for like with one system call per message).
pub const URING: &str = "uring-ipc";
/// io_uring IPC batched: 16 IPC_SENDs per io_uring_enter, 8 IPC_RECVs in
/// flight per receiver.
pub const URING_BATCHED: &str = "uring-ipc-b16";
/// Senders as in `URING_BATCHED`; each receiver has one multishot IPC_RECV
/// into a provided buffer ring instead of RECVs in flight.
pub const URING_MSHOT: &str = "uring-ipc-mshot";

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// The ratio must be at most this.
    AtMost(f64),
    /// The ratio must be strictly below this.
    Below(f64),
    /// The ratio must be at least this.
    AtLeast(f64),
}

impl Bound {
    pub fn holds(self, r: f64) -> bool {
        match self {
            Bound::AtMost(l) => r <= l,
            Bound::Below(l) => r < l,
            Bound::AtLeast(l) => r >= l,
        }
    }

    /// How far `r` is on the wrong side (> 1).
    fn miss(self, r: f64) -> f64 {
        match self {
            Bound::AtMost(l) | Bound::Below(l) => r / l,
            Bound::AtLeast(l) => l / r,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Every round's ratio meets the bound.
    Met,
    /// No round's ratio meets it; missed by this factor at the median.
    Missed(f64),
    /// Some rounds meet it, some do not: the ratio's spread straddles the
    /// bound.
    Undecided {
        lo: f64,
        hi: f64,
    },
    NotMeasured(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub goal: String,
    /// How the ratio is formed.
    pub ratio_of: String,
    pub bound: Bound,
    /// Median and range of the per-round ratios.
    pub measured: Option<Spread>,
    pub verdict: Verdict,
}

/// The verdict on per-round ratios.
pub fn judge(ratios: &[f64], bound: Bound) -> Verdict {
    let Some(s) = Spread::of(ratios.iter().copied()) else {
        return Verdict::NotMeasured("no pass of both measurements".into());
    };
    let ok = ratios.iter().filter(|&&r| bound.holds(r)).count();
    if ok == s.n {
        Verdict::Met
    } else if ok == 0 {
        Verdict::Missed(bound.miss(s.median))
    } else {
        Verdict::Undecided {
            lo: s.min,
            hi: s.max,
        }
    }
}

/// One cell of the run.
type Cell<'a> = (Scenario, &'a str, u32, u32);

fn cell_name((s, mech, size, r): Cell) -> String {
    match s {
        Scenario::P2pStream | Scenario::P2pPingpong => {
            format!("{} {mech} {}", s.id(), fmt_size(size))
        }
        _ => format!("{} {mech} {} x{r}", s.id(), fmt_size(size)),
    }
}

/// Per-round ratios of `metric` between two cells.
fn pair(run: &Run, metric: Metric, a: Cell, b: Cell) -> Result<Vec<f64>, String> {
    let find = |c: Cell| {
        run.find(c.0, c.1, c.2, c.3)
            .ok_or_else(|| format!("{} not measured", cell_name(c)))
    };
    let v = paired_ratios(find(a)?, find(b)?, metric);
    if v.is_empty() {
        return Err(format!(
            "no {} for both {} and {}",
            metric.name(),
            cell_name(a),
            cell_name(b)
        ));
    }
    Ok(v)
}

fn outcome(
    goal: String,
    ratio_of: String,
    bound: Bound,
    ratios: Result<Vec<f64>, String>,
) -> Outcome {
    match ratios {
        Ok(v) => Outcome {
            goal,
            ratio_of,
            bound,
            measured: Spread::of(v.iter().copied()),
            verdict: judge(&v, bound),
        },
        Err(why) => Outcome {
            goal,
            ratio_of,
            bound,
            measured: None,
            verdict: Verdict::NotMeasured(why),
        },
    }
}

/// Sizes of a scenario the run measured, or `default`.
fn sizes(run: &Run, s: Scenario, default: &[u32]) -> Vec<u32> {
    let mut v: Vec<u32> = run
        .results
        .iter()
        .filter(|m| m.scenario == s)
        .map(|m| m.size)
        .collect();
    v.sort_unstable();
    v.dedup();
    if v.is_empty() {
        default.to_vec()
    } else {
        v
    }
}

/// Batched baselines: non-io_uring-IPC mechanisms that send several
/// messages per system call (named `*-b<N>`).
pub fn is_batched_baseline(mech: &str) -> bool {
    !mech.starts_with(URING)
        && mech
            .rsplit_once("-b")
            .is_some_and(|(_, n)| n.parse::<u32>().is_ok())
}

/// Every target of the series. Cost targets are on total CPU per message
/// (the process and what it caused outside), unless the goal names
/// another figure.
pub fn evaluate(run: &Run) -> Vec<Outcome> {
    evaluate_on(run, Metric::TotalCpu)
}

/// The targets with their cost goals judged on `cost` (total CPU, or
/// under TCG guest instructions per message, which the host's load moves
/// far less); the other goals (latency, sender CPU, throughput) as they are.
pub fn evaluate_on(run: &Run, cost: Metric) -> Vec<Outcome> {
    use Metric::*;
    let what = match cost {
        Insns => "instructions",
        _ => "total CPU",
    };
    use Scenario::*;
    let mut v = Vec::new();
    let p2p = |mech| (P2pStream, mech, 64, 1);
    v.push(outcome(
        format!("unicast 64B at batch 1: {what} no worse than pipe"),
        "uring-ipc / pipe, p2p stream 64B".into(),
        Bound::AtMost(1.0),
        pair(run, cost, p2p(URING), p2p("pipe")),
    ));
    v.push(outcome(
        format!("unicast 64B at batch 1: {what} within 1.5x of pipe"),
        "uring-ipc / pipe, p2p stream 64B".into(),
        Bound::AtMost(1.5),
        pair(run, cost, p2p(URING), p2p("pipe")),
    ));
    v.push(outcome(
        format!("unicast 64B at batch 16: {what} at most 0.5x pipe at batch 1"),
        "uring-ipc-b16 / pipe, p2p stream 64B".into(),
        Bound::AtMost(0.5),
        pair(run, cost, p2p(URING_BATCHED), p2p("pipe")),
    ));
    let best_batched = run
        .results
        .iter()
        .filter(|m| m.scenario == P2pStream && m.size == 64 && is_batched_baseline(&m.mechanism))
        .filter_map(|m| Some((m.median(cost)?, m.mechanism.as_str())))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, name)| name);
    v.push(outcome(
        format!("unicast 64B at batch 16: {what} no worse than the best batched baseline"),
        format!(
            "uring-ipc-b16 / {}, p2p stream 64B",
            best_batched.unwrap_or("best batched baseline")
        ),
        Bound::AtMost(1.0),
        match best_batched {
            Some(b) => pair(run, cost, p2p(URING_BATCHED), p2p(b)),
            None => Err("no batched baseline measured".into()),
        },
    ));
    for size in [16384, 32768] {
        v.push(outcome(
            format!(
                "unicast {}: {what} no worse than shm+eventfd",
                fmt_size(size)
            ),
            format!("uring-ipc / shm-eventfd, p2p stream {}", fmt_size(size)),
            Bound::AtMost(1.0),
            pair(
                run,
                cost,
                (P2pStream, URING, size, 1),
                (P2pStream, "shm-eventfd", size, 1),
            ),
        ));
    }
    v.push(outcome(
        "ping-pong 64B: round trip p50 no worse than pipe".into(),
        "uring-ipc / pipe, ping-pong 64B p50".into(),
        Bound::AtMost(1.0),
        pair(
            run,
            RttP50,
            (P2pPingpong, URING, 64, 1),
            (P2pPingpong, "pipe", 64, 1),
        ),
    ));
    for size in sizes(run, Broadcast, &[64, 32768]) {
        v.push(outcome(
            format!(
                "broadcast {}: sender CPU grows less than 4x from 1 to 16 receivers",
                fmt_size(size)
            ),
            format!("uring-ipc broadcast {}: 16 / 1 receivers", fmt_size(size)),
            Bound::Below(4.0),
            pair(
                run,
                SenderCpu,
                (Broadcast, URING, size, 16),
                (Broadcast, URING, size, 1),
            ),
        ));
    }
    let b16 = |mech| (Broadcast, mech, 32768, 16);
    v.push(outcome(
        format!("broadcast 16 receivers x 32KiB: {what} at least 8x less than pipe"),
        "pipe / uring-ipc, broadcast 32KiB x16".into(),
        Bound::AtLeast(8.0),
        pair(run, cost, b16("pipe"), b16(URING)),
    ));
    v.push(outcome(
        "broadcast 16 receivers x 32KiB: end-to-end throughput at least 3x pipe".into(),
        "uring-ipc / pipe msgs/s, broadcast 32KiB x16".into(),
        Bound::AtLeast(3.0),
        pair(run, MsgsPerSec, b16(URING), b16("pipe")),
    ));
    v.push(outcome(
        format!("broadcast 16 receivers x 32KiB: {what} within 1.5x of the shm broadcast ring"),
        "uring-ipc / shm-bcast, broadcast 32KiB x16".into(),
        Bound::AtMost(1.5),
        pair(run, cost, b16(URING), b16("shm-bcast")),
    ));
    for size in sizes(run, UnicastAny, &[64]) {
        v.push(outcome(
            format!(
                "untargeted unicast {}: {what} per message at 16 receivers within 1.3x of 1",
                fmt_size(size)
            ),
            format!("uring-ipc unicast-any {}: 16 / 1 receivers", fmt_size(size)),
            Bound::AtMost(1.3),
            pair(
                run,
                cost,
                (UnicastAny, URING, size, 16),
                (UnicastAny, URING, size, 1),
            ),
        ));
    }
    for size in sizes(run, Multicast, &[64, 32768]) {
        v.push(outcome(
            format!(
                "multicast {}: {what} grows less than 2x from 1 to 16 receivers",
                fmt_size(size)
            ),
            format!("uring-ipc multicast {}: 16 / 1 receivers", fmt_size(size)),
            Bound::Below(2.0),
            pair(
                run,
                cost,
                (Multicast, URING, size, 16),
                (Multicast, URING, size, 1),
            ),
        ));
    }
    if cost != TotalCpu {
        // Only the cost goals, which are the ones that name `what`.
        v.retain(|o| o.goal.contains(what));
    }
    v
}

fn bound_text(b: Bound) -> String {
    match b {
        Bound::AtMost(l) => format!("<= {}", fmt_ratio(l)),
        Bound::Below(l) => format!("< {}", fmt_ratio(l)),
        Bound::AtLeast(l) => format!(">= {}", fmt_ratio(l)),
    }
}

pub fn verdict_text(v: &Verdict) -> String {
    match v {
        Verdict::Met => "MET".into(),
        Verdict::Missed(by) => format!("MISSED by {}", fmt_ratio(*by)),
        Verdict::Undecided { lo, hi } => {
            format!("UNDECIDED (spread {}-{})", fmt_ratio(*lo), fmt_ratio(*hi))
        }
        Verdict::NotMeasured(why) => format!("not measured ({why})"),
    }
}

/// "1.23x (1.10x-1.40x)": the median and the range of the ratios.
pub fn spread_text(s: &Spread) -> String {
    if s.n > 1 {
        format!(
            "{} ({}-{})",
            fmt_ratio(s.median),
            fmt_ratio(s.min),
            fmt_ratio(s.max)
        )
    } else {
        fmt_ratio(s.median)
    }
}

pub fn table(outcomes: &[Outcome]) -> Table {
    table_titled(
        outcomes,
        "Performance targets (ratios inside this run: median of the per-round ratios, range in brackets)",
    )
}

pub fn table_titled(outcomes: &[Outcome], title: &str) -> Table {
    let mut t = Table::new(
        title,
        vec![
            "target".into(),
            "ratio".into(),
            "measured".into(),
            "bound".into(),
            "verdict".into(),
        ],
    );
    t.align_left = true;
    for o in outcomes {
        t.row(vec![
            o.goal.clone(),
            o.ratio_of.clone(),
            o.measured
                .as_ref()
                .map(spread_text)
                .unwrap_or_else(|| "-".into()),
            bound_text(o.bound),
            verdict_text(&o.verdict),
        ]);
    }
    let count = |f: &dyn Fn(&Verdict) -> bool| outcomes.iter().filter(|o| f(&o.verdict)).count();
    let met = count(&|v| *v == Verdict::Met);
    let missed = count(&|v| matches!(v, Verdict::Missed(_)));
    let undecided = count(&|v| matches!(v, Verdict::Undecided { .. }));
    t.notes.push(format!(
        "{met} met, {missed} missed, {undecided} undecided, {} not measured",
        outcomes.len() - met - missed - undecided
    ));
    t.notes.push(
        "MET / MISSED only when every round's ratio is on one side of the bound; UNDECIDED when the rounds disagree"
            .into(),
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::{point, point_passes, sample_meta};
    use crate::model::Scenario::*;

    #[test]
    fn verdicts_need_the_whole_spread() {
        assert_eq!(judge(&[1.4, 1.5, 1.2], Bound::AtMost(1.5)), Verdict::Met);
        assert_eq!(
            judge(&[3.0, 3.3, 2.7], Bound::AtMost(1.5)),
            Verdict::Missed(2.0)
        );
        assert_eq!(
            judge(&[1.4, 1.6, 1.45], Bound::AtMost(1.5)),
            Verdict::Undecided { lo: 1.4, hi: 1.6 }
        );
        assert_eq!(judge(&[4.0], Bound::Below(4.0)), Verdict::Missed(1.0));
        assert_eq!(judge(&[9.0, 8.0], Bound::AtLeast(8.0)), Verdict::Met);
        assert_eq!(judge(&[2.0], Bound::AtLeast(8.0)), Verdict::Missed(4.0));
        assert_eq!(
            judge(&[7.0, 9.0], Bound::AtLeast(8.0)),
            Verdict::Undecided { lo: 7.0, hi: 9.0 }
        );
        assert!(matches!(
            judge(&[], Bound::AtMost(1.0)),
            Verdict::NotMeasured(_)
        ));
        assert_eq!(
            verdict_text(&Verdict::Undecided { lo: 0.9, hi: 1.25 }),
            "UNDECIDED (spread 0.90x-1.25x)"
        );
    }

    #[test]
    fn batched_baselines_by_name() {
        assert!(is_batched_baseline("pipe-uring-b16"));
        assert!(!is_batched_baseline(URING_BATCHED));
        assert!(!is_batched_baseline("pipe"));
        assert!(!is_batched_baseline("shm-bcast"));
    }

    #[test]
    fn evaluates_a_run() {
        let run = Run {
            meta: sample_meta("kvm"),
            results: vec![
                point(P2pStream, "pipe", 64, 1, 212.0),
                point(P2pStream, URING, 64, 1, 632.0),
                point_passes(P2pStream, URING_BATCHED, 64, 1, &[80.0, 90.0, 70.0]),
                point_passes(P2pStream, "pipe-uring-b16", 64, 1, &[70.0, 100.0, 60.0]),
                point(P2pStream, "shm-eventfd", 32768, 1, 4000.0),
                point(P2pStream, URING, 32768, 1, 3000.0),
                point(Broadcast, URING, 32768, 1, 1000.0),
                point(Broadcast, URING, 32768, 16, 8700.0),
                point(Broadcast, "pipe", 32768, 16, 100_000.0),
                point(Multicast, URING, 64, 1, 500.0),
                point(Multicast, URING, 64, 16, 600.0),
                point(UnicastAny, URING, 64, 1, 500.0),
                point(UnicastAny, URING, 64, 16, 700.0),
            ],
            skipped: vec![],
            failed: vec![],
        };
        let o = evaluate(&run);
        let find = |g: &str| o.iter().find(|x| x.goal.starts_with(g)).unwrap();
        let u64b = find("unicast 64B at batch 1: total CPU within 1.5x");
        // Same spread on both sides: every round's ratio is 632/212.
        assert!((u64b.measured.unwrap().median - 632.0 / 212.0).abs() < 1e-9);
        assert!(
            matches!(u64b.verdict, Verdict::Missed(by) if (by - 632.0 / 212.0 / 1.5).abs() < 1e-9)
        );
        assert_eq!(
            find("unicast 64B at batch 16: total CPU at most").verdict,
            Verdict::Met
        );
        // 80/70, 90/100, 70/60: straddles 1.0.
        let best = find("unicast 64B at batch 16: total CPU no worse");
        assert!(best.ratio_of.contains("pipe-uring-b16"));
        assert!(matches!(best.verdict, Verdict::Undecided { .. }));
        assert_eq!(find("unicast 32KiB").verdict, Verdict::Met);
        assert!(matches!(
            find("unicast 16KiB").verdict,
            Verdict::NotMeasured(_)
        ));
        assert!(matches!(
            find("broadcast 32KiB: sender").verdict,
            Verdict::Missed(_)
        ));
        assert_eq!(
            find("broadcast 16 receivers x 32KiB: total CPU at least").verdict,
            Verdict::Met
        );
        assert_eq!(find("multicast 64B").verdict, Verdict::Met);
        // 700 / 500 = 1.4: over 1.3 by 1.08x.
        assert!(matches!(
            find("untargeted unicast 64B").verdict,
            Verdict::Missed(by) if (by - 1.4 / 1.3).abs() < 1e-9
        ));
        let t = table(&o).render_text();
        assert!(t.contains("MISSED by 1.99x"), "{t}");
        assert!(
            t.contains("5 met, 4 missed, 1 undecided, 3 not measured"),
            "{t}"
        );
    }

    #[test]
    fn cost_goals_judged_on_instructions() {
        let with = |m: crate::model::Measurement, insns: &[f64]| {
            let mut m = m;
            for (p, &i) in m.passes.iter_mut().zip(insns) {
                p.insns = Some(i);
            }
            m
        };
        let run = Run {
            meta: sample_meta("tcg"),
            results: vec![
                // Total CPU says uring-ipc is 3x pipe; instructions say 0.8x.
                with(point(P2pStream, "pipe", 64, 1, 200.0), &[5000.0; 3]),
                with(point(P2pStream, URING, 64, 1, 600.0), &[4000.0; 3]),
                point(P2pPingpong, "pipe", 64, 1, 100.0),
            ],
            skipped: vec![],
            failed: vec![],
        };
        let o = evaluate_on(&run, Metric::Insns);
        assert!(o.iter().all(|x| x.goal.contains("instructions")), "{o:?}");
        assert!(!o.iter().any(|x| x.goal.starts_with("ping-pong")));
        let g = o
            .iter()
            .find(|x| x.goal == "unicast 64B at batch 1: instructions no worse than pipe")
            .unwrap();
        assert_eq!(g.verdict, Verdict::Met);
        assert!((g.measured.unwrap().median - 0.8).abs() < 1e-9);
        let cpu = evaluate(&run);
        let g = cpu
            .iter()
            .find(|x| x.goal == "unicast 64B at batch 1: total CPU no worse than pipe")
            .unwrap();
        assert!(matches!(g.verdict, Verdict::Missed(_)));
    }
}
