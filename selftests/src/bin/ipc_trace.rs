//! ipc-trace: the BPF tracer attaches, counts a known workload exactly, and
//! leaves no program or link behind when it stops. Skips where the kernel
//! has no BPF, BTF, tracefs or the tracepoints.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ipc_trace::workload::{self, ChannelCounts, Config};
use ipc_trace::{Features, Options, Report, Tracer};
use liburing_ipc::ipc::Delivery;
use liburing_ipc::Error;
use selftests::{cases, check, check_eq, skip, Outcome, Suite, TestResult};

const CFG: Config = Config {
    messages: 16,
    receivers: 3,
    size: 100,
};

fn probe() -> Result<(), String> {
    // SAFETY: geteuid() cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("loading BPF programs needs root".into());
    }
    ipc_trace::probe().map(|_| ()).map_err(|e| e.to_string())
}

/// A tracer that sees only this process (each case runs in its own child).
fn own_tracer() -> Result<Tracer, Outcome> {
    // SAFETY: getpid() cannot fail.
    let pid = unsafe { libc::getpid() } as u32;
    Tracer::start(&Options { pid: Some(pid) }).map_err(|e| match e {
        ipc_trace::Error::Unsupported(why) => Outcome::Skip(why),
        e => Outcome::Fail(format!("starting the tracer: {e}")),
    })
}

fn need_ipc(f: &Features) -> TestResult {
    if !f.ipc_tracepoints {
        skip!("no io_uring:io_uring_ipc_send/recv tracepoints in this kernel");
    }
    Ok(())
}

fn workload_err(e: Error) -> Outcome {
    match e {
        Error::Unsupported(what) => Outcome::Skip(format!("{what} not supported by this kernel")),
        e => Outcome::Fail(format!("workload: {e}")),
    }
}

/// Ids of loaded programs and of the programs that links point at.
fn kernel_bpf_objects() -> (BTreeSet<u32>, BTreeSet<u32>) {
    let progs = libbpf_rs::query::ProgInfoIter::default()
        .map(|p| p.id)
        .collect();
    let linked = libbpf_rs::query::LinkInfoIter::default()
        .map(|l| l.prog_id)
        .collect();
    (progs, linked)
}

fn attach_and_detach_cleanly() -> TestResult {
    let tracer = own_tracer()?;
    let f = tracer.features().clone();
    let ids: BTreeSet<u32> = tracer.prog_ids().into_iter().collect();
    let expect = 2 * (f.ipc_tracepoints as usize + f.raw_syscalls as usize);
    check_eq!(ids.len(), expect);
    let names: BTreeSet<String> = libbpf_rs::query::ProgInfoIter::default()
        .filter(|p| ids.contains(&p.id))
        .map(|p| p.name.to_string_lossy().into_owned())
        .collect();
    for n in &names {
        check!(
            ipc_trace::PROG_NAMES.contains(&n.as_str()),
            "unexpected program name {n}"
        );
    }
    check_eq!(names.len(), expect);
    let (_, linked) = kernel_bpf_objects();
    for id in &ids {
        check!(
            linked.contains(id),
            "program {id} has no link: not attached"
        );
    }
    drop(tracer);
    // Program and link ids are released once the last reference is put,
    // which may be deferred a little (RCU).
    let t0 = Instant::now();
    loop {
        let (progs, linked) = kernel_bpf_objects();
        let left: Vec<&u32> = ids.iter().filter(|i| progs.contains(i)).collect();
        let links: Vec<&u32> = ids.iter().filter(|i| linked.contains(i)).collect();
        if left.is_empty() && links.is_empty() {
            break;
        }
        check!(
            t0.elapsed() < Duration::from_secs(5),
            "5 s after detaching: programs {left:?} still loaded, links to {links:?} remain"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Trace one channel of mode `d` and compare with what the workload did.
fn channel_counts_match(d: Delivery) -> TestResult {
    let tracer = own_tracer()?;
    let f = tracer.features().clone();
    need_ipc(&f)?;
    let want = workload::run_channel(&CFG, d).map_err(workload_err)?;
    let report = tracer.snapshot()?;
    drop(tracer);
    compare_channel(&report, &f, &want)
}

fn compare_channel(report: &Report, f: &Features, want: &ChannelCounts) -> TestResult {
    let entries = u64::from(CFG.messages.next_power_of_two());
    let receivers = if want.mode == "unicast" {
        1
    } else {
        u64::from(CFG.receivers)
    };
    // The workload itself, against the configuration.
    check_eq!(want.sent, entries);
    check_eq!(want.send_enobufs, 1);
    let copies = if want.mode == "broadcast" {
        receivers
    } else {
        1
    };
    check_eq!(want.received, entries * copies);
    check_eq!(want.recv_eagain, receivers);
    let Some(got) = report.channel(want.id) else {
        return Err(Outcome::Fail(format!(
            "no events for channel {}; report: {}",
            want.id,
            report.to_json()
        )));
    };
    check_eq!(report.channels.len(), 1);
    check_eq!(got.sent, want.sent);
    check_eq!(got.sent_bytes, want.sent_bytes);
    check_eq!(got.send_enobufs, want.send_enobufs);
    check_eq!(got.received, want.received);
    check_eq!(got.received_bytes, want.received_bytes);
    check_eq!(got.recv_eagain, want.recv_eagain);
    check_eq!(
        (
            got.send_epipe,
            got.send_other_errors,
            got.recv_epipe,
            got.recv_other_errors
        ),
        (0, 0, 0, 0)
    );
    if f.ipc_channel_flags {
        check_eq!(got.mode, want.mode);
        check_eq!(got.private, Some(false));
    } else {
        check_eq!(got.mode, "unknown");
    }
    if f.ipc_seq {
        // Every send completed before the first receive was submitted, so
        // each receive pairs with its send.
        check_eq!(got.latency_matched, want.received);
        check_eq!(got.latency_unmatched, 0);
        let h = report.latency(got.mode).expect("a histogram per mode");
        check_eq!(h.count, want.received);
        check_eq!(h.buckets.iter().map(|b| b.count).sum::<u64>(), h.count);
    } else {
        check_eq!(got.latency_matched + got.latency_unmatched, 0);
    }
    check_eq!(report.dropped, 0);
    Ok(())
}

fn unicast_counts_match() -> TestResult {
    channel_counts_match(Delivery::Unicast)
}

fn broadcast_counts_match() -> TestResult {
    channel_counts_match(Delivery::Broadcast)
}

fn multicast_counts_match() -> TestResult {
    channel_counts_match(Delivery::Multicast)
}

/// Send-to-receive latency needs the `seq` field of the new tracepoints.
fn latency_histograms_filled() -> TestResult {
    let tracer = own_tracer()?;
    let f = tracer.features().clone();
    need_ipc(&f)?;
    if !f.ipc_seq || !f.ipc_channel_flags {
        skip!("the IPC tracepoints lack seq/channel_flags: no send->recv latency");
    }
    let all = workload::run_ipc(&CFG).map_err(workload_err)?;
    let report = tracer.snapshot()?;
    for want in &all {
        let h = report.latency(want.mode).expect("a histogram per mode");
        check!(
            h.count == want.received,
            "{} histogram: {} samples, {} receives",
            want.mode,
            h.count,
            want.received
        );
        check!(!h.buckets.is_empty(), "{} histogram empty", want.mode);
    }
    check_eq!(report.latency("unknown").map(|h| h.count), Some(0));
    Ok(())
}

fn mq_peek_and_receive_counted() -> TestResult {
    let tracer = own_tracer()?;
    if !tracer.features().raw_syscalls {
        skip!("no raw_syscalls tracepoints");
    }
    let want = workload::run_mq(&CFG).map_err(workload_err)?;
    let report = tracer.snapshot()?;
    drop(tracer);
    let peek = report.mq("peek").expect("peek entry");
    let recv = report.mq("receive").expect("receive entry");
    check_eq!(want.peeks, u64::from(CFG.messages) + 1);
    check_eq!(peek.calls, want.peeks);
    check_eq!(peek.bytes, want.peek_bytes);
    check_eq!(peek.eagain, want.peek_eagain);
    check_eq!(peek.other_errors, 0);
    check_eq!(peek.latency.count, want.peeks);
    check_eq!(recv.calls, want.receives);
    check_eq!(recv.bytes, want.receive_bytes);
    check_eq!((recv.eagain, recv.other_errors), (0, 0));
    check_eq!(recv.latency.count, want.receives);
    Ok(())
}

/// With --pid naming another process, this process's traffic is not seen.
fn pid_filter_excludes_other_processes() -> TestResult {
    // SAFETY: getppid() cannot fail.
    let parent = unsafe { libc::getppid() } as u32;
    let tracer = Tracer::start(&Options { pid: Some(parent) }).map_err(|e| match e {
        ipc_trace::Error::Unsupported(why) => Outcome::Skip(why),
        e => Outcome::Fail(format!("starting the tracer: {e}")),
    })?;
    let f = tracer.features().clone();
    need_ipc(&f)?;
    let want = workload::run_channel(&CFG, Delivery::Unicast).map_err(workload_err)?;
    check!(want.sent > 0);
    let report = tracer.snapshot()?;
    check!(
        report.channel(want.id).is_none(),
        "events of another process counted: {}",
        report.to_json()
    );
    Ok(())
}

fn main() {
    Suite::new(
        "ipc_trace",
        cases![
            attach_and_detach_cleanly,
            unicast_counts_match,
            broadcast_counts_match,
            multicast_counts_match,
            latency_histograms_filled,
            mq_peek_and_receive_counted,
            pid_filter_excludes_other_processes,
        ],
    )
    .probe(probe)
    .run()
}
