//! io_uring IPC channels: IORING_OP_IPC_SEND / IORING_OP_IPC_RECV and the
//! IORING_REGISTER_IPC_CHANNEL_* commands. Skips on kernels without them.

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use liburing_ipc::ipc::{self, Attach, ChannelConfig, Delivery, MsgInfo, RingView, Subscription};
use liburing_ipc::opcode::{self, IpcRecv, IpcRecvMultishot, IpcSend, Sqe};
use liburing_ipc::uapi::io_uring::*;
use liburing_ipc::{BufRing, Cqe, Error, Ring};
use selftests::util::{become_user, errno_name, euid, fork_child, pattern};
use selftests::{cases, check, check_eq, skip, Outcome, Suite, TestResult};

const NOBODY: u32 = 65534;

fn probe() -> Result<(), String> {
    let ring = match Ring::new(4) {
        Ok(r) => r,
        Err(e) => return Err(format!("io_uring unavailable: {e}")),
    };
    match ring.ipc_supported() {
        Ok(true) => Ok(()),
        Ok(false) => Err("the kernel does not support IORING_OP_IPC_SEND/RECV".into()),
        Err(e) => Err(format!("probe failed: {e}")),
    }
}

/// A key unique to this test process and call site.
fn key(n: u64) -> u64 {
    // SAFETY: getpid cannot fail.
    (unsafe { libc::getpid() } as u64) << 20 | n
}

fn errno_of<T>(r: Result<T, Error>) -> Option<i32> {
    r.err().and_then(|e| e.errno())
}

fn expect_errno<T: std::fmt::Debug>(r: Result<T, Error>, want: i32, what: &str) -> TestResult {
    match r {
        Err(e) if e.errno() == Some(want) => Ok(()),
        other => Err(Outcome::Fail(format!(
            "{what}: expected {}, got {other:?}",
            errno_name(want)
        ))),
    }
}

fn channel(ring: &Ring, d: Delivery, entries: u32, size: u32) -> Result<u32, Error> {
    ring.ipc_create(&ChannelConfig::new(d, entries, size))
}

fn attach(ring: &Ring, ch: u32, flags: u32) -> Result<Subscription, Error> {
    ring.ipc_attach(Attach::Id(ch), flags)
}

fn push(ring: &mut Ring, sqe: Sqe) -> Result<(), Error> {
    // SAFETY: every buffer these tests put in an SQE outlives the wait for
    // its completion, which each test performs before returning.
    unsafe { ring.push(&sqe) }
}

fn recv_msg(ring: &mut Ring, sub: u32, cap: usize) -> Result<Vec<u8>, Error> {
    let mut buf = vec![0u8; cap];
    let n = ring.ipc_recv(sub, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn create_rejects_bad_arguments() -> TestResult {
    let ring = Ring::new(8)?;
    let good = io_uring_ipc_channel_create {
        ring_entries: 16,
        max_msg_size: 64,
        mode: 0o600,
        ..Default::default()
    };
    let cases: [(&str, io_uring_ipc_channel_create); 10] = [
        (
            "broadcast|multicast",
            io_uring_ipc_channel_create {
                flags: IOIPC_F_BROADCAST | IOIPC_F_MULTICAST,
                ..good
            },
        ),
        (
            "unknown flag",
            io_uring_ipc_channel_create {
                flags: 1 << 7,
                ..good
            },
        ),
        (
            "entries not a power of two",
            io_uring_ipc_channel_create {
                ring_entries: 12,
                ..good
            },
        ),
        (
            "zero entries",
            io_uring_ipc_channel_create {
                ring_entries: 0,
                ..good
            },
        ),
        (
            "huge entries",
            io_uring_ipc_channel_create {
                ring_entries: 1 << 31,
                ..good
            },
        ),
        (
            "zero max_msg_size",
            io_uring_ipc_channel_create {
                max_msg_size: 0,
                ..good
            },
        ),
        (
            "max_msg_size over 1 MiB",
            io_uring_ipc_channel_create {
                max_msg_size: (1 << 20) + 1,
                ..good
            },
        ),
        (
            "reserved set",
            io_uring_ipc_channel_create {
                reserved: [0, 1, 0],
                ..good
            },
        ),
        (
            "mode bits beyond 0777",
            io_uring_ipc_channel_create {
                mode: 0o4600,
                ..good
            },
        ),
        (
            "private with a key",
            io_uring_ipc_channel_create {
                flags: IOIPC_F_PRIVATE,
                key: key(1),
                ..good
            },
        ),
    ];
    for (what, mut arg) in cases {
        expect_errno(ring.ipc_create_raw(&mut arg), libc::EINVAL, what)?;
    }
    // Overflowing total size: many entries of the largest messages.
    let mut big = io_uring_ipc_channel_create {
        ring_entries: 1 << 15,
        max_msg_size: 1 << 20,
        ..good
    };
    let e = errno_of(ring.ipc_create_raw(&mut big));
    check!(
        matches!(e, Some(libc::EINVAL) | Some(libc::ENOMEM)),
        "64 GiB ring: {e:?}"
    );
    // Nothing was created by any of the failures: the first good create gets
    // a valid id and a key can be used once.
    let mut a = io_uring_ipc_channel_create {
        key: key(2),
        ..good
    };
    ring.ipc_create_raw(&mut a)?;
    check!(a.channel_id_out != 0, "channel id 0");
    let mut b = io_uring_ipc_channel_create {
        key: key(2),
        ..good
    };
    expect_errno(ring.ipc_create_raw(&mut b), libc::EEXIST, "duplicate key")
}

fn attach_returns_cloexec_readonly_fd() -> TestResult {
    let ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let sub = attach(&ring, ch, IOIPC_SUB_BOTH)?;
    check!(sub.id != 0, "subscriber id 0");
    let fd = sub.fd.as_raw_fd();
    // SAFETY: fcntl queries on an fd we own.
    let (fdfl, fl) = unsafe {
        (
            libc::fcntl(fd, libc::F_GETFD),
            libc::fcntl(fd, libc::F_GETFL),
        )
    };
    check!(
        fdfl & libc::FD_CLOEXEC != 0,
        "channel fd is not close-on-exec"
    );
    check_eq!(fl & libc::O_ACCMODE, libc::O_RDONLY);
    check!(sub.region_size > 0, "empty region");
    // SAFETY: attempt a writable shared mapping, which must be refused.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            sub.region_size as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            sub.mmap_offset as i64,
        )
    };
    check!(
        p == libc::MAP_FAILED,
        "writable mapping of the channel was allowed"
    );
    let bad = ring.ipc_attach_raw(&mut io_uring_ipc_channel_attach {
        channel_id: ch,
        flags: 1 << 5,
        ..Default::default()
    });
    expect_errno(bad, libc::EINVAL, "unknown subscriber flag")?;
    let bad = ring.ipc_attach_raw(&mut io_uring_ipc_channel_attach {
        channel_id: ch,
        flags: IOIPC_SUB_RECV,
        reserved: [1, 0, 0],
        ..Default::default()
    });
    expect_errno(bad, libc::EINVAL, "reserved attach field")?;
    expect_errno(
        attach(&ring, 0x7fff_fff0, IOIPC_SUB_RECV),
        libc::ENOENT,
        "unknown channel id",
    )?;
    expect_errno(
        ring.ipc_attach(Attach::Key(key(77)), IOIPC_SUB_RECV),
        libc::ENOENT,
        "unknown key",
    )
}

fn unicast_fifo_order() -> TestResult {
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
fn late_receiver_takes_queued_messages() -> TestResult {
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

fn unicast_each_message_once() -> TestResult {
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

fn broadcast_reaches_every_receiver() -> TestResult {
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

fn broadcast_slot_freed_after_all_receivers() -> TestResult {
    let mut ring = Ring::new(32)?;
    let ch = channel(&ring, Delivery::Broadcast, 4, 64)?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let a = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let b = attach(&ring, ch, IOIPC_SUB_RECV)?;
    for i in 0..4u64 {
        ring.ipc_send(tx.id, &[i as u8])?;
    }
    expect_errno(ring.ipc_send(tx.id, b"x"), libc::ENOBUFS, "full ring")?;
    recv_msg(&mut ring, a.id, 64)?;
    // Only one of the two receivers consumed slot 0: still full.
    expect_errno(
        ring.ipc_send(tx.id, b"x"),
        libc::ENOBUFS,
        "slot still owed to b",
    )?;
    recv_msg(&mut ring, b.id, 64)?;
    ring.ipc_send(tx.id, b"x")?;
    Ok(())
}

fn multicast_distributes_each_message_once() -> TestResult {
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

fn targeted_send_reaches_only_target() -> TestResult {
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
    expect_errno(
        ring.ipc_send_to(tx.id, 0x7fff_0000, b"nobody"),
        libc::ENXIO,
        "unknown target",
    )
}

fn truncation_is_visible() -> TestResult {
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

fn oversized_send_is_emsgsize() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 128)?;
    let s = attach(&ring, ch, IOIPC_SUB_BOTH)?;
    expect_errno(
        ring.ipc_send(s.id, &[0u8; 129]),
        libc::EMSGSIZE,
        "129 bytes into 128",
    )?;
    check_eq!(ring.ipc_send(s.id, &[0u8; 128])?, 128);
    Ok(())
}

fn sender_credentials_and_user_data() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let msg = b"who";
    push(
        &mut ring,
        IpcSend::new(tx.id, msg.as_ptr(), 3)
            .build()
            .user_data(0x5eed),
    )?;
    check_eq!(ring.wait_for(0x5eed)?.res, 3);
    let (_, info) = ring.ipc_recv_info(rx.id, &mut [0u8; 64])?;
    // SAFETY: plain id getters.
    let (pid, uid, gid) = unsafe { (libc::getpid(), libc::getuid(), libc::getgid()) };
    check_eq!(info.sender_pid, pid);
    check_eq!(info.sender_uid, uid);
    check_eq!(info.sender_gid, gid);
    check_eq!(info.sender_data, 0x5eed);
    check_eq!(info.sender_id, tx.id);
    check_eq!(info.len, 3);
    Ok(())
}

fn credentials_from_another_process() -> TestResult {
    if euid() != 0 {
        skip!("needs root to change uid");
    }
    let mut ring = Ring::new(8)?;
    let k = key(3);
    let ch = ring.ipc_create(
        &ChannelConfig::new(Delivery::Unicast, 8, 64)
            .key(k)
            .mode(0o666),
    )?;
    let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let child = fork_child(|| {
        if become_user(4321, 4322).is_err() {
            return 2;
        }
        let Ok(mut r) = Ring::new(8) else { return 3 };
        let Ok(s) = r.ipc_attach(Attach::Key(k), IOIPC_SUB_SEND) else {
            return 4;
        };
        if r.ipc_send(s.id, b"from child").is_err() {
            return 5;
        }
        0
    })?;
    let (n, info) = ring.ipc_recv_info(rx.id, &mut [0u8; 64])?;
    let cpid = child.pid;
    check_eq!(child.wait()?, 0);
    check_eq!(n, 10);
    check_eq!(info.sender_pid, cpid);
    check_eq!((info.sender_uid, info.sender_gid), (4321, 4322));
    Ok(())
}

fn blocking_recv_woken_by_other_process() -> TestResult {
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

fn recv_nonblock_on_empty_is_eagain() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
    check!(
        ring.ipc_try_recv(rx.id, &mut [0u8; 64])?.is_none(),
        "message out of nowhere"
    );
    Ok(())
}

fn recv_link_timeout_cancels_waiting_recv() -> TestResult {
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

fn async_cancel_of_waiting_recv() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let rx = attach(&ring, ch, IOIPC_SUB_BOTH)?;
    let mut buf = [0u8; 64];
    push(
        &mut ring,
        IpcRecv::new(rx.id, buf.as_mut_ptr(), 64)
            .build()
            .user_data(10),
    )?;
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

fn full_ring_is_enobufs_and_send_wait_waits() -> TestResult {
    let mut ring = Ring::new(16)?;
    let k = key(5);
    let ch = ring.ipc_create(&ChannelConfig::new(Delivery::Unicast, 2, 64).key(k))?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    ring.ipc_send(tx.id, b"1")?;
    ring.ipc_send(tx.id, b"2")?;
    expect_errno(
        ring.ipc_send(tx.id, b"3"),
        libc::ENOBUFS,
        "third send into two slots",
    )?;
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

fn subscriber_rights_are_enforced() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let e = errno_of(ring.ipc_send(rx.id, b"x"));
    check!(
        matches!(e, Some(libc::EBADF) | Some(libc::EACCES)),
        "send on a RECV-only subscriber: {e:?}"
    );
    let e = errno_of(ring.ipc_recv(tx.id, &mut [0u8; 8]));
    check!(
        matches!(e, Some(libc::EBADF) | Some(libc::EACCES)),
        "recv on a SEND-only subscriber: {e:?}"
    );
    expect_errno(
        ring.ipc_send(0x7ff0_0000, b"x"),
        libc::ENOENT,
        "unknown subscriber id",
    )?;
    let mut buf = [0u8; 8];
    // An unknown IPC flag, which no builder sets.
    let recv = IpcRecv::new(rx.id, buf.as_mut_ptr(), 8).build();
    let unknown_flag = Sqe::from_raw(io_uring_sqe {
        rw_flags: 1 << 9,
        ..*recv.as_raw()
    });
    push(&mut ring, unknown_flag.user_data(9))?;
    check_eq!(ring.wait_for(9)?.res, -libc::EINVAL);
    Ok(())
}

fn permission_denied_for_other_uid() -> TestResult {
    if euid() != 0 {
        skip!("needs root to change uid");
    }
    let ring = Ring::new(8)?;
    let (k600, k644) = (key(6), key(7));
    ring.ipc_create(
        &ChannelConfig::new(Delivery::Broadcast, 8, 64)
            .key(k600)
            .mode(0o600),
    )?;
    ring.ipc_create(
        &ChannelConfig::new(Delivery::Broadcast, 8, 64)
            .key(k644)
            .mode(0o644),
    )?;
    let child = fork_child(|| {
        if become_user(NOBODY, NOBODY).is_err() {
            return 2;
        }
        let Ok(r) = Ring::new(8) else { return 3 };
        let code =
            |res: Result<Subscription, Error>| res.err().and_then(|e| e.errno()).unwrap_or(0);
        if code(r.ipc_attach(Attach::Key(k600), IOIPC_SUB_RECV)) != libc::EACCES {
            return 10;
        }
        if code(r.ipc_attach(Attach::Key(k644), IOIPC_SUB_SEND)) != libc::EACCES {
            return 11;
        }
        if code(r.ipc_attach(Attach::Key(k644), IOIPC_SUB_RECV)) != 0 {
            return 12;
        }
        0
    })?;
    let code = child.wait()?;
    check!(code == 0, "child check {code} failed (10: 0600 recv allowed, 11: 0644 send allowed, 12: 0644 recv denied)");
    Ok(())
}

fn ipc_namespace_isolation() -> TestResult {
    if euid() != 0 {
        skip!("needs root for unshare(CLONE_NEWIPC)");
    }
    let ring = Ring::new(8)?;
    let k = key(8);
    let ch = ring.ipc_create(
        &ChannelConfig::new(Delivery::Unicast, 8, 64)
            .key(k)
            .mode(0o666),
    )?;
    let child = fork_child(|| {
        // SAFETY: unshare on this single-threaded child.
        if unsafe { libc::unshare(libc::CLONE_NEWIPC) } != 0 {
            return 2;
        }
        let Ok(r) = Ring::new(8) else { return 3 };
        let by_key = r
            .ipc_attach(Attach::Key(k), IOIPC_SUB_RECV)
            .err()
            .and_then(|e| e.errno());
        let by_id = r
            .ipc_attach(Attach::Id(ch), IOIPC_SUB_RECV)
            .err()
            .and_then(|e| e.errno());
        if by_key != Some(libc::ENOENT) {
            return 10;
        }
        if by_id != Some(libc::ENOENT) {
            return 11;
        }
        // The same key is free in the new namespace.
        match r.ipc_create(&ChannelConfig::new(Delivery::Unicast, 8, 64).key(k)) {
            Ok(_) => 0,
            Err(_) => 12,
        }
    })?;
    let code = child.wait()?;
    check!(
        code == 0,
        "child check {code} failed (10: found by key, 11: found by id, 12: key taken)"
    );
    Ok(())
}

fn memlock_limit_stops_channel_creation() -> TestResult {
    if euid() != 0 {
        skip!("needs root to drop CAP_IPC_LOCK by changing uid");
    }
    let child = fork_child(|| {
        let lim = libc::rlimit {
            rlim_cur: 256 * 1024,
            rlim_max: 256 * 1024,
        };
        // SAFETY: lowering our own limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
            return 2;
        }
        if become_user(NOBODY, NOBODY).is_err() {
            return 3;
        }
        let Ok(r) = Ring::new(4) else { return 4 };
        for i in 0..4096 {
            match r.ipc_create(&ChannelConfig::new(Delivery::Unicast, 16, 4096)) {
                Ok(_) => {}
                Err(e) if e.errno() == Some(libc::ENOMEM) => return if i > 0 { 0 } else { 5 },
                Err(_) => return 6,
            }
        }
        7
    })?;
    let code = child.wait()?;
    check!(
        code == 0,
        "child check {code} failed (5: first create failed, 6: wrong errno, 7: never ENOMEM)"
    );
    Ok(())
}

fn destroy_wakes_waiters_with_epipe() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Broadcast, 8, 64)?;
    let a = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let b = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let (mut ba, mut bb) = ([0u8; 64], [0u8; 64]);
    push(
        &mut ring,
        IpcRecv::new(a.id, ba.as_mut_ptr(), 64).build().user_data(1),
    )?;
    push(
        &mut ring,
        IpcRecv::new(b.id, bb.as_mut_ptr(), 64).build().user_data(2),
    )?;
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
    expect_errno(
        ring.ipc_send(tx.id, b"late"),
        libc::ENOENT,
        "send after destroy",
    )?;
    expect_errno(
        ring.ipc_try_recv(a.id, &mut [0u8; 64]),
        libc::ENOENT,
        "recv after destroy",
    )?;
    expect_errno(
        attach(&ring, ch, IOIPC_SUB_RECV),
        libc::ENOENT,
        "attach after destroy",
    )?;
    expect_errno(ring.ipc_destroy(ch), libc::ENOENT, "second destroy")
}

fn destroy_is_creator_only() -> TestResult {
    let creator = Ring::new(8)?;
    let other = Ring::new(8)?;
    let ch = channel(&creator, Delivery::Unicast, 8, 64)?;
    expect_errno(
        other.ipc_destroy(ch),
        libc::EPERM,
        "destroy from another ring",
    )?;
    creator.ipc_destroy(ch)?;
    Ok(())
}

fn creator_exit_completes_waiters() -> TestResult {
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
    expect_errno(r, libc::EPIPE, "recv when the creator exits")?;
    expect_errno(
        ring.ipc_recv(rx.id, &mut [0u8; 64]),
        libc::ENOENT,
        "recv after the creator exited",
    )?;
    expect_errno(
        ring.ipc_attach(Attach::Key(k), IOIPC_SUB_RECV),
        libc::ENOENT,
        "attach after creator exit",
    )
}

fn ring_exit_detaches_its_subscribers() -> TestResult {
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

fn detach_then_ops_fail() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let s = attach(&ring, ch, IOIPC_SUB_BOTH)?;
    ring.ipc_detach(s.id)?;
    expect_errno(ring.ipc_send(s.id, b"x"), libc::ENOENT, "send after detach")?;
    expect_errno(ring.ipc_detach(s.id), libc::ENOENT, "second detach")
}

fn private_channel_stays_in_process() -> TestResult {
    let ring = Ring::new(8)?;
    let ch = ring.ipc_create(
        &ChannelConfig::new(Delivery::Unicast, 8, 64)
            .private()
            .mode(0o666),
    )?;
    let other_ring = Ring::new(8)?;
    attach(&other_ring, ch, IOIPC_SUB_RECV)?;
    let child = fork_child(|| {
        let Ok(r) = Ring::new(8) else { return 3 };
        match r.ipc_attach(Attach::Id(ch), IOIPC_SUB_RECV) {
            Ok(_) => 10,
            Err(_) => 0,
        }
    })?;
    check_eq!(child.wait()?, 0);
    Ok(())
}

fn fork_shares_the_ring() -> TestResult {
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

fn close_channel_fd_with_recv_in_flight() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let mut buf = [0u8; 64];
    push(
        &mut ring,
        IpcRecv::new(rx.id, buf.as_mut_ptr(), 64)
            .build()
            .user_data(1),
    )?;
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

fn mmap_layout_matches_messages() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Broadcast, 8, 100)?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let view = RingView::map(&rx)?;
    let h = view.header();
    check_eq!((h.ring_entries, h.ring_mask, h.max_msg_size), (8, 7, 100));
    check!(
        h.slot_size >= 100,
        "slot_size {} < max_msg_size",
        h.slot_size
    );
    check_eq!(h.flags & IOIPC_F_BROADCAST, IOIPC_F_BROADCAST);
    check!(
        h.data_offset as usize + 8 * h.slot_size as usize <= view.len(),
        "slots beyond the region"
    );
    let first = h.head;
    for i in 0..3u64 {
        ring.ipc_send(tx.id, &pattern(i, 20 + i as usize))?;
    }
    check_eq!(view.header().head, first + 3);
    for i in 0..3u64 {
        let Some((d, data)) = view.read(first + i) else {
            return Err(Outcome::Fail(format!(
                "seq {} not readable from the mapping",
                first + i
            )));
        };
        check_eq!(d.len as usize, 20 + i as usize);
        check_eq!(d.sender_id, tx.id);
        check!(
            data == pattern(i, 20 + i as usize),
            "mapped payload {i} differs"
        );
    }
    for _ in 0..3 {
        recv_msg(&mut ring, rx.id, 100)?;
    }
    check_eq!(view.header().tail, first + 3);
    Ok(())
}

fn fdinfo_describes_the_channel() -> TestResult {
    let ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Multicast, 16, 64)?;
    let s = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let _t = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", s.fd.as_raw_fd()))?;
    let fields: BTreeMap<&str, &str> = info
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    for k in ["id", "flags", "entries", "subscribers"] {
        check!(
            fields.keys().any(|f| f.contains(k)),
            "fdinfo lacks {k}:\n{info}"
        );
    }
    check!(
        info.contains(&ch.to_string()),
        "fdinfo does not show channel id {ch}:\n{info}"
    );
    check!(
        info.contains("16"),
        "fdinfo does not show 16 entries:\n{info}"
    );
    Ok(())
}

fn single_issuer_defer_taskrun_ring() -> TestResult {
    let mut ring = Ring::builder(16).single_issuer().defer_taskrun().build()?;
    let k = key(11);
    let ch = ring.ipc_create(&ChannelConfig::new(Delivery::Unicast, 8, 64).key(k))?;
    let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let child = fork_child(|| {
        std::thread::sleep(Duration::from_millis(200));
        let Ok(mut r) = Ring::builder(8).single_issuer().defer_taskrun().build() else {
            return 3;
        };
        let Ok(s) = r.ipc_attach(Attach::Key(k), IOIPC_SUB_SEND) else {
            return 4;
        };
        if r.ipc_send(s.id, b"deferred").is_err() {
            return 5;
        }
        0
    })?;
    check_eq!(recv_msg(&mut ring, rx.id, 64)?, b"deferred".to_vec());
    check_eq!(child.wait()?, 0);
    Ok(())
}

fn sqpoll_ring_send_recv() -> TestResult {
    let mut ring = match Ring::builder(16).sqpoll(100).build() {
        Ok(r) => r,
        Err(e) if e.errno() == Some(libc::EPERM) => skip!("SQPOLL needs privileges here"),
        Err(e) => return Err(e.into()),
    };
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let s = attach(&ring, ch, IOIPC_SUB_BOTH)?;
    ring.ipc_send(s.id, b"polled")?;
    let (n, info) = ring.ipc_recv_info(s.id, &mut [0u8; 64])?;
    check_eq!(n, 6);
    // SAFETY: getpid cannot fail.
    check_eq!(info.sender_pid, unsafe { libc::getpid() });
    Ok(())
}

fn multi_producer_stress() -> TestResult {
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

/// An anonymous mapping that is never touched here: its pages are not
/// present until the kernel faults them in, so a copy with page faults
/// disabled into it fails and the kernel has to take its retry path.
struct Untouched {
    ptr: *mut u8,
    len: usize,
}

impl Untouched {
    fn new(len: usize) -> Result<Untouched, Outcome> {
        // SAFETY: a fresh private anonymous mapping, checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Outcome::Fail(format!(
                "mmap: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(Untouched { ptr: p.cast(), len })
    }

    fn bytes(&self, n: usize) -> Vec<u8> {
        // SAFETY: n <= len bytes of our own live mapping.
        unsafe { std::slice::from_raw_parts(self.ptr, n.min(self.len)) }.to_vec()
    }
}

impl Drop for Untouched {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in new().
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Receive one message into `buf` with a raw SQE and return the CQE result.
fn recv_raw(ring: &mut Ring, sub: u32, buf: *mut u8, len: u32) -> Result<i32, Error> {
    push(
        ring,
        IpcRecv::new(sub, buf, len).nonblock().build().user_data(77),
    )?;
    ring.submit()?;
    Ok(ring.wait_for(77)?.res)
}

fn recv_into_unfaulted_buffer() -> TestResult {
    for d in [Delivery::Unicast, Delivery::Broadcast] {
        let mut ring = Ring::new(8)?;
        let ch = channel(&ring, d, 8, 8192)?;
        let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
        let a = attach(&ring, ch, IOIPC_SUB_RECV)?;
        let b = attach(&ring, ch, IOIPC_SUB_RECV)?;
        let data = pattern(5, 8000);
        ring.ipc_send(tx.id, &data)?;
        let buf = Untouched::new(3 * 4096)?;
        check_eq!(recv_raw(&mut ring, a.id, buf.ptr, 8192)?, 8000);
        check!(buf.bytes(8000) == data, "{d:?}: payload differs");
        // The retry must neither lose nor duplicate the message.
        let other = ring.ipc_try_recv(b.id, &mut [0u8; 8192])?;
        match d {
            Delivery::Broadcast => check_eq!(other, Some(8000)),
            _ => check_eq!(other, None),
        }
        check_eq!(ring.ipc_try_recv(a.id, &mut [0u8; 8192])?, None);
    }
    Ok(())
}

fn send_from_unfaulted_buffer() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 8192)?;
    let s = attach(&ring, ch, IOIPC_SUB_BOTH)?;
    // Never written: the kernel reads zero pages it has to fault in.
    let buf = Untouched::new(2 * 4096)?;
    push(
        &mut ring,
        IpcSend::new(s.id, buf.ptr, 6000).build().user_data(5),
    )?;
    ring.submit()?;
    check_eq!(ring.wait_for(5)?.res, 6000);
    let got = recv_msg(&mut ring, s.id, 8192)?;
    check_eq!(got.len(), 6000);
    check!(got.iter().all(|&b| b == 0), "payload of zero pages differs");
    Ok(())
}

fn bad_buffers_change_nothing() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let s = attach(&ring, ch, IOIPC_SUB_BOTH)?;
    let view = RingView::map(&s)?;
    let head = view.header().head;
    // An unmapped user address: nothing is queued.
    push(
        &mut ring,
        IpcSend::new(s.id, 8 as *const u8, 16).build().user_data(6),
    )?;
    ring.submit()?;
    check_eq!(ring.wait_for(6)?.res, -libc::EFAULT);
    check_eq!(view.header().head, head);
    // A receive into it fails and leaves the message for the next one.
    ring.ipc_send(s.id, b"keep me")?;
    check_eq!(recv_raw(&mut ring, s.id, 8 as *mut u8, 64)?, -libc::EFAULT);
    check_eq!(recv_msg(&mut ring, s.id, 64)?, b"keep me".to_vec());
    Ok(())
}

fn multicast_detach_hands_messages_on() -> TestResult {
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

fn subscriber_limit_is_enospc() -> TestResult {
    const LIMIT: usize = 1024;
    let ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Broadcast, 8, 64)?;
    // Closing a channel fd does not detach: the ring keeps the subscriber.
    let mut ids = Vec::with_capacity(LIMIT);
    for _ in 0..LIMIT {
        ids.push(attach(&ring, ch, IOIPC_SUB_RECV)?.id);
    }
    expect_errno(
        attach(&ring, ch, IOIPC_SUB_SEND),
        libc::ENOSPC,
        "subscriber 1025",
    )?;
    ring.ipc_detach(ids[0])?;
    attach(&ring, ch, IOIPC_SUB_SEND)?;
    Ok(())
}

fn mmap_after_detach_is_enoent() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let s = attach(&ring, ch, IOIPC_SUB_BOTH)?;
    let view = RingView::map(&s)?;
    ring.ipc_send(s.id, b"before")?;
    let head = view.header().head;
    ring.ipc_detach(s.id)?;
    expect_errno(RingView::map(&s), libc::ENOENT, "mmap after detach")?;
    // The mapping made before stays readable.
    check_eq!(view.header().head, head);
    Ok(())
}

fn create_fault_leaves_no_channel() -> TestResult {
    let ring = Ring::new(8)?;
    let k = key(21);
    let page = Untouched::new(4096)?;
    let arg = io_uring_ipc_channel_create {
        flags: 0,
        ring_entries: 8,
        max_msg_size: 64,
        mode: 0o600,
        key: k,
        ..Default::default()
    };
    // SAFETY: the page is ours and large enough; it becomes read-only, so
    // the kernel can read the argument but not write channel_id_out.
    let p = unsafe {
        std::ptr::write(page.ptr.cast::<io_uring_ipc_channel_create>(), arg);
        if libc::mprotect(page.ptr.cast(), 4096, libc::PROT_READ) != 0 {
            return Err(Outcome::Fail("mprotect failed".into()));
        }
        &mut *page.ptr.cast::<io_uring_ipc_channel_create>()
    };
    expect_errno(ring.ipc_create_raw(p), libc::EFAULT, "read-only argument")?;
    expect_errno(
        ring.ipc_attach(Attach::Key(k), IOIPC_SUB_RECV),
        libc::ENOENT,
        "attach to the failed channel",
    )?;
    // The key is free again.
    ring.ipc_create(&ChannelConfig::new(Delivery::Unicast, 8, 64).key(k))?;
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

fn epoll_mod_and_hup() -> TestResult {
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
    expect_errno(ring.ipc_send(tx.id, b"3"), libc::ENOBUFS, "full ring")?;
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

/// tracefs, mounted if needed; None if the kernel has no event tracing.
fn tracefs() -> Option<std::path::PathBuf> {
    let root = std::path::Path::new("/sys/kernel/tracing");
    if !root.join("events").exists() {
        let src = std::ffi::CString::new("tracefs").unwrap();
        let dst = std::ffi::CString::new(root.as_os_str().as_encoded_bytes()).ok()?;
        // SAFETY: valid NUL-terminated strings; failure is checked below.
        unsafe {
            libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                src.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
    }
    root.join("events").exists().then(|| root.to_path_buf())
}

/// `key value,` pairs of one tracepoint line, after the event name.
fn trace_fields(line: &str) -> BTreeMap<String, String> {
    line.split(", ")
        .filter_map(|kv| {
            let kv = kv.rsplit(": ").next().unwrap_or(kv);
            let (k, v) = kv.trim().split_once(' ')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

fn tracepoints_report_send_and_recv() -> TestResult {
    let Some(t) = tracefs() else {
        skip!("no tracefs events (kernel without event tracing)");
    };
    let ev = t.join("events/io_uring");
    if !ev.join("io_uring_ipc_send").exists() {
        skip!("the kernel has no io_uring_ipc_send tracepoint");
    }
    let set = |name: &str, v: &str| std::fs::write(ev.join(name).join("enable"), v);
    std::fs::write(t.join("trace"), "")?;
    set("io_uring_ipc_send", "1")?;
    set("io_uring_ipc_recv", "1")?;
    let run = || -> Result<(u32, u32, u32), Error> {
        let mut ring = Ring::new(8)?;
        let ch = channel(&ring, Delivery::Multicast, 8, 64)?;
        let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
        let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
        for n in [5usize, 6, 7] {
            ring.ipc_send(tx.id, &pattern(n as u64, n))?;
        }
        for _ in 0..3 {
            ring.ipc_recv(rx.id, &mut [0u8; 64])?;
        }
        let _ = ring.ipc_try_recv(rx.id, &mut [0u8; 64])?;
        Ok((ch, tx.id, rx.id))
    };
    let r = run();
    set("io_uring_ipc_send", "0")?;
    set("io_uring_ipc_recv", "0")?;
    let (ch, tx, rx) = r?;
    let text = std::fs::read_to_string(t.join("trace"))?;
    let mine = |event: &str| -> Vec<BTreeMap<String, String>> {
        text.lines()
            .filter(|l| l.contains(&format!(" {event}: ")))
            .map(trace_fields)
            .filter(|f| f.get("channel") == Some(&ch.to_string()))
            .collect()
    };
    let sends = mine("io_uring_ipc_send");
    let recvs = mine("io_uring_ipc_recv");
    let field = |f: &BTreeMap<String, String>, k: &str| f.get(k).cloned().unwrap_or_default();
    check!(sends.len() == 3, "want 3 send events:\n{text}");
    check!(recvs.len() == 4, "want 3 + one EAGAIN recv events:\n{text}");
    for (i, f) in sends.iter().enumerate() {
        check_eq!(field(f, "subscriber"), tx.to_string());
        check_eq!(field(f, "flags"), format!("{:#x}", IOIPC_F_MULTICAST));
        check_eq!(field(f, "len"), (5 + i).to_string());
        check_eq!(field(f, "res"), (5 + i).to_string());
        check_eq!(field(f, "seq"), i.to_string());
    }
    for (i, f) in recvs[..3].iter().enumerate() {
        check_eq!(field(f, "subscriber"), rx.to_string());
        check_eq!(field(f, "res"), (5 + i).to_string());
        check_eq!(field(f, "seq"), field(&sends[i], "seq"));
    }
    check_eq!(field(&recvs[3], "res"), (-libc::EAGAIN).to_string());
    Ok(())
}

/// The next completion of `ring` (a DEFER_TASKRUN ring: submit() runs its
/// task work), or None after `ms` milliseconds.
fn next_cqe_within(ring: &mut Ring, ms: u64) -> Result<Option<Cqe>, Error> {
    let deadline = Instant::now() + Duration::from_millis(ms);
    loop {
        ring.submit()?;
        if let Some(c) = ring.pop_cqe() {
            return Ok(Some(c));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A channel between a plain sending ring and a receiving
/// SINGLE_ISSUER | DEFER_TASKRUN ring, whose task work runs only when it is
/// entered with GETEVENTS.
struct Deferred {
    rx_ring: Ring,
    tx_ring: Ring,
    tx: Subscription,
    rx: Subscription,
}

fn deferred_channel(d: Delivery, entries: u32) -> Result<Deferred, Error> {
    let rx_ring = Ring::builder(16).single_issuer().defer_taskrun().build()?;
    let tx_ring = Ring::new(8)?;
    let ch = channel(&tx_ring, d, entries, 64)?;
    let tx = attach(&tx_ring, ch, IOIPC_SUB_SEND)?;
    let rx = attach(&rx_ring, ch, IOIPC_SUB_RECV)?;
    Ok(Deferred {
        rx_ring,
        tx_ring,
        tx,
        rx,
    })
}

/// Park one IPC_RECV per buffer, user_data `first_ud` on, with one enter
/// each so that they wait in this order; the channel must be empty.
fn park_recvs(ring: &mut Ring, sub: u32, bufs: &mut [[u8; 64]], first_ud: u64) -> TestResult {
    for (i, b) in bufs.iter_mut().enumerate() {
        push(
            ring,
            IpcRecv::new(sub, b.as_mut_ptr(), 64)
                .build()
                .user_data(first_ud + i as u64),
        )?;
        ring.submit()?;
    }
    check!(
        ring.pop_cqe().is_none(),
        "a recv completed on an empty channel"
    );
    Ok(())
}

/// A message for a receiver with several IPC_RECV waiting completes one of
/// them, and no IPC request is ever issued again through async poll.
fn message_wakes_one_parked_recv() -> TestResult {
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
fn recv_handed_a_message_completes_with_it() -> TestResult {
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
fn messages_skip_a_cancelled_recv() -> TestResult {
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

fn broadcast_bad_buffer_loses_only_its_copy() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Broadcast, 8, 64)?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let a = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let b = attach(&ring, ch, IOIPC_SUB_RECV)?;
    ring.ipc_send(tx.id, b"one")?;
    ring.ipc_send(tx.id, b"two")?;
    check_eq!(recv_raw(&mut ring, a.id, 8 as *mut u8, 64)?, -libc::EFAULT);
    // a lost "one" like a datagram; b still gets both, a the next one.
    check_eq!(recv_msg(&mut ring, a.id, 64)?, b"two".to_vec());
    check_eq!(recv_msg(&mut ring, b.id, 64)?, b"one".to_vec());
    check_eq!(recv_msg(&mut ring, b.id, 64)?, b"two".to_vec());
    // Every slot is free again.
    for i in 0..8u64 {
        ring.ipc_send(tx.id, &i.to_le_bytes())?;
    }
    Ok(())
}

fn bad_msg_info_keeps_the_message() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let s = attach(&ring, ch, IOIPC_SUB_BOTH)?;
    ring.ipc_send(s.id, b"with info")?;
    let mut buf = [0u8; 64];
    push(
        &mut ring,
        IpcRecv::new(s.id, buf.as_mut_ptr(), 64)
            .info(4096 as *mut MsgInfo)
            .nonblock()
            .build()
            .user_data(9),
    )?;
    ring.submit()?;
    check_eq!(ring.wait_for(9)?.res, -libc::EFAULT);
    let (n, info) = ring.ipc_recv_info(s.id, &mut buf)?;
    check_eq!(n, 9);
    check_eq!(info.len, 9);
    check!(&buf[..9] == b"with info", "payload differs");
    Ok(())
}

fn ring_stays_in_one_ipc_namespace() -> TestResult {
    if euid() != 0 {
        skip!("needs root for unshare(CLONE_NEWIPC)");
    }
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let shared: *mut Ring = &mut ring;
    let child = fork_child(move || {
        // SAFETY: unshare on this single-threaded child.
        if unsafe { libc::unshare(libc::CLONE_NEWIPC) } != 0 {
            return 2;
        }
        // SAFETY: the child's own copy of `ring`, see fork_shares_the_ring.
        let r = unsafe { &mut *shared };
        let cfg = ChannelConfig::new(Delivery::Unicast, 8, 64);
        if errno_of(r.ipc_create(&cfg)) != Some(libc::EXDEV) {
            return 10;
        }
        if errno_of(r.ipc_attach(Attach::Id(ch), IOIPC_SUB_RECV)) != Some(libc::EXDEV) {
            return 11;
        }
        // The ring knows its own channels wherever it is used from.
        match r.ipc_destroy(ch) {
            Ok(()) => 0,
            Err(_) => 12,
        }
    })?;
    let code = child.wait()?;
    check!(
        code == 0,
        "child check {code} failed (10: create, 11: attach not EXDEV, 12: destroy)"
    );
    expect_errno(
        attach(&ring, ch, IOIPC_SUB_RECV),
        libc::ENOENT,
        "attach after destroy from the other namespace",
    )
}

fn sender_detach_is_not_hup_for_others() -> TestResult {
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

/// io-wq worker threads of this process (`iou-wrk-*`): a waiting IPC request
/// must never need one.
fn io_workers() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .filter(|c| c.starts_with("iou-wrk"))
        .count()
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

/// A parked IPC_RECV of a send-and-receive subscriber outlives any number of
/// wakeups that bring it nothing (here: 130 send-only subscribers coming and
/// going), stays cancellable and never moves to an io-wq worker. Waiting by
/// async poll spent one of 128 re-arms per wakeup, then blocked a worker,
/// where ASYNC_CANCEL found it running (-EALREADY).
fn parked_recv_survives_wakeups_without_messages() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let s = attach(&ring, ch, IOIPC_SUB_BOTH)?;
    let mut buf = [0u8; 64];
    push(
        &mut ring,
        IpcRecv::new(s.id, buf.as_mut_ptr(), 64)
            .build()
            .user_data(1),
    )?;
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
fn link_timeout_after_wakeups_without_messages() -> TestResult {
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
fn unicast_many_receivers_each_message_once() -> TestResult {
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
        push(
            &mut rx_ring,
            IpcRecv::new(s.id, bufs[i].as_mut_ptr(), 64)
                .build()
                .user_data(i as u64),
        )?;
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
        push(
            &mut rx_ring,
            IpcRecv::new(subs[i].id, bufs[i].as_mut_ptr(), 64)
                .build()
                .user_data(i as u64),
        )?;
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

/// An EPOLLEXCLUSIVE epoll waiter on a receiver's fd that never receives
/// does not take the message from an IPC_RECV parked on the same receiver.
fn epoll_exclusive_waiter_does_not_strand_recv() -> TestResult {
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
    push(
        &mut rx_ring,
        IpcRecv::new(rx.id, buf.as_mut_ptr(), 64)
            .build()
            .user_data(1),
    )?;
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

/// SEND_WAITs of one sender that find the ring full complete, and deliver
/// their messages, in the order they were submitted, as slots free one by
/// one.
fn send_waits_complete_in_submission_order() -> TestResult {
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

/// IORING_SETUP_IOPOLL rings complete by polling the device, so a request
/// that waits for a message could only be busy-polled: IPC ops are refused.
fn ipc_ops_rejected_on_iopoll_ring() -> TestResult {
    let ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let mut iopoll = Ring::builder(8).flags(IORING_SETUP_IOPOLL).build()?;
    let s = attach(&iopoll, ch, IOIPC_SUB_BOTH)?;
    let mut buf = [0u8; 64];
    push(
        &mut iopoll,
        IpcRecv::new(s.id, buf.as_mut_ptr(), 64)
            .build()
            .user_data(1),
    )?;
    push(
        &mut iopoll,
        IpcSend::new(s.id, buf.as_ptr(), 8).build().user_data(2),
    )?;
    let r = iopoll.wait_for(1)?;
    let w = iopoll.wait_for(2)?;
    check_eq!((r.res, w.res), (-libc::EINVAL, -libc::EINVAL));
    Ok(())
}

/// A SEND_WAIT whose buffer is unmapped while it waits completes with
/// -EFAULT once it is granted a slot, and that slot is not lost: after
/// `ring_entries` such sends the channel still takes `ring_entries`
/// messages. (The re-issue checked the buffer before it used its grant and
/// leaked the grant: one slot fewer each time, until nothing could be
/// sent.)
fn send_wait_with_vanished_buffer_leaks_no_slot() -> TestResult {
    const ENTRIES: u32 = 2;
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, ENTRIES, 64)?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
    for round in 0..ENTRIES as u64 {
        for i in 0..ENTRIES {
            ring.ipc_send(tx.id, b"fill").map_err(|e| {
                Outcome::Fail(format!("round {round}: send {i} into an empty ring: {e}"))
            })?;
        }
        let page = Untouched::new(4096)?;
        push(
            &mut ring,
            IpcSend::new(tx.id, page.ptr, 16)
                .wait()
                .build()
                .user_data(0x100 + round),
        )?;
        ring.submit()?;
        check!(
            ring.pop_cqe().is_none(),
            "a SEND_WAIT into a full ring completed"
        );
        drop(page);
        // one message out: its slot goes to the waiting send
        check_eq!(recv_msg(&mut ring, rx.id, 64)?, b"fill".to_vec());
        check_eq!(ring.wait_for(0x100 + round)?.res, -libc::EFAULT);
        let mut buf = [0u8; 64];
        while ring.ipc_try_recv(rx.id, &mut buf)?.is_some() {}
    }
    for i in 0..ENTRIES {
        ring.ipc_send(tx.id, b"after")
            .map_err(|e| Outcome::Fail(format!("send {i} after the faulted waits: {e}")))?;
    }
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

/// One multishot IPC_RECV receives a stream of 10^4 messages, each in a
/// buffer of the group with its header, in order and intact, with no io-wq
/// worker; ASYNC_CANCEL ends it with -ECANCELED.
fn multishot_recv_streams_messages() -> TestResult {
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
fn multishot_recv_out_of_buffers_keeps_the_message() -> TestResult {
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
fn multishot_recv_without_buffers_is_enobufs() -> TestResult {
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
fn multishot_recv_truncates_visibly() -> TestResult {
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
fn multishot_recv_rejects_bad_sqes() -> TestResult {
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

/// The final CQE of a stream carries no buffer unless it holds a message:
/// a multishot that delivered a message and then found its subscriber
/// detached ends with a plain -EPIPE (it used to repeat the delivered
/// message's buffer id, which the application would then provide twice).
fn multishot_final_cqe_repeats_no_buffer() -> TestResult {
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
fn multishot_short_buffer_comes_back() -> TestResult {
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
fn multishot_ends_every_way_under_traffic() -> TestResult {
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

/// Every broadcast receiver's multishot receive gets every message.
fn multishot_recv_broadcast_reaches_all() -> TestResult {
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

/// Messages borrow their sender's pid reference from its subscriber while
/// it is attached: one whose sender detached and exited still names it.
fn sender_pid_outlives_the_sender() -> TestResult {
    let mut ring = Ring::new(8)?;
    let k = key(78);
    let ch = ring.ipc_create(&ChannelConfig::new(Delivery::Unicast, 8, 64).key(k))?;
    let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let child = fork_child(|| {
        let Ok(mut r) = Ring::new(8) else { return 3 };
        let Ok(s) = r.ipc_attach(Attach::Key(k), IOIPC_SUB_SEND) else {
            return 4;
        };
        for m in [&b"one"[..], b"two", b"three"] {
            if r.ipc_send(s.id, m).is_err() {
                return 5;
            }
        }
        // Exiting closes the ring, which detaches the subscriber.
        0
    })?;
    let cpid = child.pid;
    check_eq!(child.wait()?, 0);
    for want in [&b"one"[..], b"two", b"three"] {
        let mut buf = [0u8; 64];
        let (n, info) = ring.ipc_recv_info(rx.id, &mut buf)?;
        check_eq!(&buf[..n], want);
        check_eq!(info.sender_pid, cpid);
    }
    Ok(())
}

fn main() {
    Suite::new(
        "io_uring_ipc",
        cases![
            create_rejects_bad_arguments,
            attach_returns_cloexec_readonly_fd,
            unicast_fifo_order,
            late_receiver_takes_queued_messages,
            unicast_each_message_once,
            broadcast_reaches_every_receiver,
            broadcast_slot_freed_after_all_receivers,
            multicast_distributes_each_message_once,
            targeted_send_reaches_only_target,
            truncation_is_visible,
            oversized_send_is_emsgsize,
            sender_credentials_and_user_data,
            credentials_from_another_process,
            sender_pid_outlives_the_sender,
            blocking_recv_woken_by_other_process,
            recv_nonblock_on_empty_is_eagain,
            recv_link_timeout_cancels_waiting_recv,
            async_cancel_of_waiting_recv,
            full_ring_is_enobufs_and_send_wait_waits,
            subscriber_rights_are_enforced,
            permission_denied_for_other_uid,
            ipc_namespace_isolation,
            memlock_limit_stops_channel_creation,
            destroy_wakes_waiters_with_epipe,
            destroy_is_creator_only,
            creator_exit_completes_waiters,
            ring_exit_detaches_its_subscribers,
            detach_then_ops_fail,
            private_channel_stays_in_process,
            fork_shares_the_ring,
            close_channel_fd_with_recv_in_flight,
            mmap_layout_matches_messages,
            fdinfo_describes_the_channel,
            single_issuer_defer_taskrun_ring,
            sqpoll_ring_send_recv,
            multi_producer_stress,
            recv_into_unfaulted_buffer,
            send_from_unfaulted_buffer,
            bad_buffers_change_nothing,
            multicast_detach_hands_messages_on,
            subscriber_limit_is_enospc,
            mmap_after_detach_is_enoent,
            create_fault_leaves_no_channel,
            epoll_mod_and_hup,
            tracepoints_report_send_and_recv,
            broadcast_bad_buffer_loses_only_its_copy,
            bad_msg_info_keeps_the_message,
            ring_stays_in_one_ipc_namespace,
            sender_detach_is_not_hup_for_others,
            message_wakes_one_parked_recv,
            recv_handed_a_message_completes_with_it,
            messages_skip_a_cancelled_recv,
            parked_recv_survives_wakeups_without_messages,
            link_timeout_after_wakeups_without_messages,
            unicast_many_receivers_each_message_once,
            epoll_exclusive_waiter_does_not_strand_recv,
            send_waits_complete_in_submission_order,
            ipc_ops_rejected_on_iopoll_ring,
            send_wait_with_vanished_buffer_leaks_no_slot,
            multishot_recv_streams_messages,
            multishot_recv_out_of_buffers_keeps_the_message,
            multishot_recv_without_buffers_is_enobufs,
            multishot_recv_truncates_visibly,
            multishot_recv_rejects_bad_sqes,
            multishot_recv_broadcast_reaches_all,
            multishot_final_cqe_repeats_no_buffer,
            multishot_short_buffer_comes_back,
            multishot_ends_every_way_under_traffic,
        ],
    )
    .probe(probe)
    .run()
}
