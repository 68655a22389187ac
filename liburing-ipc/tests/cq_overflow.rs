//! More completions than the CQ holds: the kernel keeps the excess on its
//! overflow list (IORING_FEAT_NODROP) and sets IORING_SQ_CQ_OVERFLOW; they
//! reach the CQ only through an io_uring_enter with GETEVENTS. None may be
//! lost to a loop that only pops and submits.

use std::collections::BTreeSet;

use liburing_ipc::uapi::io_uring::IORING_FEAT_NODROP;
use liburing_ipc::{opcode, Ring};

fn four_entry_cq() -> Option<Ring> {
    let ring = Ring::builder(4)
        .cq_entries(4)
        .build()
        .expect("io_uring_setup");
    assert_eq!(ring.params().cq_entries, 4);
    if ring.params().features & IORING_FEAT_NODROP == 0 {
        eprintln!("SKIP: no IORING_FEAT_NODROP: this kernel drops overflowing CQEs");
        return None;
    }
    Some(ring)
}

fn push_nops(ring: &mut Ring, from: u64, n: u64) {
    for i in from..from + n {
        // SAFETY: a NOP names no memory.
        unsafe { ring.push(&opcode::nop().user_data(i)).unwrap() };
    }
}

#[test]
fn overfilled_cq_gives_back_every_completion_to_pop() {
    let Some(mut ring) = four_entry_cq() else {
        return;
    };
    // 12 NOPs in three submissions: the CQ fills with the first four, the
    // other eight overflow.
    for k in 0..3 {
        push_nops(&mut ring, k * 4, 4);
        ring.submit().unwrap();
    }
    let mut got = BTreeSet::new();
    while let Some(c) = ring.pop_cqe() {
        assert_eq!(c.res, 0);
        assert!(got.insert(c.user_data), "{} twice", c.user_data);
    }
    assert_eq!(got, (0..12).collect::<BTreeSet<u64>>());
}

#[test]
fn pop_then_submit_loop_loses_nothing() {
    let Some(mut ring) = four_entry_cq() else {
        return;
    };
    let mut got = BTreeSet::new();
    let mut next = 0;
    // Each round submits four NOPs and pops one completion: the CQ
    // overflows from the second round on.
    for _ in 0..8 {
        push_nops(&mut ring, next, 4);
        next += 4;
        ring.submit().unwrap();
        if let Some(c) = ring.pop_cqe() {
            got.insert(c.user_data);
        }
    }
    while let Some(c) = ring.pop_cqe() {
        got.insert(c.user_data);
    }
    assert_eq!(got, (0..next).collect::<BTreeSet<u64>>());
}
