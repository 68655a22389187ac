//! BufRing against the running kernel's provided buffer rings, with plain
//! READs from a pipe (any kernel since 5.19 has them; older ones skip).

use liburing_ipc::opcode;
use liburing_ipc::uapi::io_uring::*;
use liburing_ipc::{BufRing, Error, Ring};

fn pipe() -> (i32, i32) {
    let mut fds = [0i32; 2];
    // SAFETY: fds has room for the two descriptors pipe() writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    (fds[0], fds[1])
}

fn write_all(fd: i32, data: &[u8]) {
    // SAFETY: data is a live slice of data.len() bytes.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    assert_eq!(n, data.len() as isize, "write to pipe");
}

/// A READ that picks its buffer from group `bgid`.
fn read_selected(fd: i32, bgid: u16, len: u32, user_data: u64) -> liburing_ipc::Sqe {
    let s = opcode::read(fd, std::ptr::null_mut(), len, -1)
        .user_data(user_data)
        .flags(IOSQE_BUFFER_SELECT);
    liburing_ipc::Sqe::from_raw(io_uring_sqe {
        buf_index: bgid,
        ..*s.as_raw()
    })
}

fn ring_with_bufs(entries: u16, len: u32) -> Option<(Ring, BufRing)> {
    let ring = Ring::new(8).expect("io_uring_setup");
    match BufRing::new(&ring, 1, entries, len) {
        Ok(b) => Some((ring, b)),
        Err(Error::Os { errno, .. }) if errno == libc::EINVAL || errno == libc::ENOSYS => {
            eprintln!("skip: kernel without provided buffer rings");
            None
        }
        Err(e) => panic!("BufRing::new: {e}"),
    }
}

#[test]
fn buffers_come_back_in_cqes_and_are_recycled() {
    let Some((mut ring, mut bufs)) = ring_with_bufs(2, 16) else {
        return;
    };
    let (r, w) = pipe();
    // Twice the ring's size: every buffer is used, returned and used again.
    for i in 0..4u64 {
        let msg = format!("message {i}");
        write_all(w, msg.as_bytes());
        // SAFETY: the READ writes only into a buffer of the group, which
        // stays registered until `bufs` is dropped after the wait.
        unsafe { ring.push(&read_selected(r, bufs.bgid(), 16, i)) }.expect("push");
        let c = ring.wait_for(i).expect("wait");
        assert_eq!(c.res as usize, msg.len(), "read {i}: {c:?}");
        let (bid, len) = bufs.take(&c).expect("a CQE with a buffer");
        assert_eq!(bufs.buf(bid, len), msg.as_bytes());
        bufs.recycle(bid);
    }
    // SAFETY: closing our own pipe fds.
    unsafe {
        libc::close(r);
        libc::close(w);
    }
}

#[test]
fn an_empty_group_is_enobufs() {
    let Some((mut ring, mut bufs)) = ring_with_bufs(1, 8) else {
        return;
    };
    let (r, w) = pipe();
    write_all(w, b"one");
    // SAFETY: as above, the group outlives the waits.
    unsafe { ring.push(&read_selected(r, bufs.bgid(), 8, 1)) }.expect("push");
    let c = ring.wait_for(1).expect("wait");
    let (bid, _) = bufs.take(&c).expect("buffer");
    // The only buffer is ours now: the next READ finds none.
    write_all(w, b"two");
    // SAFETY: as above.
    unsafe { ring.push(&read_selected(r, bufs.bgid(), 8, 2)) }.expect("push");
    assert_eq!(ring.wait_for(2).expect("wait").res, -libc::ENOBUFS);
    bufs.recycle(bid);
    // SAFETY: closing our own pipe fds.
    unsafe {
        libc::close(r);
        libc::close(w);
    }
}

#[test]
fn reading_a_provided_buffer_panics() {
    let Some((_ring, bufs)) = ring_with_bufs(2, 8) else {
        return;
    };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| bufs.buf(0, 8).len()));
    assert!(r.is_err(), "read a buffer the kernel owns");
}

#[test]
fn bad_sizes_are_refused() {
    let ring = Ring::new(4).expect("io_uring_setup");
    assert!(matches!(
        BufRing::new(&ring, 1, 3, 8),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        BufRing::new(&ring, 1, 4, 0),
        Err(Error::InvalidArgument(_))
    ));
}
