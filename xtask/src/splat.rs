//! Kernel log splat detection: anything that means the kernel found a bug.

/// Substrings that start a splat. Each one is printed only when the kernel
/// (or one of its debug checkers) reports a real problem; boot banners such
/// as "KernelAddressSanitizer initialized" deliberately do not match.
const MARKERS: &[&str] = &[
    "BUG:",          // BUG: KASAN:, BUG: sleeping function called ..., BUG: unable to handle
    "WARNING:",      // WARN_ON, and lockdep: "WARNING: possible circular locking ..."
    "kernel BUG at", // BUG_ON
    "Oops:",         // oops header
    "general protection fault", // GPF
    "Kernel panic",  // panic
    "UBSAN:",        // undefined behaviour sanitizer
    "detected stall", // rcu: INFO: rcu_sched detected stalls / self-detected stall
    "blocked for more than", // hung task detector
    "ODEBUG:",       // debugobjects
    "list_add corruption", // DEBUG_LIST
    "list_del corruption", // DEBUG_LIST
    "Unable to handle kernel", // generic fault message
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splat {
    /// The line that matched.
    pub headline: String,
    /// The matched line and what followed it, up to the end of the report.
    pub text: String,
}

/// Strip the `[    1.234567] ` printk timestamp, if any.
fn strip_time(line: &str) -> &str {
    if line.starts_with('[') {
        if let Some(i) = line.find("] ") {
            return &line[i + 2..];
        }
    }
    line
}

pub fn find(log: &str) -> Vec<Splat> {
    let lines: Vec<&str> = log.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = strip_time(lines[i]);
        if MARKERS.iter().any(|m| l.contains(m)) {
            let start = i;
            let mut end = i + 1;
            // Take the report body: until its end marker or 60 lines.
            while end < lines.len() && end - start < 60 {
                let b = strip_time(lines[end]);
                end += 1;
                if b.contains("---[ end trace") || (b.starts_with("=====") && end - start > 2) {
                    break;
                }
            }
            out.push(Splat {
                headline: l.to_string(),
                text: lines[start..end].join("\n"),
            });
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_boot_log_has_no_splat() {
        let log = "[    0.000000] Linux version 6.12.117-uring-ipc-debug\n\
                   [    0.100000] kasan: KernelAddressSanitizer initialized (generic)\n\
                   [    0.200000] Lock dependency validator: Copyright (c) 2006 Red Hat, Inc.\n\
                   [    0.300000] rcu: Hierarchical RCU implementation.\n\
                   [    1.000000] Run /init as init process\n";
        assert!(find(log).is_empty());
    }

    #[test]
    fn finds_kasan_report() {
        let log = "[ 5.0] ==================================================================\n\
                   [ 5.1] BUG: KASAN: slab-use-after-free in io_ipc_recv+0x10/0x20\n\
                   [ 5.2] Read of size 8 at addr ffff888001234567 by task t/99\n\
                   [ 5.3] ==================================================================\n\
                   [ 6.0] later line\n";
        let s = find(log);
        assert_eq!(s.len(), 1);
        assert!(s[0].headline.starts_with("BUG: KASAN: slab-use-after-free"));
        assert!(s[0].text.contains("Read of size 8"));
        assert!(!s[0].text.contains("later line"));
    }

    #[test]
    fn finds_lockdep_warn_rcu_and_hung_task() {
        for (line, want) in [
            (
                "[1.0] WARNING: possible circular locking dependency detected",
                "circular",
            ),
            (
                "[1.0] WARNING: CPU: 1 PID: 80 at io_uring/ipc.c:120 io_ipc_send+0x1/0x2",
                "ipc.c",
            ),
            (
                "[1.0] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
                "stalls",
            ),
            (
                "[1.0] INFO: task kworker/0:1:12 blocked for more than 120 seconds.",
                "blocked",
            ),
            (
                "[1.0] Oops: general protection fault, probably for non-canonical address",
                "Oops",
            ),
            ("[1.0] kernel BUG at ipc/mqueue.c:300!", "mqueue"),
            (
                "[1.0] UBSAN: shift-out-of-bounds in io_uring/ipc.c:10:5",
                "UBSAN",
            ),
        ] {
            let s = find(line);
            assert_eq!(s.len(), 1, "{line}");
            assert!(s[0].headline.contains(want));
        }
    }

    #[test]
    fn one_report_one_splat() {
        let log = "WARNING: CPU: 0 PID: 1 at x.c:1 f\nCall Trace:\n <TASK>\n f+0x1\n </TASK>\n---[ end trace 0000000000000000 ]---\nWARNING: second\n";
        let s = find(log);
        assert_eq!(s.len(), 2);
        assert!(s[0].text.ends_with("---[ end trace 0000000000000000 ]---"));
    }
}
