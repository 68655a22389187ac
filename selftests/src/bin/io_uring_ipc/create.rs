//! Creating channels and attaching to them: argument checks, the channel
//! fd, and the limits on channels and subscribers.

use std::os::fd::AsRawFd;

use liburing_ipc::ipc::{Attach, ChannelConfig, Delivery};
use liburing_ipc::uapi::io_uring::*;
use liburing_ipc::Ring;
use selftests::ipc::{attach, channel, key};
use selftests::uring::errno_of;
use selftests::util::{become_user, euid, fork_child, NOBODY};
use selftests::{check, check_eq, expect_errno, skip, Context, TestResult};

pub fn create_rejects_bad_arguments() -> TestResult {
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
        expect_errno(ring.ipc_create_raw(&mut arg), libc::EINVAL).context(what)?;
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
    expect_errno(ring.ipc_create_raw(&mut b), libc::EEXIST).context("duplicate key")
}

pub fn attach_returns_cloexec_readonly_fd() -> TestResult {
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
    expect_errno(bad, libc::EINVAL).context("unknown subscriber flag")?;
    let bad = ring.ipc_attach_raw(&mut io_uring_ipc_channel_attach {
        channel_id: ch,
        flags: IOIPC_SUB_RECV,
        reserved: [1, 0, 0],
        ..Default::default()
    });
    expect_errno(bad, libc::EINVAL).context("reserved attach field")?;
    expect_errno(attach(&ring, 0x7fff_fff0, IOIPC_SUB_RECV), libc::ENOENT)
        .context("unknown channel id")?;
    expect_errno(
        ring.ipc_attach(Attach::Key(key(77)), IOIPC_SUB_RECV),
        libc::ENOENT,
    )
    .context("unknown key")
}

pub fn subscriber_limit_is_enospc() -> TestResult {
    const LIMIT: usize = 1024;
    let ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Broadcast, 8, 64)?;
    // Closing a channel fd does not detach: the ring keeps the subscriber.
    let mut ids = Vec::with_capacity(LIMIT);
    for _ in 0..LIMIT {
        ids.push(attach(&ring, ch, IOIPC_SUB_RECV)?.id);
    }
    expect_errno(attach(&ring, ch, IOIPC_SUB_SEND), libc::ENOSPC).context("subscriber 1025")?;
    ring.ipc_detach(ids[0])?;
    attach(&ring, ch, IOIPC_SUB_SEND)?;
    Ok(())
}

pub fn memlock_limit_stops_channel_creation() -> TestResult {
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
