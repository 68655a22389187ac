//! Which receivers get which message, in what order and shape: unicast,
//! broadcast and multicast channels, targeted sends, truncation, the
//! message size limit.

use std::os::fd::AsRawFd;

use liburing_ipc::ipc::{Attach, ChannelConfig, Delivery, Subscription};
use liburing_ipc::uapi::io_uring::*;
use liburing_ipc::Ring;
use selftests::ipc::{attach, channel, key, recv_msg};
use selftests::util::{fork_child, pattern};
use selftests::{check, check_eq, expect_errno, Context, Outcome, TestResult};

pub fn unicast_fifo_order() -> TestResult {
    let mut ring = Ring::new(32)?;
    let ch = channel(&ring, Delivery::Unicast, 64, 512)?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
    for i in 0..50u64 {
        let d = pattern(i, 1 + (i as usize * 37) % 512);
        check_eq!(ring.ipc_send(tx.id, &d)?, d.len());
    }
    for i in 0..50u64 {
        let got = recv_msg(&mut ring, rx.id, 512)?;
        check!(
            got == pattern(i, 1 + (i as usize * 37) % 512),
            "message {i} out of order or corrupted"
        );
    }
    check!(
        ring.ipc_try_recv(rx.id, &mut [0u8; 512])?.is_none(),
        "extra message"
    );
    Ok(())
}

/// Messages sent while a unicast channel has no receiver wait for one: a
/// receiver that attaches later is readable at once and gets them in order.
pub fn late_receiver_takes_queued_messages() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    ring.ipc_send(tx.id, b"early")?;
    ring.ipc_send(tx.id, b"later")?;
    let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let mut pfd = libc::pollfd {
        fd: rx.fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no timeout.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    check!(
        n == 1 && pfd.revents & libc::POLLIN != 0,
        "poll: {n}, revents {:#x}",
        pfd.revents
    );
    let mut buf = [0u8; 64];
    check_eq!(ring.ipc_try_recv(rx.id, &mut buf)?, Some(5));
    check_eq!(&buf[..5], b"early");
    check_eq!(recv_msg(&mut ring, rx.id, 64)?, b"later".to_vec());
    check_eq!(ring.ipc_try_recv(rx.id, &mut buf)?, None);
    Ok(())
}

pub fn unicast_each_message_once() -> TestResult {
    let mut ring = Ring::new(32)?;
    let ch = channel(&ring, Delivery::Unicast, 32, 64)?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let rxs = [
        attach(&ring, ch, IOIPC_SUB_RECV)?,
        attach(&ring, ch, IOIPC_SUB_RECV)?,
    ];
    for i in 0..20u64 {
        ring.ipc_send(tx.id, &i.to_le_bytes())?;
    }
    let mut seen = Vec::new();
    let mut buf = [0u8; 64];
    for i in 0.. {
        match ring.ipc_try_recv(rxs[i % 2].id, &mut buf)? {
            Some(8) => seen.push(u64::from_le_bytes(buf[..8].try_into().unwrap())),
            Some(n) => return Err(Outcome::Fail(format!("length {n}"))),
            None if i > 100 => break,
            None => {}
        }
    }
    seen.sort();
    check_eq!(seen, (0..20).collect::<Vec<u64>>());
    Ok(())
}

pub fn broadcast_reaches_every_receiver() -> TestResult {
    let mut ring = Ring::new(32)?;
    let ch = channel(&ring, Delivery::Broadcast, 32, 256)?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let rxs: Vec<Subscription> = (0..3)
        .map(|_| attach(&ring, ch, IOIPC_SUB_RECV))
        .collect::<Result<_, _>>()?;
    for i in 0..20u64 {
        ring.ipc_send(tx.id, &pattern(i, 100))?;
    }
    for rx in &rxs {
        for i in 0..20u64 {
            check!(
                recv_msg(&mut ring, rx.id, 256)? == pattern(i, 100),
                "receiver {} message {i}",
                rx.id
            );
        }
        check!(
            ring.ipc_try_recv(rx.id, &mut [0u8; 256])?.is_none(),
            "extra message for {}",
            rx.id
        );
    }
    Ok(())
}

pub fn broadcast_slot_freed_after_all_receivers() -> TestResult {
    let mut ring = Ring::new(32)?;
    let ch = channel(&ring, Delivery::Broadcast, 4, 64)?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let a = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let b = attach(&ring, ch, IOIPC_SUB_RECV)?;
    for i in 0..4u64 {
        ring.ipc_send(tx.id, &[i as u8])?;
    }
    expect_errno(ring.ipc_send(tx.id, b"x"), libc::ENOBUFS).context("full ring")?;
    recv_msg(&mut ring, a.id, 64)?;
    // Only one of the two receivers consumed slot 0: still full.
    expect_errno(ring.ipc_send(tx.id, b"x"), libc::ENOBUFS).context("slot still owed to b")?;
    recv_msg(&mut ring, b.id, 64)?;
    ring.ipc_send(tx.id, b"x")?;
    Ok(())
}

pub fn multicast_distributes_each_message_once() -> TestResult {
    let mut ring = Ring::new(64)?;
    let ch = channel(&ring, Delivery::Multicast, 64, 64)?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let rxs: Vec<Subscription> = (0..4)
        .map(|_| attach(&ring, ch, IOIPC_SUB_RECV))
        .collect::<Result<_, _>>()?;
    for i in 0..40u64 {
        ring.ipc_send(tx.id, &i.to_le_bytes())?;
    }
    let mut all = Vec::new();
    let mut buf = [0u8; 64];
    for rx in &rxs {
        let mut mine = 0;
        while let Some(n) = ring.ipc_try_recv(rx.id, &mut buf)? {
            check_eq!(n, 8);
            all.push(u64::from_le_bytes(buf[..8].try_into().unwrap()));
            mine += 1;
        }
        check_eq!(mine, 10);
    }
    all.sort();
    check_eq!(all, (0..40).collect::<Vec<u64>>());
    Ok(())
}

pub fn targeted_send_reaches_only_target() -> TestResult {
    let mut ring = Ring::new(32)?;
    let ch = channel(&ring, Delivery::Broadcast, 16, 64)?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let a = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let b = attach(&ring, ch, IOIPC_SUB_RECV)?;
    ring.ipc_send_to(tx.id, b.id, b"for b")?;
    ring.ipc_send(tx.id, b"for all")?;
    let (n, info) = ring.ipc_recv_info(b.id, &mut [0u8; 64])?;
    check_eq!(n, 5);
    check!(
        info.flags & IOIPC_MSG_TARGETED != 0,
        "targeted flag missing"
    );
    check_eq!(recv_msg(&mut ring, b.id, 64)?, b"for all".to_vec());
    check_eq!(recv_msg(&mut ring, a.id, 64)?, b"for all".to_vec());
    check!(
        ring.ipc_try_recv(a.id, &mut [0u8; 64])?.is_none(),
        "a received b's message"
    );
    expect_errno(ring.ipc_send_to(tx.id, 0x7fff_0000, b"nobody"), libc::ENXIO)
        .context("unknown target")
}

pub fn truncation_is_visible() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 256)?;
    let s = attach(&ring, ch, IOIPC_SUB_BOTH)?;
    let data = pattern(3, 200);
    ring.ipc_send(s.id, &data)?;
    let mut small = [0u8; 50];
    let (n, info) = ring.ipc_recv_info(s.id, &mut small)?;
    check_eq!(n, 50);
    check_eq!(info.len, 200);
    check!(info.flags & IOIPC_MSG_TRUNC != 0, "truncation flag missing");
    check!(small[..] == data[..50], "truncated payload differs");
    Ok(())
}

pub fn oversized_send_is_emsgsize() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 128)?;
    let s = attach(&ring, ch, IOIPC_SUB_BOTH)?;
    expect_errno(ring.ipc_send(s.id, &[0u8; 129]), libc::EMSGSIZE).context("129 bytes into 128")?;
    check_eq!(ring.ipc_send(s.id, &[0u8; 128])?, 128);
    Ok(())
}

pub fn multi_producer_stress() -> TestResult {
    const PRODUCERS: u64 = 3;
    let per: u64 = std::env::var("STRESS_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let mut ring = Ring::new(64)?;
    let k = key(12);
    let ch = ring.ipc_create(&ChannelConfig::new(Delivery::Unicast, 64, 512).key(k))?;
    let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let mut kids = Vec::new();
    for p in 0..PRODUCERS {
        kids.push(fork_child(move || {
            let Ok(mut r) = Ring::new(16) else { return 3 };
            let Ok(s) = r.ipc_attach(Attach::Key(k), IOIPC_SUB_SEND) else {
                return 4;
            };
            for i in 0..per {
                let seq = p << 32 | i;
                let mut d = seq.to_le_bytes().to_vec();
                d.extend(pattern(seq, (seq as usize * 11) % 500));
                if r.ipc_send_wait(s.id, &d).is_err() {
                    return 5;
                }
            }
            0
        })?);
    }
    let mut next = [0u64; PRODUCERS as usize];
    let mut buf = vec![0u8; 512];
    for _ in 0..PRODUCERS * per {
        let (n, info) = ring.ipc_recv_info(rx.id, &mut buf)?;
        check!(n >= 8, "short message");
        let seq = u64::from_le_bytes(buf[..8].try_into().unwrap());
        let (p, i) = ((seq >> 32) as usize, seq & 0xffff_ffff);
        check!(p < PRODUCERS as usize, "bad producer {p}");
        check_eq!(i, next[p]);
        next[p] += 1;
        check!(
            buf[8..n] == pattern(seq, (seq as usize * 11) % 500)[..],
            "payload of {p}:{i} corrupted"
        );
        check_eq!(info.len as usize, n);
    }
    for kid in kids {
        check_eq!(kid.wait()?, 0);
    }
    Ok(())
}
