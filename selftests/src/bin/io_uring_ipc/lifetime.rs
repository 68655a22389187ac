//! How channels and subscribers end: destroy, detach, the exit of the
//! creator or of a ring, fork, closing the channel fd.

use std::os::fd::AsRawFd;
use std::time::Duration;

use liburing_ipc::ipc::{Attach, ChannelConfig, Delivery};
use liburing_ipc::uapi::io_uring::*;
use liburing_ipc::Ring;
use selftests::ipc::{attach, channel, key, push_recv, recv_msg};
use selftests::util::{errno_name, fork_child};
use selftests::{check, check_eq, expect_errno, Context, TestResult};

pub fn destroy_wakes_waiters_with_epipe() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Broadcast, 8, 64)?;
    let a = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let b = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let (mut ba, mut bb) = ([0u8; 64], [0u8; 64]);
    push_recv(&mut ring, a.id, &mut ba, 1)?;
    push_recv(&mut ring, b.id, &mut bb, 2)?;
    ring.submit()?;
    std::thread::sleep(Duration::from_millis(50));
    ring.ipc_destroy(ch)?;
    for ud in [1, 2] {
        let c = ring.wait_for(ud)?;
        check!(
            c.res == -libc::EPIPE,
            "waiting recv {ud}: {}",
            errno_name(-c.res)
        );
    }
    expect_errno(ring.ipc_send(tx.id, b"late"), libc::ENOENT).context("send after destroy")?;
    expect_errno(ring.ipc_try_recv(a.id, &mut [0u8; 64]), libc::ENOENT)
        .context("recv after destroy")?;
    expect_errno(attach(&ring, ch, IOIPC_SUB_RECV), libc::ENOENT)
        .context("attach after destroy")?;
    expect_errno(ring.ipc_destroy(ch), libc::ENOENT).context("second destroy")
}

pub fn destroy_is_creator_only() -> TestResult {
    let creator = Ring::new(8)?;
    let other = Ring::new(8)?;
    let ch = channel(&creator, Delivery::Unicast, 8, 64)?;
    expect_errno(other.ipc_destroy(ch), libc::EPERM).context("destroy from another ring")?;
    creator.ipc_destroy(ch)?;
    Ok(())
}

pub fn creator_exit_completes_waiters() -> TestResult {
    let k = key(9);
    let (rd, wr) = selftests::util::pipe()?;
    let child = fork_child(|| {
        let Ok(r) = Ring::new(8) else { return 3 };
        if r.ipc_create(
            &ChannelConfig::new(Delivery::Unicast, 8, 64)
                .key(k)
                .mode(0o666),
        )
        .is_err()
        {
            return 4;
        }
        // Tell the parent the channel exists, then wait until it is told
        // the parent is waiting (the pipe closes), then exit.
        // SAFETY: one byte to our pipe.
        unsafe { libc::write(wr.as_raw_fd(), b"c".as_ptr().cast(), 1) };
        std::thread::sleep(Duration::from_millis(300));
        0
    })?;
    drop(wr);
    let mut b = [0u8; 1];
    // SAFETY: reading one byte into b.
    check_eq!(
        unsafe { libc::read(rd.as_raw_fd(), b.as_mut_ptr().cast(), 1) },
        1
    );
    let mut ring = Ring::new(8)?;
    let rx = ring.ipc_attach(Attach::Key(k), IOIPC_SUB_RECV)?;
    let r = ring.ipc_recv(rx.id, &mut [0u8; 64]);
    check_eq!(child.wait()?, 0);
    expect_errno(r, libc::EPIPE).context("recv when the creator exits")?;
    expect_errno(ring.ipc_recv(rx.id, &mut [0u8; 64]), libc::ENOENT)
        .context("recv after the creator exited")?;
    expect_errno(
        ring.ipc_attach(Attach::Key(k), IOIPC_SUB_RECV),
        libc::ENOENT,
    )
    .context("attach after creator exit")
}

pub fn ring_exit_detaches_its_subscribers() -> TestResult {
    let mut ring = Ring::new(8)?;
    let k = key(10);
    let ch = ring.ipc_create(&ChannelConfig::new(Delivery::Broadcast, 2, 64).key(k))?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let child = fork_child(|| {
        let Ok(r) = Ring::new(8) else { return 3 };
        match r.ipc_attach(Attach::Key(k), IOIPC_SUB_RECV) {
            Ok(_) => 0, // exits without receiving anything
            Err(_) => 4,
        }
    })?;
    check_eq!(child.wait()?, 0);
    // A departed broadcast receiver must not hold slots: the ring never fills.
    for i in 0..8u8 {
        ring.ipc_send(tx.id, &[i])?;
    }
    Ok(())
}

pub fn detach_then_ops_fail() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let s = attach(&ring, ch, IOIPC_SUB_BOTH)?;
    ring.ipc_detach(s.id)?;
    expect_errno(ring.ipc_send(s.id, b"x"), libc::ENOENT).context("send after detach")?;
    expect_errno(ring.ipc_detach(s.id), libc::ENOENT).context("second detach")
}

pub fn multicast_detach_hands_messages_on() -> TestResult {
    let mut ring = Ring::new(16)?;
    let ch = channel(&ring, Delivery::Multicast, 16, 64)?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let a = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let b = attach(&ring, ch, IOIPC_SUB_RECV)?;
    // Round-robin gives half of these to b, which leaves without them.
    for i in 0..6u64 {
        ring.ipc_send(tx.id, &i.to_le_bytes())?;
    }
    ring.ipc_detach(b.id)?;
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while let Some(n) = ring.ipc_try_recv(a.id, &mut buf)? {
        check_eq!(n, 8);
        got.push(u64::from_le_bytes(buf[..8].try_into().unwrap()));
    }
    check_eq!(got, (0..6).collect::<Vec<u64>>());
    // A message the sender targeted at b is gone with b.
    let c = attach(&ring, ch, IOIPC_SUB_RECV)?;
    ring.ipc_send_to(tx.id, c.id, b"for c")?;
    ring.ipc_detach(c.id)?;
    check_eq!(ring.ipc_try_recv(a.id, &mut buf)?, None);
    Ok(())
}

pub fn fork_shares_the_ring() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let s = attach(&ring, ch, IOIPC_SUB_BOTH)?;
    let sub = s.id;
    let shared: *mut Ring = &mut ring;
    // The child submits through the ring it inherited, then exits: neither
    // its exit nor its copy of the channel fd may tear anything down.
    let child = fork_child(move || {
        // SAFETY: after fork the child has its own copy of this address
        // space, so the pointer names the child's copy of `ring`, which no
        // other code in the child touches.
        let r = unsafe { &mut *shared };
        match r.ipc_send(sub, b"from child") {
            Ok(10) => 0,
            Ok(_) => 2,
            Err(_) => 3,
        }
    })?;
    let cpid = child.pid;
    check_eq!(child.wait()?, 0);
    let (n, info) = ring.ipc_recv_info(s.id, &mut [0u8; 64])?;
    check_eq!(n, 10);
    check_eq!(info.sender_pid, cpid);
    ring.ipc_send(s.id, b"after fork")?;
    check_eq!(recv_msg(&mut ring, s.id, 64)?, b"after fork".to_vec());
    Ok(())
}

pub fn close_channel_fd_with_recv_in_flight() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let mut buf = [0u8; 64];
    push_recv(&mut ring, rx.id, &mut buf, 1)?;
    ring.submit()?;
    let rx_id = rx.id;
    drop(rx); // closes our channel fd; the ring still holds the subscriber
    ring.ipc_send(tx.id, b"still here")?;
    check_eq!(ring.wait_for(1)?.res, 10);
    check!(&buf[..10] == b"still here");
    check_eq!(ring.ipc_send(tx.id, b"again")?, 5);
    check_eq!(recv_msg(&mut ring, rx_id, 64)?, b"again".to_vec());
    Ok(())
}
