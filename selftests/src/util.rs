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

/// A forked child running a closure; its exit status is the closure's value.
pub struct Child {
    pub pid: libc::pid_t,
}

/// Fork and run `f` in the child, which exits with `f`'s return value.
/// Only call from a single-threaded process (every selftest case is one).
pub fn fork_child(f: impl FnOnce() -> i32) -> std::io::Result<Child> {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: the caller is single-threaded; the child runs `f` and _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        let _ = std::io::stdout().flush();
        // SAFETY: leave without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    Ok(Child { pid })
}

impl Child {
    /// Wait for the child; Ok(exit code) or Err(description) if signalled.
    pub fn wait(self) -> Result<i32, String> {
        let mut status = 0;
        // SAFETY: reaping our own child.
        let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
        if r != self.pid {
            return Err(format!("waitpid: {}", std::io::Error::last_os_error()));
        }
        if libc::WIFEXITED(status) {
            Ok(libc::WEXITSTATUS(status))
        } else {
            Err(format!("child killed by signal {}", libc::WTERMSIG(status)))
        }
    }
}

/// Drop privileges to `uid`/`gid` (and no supplementary groups).
pub fn become_user(uid: u32, gid: u32) -> std::io::Result<()> {
    // SAFETY: plain credential syscalls on this process.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setresgid(gid, gid, gid) != 0
            || libc::setresuid(uid, uid, uid) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Effective uid of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// The uid and gid of `nobody`, for cases that drop privileges.
pub const NOBODY: u32 = 65534;

/// tracefs, mounted if needed; None if the kernel has no event tracing.
pub fn tracefs() -> Option<std::path::PathBuf> {
    let root = std::path::Path::new("/sys/kernel/tracing");
    if !root.join("events").exists() {
        let src = std::ffi::CString::new("tracefs").unwrap();
        let dst = std::ffi::CString::new(root.as_os_str().as_encoded_bytes()).ok()?;
        // SAFETY: valid NUL-terminated strings; failure is checked below.
        unsafe {
            libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                src.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
    }
    root.join("events").exists().then(|| root.to_path_buf())
}

/// `key value,` pairs of one tracepoint line, after the event name.
pub fn trace_fields(line: &str) -> std::collections::BTreeMap<String, String> {
    line.split(", ")
        .filter_map(|kv| {
            let kv = kv.rsplit(": ").next().unwrap_or(kv);
            let (k, v) = kv.trim().split_once(' ')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
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
