//! `include/uapi/linux/mqueue.h`.
#![allow(non_camel_case_types)]

use crate::{Constant, Layout};

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct mq_attr {
    pub mq_flags: i64,
    pub mq_maxmsg: i64,
    pub mq_msgsize: i64,
    pub mq_curmsgs: i64,
    pub __reserved: [i64; 4],
}

/// Arguments of mq_timedreceive2() (added by this project's series).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct mq_timedreceive2_args {
    pub msg_len: usize,
    /// May be NULL.
    pub msg_prio: *mut u32,
    pub msg_ptr: *mut u8,
}

/// mq_timedreceive2() flag: copy the message at `index`, leave the queue as
/// it is.
pub const MQ_PEEK: u32 = 2;

/// System call number of mq_timedreceive2() on x86_64 (and i386).
pub const NR_MQ_TIMEDRECEIVE2: libc_long = 548;

#[allow(non_camel_case_types)]
type libc_long = i64;

pub const LAYOUTS: &[Layout] = &[
    crate::layout!(
        "linux/mqueue.h",
        "struct mq_attr",
        mq_attr {
            mq_flags,
            mq_maxmsg,
            mq_msgsize,
            mq_curmsgs,
            __reserved,
        }
    ),
    crate::layout!(
        "linux/mqueue.h",
        "struct mq_timedreceive2_args",
        mq_timedreceive2_args {
            msg_len,
            msg_prio,
            msg_ptr,
        }
    ),
];

pub const CONSTANTS: &[Constant] = crate::constants!("linux/mqueue.h"; [MQ_PEEK]);

#[cfg(test)]
mod tests {
    #[test]
    fn args_layout() {
        assert_eq!(core::mem::size_of::<super::mq_timedreceive2_args>(), 24);
        assert_eq!(
            core::mem::offset_of!(super::mq_timedreceive2_args, msg_ptr),
            16
        );
    }
}
