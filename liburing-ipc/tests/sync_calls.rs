//! The synchronous IPC calls through the public API: when io_uring_enter
//! refuses the submission, the call fails and leaves nothing queued that a
//! later submission could hand to the kernel with a dead buffer in it.
//! (The request does not need to exist in the running kernel: a disabled
//! ring refuses every enter before looking at an SQE.)

use liburing_ipc::uapi::io_uring::{IORING_REGISTER_ENABLE_RINGS, IORING_SETUP_R_DISABLED};
use liburing_ipc::{opcode, Ring};

#[test]
fn ipc_recv_on_a_disabled_ring_fails_and_queues_nothing() {
    let mut ring = Ring::builder(4)
        .flags(IORING_SETUP_R_DISABLED)
        .build()
        .expect("io_uring_setup(R_DISABLED)");
    let mut canary = [0x5au8; 64];
    let e = ring.ipc_recv(1, &mut canary).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EBADFD), "{e}");
    let e = ring.ipc_send(1, b"never sent").unwrap_err();
    assert_eq!(e.errno(), Some(libc::EBADFD), "{e}");
    assert_eq!(ring.sq_ready(), 0);
    assert_eq!(ring.sq_space(), 4);

    // SAFETY: ENABLE_RINGS takes no argument.
    let r = unsafe { ring.register_raw(IORING_REGISTER_ENABLE_RINGS, std::ptr::null_mut(), 0) };
    assert_eq!(r, 0, "IORING_REGISTER_ENABLE_RINGS");
    // SAFETY: a NOP names no memory.
    unsafe { ring.push(&opcode::nop().user_data(9)).unwrap() };
    let got = ring.submit_and_collect(1).unwrap();
    assert_eq!(got[0].user_data, 9);
    std::thread::sleep(std::time::Duration::from_millis(20));
    ring.submit().unwrap();
    assert_eq!(ring.pop_cqe(), None, "a withdrawn request completed");
    assert_eq!(canary, [0x5au8; 64]);
}
