//! Multishot IPC_RECV (IOIPC_RECV_MULTISHOT): a stream of messages into a
//! provided buffer ring, and every way such a stream ends.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use liburing_ipc::ipc::{self, Attach, ChannelConfig, Delivery, MsgInfo};
use liburing_ipc::opcode::{self, IpcRecv, IpcRecvMultishot, Sqe};
use liburing_ipc::uapi::io_uring::*;
use liburing_ipc::{BufRing, Cqe, Ring};
use selftests::ipc::{attach, channel, deferred_channel, key, recv_msg};
use selftests::uring::{io_workers, next_cqe_within, push};
use selftests::util::{errno_name, fork_child, pattern};
use selftests::{check, check_eq, skip, Outcome, TestResult};

/// One multishot IPC_RECV receives a stream of 10^4 messages, each in a
/// buffer of the group with its header, in order and intact, with no io-wq
/// worker; ASYNC_CANCEL ends it with -ECANCELED.
pub fn multishot_recv_streams_messages() -> TestResult {
    const N: u64 = 10_000;
    const SIZE: usize = 48;
    let mut tx_ring = Ring::new(8)?;
    let mut rx_ring = Ring::builder(8).cq_entries(64).build()?;
    let ch = channel(&tx_ring, Delivery::Unicast, 32, 64)?;
    let tx = attach(&tx_ring, ch, IOIPC_SUB_SEND)?;
    let rx = attach(&rx_ring, ch, IOIPC_SUB_RECV)?;
    let mut bufs = BufRing::new(&rx_ring, 7, 16, (MSHOT_HDR + SIZE) as u32)?;
    start_multishot(&mut rx_ring, rx.id, &bufs, 0x77)?;
    let (mut sent, mut got) = (0u64, 0u64);
    let mut last_seq = None;
    while got < N {
        while sent < N && sent - got < 16 {
            tx_ring.ipc_send(tx.id, &pattern(sent, SIZE))?;
            sent += 1;
        }
        let c = rx_ring.wait_cqe()?;
        check_eq!(c.user_data, 0x77);
        let (info, payload) = mshot_message(&mut bufs, &c)?;
        check_eq!(c.res as usize, MSHOT_HDR + SIZE);
        check_eq!(info.len as usize, SIZE);
        check_eq!(info.sender_id, tx.id);
        check!(
            payload == pattern(got, SIZE),
            "message {got} arrived with the wrong contents"
        );
        if let Some(prev) = last_seq {
            check!(info.seq > prev, "seq {} after {prev}", info.seq);
        }
        last_seq = Some(info.seq);
        got += 1;
    }
    check_eq!(io_workers(), 0);
    push(&mut rx_ring, opcode::async_cancel(0x77, 0).user_data(0x78))?;
    check_eq!(rx_ring.wait_for(0x78)?.res, 0);
    mshot_end(&mut rx_ring, 0x77, -libc::ECANCELED)
}

/// A multishot receive that runs out of buffers ends with -ENOBUFS, and the
/// message it had no buffer for stays queued for the next receive: unicast
/// and broadcast.
pub fn multishot_recv_out_of_buffers_keeps_the_message() -> TestResult {
    for d in [Delivery::Unicast, Delivery::Broadcast] {
        let mut tx_ring = Ring::new(8)?;
        let mut rx_ring = Ring::new(8)?;
        let ch = channel(&tx_ring, d, 8, 64)?;
        let tx = attach(&tx_ring, ch, IOIPC_SUB_SEND)?;
        let rx = attach(&rx_ring, ch, IOIPC_SUB_RECV)?;
        let mut bufs = BufRing::new(&rx_ring, 3, 2, (MSHOT_HDR + 64) as u32)?;
        start_multishot(&mut rx_ring, rx.id, &bufs, 0x31)?;
        for i in 0..3u64 {
            tx_ring.ipc_send(tx.id, &pattern(i, 20))?;
        }
        let mut kept = Vec::new();
        for i in 0..2u64 {
            let c = rx_ring.wait_for(0x31)?;
            let (_, payload) = mshot_message(&mut bufs, &c)?;
            check!(payload == pattern(i, 20), "{d:?}: message {i} garbled");
            kept.push(c);
        }
        // Both buffers went back only after their CQEs were read: the
        // third message found none (or the recycled ones, then it is
        // received and the stream goes on: both are correct).
        match next_cqe_within(&mut rx_ring, 200)? {
            Some(c) if c.res == -libc::ENOBUFS => {
                check!(
                    c.flags & IORING_CQE_F_MORE == 0,
                    "{d:?}: -ENOBUFS with F_MORE"
                );
                check_eq!(recv_msg(&mut rx_ring, rx.id, 64)?, pattern(2, 20));
            }
            Some(c) => {
                let (_, payload) = mshot_message(&mut bufs, &c)?;
                check!(payload == pattern(2, 20), "{d:?}: message 2 garbled");
                push(&mut rx_ring, opcode::async_cancel(0x31, 0).user_data(0x32))?;
                check_eq!(rx_ring.wait_for(0x32)?.res, 0);
                mshot_end(&mut rx_ring, 0x31, -libc::ECANCELED)?;
            }
            None => {
                return Err(Outcome::Fail(format!(
                    "{d:?}: the third message neither arrived nor ended the stream"
                )))
            }
        }
    }
    Ok(())
}

/// With no buffer provided, the stream ends with -ENOBUFS at the first
/// message, which stays queued.
pub fn multishot_recv_without_buffers_is_enobufs() -> TestResult {
    let mut tx_ring = Ring::new(8)?;
    let mut rx_ring = Ring::new(8)?;
    let ch = channel(&tx_ring, Delivery::Unicast, 8, 64)?;
    let tx = attach(&tx_ring, ch, IOIPC_SUB_SEND)?;
    let rx = attach(&rx_ring, ch, IOIPC_SUB_RECV)?;
    let mut bufs = BufRing::new(&rx_ring, 4, 1, (MSHOT_HDR + 64) as u32)?;
    start_multishot(&mut rx_ring, rx.id, &bufs, 0x41)?;
    tx_ring.ipc_send(tx.id, b"first")?;
    let c = rx_ring.wait_for(0x41)?;
    mshot_message(&mut bufs, &c)?;
    // the only buffer is provided again, then taken by "second": "third"
    // finds the group empty
    tx_ring.ipc_send(tx.id, b"second")?;
    tx_ring.ipc_send(tx.id, b"third")?;
    let c = rx_ring.wait_for(0x41)?;
    let Some((bid, len)) = bufs.take(&c) else {
        return Err(Outcome::Fail(format!("expected \"second\", got {c:?}")));
    };
    check_eq!(
        ipc::parse_multishot(bufs.buf(bid, len)).map(|(_, p)| p.to_vec()),
        Some(b"second".to_vec())
    );
    mshot_end(&mut rx_ring, 0x41, -libc::ENOBUFS)?;
    check_eq!(recv_msg(&mut rx_ring, rx.id, 64)?, b"third".to_vec());
    Ok(())
}

/// A buffer shorter than the message gets what fits, flagged as truncated,
/// with the full length in the header.
pub fn multishot_recv_truncates_visibly() -> TestResult {
    let mut tx_ring = Ring::new(8)?;
    let mut rx_ring = Ring::new(8)?;
    let ch = channel(&tx_ring, Delivery::Unicast, 8, 64)?;
    let tx = attach(&tx_ring, ch, IOIPC_SUB_SEND)?;
    let rx = attach(&rx_ring, ch, IOIPC_SUB_RECV)?;
    let mut bufs = BufRing::new(&rx_ring, 5, 2, (MSHOT_HDR + 8) as u32)?;
    start_multishot(&mut rx_ring, rx.id, &bufs, 0x51)?;
    tx_ring.ipc_send(tx.id, &pattern(9, 30))?;
    let c = rx_ring.wait_for(0x51)?;
    let (info, payload) = mshot_message(&mut bufs, &c)?;
    check_eq!(c.res as usize, MSHOT_HDR + 8);
    check_eq!(info.len, 30);
    check!(info.flags & IOIPC_MSG_TRUNC != 0, "no IOIPC_MSG_TRUNC");
    check_eq!(payload, pattern(9, 30)[..8].to_vec());
    rx_ring.ipc_detach(rx.id)?;
    mshot_end(&mut rx_ring, 0x51, -libc::EPIPE)
}

/// A multishot receive needs a buffer group and nothing else to receive
/// into; a single-shot receive takes no buffer group.
pub fn multishot_recv_rejects_bad_sqes() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let bufs = BufRing::new(&ring, 6, 2, 128)?;
    start_multishot(&mut ring, rx.id, &bufs, 0x61)?;
    push(&mut ring, opcode::async_cancel(0x61, 0).user_data(0x62))?;
    check_eq!(ring.wait_for(0x62)?.res, 0);
    mshot_end(&mut ring, 0x61, -libc::ECANCELED)?;
    let mut buf = [0u8; 64];
    let mut info = MsgInfo::default();
    // Entries no builder makes: a multishot receive with what it does not
    // take, a single-shot one with a buffer group.
    let multishot = IpcRecvMultishot::new(rx.id, bufs.bgid()).build();
    let base = *multishot.as_raw();
    let single = *IpcRecv::new(rx.id, std::ptr::null_mut(), 0)
        .build()
        .as_raw();
    let cases: [(&str, Sqe); 6] = [
        (
            "without IOSQE_BUFFER_SELECT",
            Sqe::from_raw(io_uring_sqe { flags: 0, ..base }),
        ),
        (
            "with a buffer",
            Sqe::from_raw(io_uring_sqe {
                addr: buf.as_mut_ptr() as u64,
                len: 64,
                ..base
            }),
        ),
        (
            "with msg_info",
            Sqe::from_raw(io_uring_sqe {
                addr3: &mut info as *mut MsgInfo as u64,
                ..base
            }),
        ),
        (
            "with IOIPC_RECV_NONBLOCK",
            Sqe::from_raw(io_uring_sqe {
                rw_flags: base.rw_flags | IOIPC_RECV_NONBLOCK,
                ..base
            }),
        ),
        (
            "with IOSQE_CQE_SKIP_SUCCESS",
            multishot.flags(IOSQE_CQE_SKIP_SUCCESS),
        ),
        (
            "single-shot with IOSQE_BUFFER_SELECT",
            Sqe::from_raw(io_uring_sqe {
                flags: IOSQE_BUFFER_SELECT,
                buf_index: bufs.bgid(),
                ..single
            }),
        ),
    ];
    for (i, (what, sqe)) in cases.into_iter().enumerate() {
        push(&mut ring, sqe.user_data(0x70 + i as u64))?;
        let c = ring.wait_for(0x70 + i as u64)?;
        check!(
            c.res == -libc::EINVAL,
            "multishot receive {what}: expected EINVAL, got {}",
            errno_name(-c.res)
        );
    }
    Ok(())
}

/// Every broadcast receiver's multishot receive gets every message.
pub fn multishot_recv_broadcast_reaches_all() -> TestResult {
    const N: u64 = 200;
    let mut tx_ring = Ring::new(8)?;
    let ch = channel(&tx_ring, Delivery::Broadcast, 16, 64)?;
    let tx = attach(&tx_ring, ch, IOIPC_SUB_SEND)?;
    let mut rx = Vec::new();
    for i in 0..3u16 {
        let mut ring = Ring::builder(8).cq_entries(32).build()?;
        let sub = attach(&ring, ch, IOIPC_SUB_RECV)?;
        let bufs = BufRing::new(&ring, 10 + i, 8, (MSHOT_HDR + 32) as u32)?;
        start_multishot(&mut ring, sub.id, &bufs, 0x90)?;
        rx.push((ring, sub, bufs));
    }
    for seq in 0..N {
        tx_ring.ipc_send(tx.id, &pattern(seq, 32))?;
        for (ring, _, bufs) in rx.iter_mut() {
            let c = ring.wait_for(0x90)?;
            let (_, payload) = mshot_message(bufs, &c)?;
            check!(payload == pattern(seq, 32), "message {seq} garbled");
        }
    }
    for (ring, sub, _) in rx.iter_mut() {
        ring.ipc_detach(sub.id)?;
        mshot_end(ring, 0x90, -libc::EPIPE)?;
    }
    Ok(())
}

/// The final CQE of a stream carries no buffer unless it holds a message:
/// a multishot that delivered a message and then found its subscriber
/// detached ends with a plain -EPIPE (it used to repeat the delivered
/// message's buffer id, which the application would then provide twice).
pub fn multishot_final_cqe_repeats_no_buffer() -> TestResult {
    let mut d = deferred_channel(Delivery::Unicast, 8)?;
    let mut bufs = BufRing::new(&d.rx_ring, 8, 4, (MSHOT_HDR + 64) as u32)?;
    start_multishot(&mut d.rx_ring, d.rx.id, &bufs, 0xa1)?;
    // handed to the parked receive; its task_work waits for GETEVENTS
    d.tx_ring.ipc_send(d.tx.id, b"last one")?;
    d.rx_ring.ipc_detach(d.rx.id)?;
    let c = d.rx_ring.wait_for(0xa1)?;
    let (_, payload) = mshot_message(&mut bufs, &c)?;
    check_eq!(payload, b"last one".to_vec());
    let end = d.rx_ring.wait_for(0xa1)?;
    check!(
        end.res == -libc::EPIPE && end.flags & (IORING_CQE_F_MORE | IORING_CQE_F_BUFFER) == 0,
        "expected a bare -EPIPE, got res {} flags {:#x}",
        end.res,
        end.flags
    );
    Ok(())
}

/// A buffer too short for the header ends the stream with -EFAULT and
/// comes back in that CQE, and the message stays queued (it used to stay at
/// the head of the group, failing every later multishot receive).
pub fn multishot_short_buffer_comes_back() -> TestResult {
    let mut tx_ring = Ring::new(8)?;
    let mut rx_ring = Ring::new(8)?;
    let ch = channel(&tx_ring, Delivery::Unicast, 8, 64)?;
    let tx = attach(&tx_ring, ch, IOIPC_SUB_SEND)?;
    let rx = attach(&rx_ring, ch, IOIPC_SUB_RECV)?;
    let mut bufs = BufRing::new(&rx_ring, 9, 2, 16)?;
    start_multishot(&mut rx_ring, rx.id, &bufs, 0xb1)?;
    tx_ring.ipc_send(tx.id, b"kept")?;
    let c = rx_ring.wait_for(0xb1)?;
    check!(
        c.res == -libc::EFAULT && c.flags & IORING_CQE_F_MORE == 0,
        "expected the stream to end with -EFAULT, got {c:?}"
    );
    check!(
        bufs.take(&c).is_some(),
        "the short buffer did not come back: {c:?}"
    );
    check_eq!(recv_msg(&mut rx_ring, rx.id, 64)?, b"kept".to_vec());
    // the other buffer is next: it is short too, so a new stream fails
    // the same way, and does not wedge on the first one
    start_multishot(&mut rx_ring, rx.id, &bufs, 0xb2)?;
    tx_ring.ipc_send(tx.id, b"again")?;
    let c = rx_ring.wait_for(0xb2)?;
    check_eq!(c.res, -libc::EFAULT);
    check!(
        bufs.take(&c).is_some(),
        "the second short buffer did not come back"
    );
    Ok(())
}

/// Multishot streams started and ended every way there is, while another
/// process keeps sending: ASYNC_CANCEL, DETACH, running out of buffers, and
/// the ring's exit with the stream in flight. Every stream that is reaped
/// ends exactly once, with a result that says why, and nothing is left in
/// an io-wq worker. Under the debug profile this is the lockdep and KASAN
/// run of those paths.
pub fn multishot_ends_every_way_under_traffic() -> TestResult {
    const ROUNDS: u64 = 60;
    let tx_ring = Ring::new(8)?;
    let k = key(31);
    let ch = tx_ring.ipc_create(&ChannelConfig::new(Delivery::Unicast, 16, 64).key(k))?;
    let sender = fork_child(move || {
        let Ok(mut r) = Ring::new(8) else { return 3 };
        let Ok(s) = r.ipc_attach(Attach::Key(k), IOIPC_SUB_SEND) else {
            return 4;
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut i = 0u64;
        while Instant::now() < deadline {
            // paced, so that streams end by what the test does to them
            // more often than by running dry
            std::thread::sleep(Duration::from_micros(300));
            match r.ipc_send(s.id, &pattern(i, 24)) {
                Ok(_) => i += 1,
                Err(e) if e.errno() == Some(libc::ENOBUFS) => std::thread::yield_now(),
                // the channel is destroyed when the test is done
                Err(_) => return 0,
            }
        }
        0
    })?;
    let mut ends: BTreeMap<&'static str, u32> = BTreeMap::new();
    for round in 0..ROUNDS {
        let mut ring = Ring::builder(8).cq_entries(64).build()?;
        let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
        let mut bufs = BufRing::new(&ring, 1, 32, (MSHOT_HDR + 64) as u32)?;
        push(
            &mut ring,
            IpcRecvMultishot::new(rx.id, bufs.bgid())
                .build()
                .user_data(round),
        )?;
        ring.submit()?;
        // take a few messages, giving the buffers back
        for _ in 0..3 {
            let c = ring.wait_for(round)?;
            if c.flags & IORING_CQE_F_MORE == 0 {
                return Err(Outcome::Fail(format!(
                    "round {round}: the stream ended early: {c:?}"
                )));
            }
            let (info, payload) = mshot_message(&mut bufs, &c)?;
            check_eq!(payload.len(), info.len as usize);
        }
        let how = round % 4;
        if how == 3 {
            // ring exit with the stream in flight
            ends.entry("ring exit").and_modify(|n| *n += 1).or_insert(1);
            drop(bufs);
            drop(ring);
            continue;
        }
        match how {
            0 => push(&mut ring, opcode::async_cancel(round, 0).user_data(1 << 40))?,
            1 => ring.ipc_detach(rx.id)?,
            _ => {} // stop recycling: the group runs dry
        }
        ring.submit()?;
        let mut cancel_pending = how == 0;
        let mut end = None;
        while end.is_none() || cancel_pending {
            let c = ring.wait_cqe()?;
            if c.user_data == 1 << 40 {
                // -ENOENT: the stream had ended already (out of buffers)
                check!(
                    [0, -libc::EALREADY, -libc::ENOENT].contains(&c.res),
                    "round {round}: cancel gave {}",
                    errno_name(-c.res)
                );
                cancel_pending = false;
                continue;
            }
            check_eq!(c.user_data, round);
            check!(end.is_none(), "round {round}: a CQE after the end: {c:?}");
            if c.flags & IORING_CQE_F_MORE != 0 {
                // a message that was on its way: its buffer goes back,
                // except where running dry is the way to end
                let (bid, _) = bufs.take(&c).ok_or_else(|| {
                    Outcome::Fail(format!("round {round}: F_MORE without a buffer"))
                })?;
                if how != 2 {
                    bufs.recycle(bid);
                }
                continue;
            }
            end = Some(c);
        }
        let end = end.expect("loop ends with the final CQE");
        let why = match -end.res {
            libc::ECANCELED => "ECANCELED",
            libc::EPIPE => "EPIPE",
            libc::ENOBUFS => "ENOBUFS",
            _ => {
                return Err(Outcome::Fail(format!(
                    "round {round} (way {how}): the stream ended with {end:?}"
                )))
            }
        };
        check!(
            end.flags & IORING_CQE_F_BUFFER == 0,
            "round {round}: the final {why} carries a buffer"
        );
        *ends.entry(why).or_insert(0) += 1;
        check!(
            next_cqe_within(&mut ring, 20)?.is_none(),
            "round {round}: a completion after the end of the stream"
        );
    }
    println!("# streams ended: {ends:?}");
    check_eq!(io_workers(), 0);
    tx_ring.ipc_destroy(ch)?;
    check_eq!(sender.wait()?, 0);
    Ok(())
}

const MSHOT_HDR: usize = std::mem::size_of::<MsgInfo>();

/// Start a multishot IPC_RECV of `sub` into `bufs` with `user_data`; SKIP
/// on a kernel without IOIPC_RECV_MULTISHOT (the SQE fails at once).
fn start_multishot(ring: &mut Ring, sub: u32, bufs: &BufRing, user_data: u64) -> TestResult {
    push(
        ring,
        IpcRecvMultishot::new(sub, bufs.bgid())
            .build()
            .user_data(user_data),
    )?;
    ring.submit()?;
    if let Some(c) = next_cqe_within(ring, 20)? {
        // -EOPNOTSUPP: IPC_RECV takes no IOSQE_BUFFER_SELECT there
        if c.user_data == user_data && (c.res == -libc::EINVAL || c.res == -libc::EOPNOTSUPP) {
            skip!("kernel without IOIPC_RECV_MULTISHOT");
        }
        return Err(Outcome::Fail(format!(
            "the multishot receive completed on an empty channel: {c:?}"
        )));
    }
    Ok(())
}

/// A multishot CQE: check it carries more to come and one message, whose
/// header and payload are returned; the buffer goes back to the group.
fn mshot_message(bufs: &mut BufRing, c: &Cqe) -> Result<(MsgInfo, Vec<u8>), Outcome> {
    check!(
        c.res > 0 && c.flags & IORING_CQE_F_MORE != 0,
        "expected a message with IORING_CQE_F_MORE, got res {} ({}) flags {:#x}",
        c.res,
        errno_name(-c.res),
        c.flags
    );
    let Some((bid, len)) = bufs.take(c) else {
        return Err(Outcome::Fail(format!("no buffer in CQE {c:?}")));
    };
    let (info, payload) = ipc::parse_multishot(bufs.buf(bid, len))
        .ok_or_else(|| Outcome::Fail(format!("CQE of {len} bytes, shorter than a header")))?;
    let payload = payload.to_vec();
    bufs.recycle(bid);
    Ok((info, payload))
}

/// The final CQE of a multishot receive: `want` and no IORING_CQE_F_MORE.
fn mshot_end(ring: &mut Ring, user_data: u64, want: i32) -> TestResult {
    let c = ring.wait_for(user_data)?;
    check!(
        c.res == want && c.flags & IORING_CQE_F_MORE == 0,
        "expected the stream to end with {}, got res {} ({}) flags {:#x}",
        errno_name(-want),
        c.res,
        errno_name(-c.res),
        c.flags
    );
    Ok(())
}
