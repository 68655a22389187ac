//! `include/uapi/linux/mqueue.h`.
#![allow(non_camel_case_types)]

use crate::{Constant, Layout};

/// The kernel's `__kernel_long_t` (`asm/posix_types.h`): `long`, except on
/// x32, whose 32-bit `long` sits in a 64-bit `__kernel_long_t`.
#[cfg(not(all(target_arch = "x86_64", target_pointer_width = "32")))]
pub type __kernel_long_t = core::ffi::c_long;
/// The kernel's `__kernel_long_t` (`asm/posix_types_x32.h`).
#[cfg(all(target_arch = "x86_64", target_pointer_width = "32"))]
pub type __kernel_long_t = i64;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct mq_attr {
    pub mq_flags: __kernel_long_t,
    pub mq_maxmsg: __kernel_long_t,
    pub mq_msgsize: __kernel_long_t,
    pub mq_curmsgs: __kernel_long_t,
    pub __reserved: [__kernel_long_t; 4],
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

/// System call number of mq_timedreceive2() for the target, checked against
/// `__NR_mq_timedreceive2` of the target's table (see [`CONSTANTS`]). It is
/// 472 in every table (plus the ABI's offset on alpha and mips): 463-471
/// are the calls mainline added after 6.12, which the series leaves alone.
#[cfg(not(all(target_arch = "x86_64", target_pointer_width = "32")))]
pub const NR_MQ_TIMEDRECEIVE2: core::ffi::c_long = 472;
/// System call number of mq_timedreceive2() on x32: `__X32_SYSCALL_BIT`
/// plus the common x86_64 number.
#[cfg(all(target_arch = "x86_64", target_pointer_width = "32"))]
pub const NR_MQ_TIMEDRECEIVE2: core::ffi::c_long = 0x4000_0000 + 472;

/// The installed header that numbers the target's system calls.
const UNISTD_H: &str = if cfg!(all(target_arch = "x86_64", target_pointer_width = "32")) {
    "asm/unistd_x32.h"
} else if cfg!(target_pointer_width = "64") {
    "asm/unistd_64.h"
} else {
    "asm/unistd_32.h"
};

pub const LAYOUTS: &[Layout] = &[
    // The width mq_attr is made of (linux/mqueue.h uses the typedef, so its
    // name occurs there and including it defines it).
    Layout {
        header: "linux/mqueue.h",
        c_type: "__kernel_long_t",
        size: core::mem::size_of::<__kernel_long_t>(),
        fields: &[],
    },
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

pub const CONSTANTS: &[Constant] = &[
    crate::constant!("linux/mqueue.h", MQ_PEEK),
    crate::constant!(UNISTD_H, __NR_mq_timedreceive2 = NR_MQ_TIMEDRECEIVE2),
];

#[cfg(test)]
mod tests {
    use core::mem::size_of;

    #[test]
    fn attr_is_eight_kernel_longs() {
        assert_eq!(
            size_of::<super::mq_attr>(),
            size_of::<[super::__kernel_long_t; 8]>()
        );
        #[cfg(target_arch = "x86")]
        assert_eq!(size_of::<super::mq_attr>(), 32);
        #[cfg(target_arch = "x86_64")]
        assert_eq!(size_of::<super::mq_attr>(), 64);
    }

    #[test]
    fn args_layout() {
        assert_eq!(core::mem::size_of::<super::mq_timedreceive2_args>(), 24);
        assert_eq!(
            core::mem::offset_of!(super::mq_timedreceive2_args, msg_ptr),
            16
        );
    }
}
