//! RingBuilder accepts only the setup flags whose ring it can map and use:
//! the default SQE/CQE sizes, an SQ index array, memory the kernel
//! allocates and a real fd.

use liburing_ipc::uapi::io_uring::*;
use liburing_ipc::{Error, Ring};

#[test]
fn layout_changing_flags_are_refused() {
    for (name, f) in [
        ("SQE128", IORING_SETUP_SQE128),
        ("CQE32", IORING_SETUP_CQE32),
        ("NO_SQARRAY", IORING_SETUP_NO_SQARRAY),
        ("NO_MMAP", IORING_SETUP_NO_MMAP),
        (
            "REGISTERED_FD_ONLY",
            IORING_SETUP_REGISTERED_FD_ONLY | IORING_SETUP_NO_MMAP,
        ),
        ("unknown bit 18", 1 << 18),
        ("unknown bit 31", 1 << 31),
    ] {
        match Ring::builder(4).flags(f).build() {
            Err(Error::InvalidArgument(_)) => {}
            Err(e) => panic!("{name}: {e} (from the kernel, not the builder)"),
            Ok(_) => panic!("{name}: accepted"),
        }
    }
}

#[test]
fn default_layout_flags_still_work() {
    for (name, f) in [
        ("CLAMP", IORING_SETUP_CLAMP),
        ("SUBMIT_ALL", IORING_SETUP_SUBMIT_ALL),
        ("COOP_TASKRUN", IORING_SETUP_COOP_TASKRUN),
        (
            "COOP_TASKRUN|TASKRUN_FLAG",
            IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        ),
        ("R_DISABLED", IORING_SETUP_R_DISABLED),
    ] {
        if let Err(e) = Ring::builder(4).flags(f).build() {
            assert_ne!(e.errno(), None, "{name}: refused by the builder: {e}");
            eprintln!("SKIP {name}: {e}");
        }
    }
}
