//! The performance targets of the io_uring IPC series, evaluated as ratios
//! inside one run.

use crate::model::{fmt_size, Run, Scenario};
use crate::stats::ratio;
use crate::table::{fmt_ratio, Table};

pub const URING: &str = "uring-ipc";

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// The ratio must be at most this.
    AtMost(f64),
    /// The ratio must be strictly below this.
    Below(f64),
    /// The ratio must be at least this.
    AtLeast(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Met,
    /// Missed by this factor (> 1: how far the ratio is on the wrong side).
    Missed(f64),
    NotMeasured(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub goal: String,
    /// How the ratio is formed.
    pub ratio_of: String,
    pub bound: Bound,
    pub measured: Option<f64>,
    pub verdict: Verdict,
}

pub fn judge(measured: f64, bound: Bound) -> Verdict {
    match bound {
        Bound::AtMost(l) if measured <= l => Verdict::Met,
        Bound::Below(l) if measured < l => Verdict::Met,
        Bound::AtMost(l) | Bound::Below(l) => Verdict::Missed(measured / l),
        Bound::AtLeast(l) if measured >= l => Verdict::Met,
        Bound::AtLeast(l) => Verdict::Missed(l / measured),
    }
}

fn cost(run: &Run, s: Scenario, mech: &str, size: u32, r: u32) -> Result<f64, String> {
    run.find(s, mech, size, r)
        .map(|m| m.sender_cpu_ns)
        .ok_or_else(|| format!("{} {mech} {} x{r} not measured", s.id(), fmt_size(size)))
}

fn outcome(goal: String, ratio_of: String, bound: Bound, value: Result<f64, String>) -> Outcome {
    match value {
        Ok(v) => Outcome {
            goal,
            ratio_of,
            bound,
            measured: Some(v),
            verdict: judge(v, bound),
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

fn div(a: Result<f64, String>, b: Result<f64, String>) -> Result<f64, String> {
    let (a, b) = (a?, b?);
    ratio(a, b).ok_or_else(|| "a zero or invalid figure".into())
}

/// Fan-out sizes the run measured.
fn fan_sizes(run: &Run, s: Scenario) -> Vec<u32> {
    let mut v: Vec<u32> = run
        .results
        .iter()
        .filter(|m| m.scenario == s)
        .map(|m| m.size)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Every target of the issue, on the sender-side CPU cost per message.
pub fn evaluate(run: &Run) -> Vec<Outcome> {
    use Scenario::*;
    let mut v = vec![outcome(
        "unicast 64B sender cost within 1.5x of pipe".into(),
        "uring-ipc / pipe, p2p stream 64B".into(),
        Bound::AtMost(1.5),
        div(
            cost(run, P2pStream, URING, 64, 1),
            cost(run, P2pStream, "pipe", 64, 1),
        ),
    )];
    for size in [16384, 32768] {
        v.push(outcome(
            format!(
                "unicast {} sender cost no worse than shm+eventfd",
                fmt_size(size)
            ),
            format!("uring-ipc / shm-eventfd, p2p stream {}", fmt_size(size)),
            Bound::AtMost(1.0),
            div(
                cost(run, P2pStream, URING, size, 1),
                cost(run, P2pStream, "shm-eventfd", size, 1),
            ),
        ));
    }
    let mut bsizes = fan_sizes(run, Broadcast);
    if bsizes.is_empty() {
        bsizes = vec![64, 32768];
    }
    for &size in &bsizes {
        v.push(outcome(
            format!(
                "broadcast {}: sender cost grows less than 4x from 1 to 16 receivers",
                fmt_size(size)
            ),
            format!("uring-ipc broadcast {}: 16 / 1 receivers", fmt_size(size)),
            Bound::Below(4.0),
            div(
                cost(run, Broadcast, URING, size, 16),
                cost(run, Broadcast, URING, size, 1),
            ),
        ));
    }
    v.push(outcome(
        "broadcast 16 receivers x 32KiB at least 8x cheaper than pipe".into(),
        "pipe / uring-ipc, broadcast 32KiB, 16 receivers".into(),
        Bound::AtLeast(8.0),
        div(
            cost(run, Broadcast, "pipe", 32768, 16),
            cost(run, Broadcast, URING, 32768, 16),
        ),
    ));
    let mut msizes = fan_sizes(run, Multicast);
    if msizes.is_empty() {
        msizes = vec![64, 32768];
    }
    for &size in &msizes {
        v.push(outcome(
            format!(
                "multicast {}: sender cost grows less than 2x from 1 to 16 receivers",
                fmt_size(size)
            ),
            format!("uring-ipc multicast {}: 16 / 1 receivers", fmt_size(size)),
            Bound::Below(2.0),
            div(
                cost(run, Multicast, URING, size, 16),
                cost(run, Multicast, URING, size, 1),
            ),
        ));
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
        Verdict::NotMeasured(why) => format!("not measured ({why})"),
    }
}

pub fn table(outcomes: &[Outcome]) -> Table {
    let mut t = Table::new(
        "Performance targets (sender CPU ns/msg, ratios inside this run)",
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
            o.measured.map(fmt_ratio).unwrap_or_else(|| "-".into()),
            bound_text(o.bound),
            verdict_text(&o.verdict),
        ]);
    }
    let met = outcomes
        .iter()
        .filter(|o| o.verdict == Verdict::Met)
        .count();
    let missed = outcomes
        .iter()
        .filter(|o| matches!(o.verdict, Verdict::Missed(_)))
        .count();
    t.notes.push(format!(
        "{met} met, {missed} missed, {} not measured",
        outcomes.len() - met - missed
    ));
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::{point, sample_meta};
    use crate::model::Scenario::*;

    #[test]
    fn verdicts() {
        assert_eq!(judge(1.4, Bound::AtMost(1.5)), Verdict::Met);
        assert_eq!(judge(1.5, Bound::AtMost(1.5)), Verdict::Met);
        assert_eq!(judge(3.0, Bound::AtMost(1.5)), Verdict::Missed(2.0));
        assert_eq!(judge(4.0, Bound::Below(4.0)), Verdict::Missed(1.0));
        assert_eq!(judge(8.7, Bound::Below(4.0)), Verdict::Missed(8.7 / 4.0));
        assert_eq!(judge(9.0, Bound::AtLeast(8.0)), Verdict::Met);
        assert_eq!(judge(2.0, Bound::AtLeast(8.0)), Verdict::Missed(4.0));
    }

    #[test]
    fn evaluates_a_run() {
        let run = Run {
            meta: sample_meta("kvm"),
            results: vec![
                point(P2pStream, "pipe", 64, 1, 212.0),
                point(P2pStream, URING, 64, 1, 632.0),
                point(P2pStream, "shm-eventfd", 32768, 1, 4000.0),
                point(P2pStream, URING, 32768, 1, 3000.0),
                point(Broadcast, URING, 32768, 1, 1000.0),
                point(Broadcast, URING, 32768, 16, 8700.0),
                point(Broadcast, "pipe", 32768, 16, 100_000.0),
                point(Multicast, URING, 64, 1, 500.0),
                point(Multicast, URING, 64, 16, 600.0),
            ],
            skipped: vec![],
            failed: vec![],
        };
        let o = evaluate(&run);
        let find = |g: &str| o.iter().find(|x| x.goal.starts_with(g)).unwrap();
        let u64b = find("unicast 64B");
        assert!((u64b.measured.unwrap() - 632.0 / 212.0).abs() < 1e-9);
        assert!(
            matches!(u64b.verdict, Verdict::Missed(by) if (by - 632.0 / 212.0 / 1.5).abs() < 1e-9)
        );
        assert_eq!(find("unicast 32KiB").verdict, Verdict::Met);
        assert!(matches!(
            find("unicast 16KiB").verdict,
            Verdict::NotMeasured(_)
        ));
        assert!(matches!(
            find("broadcast 32KiB: sender").verdict,
            Verdict::Missed(_)
        ));
        assert_eq!(find("broadcast 16 receivers").verdict, Verdict::Met);
        assert_eq!(find("multicast 64B").verdict, Verdict::Met);
        let t = table(&o).render_text();
        assert!(t.contains("MISSED by 1.99x"), "{t}");
        assert!(t.contains("3 met, 2 missed, 1 not measured"), "{t}");
    }
}
