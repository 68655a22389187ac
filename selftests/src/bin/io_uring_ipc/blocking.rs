//! Requests that wait: blocking receives and IOIPC_SEND_WAIT,
//! IOIPC_RECV_NONBLOCK, ASYNC_CANCEL and LINK_TIMEOUT of waiting requests,
//! and which waiting request a message or a freed slot goes to.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use liburing_ipc::ipc::{Attach, ChannelConfig, Delivery};
use liburing_ipc::opcode::{self, IpcRecv, IpcSend};
use liburing_ipc::uapi::io_uring::*;
use liburing_ipc::{Cqe, Error, Ring};
use selftests::ipc::{attach, channel, deferred_channel, key, push_recv, recv_msg, Deferred};
use selftests::uring::{io_workers, next_cqe_within, push};
use selftests::util::{errno_name, fork_child, pattern, trace_fields, tracefs};
use selftests::{check, check_eq, expect_errno, skip, Context, Outcome, TestResult};

pub fn blocking_recv_woken_by_other_process() -> TestResult {
    let mut ring = Ring::new(8)?;
    let k = key(4);
    let ch = ring.ipc_create(&ChannelConfig::new(Delivery::Unicast, 8, 64).key(k))?;
    let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let child = fork_child(|| {
        std::thread::sleep(Duration::from_millis(300));
        let Ok(mut r) = Ring::new(8) else { return 3 };
        let Ok(s) = r.ipc_attach(Attach::Key(k), IOIPC_SUB_SEND) else {
            return 4;
        };
        if r.ipc_send(s.id, b"wake up").is_err() {
            return 5;
        }
        0
    })?;
    let t0 = Instant::now();
    let got = recv_msg(&mut ring, rx.id, 64)?;
    check!(
        t0.elapsed() >= Duration::from_millis(200),
        "recv returned before the send ({:?})",
        t0.elapsed()
    );
    check_eq!(got, b"wake up".to_vec());
    check_eq!(child.wait()?, 0);
    Ok(())
}

pub fn recv_nonblock_on_empty_is_eagain() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
    check!(
        ring.ipc_try_recv(rx.id, &mut [0u8; 64])?.is_none(),
        "message out of nowhere"
    );
    Ok(())
}

pub fn recv_link_timeout_cancels_waiting_recv() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let mut buf = [0u8; 64];
    let ts = __kernel_timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    push(
        &mut ring,
        IpcRecv::new(rx.id, buf.as_mut_ptr(), 64)
            .build()
            .user_data(1)
            .flags(IOSQE_IO_LINK),
    )?;
    push(&mut ring, opcode::link_timeout(&ts, 0).user_data(2))?;
    let r = ring.wait_for(1)?;
    let t = ring.wait_for(2)?;
    check!(r.res == -libc::ECANCELED, "recv: {}", errno_name(-r.res));
    check!(
        t.res == -libc::ETIME,
        "link timeout: {}",
        errno_name(-t.res)
    );
    Ok(())
}

pub fn async_cancel_of_waiting_recv() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let rx = attach(&ring, ch, IOIPC_SUB_BOTH)?;
    let mut buf = [0u8; 64];
    push_recv(&mut ring, rx.id, &mut buf, 10)?;
    ring.submit()?;
    std::thread::sleep(Duration::from_millis(50));
    check!(
        ring.pop_cqe().is_none(),
        "recv on an empty channel completed"
    );
    push(&mut ring, opcode::async_cancel(10, 0).user_data(11))?;
    let c = ring.wait_for(11)?;
    let r = ring.wait_for(10)?;
    check_eq!(c.res, 0);
    check!(r.res == -libc::ECANCELED, "recv: {}", errno_name(-r.res));
    // The channel still works after the cancel.
    ring.ipc_send(rx.id, b"after")?;
    check_eq!(recv_msg(&mut ring, rx.id, 64)?, b"after".to_vec());
    Ok(())
}

pub fn full_ring_is_enobufs_and_send_wait_waits() -> TestResult {
    let mut ring = Ring::new(16)?;
    let k = key(5);
    let ch = ring.ipc_create(&ChannelConfig::new(Delivery::Unicast, 2, 64).key(k))?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    ring.ipc_send(tx.id, b"1")?;
    ring.ipc_send(tx.id, b"2")?;
    expect_errno(ring.ipc_send(tx.id, b"3"), libc::ENOBUFS).context("third send into two slots")?;
    let child = fork_child(|| {
        std::thread::sleep(Duration::from_millis(300));
        let Ok(mut r) = Ring::new(8) else { return 3 };
        let Ok(s) = r.ipc_attach(Attach::Key(k), IOIPC_SUB_RECV) else {
            return 4;
        };
        let mut got = Vec::new();
        for _ in 0..3 {
            let mut b = [0u8; 8];
            match r.ipc_recv(s.id, &mut b) {
                Ok(1) => got.push(b[0]),
                _ => return 5,
            }
        }
        if got == b"123" {
            0
        } else {
            6
        }
    })?;
    let t0 = Instant::now();
    check_eq!(ring.ipc_send_wait(tx.id, b"3")?, 1);
    check!(
        t0.elapsed() >= Duration::from_millis(200),
        "SEND_WAIT did not wait ({:?})",
        t0.elapsed()
    );
    check_eq!(child.wait()?, 0);
    Ok(())
}

/// SEND_WAITs of one sender that find the ring full complete, and deliver
/// their messages, in the order they were submitted, as slots free one by
/// one.
pub fn send_waits_complete_in_submission_order() -> TestResult {
    const WAITING: u64 = 6;
    let mut tx_ring = Ring::new(16)?;
    let mut rx_ring = Ring::new(8)?;
    let ch = channel(&tx_ring, Delivery::Unicast, 2, 64)?;
    let tx = attach(&tx_ring, ch, IOIPC_SUB_SEND)?;
    let rx = attach(&rx_ring, ch, IOIPC_SUB_RECV)?;
    tx_ring.ipc_send(tx.id, b"m0")?;
    tx_ring.ipc_send(tx.id, b"m1")?;
    let payloads: Vec<Vec<u8>> = (0..WAITING).map(|i| format!("w{i}").into_bytes()).collect();
    for (i, p) in payloads.iter().enumerate() {
        push(
            &mut tx_ring,
            IpcSend::new(tx.id, p.as_ptr(), p.len() as u32)
                .wait()
                .build()
                .user_data(100 + i as u64),
        )?;
    }
    tx_ring.submit()?;
    std::thread::sleep(Duration::from_millis(50));
    tx_ring.submit()?;
    check!(
        tx_ring.pop_cqe().is_none(),
        "a SEND_WAIT completed on a full ring"
    );
    let mut received = Vec::new();
    let mut completed = Vec::new();
    for _ in 0..WAITING + 2 {
        received.push(String::from_utf8_lossy(&recv_msg(&mut rx_ring, rx.id, 64)?).into_owned());
        // Let the woken senders run.
        std::thread::sleep(Duration::from_millis(10));
        tx_ring.submit()?;
        while let Some(c) = tx_ring.pop_cqe() {
            check_eq!(c.res, 2);
            completed.push(c.user_data - 100);
        }
    }
    let want: Vec<String> = ["m0", "m1"]
        .iter()
        .map(|s| s.to_string())
        .chain((0..WAITING).map(|i| format!("w{i}")))
        .collect();
    check_eq!(received, want);
    check_eq!(completed, (0..WAITING).collect::<Vec<_>>());
    Ok(())
}

/// A message for a receiver with several IPC_RECV waiting completes one of
/// them, and no IPC request is ever issued again through async poll.
pub fn message_wakes_one_parked_recv() -> TestResult {
    let Some(t) = tracefs() else {
        skip!("no tracefs events (kernel without event tracing)");
    };
    let arm = t.join("events/io_uring/io_uring_poll_arm");
    if !arm.exists() {
        skip!("the kernel has no io_uring_poll_arm tracepoint");
    }
    const PARKED: u64 = 8;
    const UD: u64 = 0x1bc0_0000;
    let Deferred {
        mut rx_ring,
        mut tx_ring,
        tx,
        rx,
    } = deferred_channel(Delivery::Multicast, 16)?;
    let mut bufs = vec![[0u8; 64]; PARKED as usize];
    park_recvs(&mut rx_ring, rx.id, &mut bufs, UD)?;

    std::fs::write(t.join("trace"), "")?;
    std::fs::write(arm.join("enable"), "1")?;
    let woke = (|| -> Result<Cqe, Error> {
        tx_ring.ipc_send(tx.id, b"one")?;
        let c = rx_ring.wait_cqe()?;
        // Let whatever else the message woke run and park again.
        std::thread::sleep(Duration::from_millis(50));
        rx_ring.submit()?;
        Ok(c)
    })();
    std::fs::write(arm.join("enable"), "0")?;
    let c = woke?;
    check_eq!(c.res, 3);
    check!(
        rx_ring.pop_cqe().is_none(),
        "one message completed two recvs"
    );
    let text = std::fs::read_to_string(t.join("trace"))?;
    let rearmed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" io_uring_poll_arm: "))
        .filter(|l| {
            let f = trace_fields(l);
            let ud = f
                .get("user_data")
                .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok());
            f.get("opcode").map(String::as_str) == Some("IPC_RECV")
                && ud.is_some_and(|u| (UD..UD + PARKED).contains(&u))
        })
        .collect();
    check!(
        rearmed.is_empty(),
        "{} parked recvs were issued again and re-armed:\n{}",
        rearmed.len(),
        rearmed.join("\n")
    );

    // Each further message still completes exactly one of the others.
    for n in 1..PARKED {
        tx_ring.ipc_send(tx.id, &pattern(n, 8))?;
        let c = rx_ring.wait_cqe()?;
        check_eq!(c.res, 8);
        let i = (c.user_data - UD) as usize;
        check_eq!(bufs[i][..8].to_vec(), pattern(n, 8));
    }
    check!(
        rx_ring.pop_cqe().is_none(),
        "more completions than messages"
    );
    Ok(())
}

/// A message is handed to the first waiting IPC_RECV directly: a cancel that
/// comes after that, before the request ran, finds it completing
/// (-EALREADY), and the request gets the message. The next waiting one stays
/// waiting for the next message.
pub fn recv_handed_a_message_completes_with_it() -> TestResult {
    let Deferred {
        mut rx_ring,
        mut tx_ring,
        tx,
        rx,
    } = deferred_channel(Delivery::Unicast, 8)?;
    // A (user_data 1) waits first, so the message goes to A.
    let mut bufs = [[0u8; 64]; 2];
    park_recvs(&mut rx_ring, rx.id, &mut bufs, 1)?;
    // A's task work waits for the next enter of rx_ring (DEFER_TASKRUN)...
    tx_ring.ipc_send(tx.id, b"hand-off")?;
    // ... which submits the cancel before it runs that task work.
    push(&mut rx_ring, opcode::async_cancel(1, 0).user_data(3))?;
    let c = rx_ring.wait_for(3)?;
    let ra = rx_ring.wait_for(1)?;
    check!(
        c.res == -libc::EALREADY && ra.res == 8,
        "cancel {} / recv A {}: the message was not A's",
        errno_name(-c.res),
        ra.res
    );
    check_eq!(&bufs[0][..8], b"hand-off");
    check!(
        next_cqe_within(&mut rx_ring, 200)?.is_none(),
        "recv B completed without a message"
    );
    tx_ring.ipc_send(tx.id, b"second")?;
    let rb = rx_ring.wait_for(2)?;
    check_eq!(rb.res, 6);
    check_eq!(&bufs[1][..6], b"second");
    Ok(())
}

/// A cancelled IPC_RECV whose completion has not run yet waits no more:
/// messages sent meanwhile go to the requests still waiting, none is left
/// behind.
pub fn messages_skip_a_cancelled_recv() -> TestResult {
    let Deferred {
        mut rx_ring,
        mut tx_ring,
        tx,
        rx,
    } = deferred_channel(Delivery::Unicast, 8)?;
    // A (user_data 1) is parked first, then B and C.
    let mut bufs = [[0u8; 64]; 3];
    park_recvs(&mut rx_ring, rx.id, &mut bufs, 1)?;
    // Cancel A; its task work waits for the next GETEVENTS enter ...
    push(&mut rx_ring, opcode::async_cancel(1, 0).user_data(9))?;
    rx_ring.submit_no_getevents()?;
    // ... but A is off the wait list already: B and C get the messages.
    tx_ring.ipc_send(tx.id, b"first")?;
    tx_ring.ipc_send(tx.id, b"second")?;
    let mut got = BTreeMap::new();
    while got.len() < 4 {
        match next_cqe_within(&mut rx_ring, 2000)? {
            Some(c) => {
                got.insert(c.user_data, c.res);
            }
            None => {
                return Err(Outcome::Fail(format!(
                    "stalled with completions {got:?}: a message was left waiting"
                )))
            }
        }
    }
    check_eq!(got.get(&9), Some(&0));
    check!(
        got.get(&1) == Some(&-libc::ECANCELED),
        "recv A: {:?}",
        got.get(&1)
    );
    check_eq!(got.get(&2), Some(&5));
    check_eq!(got.get(&3), Some(&6));
    check_eq!(&bufs[1][..5], b"first");
    check_eq!(&bufs[2][..6], b"second");
    Ok(())
}

/// A parked IPC_RECV of a send-and-receive subscriber outlives any number of
/// wakeups that bring it nothing (here: 130 send-only subscribers coming and
/// going), stays cancellable and never moves to an io-wq worker. Waiting by
/// async poll spent one of 128 re-arms per wakeup, then blocked a worker,
/// where ASYNC_CANCEL found it running (-EALREADY).
pub fn parked_recv_survives_wakeups_without_messages() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let s = attach(&ring, ch, IOIPC_SUB_BOTH)?;
    let mut buf = [0u8; 64];
    push_recv(&mut ring, s.id, &mut buf, 1)?;
    ring.submit()?;
    churn_senders(&ring, ch, 130)?;
    ring.submit()?;
    std::thread::sleep(Duration::from_millis(100));
    check!(
        ring.pop_cqe().is_none(),
        "the recv completed without a message"
    );
    check_eq!(io_workers(), 0);
    push(&mut ring, opcode::async_cancel(1, 0).user_data(2))?;
    let c = ring.wait_for(2)?;
    let r = ring.wait_for(1)?;
    check!(
        c.res == 0 && r.res == -libc::ECANCELED,
        "cancel: {}, recv: {}",
        errno_name(-c.res),
        errno_name(-r.res)
    );
    Ok(())
}

/// The same wakeups, then a LINK_TIMEOUT: the recv is cancelled (-ECANCELED,
/// the timeout -ETIME), never completed with the kernel-internal
/// -ERESTARTSYS (-512) that an interrupted io-wq wait leaked into the CQE.
pub fn link_timeout_after_wakeups_without_messages() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let s = attach(&ring, ch, IOIPC_SUB_BOTH)?;
    let mut buf = [0u8; 64];
    let ts = __kernel_timespec {
        tv_sec: 2,
        tv_nsec: 0,
    };
    push(
        &mut ring,
        IpcRecv::new(s.id, buf.as_mut_ptr(), 64)
            .build()
            .user_data(1)
            .flags(IOSQE_IO_LINK),
    )?;
    push(&mut ring, opcode::link_timeout(&ts, 0).user_data(2))?;
    ring.submit()?;
    churn_senders(&ring, ch, 130)?;
    let r = ring.wait_for(1)?;
    let t = ring.wait_for(2)?;
    check!(
        r.res == -libc::ECANCELED && t.res == -libc::ETIME,
        "recv: {} ({}), link timeout: {}",
        errno_name(-r.res),
        r.res,
        errno_name(-t.res)
    );
    check_eq!(io_workers(), 0);
    Ok(())
}

/// 64 receivers of one unicast channel, each with an IPC_RECV parked, and
/// 10^4 messages: each is received exactly once, by one request, with no
/// worker thread and no failed completion.
pub fn unicast_many_receivers_each_message_once() -> TestResult {
    const RECEIVERS: usize = 64;
    const MESSAGES: u64 = 10_000;
    let mut tx_ring = Ring::new(8)?;
    let mut rx_ring = Ring::builder(RECEIVERS as u32).cq_entries(256).build()?;
    let ch = channel(&tx_ring, Delivery::Unicast, 64, 64)?;
    let tx = attach(&tx_ring, ch, IOIPC_SUB_SEND)?;
    let mut subs = Vec::new();
    for _ in 0..RECEIVERS {
        subs.push(attach(&rx_ring, ch, IOIPC_SUB_RECV)?);
    }
    let mut bufs = vec![[0u8; 64]; RECEIVERS];
    for (i, s) in subs.iter().enumerate() {
        push_recv(&mut rx_ring, s.id, &mut bufs[i], i as u64)?;
    }
    rx_ring.submit()?;
    let mut seen = vec![0u32; MESSAGES as usize];
    let mut per_receiver = vec![0u64; RECEIVERS];
    for n in 0..MESSAGES {
        tx_ring.ipc_send(tx.id, &n.to_le_bytes())?;
        let c = rx_ring.wait_cqe()?;
        check!(
            c.res == 8,
            "message {n}: recv {} completed with {} ({})",
            c.user_data,
            c.res,
            errno_name(-c.res)
        );
        let i = c.user_data as usize;
        let got = u64::from_le_bytes(bufs[i][..8].try_into().expect("8 bytes"));
        check!(got < MESSAGES, "message {n}: garbage {got:#x}");
        seen[got as usize] += 1;
        per_receiver[i] += 1;
        push_recv(&mut rx_ring, subs[i].id, &mut bufs[i], i as u64)?;
        rx_ring.submit()?;
    }
    std::thread::sleep(Duration::from_millis(50));
    rx_ring.submit()?;
    if let Some(c) = rx_ring.pop_cqe() {
        return Err(Outcome::Fail(format!(
            "an extra completion: recv {} res {}",
            c.user_data, c.res
        )));
    }
    let dup = seen.iter().filter(|&&k| k != 1).count();
    check!(dup == 0, "{dup} messages not received exactly once");
    check_eq!(io_workers(), 0);
    Ok(())
}

/// Park one IPC_RECV per buffer, user_data `first_ud` on, with one enter
/// each so that they wait in this order; the channel must be empty.
fn park_recvs(ring: &mut Ring, sub: u32, bufs: &mut [[u8; 64]], first_ud: u64) -> TestResult {
    for (i, b) in bufs.iter_mut().enumerate() {
        push_recv(ring, sub, b, first_ud + i as u64)?;
        ring.submit()?;
    }
    check!(
        ring.pop_cqe().is_none(),
        "a recv completed on an empty channel"
    );
    Ok(())
}

/// Attach a send-only subscriber to `ch` and detach it, `n` times: each
/// detach is a wakeup for everything that waits for the channel's senders.
fn churn_senders(ring: &Ring, ch: u32, n: usize) -> TestResult {
    for _ in 0..n {
        let s = attach(ring, ch, IOIPC_SUB_SEND)?;
        ring.ipc_detach(s.id)?;
    }
    Ok(())
}
