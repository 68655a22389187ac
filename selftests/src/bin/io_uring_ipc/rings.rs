//! IPC requests on rings set up other ways: SINGLE_ISSUER | DEFER_TASKRUN,
//! SQPOLL, IOPOLL.

use std::time::Duration;

use liburing_ipc::ipc::{Attach, ChannelConfig, Delivery};
use liburing_ipc::opcode::IpcSend;
use liburing_ipc::uapi::io_uring::*;
use liburing_ipc::Ring;
use selftests::ipc::{attach, channel, key, push_recv, recv_msg};
use selftests::uring::push;
use selftests::util::fork_child;
use selftests::{check_eq, skip, TestResult};

pub fn single_issuer_defer_taskrun_ring() -> TestResult {
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

pub fn sqpoll_ring_send_recv() -> TestResult {
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

/// IORING_SETUP_IOPOLL rings complete by polling the device, so a request
/// that waits for a message could only be busy-polled: IPC ops are refused.
pub fn ipc_ops_rejected_on_iopoll_ring() -> TestResult {
    let ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let mut iopoll = Ring::builder(8).flags(IORING_SETUP_IOPOLL).build()?;
    let s = attach(&iopoll, ch, IOIPC_SUB_BOTH)?;
    let mut buf = [0u8; 64];
    push_recv(&mut iopoll, s.id, &mut buf, 1)?;
    push(
        &mut iopoll,
        IpcSend::new(s.id, buf.as_ptr(), 8).build().user_data(2),
    )?;
    let r = iopoll.wait_for(1)?;
    let w = iopoll.wait_for(2)?;
    check_eq!((r.res, w.res), (-libc::EINVAL, -libc::EINVAL));
    Ok(())
}
