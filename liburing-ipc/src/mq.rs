//! POSIX message queues, including the mq_timedreceive2() peek interface.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::sync::Mutex;
use std::time::Duration;

use uapi_headers::mqueue::{mq_timedreceive2_args, MQ_PEEK, NR_MQ_TIMEDRECEIVE2};

use crate::error::{Error, Result};

/// Attributes for creating a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub max_msgs: i64,
    pub msg_size: i64,
}

/// Snapshot of mq_getattr().
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub flags: i64,
    pub max_msgs: i64,
    pub msg_size: i64,
    pub cur_msgs: i64,
}

/// How to open a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    ReadWrite,
}

/// One received or peeked message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub data: Vec<u8>,
    pub priority: u32,
}

/// An open message queue descriptor, closed on drop.
#[derive(Debug)]
pub struct MessageQueue {
    mqd: libc::mqd_t,
    name: Option<CString>,
    msg_size: usize,
    /// The buffer `peek` receives into, kept between calls.
    scratch: Mutex<Vec<u8>>,
}

fn cname(name: &str) -> Result<CString> {
    if !name.starts_with('/') || name[1..].contains('/') {
        return Err(Error::InvalidArgument("queue names look like /name"));
    }
    CString::new(name).map_err(|_| Error::InvalidArgument("queue name contains NUL"))
}

/// The CLOCK_REALTIME deadline `timeout` from now. A deadline past what
/// `time_t` holds saturates to the largest timespec: the kernel turns it
/// into KTIME_MAX, a wait without end.
fn abs_deadline(timeout: Duration) -> Result<libc::timespec> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: now is a valid timespec to fill in.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) } != 0 {
        return Err(Error::last_os("clock_gettime"));
    }
    let nsec = now.tv_nsec as u64 + timeout.subsec_nanos() as u64;
    let sec = libc::time_t::try_from(timeout.as_secs())
        .ok()
        .and_then(|s| now.tv_sec.checked_add(s))
        .and_then(|s| s.checked_add((nsec / 1_000_000_000) as libc::time_t));
    Ok(match sec {
        Some(tv_sec) => libc::timespec {
            tv_sec,
            tv_nsec: (nsec % 1_000_000_000) as libc::c_long,
        },
        None => libc::timespec {
            tv_sec: libc::time_t::MAX,
            tv_nsec: 999_999_999,
        },
    })
}

impl MessageQueue {
    /// Create a new queue (fails with EEXIST if it exists); it is unlinked
    /// again when this handle is dropped.
    pub fn create(name: &str, attr: Attr, access: Access) -> Result<MessageQueue> {
        let n = cname(name)?;
        let mut a: libc::mq_attr = unsafe_zeroed_attr();
        a.mq_maxmsg = attr.max_msgs as _;
        a.mq_msgsize = attr.msg_size as _;
        let flags = libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC | access_flags(access);
        // SAFETY: n is a valid C string, a a valid attribute struct.
        let mqd = unsafe { libc::mq_open(n.as_ptr(), flags, 0o600 as libc::mode_t, &a) };
        if mqd == -1 {
            let e = Error::last_os("mq_open");
            return Err(if e.errno() == Some(libc::ENOSYS) {
                Error::Unsupported("POSIX message queues")
            } else {
                e
            });
        }
        let mut q = MessageQueue {
            mqd,
            name: Some(n),
            msg_size: 0,
            scratch: Mutex::default(),
        };
        q.msg_size = q.state()?.msg_size as usize;
        Ok(q)
    }

    /// Open an existing queue (not unlinked on drop).
    pub fn open(name: &str, access: Access, nonblock: bool) -> Result<MessageQueue> {
        let n = cname(name)?;
        let mut flags = libc::O_CLOEXEC | access_flags(access);
        if nonblock {
            flags |= libc::O_NONBLOCK;
        }
        // SAFETY: n is a valid C string.
        let mqd = unsafe { libc::mq_open(n.as_ptr(), flags) };
        if mqd == -1 {
            return Err(Error::last_os("mq_open"));
        }
        let mut q = MessageQueue {
            mqd,
            name: None,
            msg_size: 0,
            scratch: Mutex::default(),
        };
        q.msg_size = q.state()?.msg_size as usize;
        Ok(q)
    }

    pub fn raw_fd(&self) -> RawFd {
        self.mqd
    }

    pub fn msg_size(&self) -> usize {
        self.msg_size
    }

    pub fn state(&self) -> Result<State> {
        let mut a = unsafe_zeroed_attr();
        // SAFETY: a is a valid attribute struct to fill in.
        if unsafe { libc::mq_getattr(self.mqd, &mut a) } != 0 {
            return Err(Error::last_os("mq_getattr"));
        }
        Ok(State {
            flags: a.mq_flags,
            max_msgs: a.mq_maxmsg,
            msg_size: a.mq_msgsize,
            cur_msgs: a.mq_curmsgs,
        })
    }

    /// Switch O_NONBLOCK on or off.
    pub fn set_nonblocking(&self, on: bool) -> Result<()> {
        let mut a = unsafe_zeroed_attr();
        a.mq_flags = if on { libc::O_NONBLOCK as _ } else { 0 };
        // SAFETY: a valid new attribute, no old-attribute output.
        if unsafe { libc::mq_setattr(self.mqd, &a, std::ptr::null_mut()) } != 0 {
            return Err(Error::last_os("mq_setattr"));
        }
        Ok(())
    }

    pub fn send(&self, data: &[u8], priority: u32) -> Result<()> {
        // SAFETY: data is valid for data.len() bytes.
        let r = unsafe { libc::mq_send(self.mqd, data.as_ptr().cast(), data.len(), priority) };
        if r != 0 {
            return Err(Error::last_os("mq_send"));
        }
        Ok(())
    }

    /// mq_receive(): blocks unless the queue is O_NONBLOCK.
    pub fn receive(&self) -> Result<Message> {
        let mut buf = vec![0u8; self.msg_size];
        let mut prio = 0u32;
        // SAFETY: buf is writable for its length, prio is a valid u32.
        let n =
            unsafe { libc::mq_receive(self.mqd, buf.as_mut_ptr().cast(), buf.len(), &mut prio) };
        if n < 0 {
            return Err(Error::last_os("mq_receive"));
        }
        buf.truncate(n as usize);
        Ok(Message {
            data: buf,
            priority: prio,
        })
    }

    /// mq_timedreceive() with a relative timeout.
    pub fn receive_timeout(&self, timeout: Duration) -> Result<Message> {
        let ts = abs_deadline(timeout)?;
        let mut buf = vec![0u8; self.msg_size];
        let mut prio = 0u32;
        // SAFETY: buf writable for its length; prio and ts valid.
        let n = unsafe {
            libc::mq_timedreceive(self.mqd, buf.as_mut_ptr().cast(), buf.len(), &mut prio, &ts)
        };
        if n < 0 {
            return Err(Error::last_os("mq_timedreceive"));
        }
        buf.truncate(n as usize);
        Ok(Message {
            data: buf,
            priority: prio,
        })
    }

    /// The message at position `index` in receive order, left in the queue
    /// (mq_timedreceive2 with MQ_PEEK); `None` past the end of the queue
    /// (EAGAIN on an empty queue, ENOENT or ENOMSG past its last message).
    /// Never blocks. Allocates only the message it returns: the receive
    /// buffer is kept between calls (see [`MessageQueue::peek_into`] for one
    /// of the caller's).
    pub fn peek(&self, index: u64) -> Result<Option<Message>> {
        let mut local = Vec::new();
        // A peek in another thread holds the scratch buffer: use our own.
        let mut guard = self.scratch.try_lock().ok();
        let buf = guard.as_deref_mut().unwrap_or(&mut local);
        Ok(self.peek_into(index, buf)?.map(|priority| Message {
            data: buf.clone(),
            priority,
        }))
    }

    /// [`MessageQueue::peek`] into `buf`, replacing its contents with the
    /// message; returns its priority, or `None` past the end of the queue.
    /// Allocates only to grow `buf` to the queue's message size.
    pub fn peek_into(&self, index: u64, buf: &mut Vec<u8>) -> Result<Option<u32>> {
        match self.receive2_into(MQ_PEEK, index, None, buf) {
            Ok(prio) => Ok(Some(prio)),
            Err(e) if matches!(e.errno(), Some(libc::EAGAIN | libc::ENOENT | libc::ENOMSG)) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// mq_timedreceive2(): `flags` 0 is mq_timedreceive(); MQ_PEEK peeks at
    /// `index`. `timeout` is relative (converted to the absolute deadline the
    /// call takes). Errors are the kernel's, EAGAIN and ENOENT included.
    pub fn receive2(&self, flags: u32, index: u64, timeout: Option<Duration>) -> Result<Message> {
        let mut data = Vec::new();
        let priority = self.receive2_into(flags, index, timeout, &mut data)?;
        Ok(Message { data, priority })
    }

    /// mq_timedreceive2() into `buf` (its contents replaced by the
    /// message); returns the priority.
    fn receive2_into(
        &self,
        flags: u32,
        index: u64,
        timeout: Option<Duration>,
        buf: &mut Vec<u8>,
    ) -> Result<u32> {
        buf.clear();
        buf.reserve(self.msg_size);
        let mut prio = 0u32;
        let mut args = mq_timedreceive2_args {
            msg_len: buf.capacity(),
            msg_prio: &mut prio,
            msg_ptr: buf.as_mut_ptr(),
        };
        let ts = timeout.map(abs_deadline).transpose()?;
        // SAFETY: args points at live buffers for the duration of the call:
        // buf's allocation of capacity() bytes, and prio.
        let n = unsafe {
            receive2_raw(
                self.mqd,
                &mut args,
                flags,
                index,
                ts.as_ref().map_or(std::ptr::null(), |t| t),
            )
        };
        if n < 0 {
            let e = Error::last_os("mq_timedreceive2");
            return Err(if e.errno() == Some(libc::ENOSYS) {
                Error::Unsupported("mq_timedreceive2")
            } else {
                e
            });
        }
        // SAFETY: the kernel wrote the n (<= capacity) bytes it returned.
        unsafe { buf.set_len(n as usize) };
        Ok(prio)
    }

    /// Delete a queue by name.
    pub fn unlink(name: &str) -> Result<()> {
        let n = cname(name)?;
        // SAFETY: n is a valid C string.
        if unsafe { libc::mq_unlink(n.as_ptr()) } != 0 {
            return Err(Error::last_os("mq_unlink"));
        }
        Ok(())
    }
}

impl Drop for MessageQueue {
    fn drop(&mut self) {
        // SAFETY: closing our own descriptor once; unlinking our own name.
        unsafe {
            libc::mq_close(self.mqd);
            if let Some(n) = &self.name {
                libc::mq_unlink(n.as_ptr());
            }
        }
    }
}

fn access_flags(a: Access) -> libc::c_int {
    match a {
        Access::Read => libc::O_RDONLY,
        Access::Write => libc::O_WRONLY,
        Access::ReadWrite => libc::O_RDWR,
    }
}

fn unsafe_zeroed_attr() -> libc::mq_attr {
    // SAFETY: mq_attr is plain integers (and padding); all-zero is valid.
    unsafe { std::mem::zeroed() }
}

/// Raw mq_timedreceive2(2): returns the syscall result (-1 + errno).
///
/// # Safety
/// `args` must point to a valid args struct whose pointers are valid for the
/// access the call makes; `abs_timeout` must be NULL or a valid timespec.
pub unsafe fn receive2_raw(
    mqd: RawFd,
    args: *mut mq_timedreceive2_args,
    flags: u32,
    index: u64,
    abs_timeout: *const libc::timespec,
) -> isize {
    // SAFETY: forwarded from the caller.
    unsafe {
        libc::syscall(
            NR_MQ_TIMEDRECEIVE2,
            mqd as libc::c_long,
            args,
            flags as libc::c_long,
            index as libc::c_ulong,
            abs_timeout,
        ) as isize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> libc::time_t {
        abs_deadline(Duration::ZERO).unwrap().tv_sec
    }

    #[test]
    fn huge_timeouts_saturate_to_a_deadline_past_every_clock() {
        for d in [
            Duration::MAX,
            Duration::from_secs(u64::MAX),
            Duration::from_secs(1 << 63),
            Duration::from_secs(i64::MAX as u64),
            Duration::new(libc::time_t::MAX as u64 - 1, 999_999_999),
        ] {
            let t = abs_deadline(d).unwrap();
            assert_eq!(
                (t.tv_sec, t.tv_nsec),
                (libc::time_t::MAX, 999_999_999),
                "{d:?}"
            );
        }
    }

    #[test]
    fn ordinary_timeouts_are_now_plus_timeout() {
        let before = now();
        let t = abs_deadline(Duration::new(100, 999_999_999)).unwrap();
        assert!(t.tv_sec >= before + 100 && t.tv_sec <= now() + 101);
        assert!((0..1_000_000_000).contains(&t.tv_nsec));
    }

    /// An infinite timeout waits for the message instead of failing at once.
    #[test]
    fn receive_with_duration_max_waits() {
        let name = format!("/liburing-ipc-test-{}", std::process::id());
        let attr = Attr {
            max_msgs: 1,
            msg_size: 16,
        };
        let q = match MessageQueue::create(&name, attr, Access::ReadWrite) {
            Ok(q) => q,
            Err(e) => {
                eprintln!("SKIP: mq_open: {e}");
                return;
            }
        };
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(200));
                q.send(b"late", 1).unwrap();
            });
            let t0 = std::time::Instant::now();
            let m = q.receive_timeout(Duration::MAX).unwrap();
            assert_eq!(m.data, b"late");
            assert!(t0.elapsed() >= Duration::from_millis(150));
        });
    }
}
