//! Typed SQE builders, one function per opcode. Required operands are
//! arguments; optional ones are chained setters on [`Sqe`].

use uapi_headers::io_uring::*;

/// A submission queue entry ready to be pushed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sqe(pub io_uring_sqe);

impl Sqe {
    fn new(opcode: u8) -> Sqe {
        Sqe(io_uring_sqe {
            opcode,
            ..Default::default()
        })
    }
    /// An SQE of `opcode` on `fd` with the buffer `addr`/`len`.
    pub(crate) fn with_buffer(opcode: u8, fd: i32, addr: u64, len: u32) -> Sqe {
        let mut s = Sqe::new(opcode);
        s.0.fd = fd;
        s.0.addr = addr;
        s.0.len = len;
        s
    }
    fn offset(mut self, off: i64) -> Sqe {
        self.0.off = off as u64;
        self
    }
    pub fn user_data(mut self, v: u64) -> Sqe {
        self.0.user_data = v;
        self
    }
    /// IOSQE_* flags (link, drain, async, ...).
    pub fn flags(mut self, f: u8) -> Sqe {
        self.0.flags |= f;
        self
    }
    pub fn opcode(&self) -> u8 {
        self.0.opcode
    }
}

pub fn nop() -> Sqe {
    Sqe::new(IORING_OP_NOP)
}

/// IORING_OP_READ of `len` bytes at `buf` from `fd` at `offset` (-1: current
/// position).
pub fn read(fd: i32, buf: *mut u8, len: u32, offset: i64) -> Sqe {
    Sqe::with_buffer(IORING_OP_READ, fd, buf as u64, len).offset(offset)
}

pub fn write(fd: i32, buf: *const u8, len: u32, offset: i64) -> Sqe {
    Sqe::with_buffer(IORING_OP_WRITE, fd, buf as u64, len).offset(offset)
}

/// IORING_OP_TIMEOUT: completes after `ts` (or after `count` completions).
pub fn timeout(ts: *const __kernel_timespec, count: u32, flags: u32) -> Sqe {
    let mut s = Sqe::new(IORING_OP_TIMEOUT);
    s.0.fd = -1;
    s.0.addr = ts as u64;
    s.0.len = 1;
    s.0.off = count as u64;
    s.0.rw_flags = flags;
    s
}

/// IORING_OP_LINK_TIMEOUT: cancels the previous (IOSQE_IO_LINK) request if
/// it has not completed after `ts`.
pub fn link_timeout(ts: *const __kernel_timespec, flags: u32) -> Sqe {
    let mut s = Sqe::new(IORING_OP_LINK_TIMEOUT);
    s.0.fd = -1;
    s.0.addr = ts as u64;
    s.0.len = 1;
    s.0.rw_flags = flags;
    s
}

/// IORING_OP_ASYNC_CANCEL of the request with `target` user_data.
pub fn async_cancel(target: u64, flags: u32) -> Sqe {
    let mut s = Sqe::new(IORING_OP_ASYNC_CANCEL);
    s.0.fd = -1;
    s.0.addr = target;
    s.0.rw_flags = flags;
    s
}

/// IORING_OP_POLL_ADD (single shot) for `mask` events on `fd`.
pub fn poll_add(fd: i32, mask: u32) -> Sqe {
    let mut s = Sqe::new(IORING_OP_POLL_ADD);
    s.0.fd = fd;
    s.0.rw_flags = mask;
    s
}

/// IORING_OP_MSG_RING of type IORING_MSG_DATA (0): post a completion with
/// result `res` and `user_data` on the ring `ring_fd`; this request's own
/// completion reports whether that worked.
pub fn msg_ring(ring_fd: i32, res: u32, user_data: u64) -> Sqe {
    let mut s = Sqe::new(IORING_OP_MSG_RING);
    s.0.fd = ring_fd;
    // sqe->addr selects the message type; IORING_MSG_DATA is 0.
    s.0.addr = 0;
    s.0.len = res;
    s.0.off = user_data;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_fill_the_documented_fields() {
        let mut buf = [0u8; 8];
        let s = read(3, buf.as_mut_ptr(), 8, -1)
            .user_data(7)
            .flags(IOSQE_IO_LINK);
        assert_eq!(s.0.opcode, IORING_OP_READ);
        assert_eq!(
            (s.0.fd, s.0.len, s.0.off, s.0.user_data),
            (3, 8, u64::MAX, 7)
        );
        assert_eq!(s.0.addr, buf.as_ptr() as u64);
        assert_eq!(s.0.flags, IOSQE_IO_LINK);
        let m = msg_ring(5, 64, 1 << 40);
        assert_eq!(m.0.opcode, IORING_OP_MSG_RING);
        assert_eq!((m.0.fd, m.0.addr, m.0.len, m.0.off), (5, 0, 64, 1 << 40));
        let c = async_cancel(42, IORING_ASYNC_CANCEL_ALL);
        assert_eq!(
            (c.0.addr, c.0.rw_flags, c.0.fd),
            (42, IORING_ASYNC_CANCEL_ALL, -1)
        );
    }
}
