//! MessageQueue::peek at the end of the queue: None, not an error, and no
//! allocation per call (a monitor polls an empty queue in a loop).
//! Runs on any kernel: without mq_timedreceive2 the calls fail with ENOSYS
//! before the allocation question arises, so the test skips.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use liburing_ipc::mq::{Access, Attr, MessageQueue};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is thread-local
// and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

/// Without mq_timedreceive2 (the host) every peek fails with ENOSYS: it
/// must still not allocate per call. With it, the end of the queue is None.
#[test]
fn peek_at_the_end_is_none_and_allocates_nothing() {
    let name = format!("/liburing-ipc-peek-{}", std::process::id());
    let attr = Attr {
        max_msgs: 4,
        msg_size: 8192,
    };
    let q = match MessageQueue::create(&name, attr, Access::ReadWrite) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("SKIP: mq_open: {e}");
            return;
        }
    };
    let have_call = match q.peek(0) {
        Ok(m) => {
            assert_eq!(m, None, "empty queue");
            true
        }
        Err(e) => {
            assert_eq!(e.errno(), Some(libc::ENOSYS), "{e}");
            eprintln!("no mq_timedreceive2 here: checking allocations only");
            false
        }
    };
    let before = allocs();
    for _ in 0..100 {
        let r = q.peek(0);
        if have_call {
            assert_eq!(r.unwrap(), None, "empty queue");
        }
    }
    assert_eq!(
        allocs() - before,
        0,
        "allocations by 100 peeks of an empty queue"
    );
    if !have_call {
        return;
    }
    q.send(b"one", 3).unwrap();
    let m = q.peek(0).unwrap().unwrap();
    assert_eq!((m.data.as_slice(), m.priority), (&b"one"[..], 3));
    let before = allocs();
    for i in [1, 2, 1 << 40, u64::MAX] {
        assert_eq!(q.peek(i).unwrap(), None, "index {i}");
    }
    let mut buf = Vec::new();
    assert_eq!(q.peek_into(0, &mut buf).unwrap(), Some(3));
    assert_eq!(buf, b"one");
    for _ in 0..100 {
        assert_eq!(q.peek_into(0, &mut buf).unwrap(), Some(3));
        assert_eq!(q.peek_into(1, &mut buf).unwrap(), None);
    }
    assert_eq!(
        allocs() - before,
        1,
        "allocations past the end and by peek_into"
    );
}
