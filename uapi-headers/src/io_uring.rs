//! `include/uapi/linux/io_uring.h` (Linux 6.12 plus this project's series).
#![allow(non_camel_case_types)]

use crate::{constants, layout, Constant, Field, Layout};

const H: &str = "linux/io_uring.h";

/// Submission queue entry. C unions are flattened to the member this crate
/// uses; [`SQE_ALIASES`] checks the other union members' offsets.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct io_uring_sqe {
    pub opcode: u8,
    pub flags: u8,
    pub ioprio: u16,
    pub fd: i32,
    /// Union: off, addr2, cmd_op.
    pub off: u64,
    /// Union: addr, splice_off_in.
    pub addr: u64,
    pub len: u32,
    /// Union of the per-opcode flags words: rw_flags, timeout_flags,
    /// cancel_flags, msg_ring_flags, ...
    pub rw_flags: u32,
    pub user_data: u64,
    /// Union: buf_index, buf_group.
    pub buf_index: u16,
    pub personality: u16,
    /// Union: splice_fd_in, file_index, optlen.
    pub file_index: u32,
    /// Union: addr3, optval.
    pub addr3: u64,
    pub __pad2: [u64; 1],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct io_uring_cqe {
    pub user_data: u64,
    pub res: i32,
    pub flags: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct io_sqring_offsets {
    pub head: u32,
    pub tail: u32,
    pub ring_mask: u32,
    pub ring_entries: u32,
    pub flags: u32,
    pub dropped: u32,
    pub array: u32,
    pub resv1: u32,
    pub user_addr: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct io_cqring_offsets {
    pub head: u32,
    pub tail: u32,
    pub ring_mask: u32,
    pub ring_entries: u32,
    pub overflow: u32,
    pub cqes: u32,
    pub flags: u32,
    pub resv1: u32,
    pub user_addr: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct io_uring_params {
    pub sq_entries: u32,
    pub cq_entries: u32,
    pub flags: u32,
    pub sq_thread_cpu: u32,
    pub sq_thread_idle: u32,
    pub features: u32,
    pub wq_fd: u32,
    pub resv: [u32; 3],
    pub sq_off: io_sqring_offsets,
    pub cq_off: io_cqring_offsets,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct io_uring_probe_op {
    pub op: u8,
    pub resv: u8,
    pub flags: u16,
    pub resv2: u32,
}

/// Header of the probe result; `ops_len` entries of [`io_uring_probe_op`]
/// follow it in memory.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct io_uring_probe {
    pub last_op: u8,
    pub ops_len: u8,
    pub resv: u16,
    pub resv2: [u32; 3],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct __kernel_timespec {
    pub tv_sec: i64,
    pub tv_nsec: i64,
}

// io_uring_setup() flags.
pub const IORING_SETUP_IOPOLL: u32 = 1 << 0;
pub const IORING_SETUP_SQPOLL: u32 = 1 << 1;
pub const IORING_SETUP_SQ_AFF: u32 = 1 << 2;
pub const IORING_SETUP_CQSIZE: u32 = 1 << 3;
pub const IORING_SETUP_CLAMP: u32 = 1 << 4;
pub const IORING_SETUP_SUBMIT_ALL: u32 = 1 << 7;
pub const IORING_SETUP_COOP_TASKRUN: u32 = 1 << 8;
pub const IORING_SETUP_TASKRUN_FLAG: u32 = 1 << 9;
pub const IORING_SETUP_SINGLE_ISSUER: u32 = 1 << 12;
pub const IORING_SETUP_DEFER_TASKRUN: u32 = 1 << 13;

// io_uring_enter() flags.
pub const IORING_ENTER_GETEVENTS: u32 = 1 << 0;
pub const IORING_ENTER_SQ_WAKEUP: u32 = 1 << 1;
pub const IORING_ENTER_SQ_WAIT: u32 = 1 << 2;
pub const IORING_ENTER_EXT_ARG: u32 = 1 << 3;

// Features reported in io_uring_params.features.
pub const IORING_FEAT_SINGLE_MMAP: u32 = 1 << 0;
pub const IORING_FEAT_NODROP: u32 = 1 << 1;
pub const IORING_FEAT_FAST_POLL: u32 = 1 << 5;
pub const IORING_FEAT_EXT_ARG: u32 = 1 << 8;

// mmap offsets.
pub const IORING_OFF_SQ_RING: u64 = 0;
pub const IORING_OFF_CQ_RING: u64 = 0x8000000;
pub const IORING_OFF_SQES: u64 = 0x10000000;

// sq_ring->flags.
pub const IORING_SQ_NEED_WAKEUP: u32 = 1 << 0;
pub const IORING_SQ_CQ_OVERFLOW: u32 = 1 << 1;
pub const IORING_SQ_TASKRUN: u32 = 1 << 2;

// sqe->flags.
pub const IOSQE_FIXED_FILE: u8 = 1 << 0;
pub const IOSQE_IO_DRAIN: u8 = 1 << 1;
pub const IOSQE_IO_LINK: u8 = 1 << 2;
pub const IOSQE_IO_HARDLINK: u8 = 1 << 3;
pub const IOSQE_ASYNC: u8 = 1 << 4;
pub const IOSQE_CQE_SKIP_SUCCESS: u8 = 1 << 6;

// Opcodes used by this workspace (enum io_uring_op).
pub const IORING_OP_NOP: u8 = 0;
pub const IORING_OP_READV: u8 = 1;
pub const IORING_OP_WRITEV: u8 = 2;
pub const IORING_OP_POLL_ADD: u8 = 6;
pub const IORING_OP_TIMEOUT: u8 = 11;
pub const IORING_OP_ASYNC_CANCEL: u8 = 14;
pub const IORING_OP_LINK_TIMEOUT: u8 = 15;
pub const IORING_OP_READ: u8 = 22;
pub const IORING_OP_WRITE: u8 = 23;
pub const IORING_OP_MSG_RING: u8 = 40;
pub const IORING_OP_LISTEN: u8 = 57;

// Register opcodes (enum io_uring_register_op).
pub const IORING_REGISTER_PROBE: u32 = 8;
pub const IORING_REGISTER_CLONE_BUFFERS: u32 = 30;

// Timeout and cancel flags.
pub const IORING_TIMEOUT_ABS: u32 = 1 << 0;
pub const IORING_ASYNC_CANCEL_ALL: u32 = 1 << 0;
pub const IORING_ASYNC_CANCEL_ANY: u32 = 1 << 2;

/// Probe op flag: the opcode is supported.
pub const IO_URING_OP_SUPPORTED: u16 = 1 << 0;

pub const LAYOUTS: &[Layout] = &[
    layout!(
        H,
        "struct io_uring_sqe",
        io_uring_sqe {
            opcode,
            flags,
            ioprio,
            fd,
            off,
            addr,
            len,
            rw_flags,
            user_data,
            buf_index,
            personality,
            file_index,
            addr3,
            __pad2,
        }
    ),
    Layout {
        header: H,
        c_type: "struct io_uring_sqe",
        size: 64,
        fields: SQE_ALIASES,
    },
    layout!(
        H,
        "struct io_uring_cqe",
        io_uring_cqe {
            user_data,
            res,
            flags
        }
    ),
    layout!(
        H,
        "struct io_sqring_offsets",
        io_sqring_offsets {
            head,
            tail,
            ring_mask,
            ring_entries,
            flags,
            dropped,
            array,
            resv1,
            user_addr,
        }
    ),
    layout!(
        H,
        "struct io_cqring_offsets",
        io_cqring_offsets {
            head,
            tail,
            ring_mask,
            ring_entries,
            overflow,
            cqes,
            flags,
            resv1,
            user_addr,
        }
    ),
    layout!(
        H,
        "struct io_uring_params",
        io_uring_params {
            sq_entries,
            cq_entries,
            flags,
            sq_thread_cpu,
            sq_thread_idle,
            features,
            wq_fd,
            resv,
            sq_off,
            cq_off,
        }
    ),
    layout!(
        H,
        "struct io_uring_probe_op",
        io_uring_probe_op {
            op,
            resv,
            flags,
            resv2
        }
    ),
    layout!(
        H,
        "struct io_uring_probe",
        io_uring_probe {
            last_op,
            ops_len,
            resv,
            resv2
        }
    ),
    layout!(
        "linux/time_types.h",
        "struct __kernel_timespec",
        __kernel_timespec { tv_sec, tv_nsec }
    ),
];

/// Other members of the SQE's unions, at the offset of the member we use.
pub const SQE_ALIASES: &[Field] = &[
    Field {
        name: "addr2",
        offset: 8,
    },
    Field {
        name: "cmd_op",
        offset: 8,
    },
    Field {
        name: "splice_off_in",
        offset: 16,
    },
    Field {
        name: "timeout_flags",
        offset: 28,
    },
    Field {
        name: "cancel_flags",
        offset: 28,
    },
    Field {
        name: "msg_ring_flags",
        offset: 28,
    },
    Field {
        name: "buf_group",
        offset: 40,
    },
    Field {
        name: "splice_fd_in",
        offset: 44,
    },
];

pub const CONSTANTS: &[Constant] = constants!(H; [
    IORING_SETUP_IOPOLL, IORING_SETUP_SQPOLL, IORING_SETUP_SQ_AFF, IORING_SETUP_CQSIZE,
    IORING_SETUP_CLAMP, IORING_SETUP_SUBMIT_ALL, IORING_SETUP_COOP_TASKRUN,
    IORING_SETUP_TASKRUN_FLAG, IORING_SETUP_SINGLE_ISSUER, IORING_SETUP_DEFER_TASKRUN,
    IORING_ENTER_GETEVENTS, IORING_ENTER_SQ_WAKEUP, IORING_ENTER_SQ_WAIT, IORING_ENTER_EXT_ARG,
    IORING_FEAT_SINGLE_MMAP, IORING_FEAT_NODROP, IORING_FEAT_FAST_POLL, IORING_FEAT_EXT_ARG,
    IORING_OFF_SQ_RING, IORING_OFF_CQ_RING, IORING_OFF_SQES,
    IORING_SQ_NEED_WAKEUP, IORING_SQ_CQ_OVERFLOW, IORING_SQ_TASKRUN,
    IOSQE_FIXED_FILE, IOSQE_IO_DRAIN, IOSQE_IO_LINK, IOSQE_IO_HARDLINK, IOSQE_ASYNC,
    IOSQE_CQE_SKIP_SUCCESS,
    IORING_OP_NOP, IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_POLL_ADD, IORING_OP_TIMEOUT,
    IORING_OP_ASYNC_CANCEL, IORING_OP_LINK_TIMEOUT, IORING_OP_READ, IORING_OP_WRITE,
    IORING_OP_MSG_RING, IORING_OP_LISTEN,
    IORING_REGISTER_PROBE, IORING_REGISTER_CLONE_BUFFERS,
    IORING_TIMEOUT_ABS, IORING_ASYNC_CANCEL_ALL, IORING_ASYNC_CANCEL_ANY,
    IO_URING_OP_SUPPORTED,
]);

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn sizes_match_the_abi() {
        assert_eq!(size_of::<io_uring_sqe>(), 64);
        assert_eq!(size_of::<io_uring_cqe>(), 16);
        assert_eq!(size_of::<io_sqring_offsets>(), 40);
        assert_eq!(size_of::<io_cqring_offsets>(), 40);
        assert_eq!(size_of::<io_uring_params>(), 120);
        assert_eq!(size_of::<io_uring_probe>(), 16);
        assert_eq!(size_of::<io_uring_probe_op>(), 8);
    }

    #[test]
    fn sqe_offsets() {
        assert_eq!(core::mem::offset_of!(io_uring_sqe, user_data), 32);
        assert_eq!(core::mem::offset_of!(io_uring_sqe, file_index), 44);
        assert_eq!(core::mem::offset_of!(io_uring_sqe, addr3), 48);
    }
}
