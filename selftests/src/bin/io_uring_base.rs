//! Baseline io_uring behaviour the IPC series builds on, through this
//! workspace's own ring (liburing-ipc). Skips if io_uring is unavailable.

use std::collections::BTreeSet;
use std::os::fd::AsRawFd;

use liburing_ipc::opcode::{self, Sqe};
use liburing_ipc::uapi::io_uring::*;
use liburing_ipc::{Error, Ring};
use selftests::util::{errno_name, pattern, pipe};
use selftests::{cases, check, check_eq, skip, Suite, TestResult};

fn probe() -> Result<(), String> {
    match Ring::new(4) {
        Ok(_) => Ok(()),
        Err(Error::Unsupported(_)) => Err("io_uring is not available in this kernel".into()),
        Err(e) if e.errno() == Some(libc::EPERM) => {
            Err("io_uring is disabled (io_uring_disabled sysctl)".into())
        }
        Err(e) => Err(format!("io_uring_setup failed: {e}")),
    }
}

fn push(ring: &mut Ring, sqe: Sqe) -> Result<(), Error> {
    // SAFETY: every buffer referenced by the SQEs in these tests outlives
    // the wait for their completions, which each test performs.
    unsafe { ring.push(&sqe) }
}

fn nop_completes_with_user_data() -> TestResult {
    let mut ring = Ring::new(8)?;
    push(&mut ring, opcode::nop().user_data(0xdead_beef))?;
    let c = ring.submit_and_collect(1)?;
    check_eq!(c[0].user_data, 0xdead_beef);
    check_eq!(c[0].res, 0);
    Ok(())
}

fn batch_of_nops_all_complete_once() -> TestResult {
    let mut ring = Ring::new(32)?;
    for i in 0..32 {
        push(&mut ring, opcode::nop().user_data(i))?;
    }
    check!(
        matches!(
            push(&mut ring, opcode::nop()),
            Err(Error::SubmissionQueueFull)
        ),
        "33rd SQE accepted into a 32-entry SQ"
    );
    let got: BTreeSet<u64> = ring
        .submit_and_collect(32)?
        .iter()
        .map(|c| c.user_data)
        .collect();
    check_eq!(got, (0..32).collect::<BTreeSet<u64>>());
    check!(ring.pop_cqe().is_none(), "an extra completion appeared");
    Ok(())
}

fn probe_reports_base_opcodes() -> TestResult {
    let ring = Ring::new(4)?;
    let p = ring.probe()?;
    for op in [
        IORING_OP_NOP,
        IORING_OP_READ,
        IORING_OP_WRITE,
        IORING_OP_LINK_TIMEOUT,
        IORING_OP_ASYNC_CANCEL,
        IORING_OP_MSG_RING,
    ] {
        check!(p.supports(op), "opcode {op} not reported as supported");
    }
    check!(
        p.last_op >= IORING_OP_LISTEN,
        "last_op {} predates 6.12",
        p.last_op
    );
    check!(!p.supports(250), "opcode 250 reported as supported");
    Ok(())
}

fn pipe_write_then_read_roundtrip() -> TestResult {
    let (r, w) = pipe()?;
    let mut ring = Ring::new(8)?;
    let data = pattern(7, 3000);
    let mut back = vec![0u8; 3000];
    push(
        &mut ring,
        opcode::write(w.as_raw_fd(), data.as_ptr(), 3000, -1)
            .user_data(1)
            .flags(IOSQE_IO_LINK),
    )?;
    push(
        &mut ring,
        opcode::read(r.as_raw_fd(), back.as_mut_ptr(), 3000, -1).user_data(2),
    )?;
    let c = ring.submit_and_collect(2)?;
    for cqe in &c {
        check_eq!(cqe.res, 3000);
    }
    check!(back == data, "read back different bytes");
    Ok(())
}

fn single_issuer_defer_taskrun() -> TestResult {
    let mut ring = match Ring::builder(8).single_issuer().defer_taskrun().build() {
        Ok(r) => r,
        Err(e) if e.errno() == Some(libc::EINVAL) => skip!("DEFER_TASKRUN not supported"),
        Err(e) => return Err(e.into()),
    };
    check!(ring.params().flags & IORING_SETUP_DEFER_TASKRUN != 0);
    let (r, w) = pipe()?;
    let mut buf = [0u8; 16];
    push(
        &mut ring,
        opcode::read(r.as_raw_fd(), buf.as_mut_ptr(), 16, -1).user_data(5),
    )?;
    ring.submit()?;
    // SAFETY: writing a valid buffer to our pipe.
    let n = unsafe { libc::write(w.as_raw_fd(), b"deferred".as_ptr().cast(), 8) };
    check_eq!(n, 8);
    let c = ring.wait_cqe()?;
    check_eq!((c.user_data, c.res), (5, 8));
    check!(&buf[..8] == b"deferred");
    Ok(())
}

fn link_timeout_cancels_blocked_read() -> TestResult {
    let (r, _w) = pipe()?;
    let mut ring = Ring::new(8)?;
    let mut buf = [0u8; 8];
    let ts = __kernel_timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    push(
        &mut ring,
        opcode::read(r.as_raw_fd(), buf.as_mut_ptr(), 8, -1)
            .user_data(1)
            .flags(IOSQE_IO_LINK),
    )?;
    push(&mut ring, opcode::link_timeout(&ts, 0).user_data(2))?;
    let mut c = ring.submit_and_collect(2)?;
    c.sort_by_key(|c| c.user_data);
    check!(
        c[0].res == -libc::ECANCELED,
        "read: {}",
        errno_name(-c[0].res)
    );
    check!(
        c[1].res == -libc::ETIME,
        "link timeout: {}",
        errno_name(-c[1].res)
    );
    Ok(())
}

fn async_cancel_pending_read() -> TestResult {
    let (r, _w) = pipe()?;
    let mut ring = Ring::new(8)?;
    let mut buf = [0u8; 8];
    push(
        &mut ring,
        opcode::read(r.as_raw_fd(), buf.as_mut_ptr(), 8, -1).user_data(10),
    )?;
    ring.submit()?;
    check!(ring.pop_cqe().is_none(), "read of an empty pipe completed");
    push(&mut ring, opcode::async_cancel(10, 0).user_data(11))?;
    let mut c = ring.submit_and_collect(2)?;
    c.sort_by_key(|c| c.user_data);
    check!(
        c[0].res == -libc::ECANCELED,
        "read: {}",
        errno_name(-c[0].res)
    );
    check_eq!(c[1].res, 0);
    Ok(())
}

fn sqpoll_ring_submits_without_enter() -> TestResult {
    let mut ring = match Ring::builder(8).sqpoll(1000).build() {
        Ok(r) => r,
        Err(e) if e.errno() == Some(libc::EPERM) => skip!("SQPOLL needs privileges here"),
        Err(e) => return Err(e.into()),
    };
    for i in 0..4 {
        push(&mut ring, opcode::nop().user_data(100 + i))?;
    }
    let got: BTreeSet<u64> = ring
        .submit_and_collect(4)?
        .iter()
        .map(|c| c.user_data)
        .collect();
    check_eq!(got, (100..104).collect::<BTreeSet<u64>>());
    Ok(())
}

fn main() {
    Suite::new(
        "io_uring_base",
        cases![
            nop_completes_with_user_data,
            batch_of_nops_all_complete_once,
            probe_reports_base_opcodes,
            pipe_write_then_read_roundtrip,
            single_issuer_defer_taskrun,
            link_timeout_cancels_blocked_read,
            async_cancel_pending_read,
            sqpoll_ring_submits_without_enter,
        ],
    )
    .probe(probe)
    .run()
}
