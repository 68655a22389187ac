//! Who may do what: subscriber rights, channel modes, private channels,
//! the sender credentials a receiver sees, IPC namespaces.

use liburing_ipc::ipc::{Attach, ChannelConfig, Delivery, Subscription};
use liburing_ipc::opcode::{IpcRecv, IpcSend, Sqe};
use liburing_ipc::uapi::io_uring::*;
use liburing_ipc::{Error, Ring};
use selftests::ipc::{attach, channel, key};
use selftests::uring::{errno_of, push};
use selftests::util::{become_user, euid, fork_child, NOBODY};
use selftests::{check, check_eq, expect_errno, skip, Context, TestResult};

pub fn subscriber_rights_are_enforced() -> TestResult {
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
    expect_errno(ring.ipc_send(0x7ff0_0000, b"x"), libc::ENOENT)
        .context("unknown subscriber id")?;
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

pub fn permission_denied_for_other_uid() -> TestResult {
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

pub fn private_channel_stays_in_process() -> TestResult {
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

pub fn sender_credentials_and_user_data() -> TestResult {
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

pub fn credentials_from_another_process() -> TestResult {
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

/// Messages borrow their sender's pid reference from its subscriber while
/// it is attached: one whose sender detached and exited still names it.
pub fn sender_pid_outlives_the_sender() -> TestResult {
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

pub fn ipc_namespace_isolation() -> TestResult {
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

pub fn ring_stays_in_one_ipc_namespace() -> TestResult {
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
        // SAFETY: the child's own copy of `ring`, see
        // lifetime::fork_shares_the_ring.
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
    expect_errno(attach(&ring, ch, IOIPC_SUB_RECV), libc::ENOENT)
        .context("attach after destroy from the other namespace")
}
