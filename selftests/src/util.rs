//! Small helpers shared by the selftests.

use std::os::fd::{FromRawFd, OwnedFd};

/// errno of the last failed libc call.
pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Name of an errno value, for readable failure messages.
pub fn errno_name(e: i32) -> String {
    let names: &[(i32, &str)] = &[
        (libc::EPERM, "EPERM"),
        (libc::ENOENT, "ENOENT"),
        (libc::EINTR, "EINTR"),
        (libc::EBADF, "EBADF"),
        (libc::EAGAIN, "EAGAIN"),
        (libc::ENOMEM, "ENOMEM"),
        (libc::EACCES, "EACCES"),
        (libc::EFAULT, "EFAULT"),
        (libc::EEXIST, "EEXIST"),
        (libc::EINVAL, "EINVAL"),
        (libc::EMSGSIZE, "EMSGSIZE"),
        (libc::ENOSYS, "ENOSYS"),
        (libc::ETIMEDOUT, "ETIMEDOUT"),
        (libc::ECANCELED, "ECANCELED"),
        (libc::ETIME, "ETIME"),
        (libc::ENOBUFS, "ENOBUFS"),
        (libc::EPIPE, "EPIPE"),
        (libc::EOPNOTSUPP, "EOPNOTSUPP"),
    ];
    names
        .iter()
        .find(|(v, _)| *v == e)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| format!("errno {e}"))
}

/// A pipe, as (read end, write end), close-on-exec.
pub fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned here alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Deterministic test payload: byte i of message `seq` is a function of both,
/// so a torn, reordered or stale message is detected.
pub fn pattern(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8)
        .collect()
}

/// A unique name for a POSIX object of this test process.
pub fn unique_name(tag: &str) -> String {
    // SAFETY: getpid() cannot fail.
    let pid = unsafe { libc::getpid() };
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("/uring-ipc-{tag}-{pid}-{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_differs_between_messages() {
        assert_ne!(pattern(1, 64), pattern(2, 64));
        assert_eq!(pattern(5, 32), pattern(5, 32));
        assert_eq!(pattern(0, 0).len(), 0);
    }
}
