//! Typed SQE builders. Opcodes with few operands have one function each,
//! with the required operands as arguments; the IPC opcodes, which have
//! options of their own, have a builder each ([`IpcSend`], [`IpcRecv`],
//! [`IpcRecvMultishot`]): required operands in `new`, that opcode's options
//! as chained setters, and `build()` for the [`Sqe`]. Options every opcode
//! shares (user_data, IOSQE_* flags) are set on the [`Sqe`].
//!
//! An option belongs to its opcode only, so it cannot end up in another
//! opcode's SQE:
//!
//! ```
//! use liburing_ipc::opcode::{self, IpcRecv};
//! let mut buf = [0u8; 64];
//! let recv = IpcRecv::new(1, buf.as_mut_ptr(), 64).nonblock().build();
//! let read = opcode::read(0, buf.as_mut_ptr(), 64, -1).user_data(7);
//! # let _ = (recv, read);
//! ```
//!
//! ```compile_fail,E0599
//! use liburing_ipc::opcode;
//! let mut buf = [0u8; 64];
//! // IOIPC_RECV_NONBLOCK is an IPC_RECV option: a READ has no such setter.
//! let read = opcode::read(0, buf.as_mut_ptr(), 64, -1).nonblock();
//! ```
//!
//! ```compile_fail,E0599
//! use liburing_ipc::opcode::IpcSend;
//! let buf = [0u8; 64];
//! // Nor has a send the receive's options.
//! let send = IpcSend::new(1, buf.as_ptr(), 64).nonblock();
//! ```
//!
//! ```compile_fail,E0616
//! use liburing_ipc::opcode;
//! // The entry's fields are not open to change either.
//! let mut nop = opcode::nop();
//! nop.0.rw_flags = 1;
//! ```

use uapi_headers::io_uring::*;

/// A submission queue entry ready to be pushed, built by this module's
/// functions and builders. Its fields are private: only the opcode's own
/// options can be set on it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sqe(io_uring_sqe);

impl Sqe {
    fn new(opcode: u8) -> Sqe {
        Sqe(io_uring_sqe {
            opcode,
            ..Default::default()
        })
    }
    /// An SQE of `opcode` on `fd` with the buffer `addr`/`len`.
    fn with_buffer(opcode: u8, fd: i32, addr: u64, len: u32) -> Sqe {
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
    /// The entry as it is handed to the kernel.
    pub fn as_raw(&self) -> &io_uring_sqe {
        &self.0
    }
    /// An entry made of raw fields, bypassing the builders: for tests of
    /// what the kernel does with entries no builder produces (unassigned
    /// opcodes, unknown or conflicting flags).
    pub fn from_raw(raw: io_uring_sqe) -> Sqe {
        Sqe(raw)
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

/// IORING_OP_IPC_SEND of `len` bytes at `buf` from subscriber `sub`.
///
/// ```
/// use liburing_ipc::opcode::IpcSend;
/// let msg = b"hello";
/// let sqe = IpcSend::new(1, msg.as_ptr(), 5).target(2).wait().build().user_data(9);
/// # let _ = sqe;
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use = "an IpcSend does nothing until it is built and pushed"]
pub struct IpcSend {
    sub: u32,
    buf: *const u8,
    len: u32,
    target: u32,
    wait: bool,
}

impl IpcSend {
    pub fn new(sub: u32, buf: *const u8, len: u32) -> IpcSend {
        IpcSend {
            sub,
            buf,
            len,
            target: 0,
            wait: false,
        }
    }
    /// Deliver to subscriber `target` only.
    pub fn target(mut self, target: u32) -> IpcSend {
        self.target = target;
        self
    }
    /// IOIPC_SEND_WAIT: wait for space instead of failing with ENOBUFS.
    pub fn wait(mut self) -> IpcSend {
        self.wait = true;
        self
    }
    pub fn build(self) -> Sqe {
        let mut s = Sqe::with_buffer(
            IORING_OP_IPC_SEND,
            self.sub as i32,
            self.buf as u64,
            self.len,
        );
        s.0.file_index = self.target;
        if self.wait {
            s.0.rw_flags |= IOIPC_SEND_WAIT;
        }
        s
    }
}

/// IORING_OP_IPC_RECV of one message into `len` bytes at `buf`, for
/// subscriber `sub`.
///
/// ```
/// use liburing_ipc::{ipc::MsgInfo, opcode::IpcRecv};
/// let mut buf = [0u8; 64];
/// let mut info = MsgInfo::default();
/// let sqe = IpcRecv::new(1, buf.as_mut_ptr(), 64).info(&mut info).nonblock().build();
/// # let _ = sqe;
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use = "an IpcRecv does nothing until it is built and pushed"]
pub struct IpcRecv {
    sub: u32,
    buf: *mut u8,
    len: u32,
    info: *mut io_uring_ipc_msg_info,
    nonblock: bool,
}

impl IpcRecv {
    pub fn new(sub: u32, buf: *mut u8, len: u32) -> IpcRecv {
        IpcRecv {
            sub,
            buf,
            len,
            info: std::ptr::null_mut(),
            nonblock: false,
        }
    }
    /// Fill `info` with the message's sender information.
    pub fn info(mut self, info: *mut io_uring_ipc_msg_info) -> IpcRecv {
        self.info = info;
        self
    }
    /// IOIPC_RECV_NONBLOCK: fail with EAGAIN instead of waiting.
    pub fn nonblock(mut self) -> IpcRecv {
        self.nonblock = true;
        self
    }
    pub fn build(self) -> Sqe {
        let mut s = Sqe::with_buffer(
            IORING_OP_IPC_RECV,
            self.sub as i32,
            self.buf as u64,
            self.len,
        );
        s.0.addr3 = self.info as u64;
        if self.nonblock {
            s.0.rw_flags |= IOIPC_RECV_NONBLOCK;
        }
        s
    }
}

/// Multishot IORING_OP_IPC_RECV for subscriber `sub`: one CQE with
/// IORING_CQE_F_MORE per message, each into a buffer of group `bgid` (a
/// [`crate::BufRing`]) that starts with the message's
/// [`crate::ipc::MsgInfo`]; the CQE result counts header and payload (see
/// [`crate::ipc::parse_multishot`]). The stream ends with a CQE without
/// IORING_CQE_F_MORE: -ENOBUFS when the group ran out of buffers,
/// -ECANCELED on cancel, -EPIPE on detach or destroy. It takes no buffer,
/// sender information or IOIPC_RECV_NONBLOCK, so it has no such options.
#[derive(Debug, Clone, Copy)]
#[must_use = "an IpcRecvMultishot does nothing until it is built and pushed"]
pub struct IpcRecvMultishot {
    sub: u32,
    bgid: u16,
}

impl IpcRecvMultishot {
    pub fn new(sub: u32, bgid: u16) -> IpcRecvMultishot {
        IpcRecvMultishot { sub, bgid }
    }
    pub fn build(self) -> Sqe {
        let mut s = Sqe::new(IORING_OP_IPC_RECV).flags(IOSQE_BUFFER_SELECT);
        s.0.fd = self.sub as i32;
        s.0.buf_index = self.bgid;
        s.0.rw_flags = IOIPC_RECV_MULTISHOT;
        s
    }
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

    /// The 64 bytes of an entry as the kernel reads them: the fields in
    /// order, which leave no padding between them.
    fn bytes(s: &io_uring_sqe) -> Vec<u8> {
        let mut b = vec![s.opcode, s.flags];
        b.extend(s.ioprio.to_ne_bytes());
        b.extend(s.fd.to_ne_bytes());
        b.extend(s.off.to_ne_bytes());
        b.extend(s.addr.to_ne_bytes());
        b.extend(s.len.to_ne_bytes());
        b.extend(s.rw_flags.to_ne_bytes());
        b.extend(s.user_data.to_ne_bytes());
        b.extend(s.buf_index.to_ne_bytes());
        b.extend(s.personality.to_ne_bytes());
        b.extend(s.file_index.to_ne_bytes());
        b.extend(s.addr3.to_ne_bytes());
        b.extend(s.__pad2[0].to_ne_bytes());
        assert_eq!(b.len(), std::mem::size_of::<io_uring_sqe>());
        b
    }

    /// Each IPC builder option against the entry the per-op setters on
    /// `Sqe` used to produce (`ipc::send(..).target(t).wait()` and so on):
    /// the same bytes, field for field.
    #[test]
    fn ipc_builders_produce_the_entries_of_the_old_setters() {
        let mut buf = [0u8; 32];
        let mut info = io_uring_ipc_msg_info::default();
        let addr = buf.as_mut_ptr() as u64;
        let info_addr = &mut info as *mut io_uring_ipc_msg_info as u64;
        let send = io_uring_sqe {
            opcode: IORING_OP_IPC_SEND,
            fd: 3,
            addr,
            len: 32,
            ..Default::default()
        };
        let recv = io_uring_sqe {
            opcode: IORING_OP_IPC_RECV,
            ..send
        };
        let p = buf.as_mut_ptr();
        let cases: Vec<(&str, Sqe, io_uring_sqe)> = vec![
            ("send", IpcSend::new(3, p, 32).build(), send),
            (
                "send target",
                IpcSend::new(3, p, 32).target(9).build(),
                io_uring_sqe {
                    file_index: 9,
                    ..send
                },
            ),
            (
                "send wait",
                IpcSend::new(3, p, 32).wait().build(),
                io_uring_sqe {
                    rw_flags: IOIPC_SEND_WAIT,
                    ..send
                },
            ),
            (
                "send target wait, user_data, link",
                IpcSend::new(3, p, 32)
                    .target(9)
                    .wait()
                    .build()
                    .user_data(0x5eed)
                    .flags(IOSQE_IO_LINK),
                io_uring_sqe {
                    file_index: 9,
                    rw_flags: IOIPC_SEND_WAIT,
                    user_data: 0x5eed,
                    flags: IOSQE_IO_LINK,
                    ..send
                },
            ),
            ("recv", IpcRecv::new(3, p, 32).build(), recv),
            (
                "recv nonblock",
                IpcRecv::new(3, p, 32).nonblock().build(),
                io_uring_sqe {
                    rw_flags: IOIPC_RECV_NONBLOCK,
                    ..recv
                },
            ),
            (
                "recv info",
                IpcRecv::new(3, p, 32).info(&mut info).build(),
                io_uring_sqe {
                    addr3: info_addr,
                    ..recv
                },
            ),
            (
                "recv info nonblock, user_data",
                IpcRecv::new(3, p, 32)
                    .info(&mut info)
                    .nonblock()
                    .build()
                    .user_data(77),
                io_uring_sqe {
                    addr3: info_addr,
                    rw_flags: IOIPC_RECV_NONBLOCK,
                    user_data: 77,
                    ..recv
                },
            ),
            (
                "recv multishot",
                IpcRecvMultishot::new(3, 7).build().user_data(0x77),
                io_uring_sqe {
                    opcode: IORING_OP_IPC_RECV,
                    flags: IOSQE_BUFFER_SELECT,
                    fd: 3,
                    buf_index: 7,
                    rw_flags: IOIPC_RECV_MULTISHOT,
                    user_data: 0x77,
                    ..Default::default()
                },
            ),
        ];
        for (what, built, old) in cases {
            assert_eq!(bytes(built.as_raw()), bytes(&old), "{what}");
        }
    }

    #[test]
    fn raw_entries_round_trip() {
        let raw = io_uring_sqe {
            opcode: 200,
            fd: 1000,
            rw_flags: 1 << 9,
            ..Default::default()
        };
        let s = Sqe::from_raw(raw).user_data(1);
        assert_eq!(s.opcode(), 200);
        assert_eq!(
            bytes(s.as_raw()),
            bytes(&io_uring_sqe {
                user_data: 1,
                ..raw
            })
        );
    }
}
