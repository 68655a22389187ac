//! Baseline io_uring behaviour the IPC series builds on, through this
//! workspace's own ring (liburing-ipc). Skips if io_uring is unavailable.

use std::collections::BTreeSet;
use std::os::fd::AsRawFd;

use liburing_ipc::opcode::{self, Sqe};
use liburing_ipc::uapi::io_uring::*;
use liburing_ipc::{Error, Ring};
use selftests::uring::push;
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

// What the base kernel answers for the numbers the IPC series leaves to
// upstream (SQE opcodes 58-64, register opcodes 31-37) and for the first
// numbers past the patched kernel's last ones (SQE 67, register 42), taken
// from a run of this binary on the unpatched base kernel (6.12.117, built by
// `cargo xtask regress`, release suffix -uring-ipc-base):
//   vng --disable-kvm -r target/kernel/build-base/arch/x86/boot/bzImage \
//       -- target/release/io_uring_base unassigned
// which printed "# base-equal: ..." lines for every check below. The
// patched kernel must answer the same.
const UNASSIGNED_SQE_OPS: [u8; 9] = [58, 59, 60, 61, 62, 63, 64, 67, 255];
const UNASSIGNED_REGISTER_OPS: [u32; 9] = [31, 32, 33, 34, 35, 36, 37, 42, 255];
/// Every one of them is unknown on the base: -EINVAL, from every entry point.
const BASE_ERRNO: i32 = libc::EINVAL;

/// Kernels after 6.12 assign these numbers themselves: nothing to compare.
fn require_base_numbering(ring: &Ring) -> TestResult {
    let p = ring.probe()?;
    if p.last_op > IORING_OP_LISTEN && !p.supports(IORING_OP_IPC_SEND) {
        skip!(
            "this kernel assigns opcodes past {} itself (last_op {})",
            IORING_OP_LISTEN,
            p.last_op
        );
    }
    Ok(())
}

/// Compare `got` with the base's answer, print it either way.
fn base_equal(what: &str, got: i32, mismatches: &mut Vec<String>) {
    println!("# base-equal: {what}: {}", errno_name(-got));
    if got != -BASE_ERRNO {
        mismatches.push(format!("{what}: {} ({got})", errno_name(-got)));
    }
}

fn report(mismatches: Vec<String>) -> TestResult {
    check!(
        mismatches.is_empty(),
        "answers differ from the base kernel's {}:\n{}",
        errno_name(BASE_ERRNO),
        mismatches.join("\n")
    );
    Ok(())
}

/// The CQE result of one SQE of `opcode` with `flags`.
fn submit_raw(ring: &mut Ring, opcode: u8, flags: u8) -> Result<i32, Error> {
    let mut sqe = Sqe::from_raw(io_uring_sqe {
        opcode,
        fd: 1000,
        ..Default::default()
    })
    .user_data(0x5e);
    sqe = sqe.flags(flags);
    push(ring, sqe)?;
    Ok(ring.wait_for(0x5e)?.res)
}

fn register_raw(fd: i32, opcode: u32, arg: *mut libc::c_void, nr: u32) -> i32 {
    // SAFETY: the register commands under test either fail before they
    // look at arg or get a valid one; nr matches it.
    let r = unsafe { libc::syscall(libc::SYS_io_uring_register, fd, opcode, arg, nr) };
    if r < 0 {
        -selftests::util::errno()
    } else {
        r as i32
    }
}

/// An R_DISABLED ring with `res` registered (the result of that), enabled
/// if the registration worked.
fn restricted_ring(res: &[io_uring_restriction]) -> Result<(Ring, i32), Error> {
    let ring = Ring::builder(8).flags(IORING_SETUP_R_DISABLED).build()?;
    let r = register_raw(
        ring.fd(),
        IORING_REGISTER_RESTRICTIONS,
        res.as_ptr() as *mut libc::c_void,
        res.len() as u32,
    );
    if r == 0 {
        let e = register_raw(
            ring.fd(),
            IORING_REGISTER_ENABLE_RINGS,
            std::ptr::null_mut(),
            0,
        );
        if e != 0 {
            return Err(Error::os("IORING_REGISTER_ENABLE_RINGS", -e));
        }
    }
    Ok((ring, r))
}

/// An SQE with an unassigned opcode fails exactly like an unknown one, with
/// any flags and on a restricted ring (where the base checks the opcode
/// before the restrictions), and the probe does not report it.
fn unassigned_sqe_opcodes_are_unknown() -> TestResult {
    let mut ring = Ring::new(8)?;
    require_base_numbering(&ring)?;
    let probe = ring.probe()?;
    let nop_only = [io_uring_restriction {
        opcode: IORING_RESTRICTION_SQE_OP,
        arg: IORING_OP_NOP,
        ..Default::default()
    }];
    let (mut restricted, r) = restricted_ring(&nop_only)?;
    check_eq!(r, 0);
    let mut bad = Vec::new();
    for op in UNASSIGNED_SQE_OPS {
        check!(
            !probe.supports(op),
            "the probe reports opcode {op} as supported"
        );
        base_equal(
            &format!("sqe op {op}"),
            submit_raw(&mut ring, op, 0)?,
            &mut bad,
        );
        base_equal(
            &format!("sqe op {op} fixed file, async"),
            submit_raw(&mut ring, op, IOSQE_FIXED_FILE | IOSQE_ASYNC)?,
            &mut bad,
        );
        base_equal(
            &format!("sqe op {op} on a restricted ring"),
            submit_raw(&mut restricted, op, 0)?,
            &mut bad,
        );
    }
    report(bad)
}

/// io_uring_register() with an unassigned opcode fails before it looks at
/// the fd, like an unknown opcode, with or without a ring.
fn unassigned_register_opcodes_are_unknown() -> TestResult {
    let ring = Ring::new(8)?;
    require_base_numbering(&ring)?;
    let mut bad = Vec::new();
    for op in UNASSIGNED_REGISTER_OPS {
        let null = std::ptr::null_mut();
        base_equal(
            &format!("register op {op} fd -1"),
            register_raw(-1, op, null, 0),
            &mut bad,
        );
        base_equal(
            &format!("register op {op} ring fd"),
            register_raw(ring.fd(), op, null, 0),
            &mut bad,
        );
    }
    report(bad)
}

/// IORING_REGISTER_RESTRICTIONS refuses unassigned numbers as unknown.
fn restrictions_refuse_unassigned_opcodes() -> TestResult {
    require_base_numbering(&Ring::new(4)?)?;
    let mut bad = Vec::new();
    for op in UNASSIGNED_SQE_OPS {
        let res = [io_uring_restriction {
            opcode: IORING_RESTRICTION_SQE_OP,
            arg: op,
            ..Default::default()
        }];
        base_equal(
            &format!("restrict sqe op {op}"),
            restricted_ring(&res)?.1,
            &mut bad,
        );
    }
    for op in UNASSIGNED_REGISTER_OPS {
        let res = [io_uring_restriction {
            opcode: IORING_RESTRICTION_REGISTER_OP,
            arg: op as u8,
            ..Default::default()
        }];
        base_equal(
            &format!("restrict register op {op}"),
            restricted_ring(&res)?.1,
            &mut bad,
        );
    }
    report(bad)
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
            unassigned_sqe_opcodes_are_unknown,
            unassigned_register_opcodes_are_unknown,
            restrictions_refuse_unassigned_opcodes,
        ],
    )
    .probe(probe)
    .run()
}
