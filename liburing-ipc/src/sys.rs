//! Raw io_uring system calls. Private: the safe API is in ring.rs.

use uapi_headers::io_uring::io_uring_params;

/// io_uring_setup(2). Returns the ring fd or -1 with errno set.
///
/// # Safety
/// `p` must point to a valid, writable `io_uring_params`.
pub unsafe fn io_uring_setup(entries: u32, p: *mut io_uring_params) -> libc::c_int {
    libc::syscall(libc::SYS_io_uring_setup, entries as libc::c_long, p) as libc::c_int
}

/// io_uring_enter(2) without an extended argument.
///
/// # Safety
/// `fd` must be an io_uring fd; `arg`/`argsz` must match `flags`.
pub unsafe fn io_uring_enter(
    fd: libc::c_int,
    to_submit: u32,
    min_complete: u32,
    flags: u32,
    arg: *const libc::c_void,
    argsz: usize,
) -> libc::c_int {
    libc::syscall(
        libc::SYS_io_uring_enter,
        fd as libc::c_long,
        to_submit as libc::c_long,
        min_complete as libc::c_long,
        flags as libc::c_long,
        arg,
        argsz,
    ) as libc::c_int
}

/// io_uring_register(2).
///
/// # Safety
/// `arg` must be valid for what `opcode` reads and writes, `nr_args` items.
pub unsafe fn io_uring_register(
    fd: libc::c_int,
    opcode: u32,
    arg: *mut libc::c_void,
    nr_args: u32,
) -> libc::c_int {
    libc::syscall(
        libc::SYS_io_uring_register,
        fd as libc::c_long,
        opcode as libc::c_long,
        arg,
        nr_args as libc::c_long,
    ) as libc::c_int
}
