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
pub const IORING_SETUP_ATTACH_WQ: u32 = 1 << 5;
pub const IORING_SETUP_R_DISABLED: u32 = 1 << 6;
pub const IORING_SETUP_SUBMIT_ALL: u32 = 1 << 7;
pub const IORING_SETUP_COOP_TASKRUN: u32 = 1 << 8;
pub const IORING_SETUP_TASKRUN_FLAG: u32 = 1 << 9;
pub const IORING_SETUP_SQE128: u32 = 1 << 10;
pub const IORING_SETUP_CQE32: u32 = 1 << 11;
pub const IORING_SETUP_SINGLE_ISSUER: u32 = 1 << 12;
pub const IORING_SETUP_DEFER_TASKRUN: u32 = 1 << 13;
pub const IORING_SETUP_NO_MMAP: u32 = 1 << 14;
pub const IORING_SETUP_REGISTERED_FD_ONLY: u32 = 1 << 15;
pub const IORING_SETUP_NO_SQARRAY: u32 = 1 << 16;

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
pub const IOSQE_BUFFER_SELECT: u8 = 1 << 5;
pub const IOSQE_CQE_SKIP_SUCCESS: u8 = 1 << 6;

// cqe->flags.
pub const IORING_CQE_F_BUFFER: u32 = 1 << 0;
pub const IORING_CQE_F_MORE: u32 = 1 << 1;
pub const IORING_CQE_BUFFER_SHIFT: u32 = 16;

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
pub const IORING_REGISTER_RESTRICTIONS: u32 = 11;
pub const IORING_REGISTER_ENABLE_RINGS: u32 = 12;
pub const IORING_REGISTER_PBUF_RING: u32 = 22;
pub const IORING_UNREGISTER_PBUF_RING: u32 = 23;
pub const IORING_REGISTER_CLONE_BUFFERS: u32 = 30;

// Timeout and cancel flags.
pub const IORING_TIMEOUT_ABS: u32 = 1 << 0;
pub const IORING_ASYNC_CANCEL_ALL: u32 = 1 << 0;
pub const IORING_ASYNC_CANCEL_ANY: u32 = 1 << 2;

/// Probe op flag: the opcode is supported.
pub const IO_URING_OP_SUPPORTED: u16 = 1 << 0;

// ---- IPC channels (this project's io_uring series, CONFIG_IO_URING_IPC) ----

pub const IORING_OP_IPC_SEND: u8 = 65;
pub const IORING_OP_IPC_RECV: u8 = 66;

pub const IORING_REGISTER_IPC_CHANNEL_CREATE: u32 = 38;
pub const IORING_REGISTER_IPC_CHANNEL_ATTACH: u32 = 39;
pub const IORING_REGISTER_IPC_CHANNEL_DETACH: u32 = 40;
pub const IORING_REGISTER_IPC_CHANNEL_DESTROY: u32 = 41;

/// Every receiver gets every message.
pub const IOIPC_F_BROADCAST: u32 = 1 << 0;
/// Each message goes to one receiver, round-robin.
pub const IOIPC_F_MULTICAST: u32 = 1 << 1;
/// No key; attachable only from the creating process.
pub const IOIPC_F_PRIVATE: u32 = 1 << 2;

pub const IOIPC_SUB_SEND: u32 = 1 << 0;
pub const IOIPC_SUB_RECV: u32 = 1 << 1;
pub const IOIPC_SUB_BOTH: u32 = IOIPC_SUB_SEND | IOIPC_SUB_RECV;

/// desc.seq while a slot is being rewritten.
pub const IOIPC_DESC_SEQ_BUSY: u64 = !0;

/// msg_info only: the receive buffer was shorter than the message.
pub const IOIPC_MSG_TRUNC: u32 = 1 << 0;
/// The message was sent to one subscriber by id.
pub const IOIPC_MSG_TARGETED: u32 = 1 << 1;
/// desc only: the payload could not be copied in; the slot is skipped.
pub const IOIPC_MSG_DROPPED: u32 = 1 << 2;

/// IPC_SEND (sqe ipc_flags): wait for a free slot instead of -ENOBUFS.
pub const IOIPC_SEND_WAIT: u32 = 1 << 0;
/// IPC_RECV (sqe ipc_flags): -EAGAIN instead of waiting for a message.
pub const IOIPC_RECV_NONBLOCK: u32 = 1 << 0;
/// IPC_RECV (sqe ipc_flags): a stream of messages into provided buffers,
/// one CQE with IORING_CQE_F_MORE each; every buffer starts with a
/// `io_uring_ipc_msg_info`.
pub const IOIPC_RECV_MULTISHOT: u32 = 1 << 1;

// io_uring_restriction opcodes.
pub const IORING_RESTRICTION_REGISTER_OP: u16 = 0;
pub const IORING_RESTRICTION_SQE_OP: u16 = 1;

/// struct io_uring_restriction. `arg` is the union of register_op, sqe_op
/// and sqe_flags.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct io_uring_restriction {
    pub opcode: u16,
    pub arg: u8,
    pub resv: u8,
    pub resv2: [u32; 3],
}

/// struct io_uring_buf: one entry of a provided buffer ring. The ring's
/// tail is the `resv` field of entry 0.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct io_uring_buf {
    pub addr: u64,
    pub len: u32,
    pub bid: u16,
    pub resv: u16,
}

/// struct io_uring_buf_reg: argument of IORING_(UN)REGISTER_PBUF_RING.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct io_uring_buf_reg {
    pub ring_addr: u64,
    pub ring_entries: u32,
    pub bgid: u16,
    pub flags: u16,
    /// IOU_PBUF_RING_INC only.
    pub min_left: u32,
    pub resv: [u32; 5],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct io_uring_ipc_channel_create {
    pub flags: u32,
    pub ring_entries: u32,
    pub max_msg_size: u32,
    pub mode: u32,
    pub key: u64,
    pub channel_id_out: u32,
    pub reserved: [u32; 3],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct io_uring_ipc_channel_attach {
    pub channel_id: u32,
    pub flags: u32,
    pub key: u64,
    /// Output: the read-only, mmap-able channel fd.
    pub channel_fd: i32,
    pub local_id_out: u32,
    pub mmap_offset_out: u64,
    pub region_size: u32,
    pub reserved: [u32; 3],
}

/// Header of the mapped ring region.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct io_uring_ipc_ring_hdr {
    pub flags: u32,
    pub ring_entries: u32,
    pub ring_mask: u32,
    pub max_msg_size: u32,
    pub slot_size: u32,
    pub desc_offset: u32,
    pub data_offset: u32,
    pub resv: u32,
    pub head: u64,
    pub tail: u64,
    pub resv2: [u64; 2],
}

/// One message descriptor in the mapped ring region.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct io_uring_ipc_msg_desc {
    pub seq: u64,
    pub len: u32,
    pub flags: u32,
    pub sender_id: u32,
    pub target: u32,
    pub resv: u64,
}

/// Filled by IPC_RECV when sqe->addr3 points to it.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct io_uring_ipc_msg_info {
    pub seq: u64,
    pub len: u32,
    pub flags: u32,
    pub sender_id: u32,
    pub sender_pid: i32,
    pub sender_uid: u32,
    pub sender_gid: u32,
    pub sender_data: u64,
}

pub const LAYOUTS: &[Layout] = &[
    Layout {
        header: H,
        c_type: "struct io_uring_sqe",
        size: 64,
        fields: &[Field {
            name: "ipc_flags",
            offset: 28,
        }],
    },
    layout!(
        H,
        "struct io_uring_ipc_channel_create",
        io_uring_ipc_channel_create {
            flags,
            ring_entries,
            max_msg_size,
            mode,
            key,
            channel_id_out,
            reserved,
        }
    ),
    layout!(
        H,
        "struct io_uring_ipc_channel_attach",
        io_uring_ipc_channel_attach {
            channel_id,
            flags,
            key,
            channel_fd,
            local_id_out,
            mmap_offset_out,
            region_size,
            reserved,
        }
    ),
    layout!(
        H,
        "struct io_uring_ipc_ring_hdr",
        io_uring_ipc_ring_hdr {
            flags,
            ring_entries,
            ring_mask,
            max_msg_size,
            slot_size,
            desc_offset,
            data_offset,
            resv,
            head,
            tail,
            resv2,
        }
    ),
    layout!(
        H,
        "struct io_uring_ipc_msg_desc",
        io_uring_ipc_msg_desc {
            seq,
            len,
            flags,
            sender_id,
            target,
            resv,
        }
    ),
    layout!(
        H,
        "struct io_uring_buf",
        io_uring_buf {
            addr,
            len,
            bid,
            resv,
        }
    ),
    layout!(
        H,
        "struct io_uring_buf_reg",
        // Before 6.7 `flags` was `pad`, and before 6.12 `min_left` and
        // `resv` were `resv[3]` of u64: only the fields every version has
        // are compared, and the size.
        io_uring_buf_reg {
            ring_addr,
            ring_entries,
            bgid,
        }
    ),
    layout!(
        H,
        "struct io_uring_ipc_msg_info",
        io_uring_ipc_msg_info {
            seq,
            len,
            flags,
            sender_id,
            sender_pid,
            sender_uid,
            sender_gid,
            sender_data,
        }
    ),
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
    IORING_SETUP_CLAMP, IORING_SETUP_ATTACH_WQ, IORING_SETUP_R_DISABLED,
    IORING_SETUP_SUBMIT_ALL, IORING_SETUP_COOP_TASKRUN, IORING_SETUP_TASKRUN_FLAG,
    IORING_SETUP_SQE128, IORING_SETUP_CQE32, IORING_SETUP_SINGLE_ISSUER,
    IORING_SETUP_DEFER_TASKRUN, IORING_SETUP_NO_MMAP, IORING_SETUP_REGISTERED_FD_ONLY,
    IORING_SETUP_NO_SQARRAY,
    IORING_ENTER_GETEVENTS, IORING_ENTER_SQ_WAKEUP, IORING_ENTER_SQ_WAIT, IORING_ENTER_EXT_ARG,
    IORING_FEAT_SINGLE_MMAP, IORING_FEAT_NODROP, IORING_FEAT_FAST_POLL, IORING_FEAT_EXT_ARG,
    IORING_OFF_SQ_RING, IORING_OFF_CQ_RING, IORING_OFF_SQES,
    IORING_SQ_NEED_WAKEUP, IORING_SQ_CQ_OVERFLOW, IORING_SQ_TASKRUN,
    IOSQE_FIXED_FILE, IOSQE_IO_DRAIN, IOSQE_IO_LINK, IOSQE_IO_HARDLINK, IOSQE_ASYNC,
    IOSQE_BUFFER_SELECT, IOSQE_CQE_SKIP_SUCCESS,
    IORING_CQE_F_BUFFER, IORING_CQE_F_MORE, IORING_CQE_BUFFER_SHIFT,
    IORING_REGISTER_PBUF_RING, IORING_UNREGISTER_PBUF_RING,
    IORING_OP_NOP, IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_POLL_ADD, IORING_OP_TIMEOUT,
    IORING_OP_ASYNC_CANCEL, IORING_OP_LINK_TIMEOUT, IORING_OP_READ, IORING_OP_WRITE,
    IORING_OP_MSG_RING, IORING_OP_LISTEN,
    IORING_REGISTER_PROBE, IORING_REGISTER_RESTRICTIONS, IORING_REGISTER_ENABLE_RINGS,
    IORING_REGISTER_CLONE_BUFFERS, IORING_RESTRICTION_REGISTER_OP, IORING_RESTRICTION_SQE_OP,
    IORING_TIMEOUT_ABS, IORING_ASYNC_CANCEL_ALL, IORING_ASYNC_CANCEL_ANY,
    IO_URING_OP_SUPPORTED,
    IORING_OP_IPC_SEND, IORING_OP_IPC_RECV,
    IORING_REGISTER_IPC_CHANNEL_CREATE, IORING_REGISTER_IPC_CHANNEL_ATTACH,
    IORING_REGISTER_IPC_CHANNEL_DETACH, IORING_REGISTER_IPC_CHANNEL_DESTROY,
    IOIPC_F_BROADCAST, IOIPC_F_MULTICAST, IOIPC_F_PRIVATE,
    IOIPC_SUB_SEND, IOIPC_SUB_RECV, IOIPC_SUB_BOTH, IOIPC_DESC_SEQ_BUSY,
    IOIPC_MSG_TRUNC, IOIPC_MSG_TARGETED, IOIPC_MSG_DROPPED,
    IOIPC_SEND_WAIT, IOIPC_RECV_NONBLOCK, IOIPC_RECV_MULTISHOT,
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
        assert_eq!(size_of::<io_uring_ipc_channel_create>(), 40);
        assert_eq!(size_of::<io_uring_ipc_channel_attach>(), 48);
        assert_eq!(size_of::<io_uring_ipc_ring_hdr>(), 64);
        assert_eq!(size_of::<io_uring_ipc_msg_desc>(), 32);
        assert_eq!(size_of::<io_uring_ipc_msg_info>(), 40);
        assert_eq!(size_of::<io_uring_buf>(), 16);
        assert_eq!(size_of::<io_uring_restriction>(), 16);
        assert_eq!(size_of::<io_uring_buf_reg>(), 40);
    }

    #[test]
    fn sqe_offsets() {
        assert_eq!(core::mem::offset_of!(io_uring_sqe, user_data), 32);
        assert_eq!(core::mem::offset_of!(io_uring_sqe, file_index), 44);
        assert_eq!(core::mem::offset_of!(io_uring_sqe, addr3), 48);
    }
}
