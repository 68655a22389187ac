//! Baseline POSIX message queue behaviour that mq_timedreceive2() must keep.

use std::time::{Duration, Instant};

use liburing_ipc::mq::{Access, Attr, MessageQueue};
use liburing_ipc::Error;
use selftests::util::{pattern, unique_name};
use selftests::{cases, check, check_eq, expect_errno, Suite, TestResult};

const ATTR: Attr = Attr {
    max_msgs: 8,
    msg_size: 128,
};

fn probe() -> Result<(), String> {
    match MessageQueue::create(&unique_name("probe"), ATTR, Access::ReadWrite) {
        Ok(_) => Ok(()),
        Err(Error::Unsupported(_)) => {
            Err("POSIX message queues are not available in this kernel".into())
        }
        Err(e) => Err(format!("mq_open failed: {e}")),
    }
}

fn queue() -> Result<MessageQueue, Error> {
    MessageQueue::create(&unique_name("base"), ATTR, Access::ReadWrite)
}

fn receive_is_highest_priority_first() -> TestResult {
    let q = queue()?;
    for p in [1u32, 5, 3, 0, 4] {
        q.send(&pattern(p as u64, 16), p)?;
    }
    for want in [5u32, 4, 3, 1, 0] {
        let m = q.receive()?;
        check_eq!(m.priority, want);
        check!(
            m.data == pattern(want as u64, 16),
            "payload of priority {want} corrupted"
        );
    }
    Ok(())
}

fn fifo_within_one_priority() -> TestResult {
    let q = queue()?;
    for i in 0..6u64 {
        q.send(&pattern(i, 40), 2)?;
    }
    for i in 0..6u64 {
        check!(
            q.receive()?.data == pattern(i, 40),
            "message {i} out of order"
        );
    }
    Ok(())
}

fn getattr_counts_queued_messages() -> TestResult {
    let q = queue()?;
    check_eq!(q.state()?.cur_msgs, 0);
    q.send(b"a", 0)?;
    q.send(b"b", 0)?;
    check_eq!(q.state()?.cur_msgs, 2);
    q.receive()?;
    check_eq!(q.state()?.cur_msgs, 1);
    check_eq!(q.state()?.msg_size, 128);
    Ok(())
}

fn nonblocking_empty_queue_is_eagain() -> TestResult {
    let q = queue()?;
    q.set_nonblocking(true)?;
    expect_errno(q.receive(), libc::EAGAIN)
}

fn timed_receive_times_out() -> TestResult {
    let q = queue()?;
    let t0 = Instant::now();
    expect_errno(
        q.receive_timeout(Duration::from_millis(50)),
        libc::ETIMEDOUT,
    )?;
    check!(
        t0.elapsed() >= Duration::from_millis(40),
        "returned after {:?}",
        t0.elapsed()
    );
    Ok(())
}

fn full_queue_send_nonblocking_is_eagain() -> TestResult {
    let q = queue()?;
    q.set_nonblocking(true)?;
    for i in 0..8 {
        q.send(&[i], 0)?;
    }
    expect_errno(q.send(b"x", 0), libc::EAGAIN)
}

fn oversized_send_is_emsgsize() -> TestResult {
    let q = queue()?;
    expect_errno(q.send(&[0u8; 129], 0), libc::EMSGSIZE)
}

fn receive_on_write_only_queue_is_ebadf() -> TestResult {
    let name = unique_name("wo");
    let _owner = MessageQueue::create(&name, ATTR, Access::ReadWrite)?;
    let wo = MessageQueue::open(&name, Access::Write, true)?;
    expect_errno(wo.receive(), libc::EBADF)
}

fn main() {
    Suite::new(
        "mqueue_base",
        cases![
            receive_is_highest_priority_first,
            fifo_within_one_priority,
            getattr_counts_queued_messages,
            nonblocking_empty_queue_is_eagain,
            timed_receive_times_out,
            full_queue_send_nonblocking_is_eagain,
            oversized_send_is_emsgsize,
            receive_on_write_only_queue_is_ebadf,
        ],
    )
    .probe(probe)
    .run()
}
