//! KTAP parsing on the host: count the cases of each selftest binary.
//!
//! Each binary's own output is KTAP v1 at indentation 0 (the guest runner
//! stores it unindented in <results>/<name>.ktap). A whole-binary skip is a
//! plan of `1..0 # SKIP reason`.

use crate::results::{Exit, Outcome};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    pub number: u32,
    pub name: String,
    pub outcome: Outcome,
    /// What follows `SKIP`, exactly when the outcome is [`Outcome::Skip`].
    pub skip_reason: Option<String>,
}

/// Parse one result line: `ok 3 name`, `not ok 4 name # reason`,
/// `ok 5 name # SKIP why`.
pub fn parse_result(line: &str) -> Option<CaseResult> {
    let (ok, rest) = if let Some(r) = line.strip_prefix("ok ") {
        (true, r)
    } else if let Some(r) = line.strip_prefix("not ok ") {
        (false, r)
    } else {
        return None;
    };
    let (num, rest) = match rest.split_once(' ') {
        Some((n, r)) => (n, r),
        None => (rest, ""),
    };
    let number: u32 = num.parse().ok()?;
    // The directive follows " # ", or a bare "# " when the case has no name
    // (`ok 2 # SKIP why`, as some kselftests print).
    let (name, directive) = if let Some(d) = rest.strip_prefix('#') {
        ("", Some(d.trim()))
    } else {
        match rest.split_once(" # ") {
            Some((n, d)) => (n.trim(), Some(d.trim())),
            None => (rest.trim_end_matches(" #").trim(), None),
        }
    };
    let skip = directive.and_then(|d| {
        let upper = d.to_ascii_uppercase();
        upper.starts_with("SKIP").then(|| d[4..].trim().to_string())
    });
    let (outcome, skip_reason) = match (ok, skip) {
        (true, Some(reason)) => (Outcome::Skip, Some(reason)),
        (true, None) => (Outcome::Pass, None),
        (false, _) => (Outcome::Fail, None),
    };
    Some(CaseResult {
        number,
        name: name.to_string(),
        outcome,
        skip_reason,
    })
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Human-readable reasons for failures not visible as `not ok` lines.
    pub problems: Vec<String>,
}

impl Tally {
    pub fn add(&mut self, o: &Tally) {
        self.passed += o.passed;
        self.failed += o.failed;
        self.skipped += o.skipped;
        self.problems.extend(o.problems.iter().cloned());
    }
}

/// Count one binary's cases, cross-checked against its plan and exit status
/// so that a crash, a hang or a lying exit code cannot pass unnoticed.
pub fn tally_binary(name: &str, ktap: &str, exit: &Exit) -> Tally {
    let mut t = Tally::default();
    let mut plan: Option<usize> = None;
    let mut whole_skip: Option<String> = None;
    let mut results = 0usize;
    for line in ktap.lines() {
        if let Some(p) = line.strip_prefix("1..") {
            let (n, dir) = match p.split_once('#') {
                Some((n, d)) => (n.trim(), Some(d.trim())),
                None => (p.trim(), None),
            };
            plan = n.parse().ok();
            if plan == Some(0) {
                whole_skip = Some(
                    dir.unwrap_or("")
                        .trim_start_matches("SKIP")
                        .trim()
                        .to_string(),
                );
            }
            continue;
        }
        if let Some(c) = parse_result(line) {
            results += 1;
            match c.outcome {
                Outcome::Pass => t.passed += 1,
                Outcome::Fail => t.failed += 1,
                Outcome::Skip => t.skipped += 1,
            }
        }
    }
    if let Some(reason) = whole_skip {
        if *exit == Exit::Code(4) || *exit == Exit::Code(0) {
            t.skipped += 1;
        } else {
            t.failed += 1;
            t.problems.push(format!(
                "{name}: skipped ({reason}) but ended with {exit:?}"
            ));
        }
        return t;
    }
    match plan {
        None => {
            t.failed += 1;
            t.problems
                .push(format!("{name}: no KTAP plan in its output ({exit:?})"));
        }
        Some(n) if results < n => {
            t.failed += n - results;
            t.problems.push(format!(
                "{name}: {} of {n} planned cases did not report ({exit:?})",
                n - results
            ));
        }
        Some(n) if results > n => {
            t.failed += 1;
            t.problems
                .push(format!("{name}: {results} results for a plan of {n}"));
        }
        _ => {}
    }
    match exit {
        Exit::Code(0) | Exit::Code(4) if t.failed == 0 => {}
        Exit::Code(1) if t.failed > 0 => {}
        Exit::Code(c) if t.failed == 0 => {
            t.failed += 1;
            t.problems
                .push(format!("{name}: exit status {c} although no case failed"));
        }
        Exit::Code(_) => {}
        Exit::Signal(s) => {
            t.failed += 1;
            t.problems.push(format!("{name}: killed by signal {s}"));
        }
        Exit::Timeout(secs) => {
            t.failed += 1;
            t.problems
                .push(format!("{name}: timed out after {secs}s and was killed"));
        }
        Exit::Hang(secs) => {
            t.failed += 1;
            t.problems.push(format!(
                "{name}: still running after {secs}s; the guest was killed"
            ));
        }
        Exit::VmDied => {
            t.failed += 1;
            t.problems
                .push(format!("{name}: never finished (the VM stopped first)"));
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_result_lines() {
        let skip = |r: &str| (Outcome::Skip, Some(r.to_string()));
        let c = parse_result("ok 1 release_matches").unwrap();
        assert_eq!(
            (c.number, c.name.as_str(), c.outcome, c.skip_reason),
            (1, "release_matches", Outcome::Pass, None)
        );
        let c = parse_result("not ok 2 peek_order # expected 3, got 4").unwrap();
        assert_eq!((c.name.as_str(), c.outcome), ("peek_order", Outcome::Fail));
        let c = parse_result("ok 3 compat # SKIP no 32-bit toolchain").unwrap();
        assert_eq!((c.outcome, c.skip_reason), skip("no 32-bit toolchain"));
        let c = parse_result("ok 4 x # skip lower").unwrap();
        assert_eq!((c.outcome, c.skip_reason), skip("lower"));
        let c = parse_result("ok 5 # SKIP unnamed").unwrap();
        assert_eq!(
            (c.number, c.name.as_str(), (c.outcome, c.skip_reason)),
            (5, "", skip("unnamed"))
        );
        let c = parse_result("not ok 6 # TIMEOUT").unwrap();
        assert_eq!((c.name.as_str(), c.outcome), ("", Outcome::Fail));
        assert!(parse_result("# ok 1 comment").is_none());
        assert!(parse_result("okay 1 x").is_none());
        assert!(parse_result("ok x name").is_none());
        assert!(parse_result("    ok 1 nested").is_none());
    }

    const GOOD: &str = "KTAP version 1\n1..3\nok 1 a\nok 2 b # SKIP nope\nnot ok 3 c\n# totals\n";

    #[test]
    fn counts_cases() {
        let t = tally_binary("t", GOOD, &Exit::Code(1));
        assert_eq!((t.passed, t.failed, t.skipped), (1, 1, 1));
        assert!(t.problems.is_empty());
    }

    #[test]
    fn whole_binary_skip() {
        let t = tally_binary(
            "t",
            "KTAP version 1\n1..0 # SKIP no io_uring\n",
            &Exit::Code(4),
        );
        assert_eq!((t.passed, t.failed, t.skipped), (0, 0, 1));
    }

    #[test]
    fn crash_mid_run_fails_missing_cases() {
        let t = tally_binary("t", "KTAP version 1\n1..4\nok 1 a\n", &Exit::Signal(11));
        assert_eq!((t.passed, t.failed), (1, 4));
        assert_eq!(t.problems.len(), 2);
    }

    #[test]
    fn exit_status_must_agree() {
        let t = tally_binary("t", "KTAP version 1\n1..1\nok 1 a\n", &Exit::Code(1));
        assert_eq!(t.failed, 1);
        let t = tally_binary("t", "KTAP version 1\n1..1\nok 1 a\n", &Exit::Code(0));
        assert_eq!(t.failed, 0);
    }

    #[test]
    fn timeout_and_missing_fail() {
        let t = tally_binary("t", "KTAP version 1\n1..1\nok 1 a\n", &Exit::Timeout(60));
        assert_eq!(t.failed, 1);
        assert!(t.problems[0].contains("timed out"));
        let t = tally_binary("t", "", &Exit::VmDied);
        assert_eq!(t.failed, 2);
        let t = tally_binary("t", "KTAP version 1\n1..1\nok 1 a\n", &Exit::Hang(90));
        assert_eq!(t.failed, 1);
        assert!(t.problems[0].contains("still running after 90s"));
    }
}
