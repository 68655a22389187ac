//! mq_timedreceive2(): MQ_PEEK and indexed receive. Skips on kernels
//! without the system call.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use liburing_ipc::mq::{receive2_raw, Access, Attr, Message, MessageQueue};
use liburing_ipc::uapi::mqueue::{mq_timedreceive2_args, MQ_PEEK, NR_MQ_TIMEDRECEIVE2};
use liburing_ipc::Error;
use selftests::util::{errno, errno_name, pattern, pipe, unique_name};
use selftests::{cases, check, check_eq, expect_errno, skip, Outcome, Suite, TestResult};

const MSGSIZE: i64 = 256;
const ATTR: Attr = Attr {
    max_msgs: 10,
    msg_size: MSGSIZE,
};

fn probe() -> Result<(), String> {
    let mut buf = [0u8; 8];
    let mut args = mq_timedreceive2_args {
        msg_len: buf.len(),
        msg_prio: std::ptr::null_mut(),
        msg_ptr: buf.as_mut_ptr(),
    };
    // SAFETY: valid args on a bad descriptor: a kernel with the call fails
    // with EBADF, one without it with ENOSYS; nothing is written.
    let r = unsafe { receive2_raw(-1, &mut args, MQ_PEEK, 0, std::ptr::null()) };
    match (r, errno()) {
        (-1, libc::ENOSYS) => Err(format!(
            "mq_timedreceive2 ({NR_MQ_TIMEDRECEIVE2}) is not implemented by this kernel"
        )),
        _ => match MessageQueue::create(&unique_name("probe"), ATTR, Access::ReadWrite) {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("POSIX message queues unavailable: {e}")),
        },
    }
}

fn queue() -> Result<MessageQueue, Error> {
    MessageQueue::create(&unique_name("rcv2"), ATTR, Access::ReadWrite)
}

/// Raw call with explicit pointers, returning Ok(len) or Err(errno).
fn raw(fd: i32, args: *mut mq_timedreceive2_args, flags: u32, index: u64) -> Result<isize, i32> {
    // SAFETY: callers pass pointers that are valid, or deliberately invalid
    // ones the kernel must reject with EFAULT without writing through them.
    let r = unsafe { receive2_raw(fd, args, flags, index, std::ptr::null()) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

/// The message at `index`, which must be there.
fn peek_at(q: &MessageQueue, index: u64) -> Result<Message, Outcome> {
    q.peek(index)?
        .ok_or_else(|| Outcome::Fail(format!("peek({index}) found no message")))
}

/// Past the end of the queue: the call fails with `errno`, and peek()
/// reports that as None.
fn expect_end(q: &MessageQueue, index: u64, errno: i32) -> TestResult {
    expect_errno(q.receive2(MQ_PEEK, index, None), errno)?;
    check!(
        q.peek(index)?.is_none(),
        "peek({index}) found a message past the end"
    );
    Ok(())
}

/// Fill a queue with messages (priority, payload seed) in send order.
fn fill(q: &MessageQueue, msgs: &[(u32, u64)]) -> Result<(), Error> {
    for &(prio, seed) in msgs {
        q.send(&pattern(seed, 10 + seed as usize), prio)?;
    }
    Ok(())
}

/// The order mq_receive would deliver `msgs` in: priority descending, FIFO
/// inside a priority.
fn receive_order(msgs: &[(u32, u64)]) -> Vec<(u32, u64)> {
    let mut v: Vec<(usize, (u32, u64))> = msgs.iter().copied().enumerate().collect();
    v.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(&b.0)));
    v.into_iter().map(|(_, m)| m).collect()
}

fn expect_msg(m: &Message, prio: u32, seed: u64) -> TestResult {
    check_eq!(m.priority, prio);
    check!(
        m.data == pattern(seed, 10 + seed as usize),
        "payload of message {seed} differs"
    );
    Ok(())
}

fn peek_returns_data_and_priority() -> TestResult {
    let q = queue()?;
    fill(&q, &[(7, 1)])?;
    let m = peek_at(&q, 0)?;
    expect_msg(&m, 7, 1)
}

fn peek_leaves_depth_unchanged() -> TestResult {
    let q = queue()?;
    fill(&q, &[(1, 1), (2, 2), (3, 3)])?;
    for i in 0..3 {
        for _ in 0..5 {
            peek_at(&q, i)?;
        }
    }
    check_eq!(q.state()?.cur_msgs, 3);
    Ok(())
}

fn index_follows_priority_order() -> TestResult {
    let q = queue()?;
    let msgs = [(1, 1), (9, 2), (4, 3), (9, 4), (0, 5), (4, 6)];
    fill(&q, &msgs)?;
    for (i, (prio, seed)) in receive_order(&msgs).into_iter().enumerate() {
        expect_msg(&peek_at(&q, i as u64)?, prio, seed)?;
    }
    Ok(())
}

fn fifo_within_one_priority() -> TestResult {
    let q = queue()?;
    let msgs: Vec<(u32, u64)> = (1..=6).map(|s| (3, s)).collect();
    fill(&q, &msgs)?;
    for (i, seed) in (1..=6).enumerate() {
        expect_msg(&peek_at(&q, i as u64)?, 3, seed)?;
    }
    Ok(())
}

fn every_index_of_a_full_queue() -> TestResult {
    let q = queue()?;
    let msgs: Vec<(u32, u64)> = (0..10).map(|s| ((s % 3) as u32, s + 1)).collect();
    fill(&q, &msgs)?;
    check_eq!(q.state()?.cur_msgs, 10);
    let order = receive_order(&msgs);
    for (i, (prio, seed)) in order.iter().enumerate() {
        expect_msg(&peek_at(&q, i as u64)?, *prio, *seed)?;
    }
    expect_end(&q, 10, libc::ENOMSG)?;
    expect_end(&q, u64::MAX, libc::ENOMSG)?;
    Ok(())
}

fn peek_message_of_msgsize_bytes() -> TestResult {
    let q = queue()?;
    let big = pattern(99, MSGSIZE as usize);
    q.send(&big, 5)?;
    let m = peek_at(&q, 0)?;
    check_eq!(m.data.len(), MSGSIZE as usize);
    check!(m.data == big, "full-size payload differs");
    Ok(())
}

fn peek_matches_what_receive_returns() -> TestResult {
    let q = queue()?;
    let msgs = [(2, 1), (5, 2), (2, 3), (5, 4), (1, 5)];
    fill(&q, &msgs)?;
    for _ in 0..msgs.len() {
        let p = peek_at(&q, 0)?;
        let r = q.receive()?;
        check_eq!(p, r);
    }
    check_eq!(q.state()?.cur_msgs, 0);
    Ok(())
}

fn flags_zero_consumes_in_order() -> TestResult {
    let q = queue()?;
    let msgs = [(1, 1), (3, 2), (2, 3)];
    fill(&q, &msgs)?;
    for (prio, seed) in receive_order(&msgs) {
        expect_msg(&q.receive2(0, 0, None)?, prio, seed)?;
    }
    check_eq!(q.state()?.cur_msgs, 0);
    Ok(())
}

fn flags_zero_blocks_until_a_send() -> TestResult {
    let name = unique_name("blk");
    let q = MessageQueue::create(&name, ATTR, Access::ReadWrite)?;
    let sender = std::thread::spawn(move || -> Result<(), Error> {
        std::thread::sleep(Duration::from_millis(150));
        MessageQueue::open(&name, Access::Write, false)?.send(b"wake", 4)
    });
    let t0 = Instant::now();
    let m = q.receive2(0, 0, Some(Duration::from_secs(20)))?;
    check!(
        t0.elapsed() >= Duration::from_millis(100),
        "returned before the send"
    );
    check_eq!((m.data.as_slice(), m.priority), (&b"wake"[..], 4));
    sender
        .join()
        .map_err(|_| Outcome::Fail("sender panicked".into()))??;
    Ok(())
}

fn flags_zero_times_out() -> TestResult {
    let q = queue()?;
    expect_errno(
        q.receive2(0, 0, Some(Duration::from_millis(50))),
        libc::ETIMEDOUT,
    )
}

fn flags_zero_nonblocking_is_eagain() -> TestResult {
    let q = queue()?;
    q.set_nonblocking(true)?;
    expect_errno(q.receive2(0, 0, None), libc::EAGAIN)
}

fn null_msg_prio_is_allowed() -> TestResult {
    let q = queue()?;
    q.send(b"noprio", 3)?;
    let mut buf = vec![0u8; MSGSIZE as usize];
    let mut args = mq_timedreceive2_args {
        msg_len: buf.len(),
        msg_prio: std::ptr::null_mut(),
        msg_ptr: buf.as_mut_ptr(),
    };
    check_eq!(raw(q.raw_fd(), &mut args, MQ_PEEK, 0), Ok(6));
    check!(&buf[..6] == b"noprio");
    check_eq!(raw(q.raw_fd(), &mut args, 0, 0), Ok(6));
    check_eq!(q.state()?.cur_msgs, 0);
    Ok(())
}

fn peek_empty_queue_is_eagain_and_never_blocks() -> TestResult {
    let q = queue()?;
    let t0 = Instant::now();
    expect_errno(q.receive2(MQ_PEEK, 0, None), libc::EAGAIN)?;
    check!(
        t0.elapsed() < Duration::from_secs(2),
        "peek blocked for {:?}",
        t0.elapsed()
    );
    Ok(())
}

/// A peek takes no timeout: EINVAL, whether or not there is a message, and
/// the queue is unchanged (this keeps a blocking peek possible later).
fn peek_with_a_timeout_is_einval() -> TestResult {
    let q = queue()?;
    expect_errno(
        q.receive2(MQ_PEEK, 0, Some(Duration::from_secs(5))),
        libc::EINVAL,
    )?;
    fill(&q, &[(1, 1)])?;
    expect_errno(
        q.receive2(MQ_PEEK, 0, Some(Duration::from_secs(5))),
        libc::EINVAL,
    )?;
    check_eq!(q.state()?.cur_msgs, 1);
    Ok(())
}

/// Flags are checked before the argument block is read: unknown flags with
/// a bad `uargs` pointer are EINVAL, not EFAULT.
fn flags_checked_before_arguments() -> TestResult {
    let q = queue()?;
    // an address nothing is mapped at
    let bad = std::ptr::dangling_mut::<mq_timedreceive2_args>();
    check_eq!(raw(q.raw_fd(), bad, 0x80, 0), Err(libc::EINVAL));
    Ok(())
}

/// If the message can't be copied out, `*msg_prio` is not written either.
fn failed_peek_leaves_msg_prio_alone() -> TestResult {
    let q = queue()?;
    fill(&q, &[(9, 1)])?;
    let mut prio = 0xdead_u32;
    let mut args = mq_timedreceive2_args {
        msg_len: MSGSIZE as usize,
        msg_prio: &mut prio,
        msg_ptr: 8 as *mut u8,
    };
    check_eq!(raw(q.raw_fd(), &mut args, MQ_PEEK, 0), Err(libc::EFAULT));
    check_eq!(prio, 0xdead);
    check_eq!(q.state()?.cur_msgs, 1);
    Ok(())
}

/// Median wall time of `n` runs of `f`.
fn median_time(n: usize, mut f: impl FnMut() -> TestResult) -> Result<Duration, Outcome> {
    let mut t = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        f()?;
        t.push(t0.elapsed());
    }
    t.sort();
    Ok(t[n / 2])
}

/// Write a root-only mqueue limit, returning the old value (SKIP if not
/// root or the file is missing).
fn raise_limit(file: &str, value: u64) -> Result<String, Outcome> {
    let path = format!("/proc/sys/fs/mqueue/{file}");
    let Ok(old) = std::fs::read_to_string(&path) else {
        skip!("no {path}");
    };
    if std::fs::write(&path, value.to_string()).is_err() {
        skip!("cannot raise {path} (not root?)");
    }
    Ok(old.trim().to_string())
}

fn unlimited_msgqueue_rlimit() -> TestResult {
    let r = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MSGQUEUE, &r) } != 0 {
        skip!("cannot lift RLIMIT_MSGQUEUE (not root?)");
    }
    Ok(())
}

/// A peek of an empty queue costs the same whatever the queue's message
/// size: nothing is allocated before the queue is found empty (the bounce
/// buffer used to be a kvmalloc of mq_msgsize, up to 16 MiB, per call).
fn empty_peek_allocates_nothing() -> TestResult {
    const BIG: i64 = 16 << 20;
    let old = raise_limit("msgsize_max", BIG as u64)?;
    let run = || -> TestResult {
        unlimited_msgqueue_rlimit()?;
        let small = MessageQueue::create(
            &unique_name("empty-small"),
            Attr {
                max_msgs: 1,
                msg_size: 16,
            },
            Access::ReadWrite,
        )?;
        let big = MessageQueue::create(
            &unique_name("empty-big"),
            Attr {
                max_msgs: 1,
                msg_size: BIG,
            },
            Access::ReadWrite,
        )?;
        let peeks = |q: &MessageQueue| -> TestResult {
            for _ in 0..20 {
                let mut buf = vec![0u8; 0];
                let mut args = mq_timedreceive2_args {
                    msg_len: q.msg_size(),
                    msg_prio: std::ptr::null_mut(),
                    msg_ptr: buf.as_mut_ptr(),
                };
                check_eq!(raw(q.raw_fd(), &mut args, MQ_PEEK, 0), Err(libc::EAGAIN));
            }
            Ok(())
        };
        let t_small = median_time(7, || peeks(&small))?;
        let t_big = median_time(7, || peeks(&big))?;
        println!("# 20 empty peeks: msgsize 16: {t_small:?}, msgsize 16 MiB: {t_big:?}");
        check!(
            t_big < t_small * 10 + Duration::from_millis(2),
            "empty peeks of a 16 MiB-msgsize queue take {t_big:?}, of a 16-byte one {t_small:?}"
        );
        Ok(())
    };
    let r = run();
    let _ = std::fs::write("/proc/sys/fs/mqueue/msgsize_max", old);
    r
}

/// Peeking at the last of 65536 messages of one priority costs about what
/// peeking at the first does: the lookup walks from the nearer end, and
/// skips whole priorities by their counts (it used to walk `index` nodes
/// under the queue's spinlock, quadratic for a full dump).
fn peek_cost_does_not_grow_with_index() -> TestResult {
    const N: u64 = 65536;
    let old = raise_limit("msg_max", N)?;
    let run = || -> TestResult {
        unlimited_msgqueue_rlimit()?;
        let q = MessageQueue::create(
            &unique_name("deep"),
            Attr {
                max_msgs: N as i64,
                msg_size: 16,
            },
            Access::ReadWrite,
        )?;
        // a full queue: N - 1 messages of one priority, and one of a
        // higher priority, so that one whole priority is skipped too
        for i in 0..N - 1 {
            q.send(&i.to_le_bytes(), 5)?;
        }
        q.send(&u64::MAX.to_le_bytes(), 9)?;
        let at = |index: u64, want: u64| -> TestResult {
            for _ in 0..20 {
                let m = peek_at(&q, index)?;
                check_eq!(m.data, want.to_le_bytes().to_vec());
            }
            Ok(())
        };
        let first = median_time(5, || at(1, 0))?;
        let middle = median_time(5, || at(N / 2, N / 2 - 1))?;
        let last = median_time(5, || at(N - 1, N - 2))?;
        println!(
            "# 20 peeks at index 1: {first:?}, {}: {middle:?}, {}: {last:?}",
            N / 2,
            N - 1
        );
        check!(
            last < first * 10 + Duration::from_millis(2),
            "peeking at index {} takes {last:?}, at index 1 {first:?}",
            N - 1
        );
        Ok(())
    };
    let r = run();
    let _ = std::fs::write("/proc/sys/fs/mqueue/msg_max", old);
    r
}

fn peek_past_the_end_is_enomsg() -> TestResult {
    let q = queue()?;
    fill(&q, &[(1, 1), (2, 2)])?;
    expect_end(&q, 2, libc::ENOMSG)?;
    expect_end(&q, 1 << 40, libc::ENOMSG)?;
    check_eq!(q.state()?.cur_msgs, 2);
    Ok(())
}

/// After a rejected call the queue must be exactly as before.
fn unchanged(q: &MessageQueue, msgs: &[(u32, u64)]) -> TestResult {
    check_eq!(q.state()?.cur_msgs, msgs.len() as i64);
    for (i, (prio, seed)) in receive_order(msgs).into_iter().enumerate() {
        expect_msg(&peek_at(q, i as u64)?, prio, seed)?;
    }
    Ok(())
}

fn unknown_flags_are_einval() -> TestResult {
    let q = queue()?;
    let msgs = [(1, 1)];
    fill(&q, &msgs)?;
    for flags in [1u32, 4, MQ_PEEK | 1, 1 << 31, MQ_PEEK | (1 << 8)] {
        expect_errno(q.receive2(flags, 0, None), libc::EINVAL)?;
    }
    unchanged(&q, &msgs)
}

fn flags_zero_with_index_is_einval() -> TestResult {
    let q = queue()?;
    let msgs = [(1, 1), (2, 2)];
    fill(&q, &msgs)?;
    expect_errno(q.receive2(0, 1, None), libc::EINVAL)?;
    unchanged(&q, &msgs)
}

fn short_buffer_is_emsgsize() -> TestResult {
    let q = queue()?;
    let msgs = [(1, 1)];
    fill(&q, &msgs)?;
    let mut buf = vec![0u8; MSGSIZE as usize];
    let mut prio = 0u32;
    let mut args = mq_timedreceive2_args {
        msg_len: MSGSIZE as usize - 1,
        msg_prio: &mut prio,
        msg_ptr: buf.as_mut_ptr(),
    };
    check_eq!(raw(q.raw_fd(), &mut args, MQ_PEEK, 0), Err(libc::EMSGSIZE));
    check_eq!(raw(q.raw_fd(), &mut args, 0, 0), Err(libc::EMSGSIZE));
    unchanged(&q, &msgs)
}

fn bad_pointers_are_efault_and_change_nothing() -> TestResult {
    let q = queue()?;
    let msgs = [(4, 1), (2, 2)];
    fill(&q, &msgs)?;
    let bad = 8usize as *mut u8; // in the never-mapped first page
    let mut buf = vec![0u8; MSGSIZE as usize];
    let mut prio = 0u32;
    check_eq!(raw(q.raw_fd(), bad.cast(), MQ_PEEK, 0), Err(libc::EFAULT));
    let mut a = mq_timedreceive2_args {
        msg_len: buf.len(),
        msg_prio: &mut prio,
        msg_ptr: bad,
    };
    check_eq!(raw(q.raw_fd(), &mut a, MQ_PEEK, 0), Err(libc::EFAULT));
    let mut a = mq_timedreceive2_args {
        msg_len: buf.len(),
        msg_prio: bad.cast(),
        msg_ptr: buf.as_mut_ptr(),
    };
    check_eq!(raw(q.raw_fd(), &mut a, MQ_PEEK, 1), Err(libc::EFAULT));
    unchanged(&q, &msgs)?;
    // flags == 0 keeps mq_timedreceive()'s semantics for a bad timeout.
    let mut a = mq_timedreceive2_args {
        msg_len: buf.len(),
        msg_prio: &mut prio,
        msg_ptr: buf.as_mut_ptr(),
    };
    // SAFETY: the timeout pointer is deliberately invalid; the kernel must
    // reject it before dequeuing anything.
    let r = unsafe { receive2_raw(q.raw_fd(), &mut a, 0, 0, bad.cast()) };
    check!(
        r == -1 && errno() == libc::EFAULT,
        "bad timeout: {r} {}",
        errno_name(errno())
    );
    unchanged(&q, &msgs)
}

fn pipe_fd_is_ebadf() -> TestResult {
    let (r, _w) = pipe()?;
    let mut buf = vec![0u8; 16];
    let mut a = mq_timedreceive2_args {
        msg_len: 16,
        msg_prio: std::ptr::null_mut(),
        msg_ptr: buf.as_mut_ptr(),
    };
    check_eq!(raw(r.as_raw_fd(), &mut a, MQ_PEEK, 0), Err(libc::EBADF));
    check_eq!(raw(r.as_raw_fd(), &mut a, 0, 0), Err(libc::EBADF));
    Ok(())
}

fn write_only_queue_is_ebadf() -> TestResult {
    let name = unique_name("wo");
    let owner = MessageQueue::create(&name, ATTR, Access::ReadWrite)?;
    let msgs = [(1, 1)];
    fill(&owner, &msgs)?;
    let wo = MessageQueue::open(&name, Access::Write, false)?;
    expect_errno(wo.receive2(MQ_PEEK, 0, None), libc::EBADF)?;
    expect_errno(wo.receive2(0, 0, None), libc::EBADF)?;
    unchanged(&owner, &msgs)
}

fn closed_fd_is_ebadf() -> TestResult {
    let q = queue()?;
    fill(&q, &[(1, 1)])?;
    // SAFETY: dup() of our own open descriptor, then closing the copy.
    let fd = unsafe { libc::dup(q.raw_fd()) };
    check!(fd >= 0, "dup: {}", errno_name(errno()));
    // SAFETY: closing the descriptor we just created.
    unsafe { libc::close(fd) };
    let mut buf = vec![0u8; MSGSIZE as usize];
    let mut a = mq_timedreceive2_args {
        msg_len: buf.len(),
        msg_prio: std::ptr::null_mut(),
        msg_ptr: buf.as_mut_ptr(),
    };
    check_eq!(raw(fd, &mut a, MQ_PEEK, 0), Err(libc::EBADF));
    check_eq!(raw(fd, &mut a, 0, 0), Err(libc::EBADF));
    unchanged(&q, &[(1, 1)])
}

fn peek_does_not_consume_notification() -> TestResult {
    let q = queue()?;
    // SAFETY: signal mask and notification setup on this (forked,
    // single-threaded) test process; sev is fully initialised.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let mut sev: libc::sigevent = std::mem::zeroed();
        sev.sigev_notify = libc::SIGEV_SIGNAL;
        sev.sigev_signo = libc::SIGUSR1;
        check!(
            libc::mq_notify(q.raw_fd(), &sev) == 0,
            "mq_notify: {}",
            errno_name(errno())
        );
    }
    expect_end(&q, 0, libc::EAGAIN)?;
    q.send(b"n", 1)?;
    // SAFETY: waiting for the blocked signal with a valid timeout.
    let sig = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        let ts = libc::timespec {
            tv_sec: 5,
            tv_nsec: 0,
        };
        libc::sigtimedwait(&set, std::ptr::null_mut(), &ts)
    };
    check_eq!(sig, libc::SIGUSR1);
    // A peek must not re-arm or fire anything: the message is still there.
    check_eq!(peek_at(&q, 0)?.data, b"n".to_vec());
    check_eq!(q.state()?.cur_msgs, 1);
    Ok(())
}

fn concurrent_peek_send_receive_stress() -> TestResult {
    let name = unique_name("stress");
    let q = MessageQueue::create(&name, ATTR, Access::ReadWrite)?;
    let stop = Arc::new(AtomicBool::new(false));
    let peeks = Arc::new(AtomicU64::new(0));
    let secs = std::env::var("STRESS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    // Every message carries its sequence number; its payload is a function
    // of it, so any torn or stale copy is detected.
    let check_msg = |m: &Message| -> Result<u64, String> {
        if m.data.len() < 8 {
            return Err(format!("short message {}", m.data.len()));
        }
        let seq = u64::from_le_bytes(m.data[..8].try_into().unwrap());
        let want = pattern(seq, m.data.len() - 8);
        if m.data[8..] != want[..] || m.priority != (seq % 4) as u32 {
            return Err(format!("message {seq} corrupted (prio {})", m.priority));
        }
        Ok(seq)
    };
    let mut threads = Vec::new();
    for t in 0..2u64 {
        let (name, stop) = (name.clone(), stop.clone());
        threads.push(std::thread::spawn(move || -> Result<(), String> {
            let q = MessageQueue::open(&name, Access::Write, true).map_err(|e| e.to_string())?;
            let mut seq = t;
            while !stop.load(Ordering::Relaxed) {
                let len = 8 + (seq as usize * 13) % (MSGSIZE as usize - 8);
                let mut data = seq.to_le_bytes().to_vec();
                data.extend(pattern(seq, len - 8));
                match q.send(&data, (seq % 4) as u32) {
                    Ok(()) => seq += 2,
                    Err(e) if e.errno() == Some(libc::EAGAIN) => std::thread::yield_now(),
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok(())
        }));
    }
    {
        let (name, stop) = (name.clone(), stop.clone());
        threads.push(std::thread::spawn(move || -> Result<(), String> {
            let q = MessageQueue::open(&name, Access::Read, true).map_err(|e| e.to_string())?;
            while !stop.load(Ordering::Relaxed) {
                match q.receive() {
                    Ok(m) => {
                        check_msg(&m)?;
                    }
                    Err(e) if e.errno() == Some(libc::EAGAIN) => std::thread::yield_now(),
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok(())
        }));
    }
    for _ in 0..2 {
        let (name, stop, peeks) = (name.clone(), stop.clone(), peeks.clone());
        threads.push(std::thread::spawn(move || -> Result<(), String> {
            let q = MessageQueue::open(&name, Access::Read, true).map_err(|e| e.to_string())?;
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match q.peek(i % 10) {
                    Ok(Some(m)) => {
                        check_msg(&m)?;
                        peeks.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(None) => {}
                    Err(e) => return Err(e.to_string()),
                }
                i += 1;
            }
            Ok(())
        }));
    }
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join()
            .map_err(|_| Outcome::Fail("a stress thread panicked".into()))?
            .map_err(Outcome::Fail)?;
    }
    let n = peeks.load(Ordering::Relaxed);
    println!("# {n} successful peeks in {secs}s");
    check!(n > 0, "no peek ever saw a message");
    drop(q);
    Ok(())
}

/// The numbers between mseal (462) and mq_timedreceive2 belong to the
/// calls mainline added after 6.12: they must fail as on the base kernel,
/// so that programs written for later kernels can probe for those calls.
fn numbers_left_to_mainline_are_enosys() -> TestResult {
    for nr in 463..NR_MQ_TIMEDRECEIVE2 {
        // SAFETY: no argument is a valid pointer or descriptor, so the
        // call cannot touch memory or files even if a kernel had one there.
        let r = unsafe { libc::syscall(nr, -1, 0, 0, 0, 0) };
        let e = errno();
        check!(
            r == -1 && e == libc::ENOSYS,
            "system call {nr} returned {r} ({}), not ENOSYS",
            errno_name(e)
        );
    }
    Ok(())
}

fn compat_32bit_entry() -> TestResult {
    let Ok(bin) = std::env::var("URING_IPC_COMPAT32") else {
        skip!("URING_IPC_COMPAT32 unset: the 32-bit helper is built by `cargo xtask test`");
    };
    let out = std::process::Command::new(&bin).output()?;
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        println!("# compat32: {l}");
    }
    match out.status.code() {
        Some(0) => Ok(()),
        Some(4) => skip!("32-bit helper skipped (no compat entry or no IA32 emulation)"),
        c => Err(Outcome::Fail(format!("32-bit helper failed: {c:?}"))),
    }
}

fn main() {
    Suite::new(
        "mq_timedreceive2",
        cases![
            peek_returns_data_and_priority,
            peek_leaves_depth_unchanged,
            index_follows_priority_order,
            fifo_within_one_priority,
            every_index_of_a_full_queue,
            peek_message_of_msgsize_bytes,
            peek_matches_what_receive_returns,
            flags_zero_consumes_in_order,
            flags_zero_blocks_until_a_send,
            flags_zero_times_out,
            flags_zero_nonblocking_is_eagain,
            null_msg_prio_is_allowed,
            peek_empty_queue_is_eagain_and_never_blocks,
            peek_with_a_timeout_is_einval,
            flags_checked_before_arguments,
            failed_peek_leaves_msg_prio_alone,
            empty_peek_allocates_nothing,
            peek_cost_does_not_grow_with_index,
            peek_past_the_end_is_enomsg,
            unknown_flags_are_einval,
            numbers_left_to_mainline_are_enosys,
            flags_zero_with_index_is_einval,
            short_buffer_is_emsgsize,
            bad_pointers_are_efault_and_change_nothing,
            pipe_fd_is_ebadf,
            write_only_queue_is_ebadf,
            closed_fd_is_ebadf,
            peek_does_not_consume_notification,
            concurrent_peek_send_receive_stress,
            compat_32bit_entry,
        ],
    )
    .probe(probe)
    .run()
}
