//! io_uring helpers shared by the selftests that drive a [`Ring`].

use std::time::{Duration, Instant};

use liburing_ipc::{Cqe, Error, Ring, Sqe};

/// Queue `sqe`. For selftest cases only, which keep every buffer an SQE
/// names alive until they have waited for its completion, before they
/// return.
pub fn push(ring: &mut Ring, sqe: Sqe) -> Result<(), Error> {
    // SAFETY: every buffer the cases put in an SQE outlives the wait for
    // its completion, which each case performs before returning.
    unsafe { ring.push(&sqe) }
}

/// The errno `r` failed with; None if it succeeded or failed otherwise.
pub fn errno_of<T>(r: Result<T, Error>) -> Option<i32> {
    r.err().and_then(|e| e.errno())
}

/// The next completion of `ring` (on a DEFER_TASKRUN ring, submit() runs
/// its task work), or None after `ms` milliseconds.
pub fn next_cqe_within(ring: &mut Ring, ms: u64) -> Result<Option<Cqe>, Error> {
    let deadline = Instant::now() + Duration::from_millis(ms);
    loop {
        ring.submit()?;
        if let Some(c) = ring.pop_cqe() {
            return Ok(Some(c));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// io-wq worker threads of this process (`iou-wrk-*`): a waiting IPC request
/// must never need one.
pub fn io_workers() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .filter(|c| c.starts_with("iou-wrk"))
        .count()
}
