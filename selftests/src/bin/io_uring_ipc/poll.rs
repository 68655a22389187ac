//! poll and epoll on channel fds: readiness, EPOLL_CTL_MOD, EPOLLHUP, and
//! waiters that never receive.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use liburing_ipc::ipc::Delivery;
use liburing_ipc::opcode;
use liburing_ipc::uapi::io_uring::*;
use liburing_ipc::Ring;
use selftests::ipc::{attach, channel, push_recv, recv_msg};
use selftests::uring::{next_cqe_within, push};
use selftests::{check, check_eq, expect_errno, Context, Outcome, TestResult};

pub fn epoll_mod_and_hup() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 2, 64)?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
    // SAFETY: plain syscall; the fd is wrapped right away.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    check!(ep >= 0, "epoll_create1 failed");
    // SAFETY: ep is a new fd we own.
    let _ep_owner = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(ep) };
    let (tfd, rfd) = (tx.fd.as_raw_fd(), rx.fd.as_raw_fd());
    let (ein, eout) = (libc::EPOLLIN as u32, libc::EPOLLOUT as u32);
    let hup = (libc::EPOLLHUP | libc::EPOLLERR) as u32;

    // The sender is first watched for input only, then for output.
    epoll_ctl(ep, libc::EPOLL_CTL_ADD, tfd, ein)?;
    ring.ipc_send(tx.id, b"1")?;
    ring.ipc_send(tx.id, b"2")?;
    expect_errno(ring.ipc_send(tx.id, b"3"), libc::ENOBUFS).context("full ring")?;
    epoll_ctl(ep, libc::EPOLL_CTL_MOD, tfd, eout)?;
    check_eq!(epoll_wait_for(ep, tfd, eout, 0)?, 0);
    check_eq!(recv_msg(&mut ring, rx.id, 64)?, b"1".to_vec());
    let got = epoll_wait_for(ep, tfd, eout, 2000)?;
    check!(
        got & eout != 0,
        "no EPOLLOUT after space was freed: {got:#x}"
    );

    // A receiver watched for output only still hears the destroy.
    epoll_ctl(ep, libc::EPOLL_CTL_ADD, rfd, eout)?;
    check_eq!(epoll_wait_for(ep, rfd, hup, 0)?, 0);
    ring.ipc_destroy(ch)?;
    let got = epoll_wait_for(ep, rfd, hup, 2000)?;
    check!(got & hup != 0, "no EPOLLHUP after destroy: {got:#x}");
    Ok(())
}

pub fn sender_detach_is_not_hup_for_others() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 2, 64)?;
    let a = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let b = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
    ring.ipc_send(a.id, b"1")?;
    ring.ipc_send(a.id, b"2")?;
    let pollout = libc::POLLOUT as u32;
    push(
        &mut ring,
        opcode::poll_add(b.fd.as_raw_fd(), pollout).user_data(40),
    )?;
    ring.submit()?;
    ring.ipc_detach(a.id)?;
    std::thread::sleep(Duration::from_millis(100));
    check!(
        ring.pop_cqe().is_none(),
        "b's poll completed when a detached"
    );
    check_eq!(recv_msg(&mut ring, rx.id, 64)?, b"1".to_vec());
    let c = ring.wait_for(40)?;
    check_eq!(c.res as u32 & pollout, pollout);
    check_eq!(c.res as u32 & (libc::POLLHUP | libc::POLLERR) as u32, 0);
    Ok(())
}

/// An EPOLLEXCLUSIVE epoll waiter on a receiver's fd that never receives
/// does not take the message from an IPC_RECV parked on the same receiver.
pub fn epoll_exclusive_waiter_does_not_strand_recv() -> TestResult {
    let mut tx_ring = Ring::new(8)?;
    let mut rx_ring = Ring::new(8)?;
    let ch = channel(&tx_ring, Delivery::Unicast, 8, 64)?;
    let tx = attach(&tx_ring, ch, IOIPC_SUB_SEND)?;
    let rx = attach(&rx_ring, ch, IOIPC_SUB_RECV)?;
    // SAFETY: plain syscall, the fd is closed below.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    check!(
        ep >= 0,
        "epoll_create1: {}",
        std::io::Error::last_os_error()
    );
    let fd = rx.fd.as_raw_fd();
    // Queued on the receiver's wait queue before the recv parks.
    epoll_ctl(
        ep,
        libc::EPOLL_CTL_ADD,
        fd,
        (libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32,
    )?;
    let mut buf = [0u8; 64];
    push_recv(&mut rx_ring, rx.id, &mut buf, 1)?;
    rx_ring.submit()?;
    // A thread that waits in epoll_wait once and then never receives.
    let waiter = std::thread::spawn(move || {
        let mut ev = [libc::epoll_event { events: 0, u64: 0 }; 1];
        // SAFETY: ev is a valid array of one event.
        let n = unsafe { libc::epoll_wait(ep, ev.as_mut_ptr(), 1, 1000) };
        std::thread::sleep(Duration::from_millis(1000));
        n
    });
    std::thread::sleep(Duration::from_millis(200));
    tx_ring.ipc_send(tx.id, b"for the recv")?;
    let got = next_cqe_within(&mut rx_ring, 1000)?;
    let woke = waiter
        .join()
        .map_err(|_| Outcome::Fail("epoll thread panicked".into()))?;
    // SAFETY: ep is ours.
    unsafe { libc::close(ep) };
    match got {
        Some(c) => {
            check_eq!(c.user_data, 1);
            check_eq!(c.res, 12);
            check_eq!(&buf[..12], b"for the recv");
        }
        None => {
            return Err(Outcome::Fail(format!(
                "the parked recv never got the message (the epoll waiter returned {woke})"
            )))
        }
    }
    Ok(())
}

fn epoll_wait_for(ep: i32, fd: i32, want: u32, ms: i32) -> Result<u32, Outcome> {
    let mut ev = [libc::epoll_event { events: 0, u64: 0 }; 4];
    let deadline = Instant::now() + Duration::from_millis(ms as u64);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // SAFETY: ev is a valid array of 4 events.
        let n = unsafe { libc::epoll_wait(ep, ev.as_mut_ptr(), 4, left.as_millis() as i32) };
        if n < 0 {
            return Err(Outcome::Fail(format!(
                "epoll_wait: {}",
                std::io::Error::last_os_error()
            )));
        }
        for e in &ev[..n as usize] {
            if e.u64 == fd as u64 && e.events & want != 0 {
                return Ok(e.events);
            }
        }
        if n == 0 || Instant::now() >= deadline {
            return Ok(0);
        }
    }
}

fn epoll_ctl(ep: i32, op: i32, fd: i32, events: u32) -> TestResult {
    let mut ev = libc::epoll_event {
        events,
        u64: fd as u64,
    };
    // SAFETY: ev is a valid event for the duration of the call.
    if unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) } != 0 {
        return Err(Outcome::Fail(format!(
            "epoll_ctl: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}
