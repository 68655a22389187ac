//! io_uring IPC channels: registration commands, synchronous helpers, and a
//! read-only view of the mapped ring region. The SQE builders for
//! IORING_OP_IPC_SEND / IORING_OP_IPC_RECV are in [`crate::opcode`]
//! ([`IpcSend`], [`IpcRecv`], [`crate::opcode::IpcRecvMultishot`]).
//!
//! ```no_run
//! # use liburing_ipc::{Ring, ipc::{ChannelConfig, Delivery, Attach}};
//! # fn main() -> liburing_ipc::Result<()> {
//! let mut ring = Ring::new(64)?;
//! let ch = ring.ipc_create(&ChannelConfig::new(Delivery::Broadcast, 256, 4096).key(0x1234))?;
//! let sub = ring.ipc_attach(Attach::Key(0x1234), liburing_ipc::uapi::io_uring::IOIPC_SUB_BOTH)?;
//! ring.ipc_send(sub.id, b"hello")?;
//! let mut buf = [0u8; 4096];
//! let n = ring.ipc_recv(sub.id, &mut buf)?;
//! # let _ = (ch, n); Ok(()) }
//! ```

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use uapi_headers::io_uring::*;

use crate::error::{Error, Result};
use crate::opcode::{IpcRecv, IpcSend, Sqe};
use crate::ring::Ring;

/// How a channel delivers messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Each message goes to exactly one receiver, whichever takes it first.
    Unicast,
    /// Every receiver gets every message.
    Broadcast,
    /// Each message goes to one receiver, chosen round-robin at send time.
    Multicast,
}

/// Parameters of IORING_REGISTER_IPC_CHANNEL_CREATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelConfig {
    pub delivery: Delivery,
    pub ring_entries: u32,
    pub max_msg_size: u32,
    pub mode: u32,
    pub key: u64,
    pub private: bool,
}

impl ChannelConfig {
    pub fn new(delivery: Delivery, ring_entries: u32, max_msg_size: u32) -> ChannelConfig {
        ChannelConfig {
            delivery,
            ring_entries,
            max_msg_size,
            mode: 0o600,
            key: 0,
            private: false,
        }
    }
    pub fn key(mut self, key: u64) -> Self {
        self.key = key;
        self
    }
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }
    /// IOIPC_F_PRIVATE: no key, attachable only from the creating process.
    pub fn private(mut self) -> Self {
        self.private = true;
        self
    }
    pub fn flags(&self) -> u32 {
        let mut f = match self.delivery {
            Delivery::Unicast => 0,
            Delivery::Broadcast => IOIPC_F_BROADCAST,
            Delivery::Multicast => IOIPC_F_MULTICAST,
        };
        if self.private {
            f |= IOIPC_F_PRIVATE;
        }
        f
    }
}

/// Which channel to attach to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    Id(u32),
    Key(u64),
}

/// A subscriber: its id (the `fd` of IPC SQEs) and the channel fd.
#[derive(Debug)]
pub struct Subscription {
    pub id: u32,
    pub fd: OwnedFd,
    pub mmap_offset: u64,
    pub region_size: u32,
}

/// Sender information returned by a receive.
pub type MsgInfo = io_uring_ipc_msg_info;

/// The header and payload of a message a multishot receive put in `buf`
/// (the bytes the CQE reported), None if it is shorter than a header.
pub fn parse_multishot(buf: &[u8]) -> Option<(MsgInfo, &[u8])> {
    let hdr = std::mem::size_of::<MsgInfo>();
    if buf.len() < hdr {
        return None;
    }
    // SAFETY: buf holds at least size_of::<MsgInfo>() bytes; MsgInfo is
    // plain old data, read unaligned.
    let info = unsafe { std::ptr::read_unaligned(buf.as_ptr().cast::<MsgInfo>()) };
    Some((info, &buf[hdr..]))
}

fn cqe_result(op: &'static str, res: i32) -> Result<usize> {
    if res < 0 {
        Err(Error::os(op, -res))
    } else {
        Ok(res as usize)
    }
}

impl Ring {
    /// Does the running kernel have IPC channels?
    pub fn ipc_supported(&self) -> Result<bool> {
        let p = self.probe()?;
        Ok(p.supports(IORING_OP_IPC_SEND) && p.supports(IORING_OP_IPC_RECV))
    }

    fn ipc_register(
        &self,
        op: u32,
        name: &'static str,
        arg: *mut libc::c_void,
        nr: u32,
    ) -> Result<i32> {
        // SAFETY: callers pass a pointer to the struct `op` takes (or NULL
        // for the commands that take none), alive for the call.
        let r = unsafe { self.register_raw(op, arg, nr) };
        if r < 0 {
            let e = Error::last_os(name);
            // Unknown register opcodes are EINVAL on kernels without IPC.
            if e.errno() == Some(libc::EINVAL) && !self.ipc_supported().unwrap_or(false) {
                return Err(Error::Unsupported("io_uring IPC channels"));
            }
            return Err(e);
        }
        Ok(r)
    }

    /// Create a channel; returns its id.
    pub fn ipc_create(&self, cfg: &ChannelConfig) -> Result<u32> {
        let mut arg = io_uring_ipc_channel_create {
            flags: cfg.flags(),
            ring_entries: cfg.ring_entries,
            max_msg_size: cfg.max_msg_size,
            mode: cfg.mode,
            key: cfg.key,
            ..Default::default()
        };
        self.ipc_create_raw(&mut arg)?;
        Ok(arg.channel_id_out)
    }

    /// CREATE with a caller-built argument (for testing validation).
    pub fn ipc_create_raw(&self, arg: &mut io_uring_ipc_channel_create) -> Result<()> {
        let p = (arg as *mut io_uring_ipc_channel_create).cast();
        self.ipc_register(
            IORING_REGISTER_IPC_CHANNEL_CREATE,
            "IPC_CHANNEL_CREATE",
            p,
            1,
        )?;
        Ok(())
    }

    /// Attach to a channel with IOIPC_SUB_* `flags`.
    pub fn ipc_attach(&self, to: Attach, flags: u32) -> Result<Subscription> {
        let mut arg = io_uring_ipc_channel_attach {
            flags,
            ..Default::default()
        };
        match to {
            Attach::Id(id) => arg.channel_id = id,
            Attach::Key(k) => arg.key = k,
        }
        self.ipc_attach_raw(&mut arg)
    }

    /// ATTACH with a caller-built argument (for testing validation).
    pub fn ipc_attach_raw(&self, arg: &mut io_uring_ipc_channel_attach) -> Result<Subscription> {
        let p = (arg as *mut io_uring_ipc_channel_attach).cast();
        self.ipc_register(
            IORING_REGISTER_IPC_CHANNEL_ATTACH,
            "IPC_CHANNEL_ATTACH",
            p,
            1,
        )?;
        Ok(Subscription {
            id: arg.local_id_out,
            // SAFETY: the kernel installed this fd for us; we own it now.
            fd: unsafe { OwnedFd::from_raw_fd(arg.channel_fd) },
            mmap_offset: arg.mmap_offset_out,
            region_size: arg.region_size,
        })
    }

    pub fn ipc_detach(&self, sub: u32) -> Result<()> {
        self.ipc_register(
            IORING_REGISTER_IPC_CHANNEL_DETACH,
            "IPC_CHANNEL_DETACH",
            std::ptr::null_mut(),
            sub,
        )?;
        Ok(())
    }

    pub fn ipc_destroy(&self, channel: u32) -> Result<()> {
        self.ipc_register(
            IORING_REGISTER_IPC_CHANNEL_DESTROY,
            "IPC_CHANNEL_DESTROY",
            std::ptr::null_mut(),
            channel,
        )?;
        Ok(())
    }

    /// Submit one SQE and wait for its completion.
    fn sync_op(&mut self, sqe: Sqe, op: &'static str) -> Result<usize> {
        // SAFETY: the buffers the SQE names are borrowed by our caller for
        // the duration of this call, and submit_borrowed returns only once
        // the kernel is done with them.
        let c = unsafe { self.submit_borrowed(sqe) }?;
        cqe_result(op, c.res)
    }

    /// Send `data` from subscriber `sub`; fails with ENOBUFS on a full ring.
    pub fn ipc_send(&mut self, sub: u32, data: &[u8]) -> Result<usize> {
        self.sync_op(
            IpcSend::new(sub, data.as_ptr(), len32(data.len())?).build(),
            "IPC_SEND",
        )
    }

    /// Send `data` to subscriber `target` only.
    pub fn ipc_send_to(&mut self, sub: u32, target: u32, data: &[u8]) -> Result<usize> {
        self.sync_op(
            IpcSend::new(sub, data.as_ptr(), len32(data.len())?)
                .target(target)
                .build(),
            "IPC_SEND",
        )
    }

    /// Send, waiting for space if the ring is full.
    pub fn ipc_send_wait(&mut self, sub: u32, data: &[u8]) -> Result<usize> {
        self.sync_op(
            IpcSend::new(sub, data.as_ptr(), len32(data.len())?)
                .wait()
                .build(),
            "IPC_SEND",
        )
    }

    /// Receive one message, waiting for it; returns the bytes copied.
    pub fn ipc_recv(&mut self, sub: u32, buf: &mut [u8]) -> Result<usize> {
        self.sync_op(
            IpcRecv::new(sub, buf.as_mut_ptr(), len32(buf.len())?).build(),
            "IPC_RECV",
        )
    }

    /// Receive one message if there is one.
    pub fn ipc_try_recv(&mut self, sub: u32, buf: &mut [u8]) -> Result<Option<usize>> {
        match self.sync_op(
            IpcRecv::new(sub, buf.as_mut_ptr(), len32(buf.len())?)
                .nonblock()
                .build(),
            "IPC_RECV",
        ) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.errno() == Some(libc::EAGAIN) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Receive one message with its sender information.
    pub fn ipc_recv_info(&mut self, sub: u32, buf: &mut [u8]) -> Result<(usize, MsgInfo)> {
        let mut info = MsgInfo::default();
        let n = self.sync_op(
            IpcRecv::new(sub, buf.as_mut_ptr(), len32(buf.len())?)
                .info(&mut info)
                .build(),
            "IPC_RECV",
        )?;
        Ok((n, info))
    }
}

fn len32(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::InvalidArgument("buffer larger than 4 GiB"))
}

/// A read-only mapping of a channel's ring region.
#[derive(Debug)]
pub struct RingView {
    ptr: NonNull<u8>,
    len: usize,
}

impl RingView {
    /// Map the region of `sub` (read-only; writable mappings are refused).
    pub fn map(sub: &Subscription) -> Result<RingView> {
        let len = sub.region_size as usize;
        // SAFETY: a fresh read-only shared mapping of the channel fd; the
        // result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                sub.fd.as_raw_fd(),
                sub.mmap_offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::last_os("mmap IPC channel"));
        }
        Ok(RingView {
            ptr: NonNull::new(p.cast()).expect("mmap success is not NULL"),
            len,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The header (a snapshot; head and tail move under concurrent use).
    pub fn header(&self) -> io_uring_ipc_ring_hdr {
        // SAFETY: the region starts with the header and is at least that
        // large (the kernel sizes it); volatile because the kernel writes it.
        unsafe { std::ptr::read_volatile(self.ptr.as_ptr().cast()) }
    }

    fn desc_ptr(&self, seq: u64) -> Option<*const io_uring_ipc_msg_desc> {
        let h = self.header();
        let idx = (seq & h.ring_mask as u64) as usize;
        let off = h.desc_offset as usize + idx * std::mem::size_of::<io_uring_ipc_msg_desc>();
        if off + std::mem::size_of::<io_uring_ipc_msg_desc>() > self.len {
            return None;
        }
        // SAFETY: in bounds, checked above.
        Some(unsafe { self.ptr.as_ptr().add(off).cast::<io_uring_ipc_msg_desc>() }.cast_const())
    }

    /// Read the message with sequence number `seq` straight from the mapping,
    /// using desc.seq as a seqcount: the result is returned only if the slot
    /// held `seq` before and after the payload was copied.
    pub fn read(&self, seq: u64) -> Option<(io_uring_ipc_msg_desc, Vec<u8>)> {
        let h = self.header();
        let d = self.desc_ptr(seq)?;
        // SAFETY: d points into the mapping; the seq field is 8-aligned and
        // only read atomically.
        let seq_a = unsafe { &*(d as *const AtomicU64) };
        // Relaxed (the mapping is read-only, where only relaxed atomic loads
        // are guaranteed to work), then an acquire fence: together they pair
        // with the kernel's smp_store_release of desc->seq after writing
        // payload and desc.
        if seq_a.load(Ordering::Relaxed) != seq {
            return None;
        }
        std::sync::atomic::fence(Ordering::Acquire);
        // SAFETY: in-bounds read of the descriptor (volatile: shared memory).
        let desc = unsafe { std::ptr::read_volatile(d) };
        let len = desc.len.min(h.slot_size) as usize;
        let idx = (seq & h.ring_mask as u64) as usize;
        let off = h.data_offset as usize + idx * h.slot_size as usize;
        if off + len > self.len {
            return None;
        }
        let mut data = vec![0u8; len];
        // SAFETY: in bounds (checked); the copy may race with a rewrite
        // (atomically: no data race), which the second seq check detects.
        unsafe { copy_from_shared(self.ptr.as_ptr().add(off), &mut data) };
        // Order the payload reads before re-reading seq (smp_rmb).
        std::sync::atomic::fence(Ordering::Acquire);
        (seq_a.load(Ordering::Relaxed) == seq).then_some((desc, data))
    }
}

/// Copy `dst.len()` bytes from `src`, memory another thread or the kernel
/// may be writing (a plain copy would be a data race: undefined behaviour,
/// whatever the seqcount check decides afterwards). Relaxed atomic loads,
/// a byte at a time up to 8-byte alignment, then a word at a time; the
/// caller orders them against its seqcount with an acquire fence. Relaxed
/// loads of at most pointer size also work on read-only mappings.
///
/// # Safety
/// `src` must be valid for reads of `dst.len()` bytes.
unsafe fn copy_from_shared(src: *const u8, dst: &mut [u8]) {
    use std::sync::atomic::AtomicU8;
    let len = dst.len();
    let head = src.align_offset(8).min(len);
    let words = (len - head) / 8;
    let load_byte = |i: usize| {
        // SAFETY: i < len; any address is aligned for a u8, and the byte is
        // only ever accessed atomically here.
        unsafe { (*src.add(i).cast::<AtomicU8>()).load(Ordering::Relaxed) }
    };
    for (i, d) in dst[..head].iter_mut().enumerate() {
        *d = load_byte(i);
    }
    for w in 0..words {
        let at = head + w * 8;
        // SAFETY: src + at is 8-aligned (align_offset) and at + 8 <= len.
        let v = unsafe { (*src.add(at).cast::<AtomicU64>()).load(Ordering::Relaxed) };
        dst[at..at + 8].copy_from_slice(&v.to_ne_bytes());
    }
    for (i, d) in dst.iter_mut().enumerate().skip(head + words * 8) {
        *d = load_byte(i);
    }
}

impl Drop for RingView {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in map().
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    //! The synchronous helpers must never return while the kernel may still
    //! write into the buffer they borrowed. These tests make io_uring_enter
    //! fail at each point of sync_op, with a READ from a pipe (which any
    //! kernel has) standing in for IPC_RECV, and then give a stale SQE or a
    //! request still in flight every chance to write into the canary.
    use super::*;
    use crate::opcode;
    use std::os::fd::AsRawFd;

    const CANARY: [u8; 16] = [0xa5; 16];

    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: pipe2 just created both; we own them.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn write_all(fd: &OwnedFd, data: &[u8]) {
        // SAFETY: data is valid for its length.
        let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
        assert_eq!(n, data.len() as isize);
    }

    /// What is left in the (nonblocking-read) pipe.
    fn drain(fd: &OwnedFd) -> Vec<u8> {
        let mut buf = [0u8; 64];
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 0) } != 1 {
            return Vec::new();
        }
        // SAFETY: buf is writable for its length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        buf[..n.max(0) as usize].to_vec()
    }

    /// After the failed call: a NOP is all the ring submits and completes,
    /// within a wait long enough for a stale READ to complete.
    fn only_a_nop_completes(ring: &mut Ring) {
        // SAFETY: a NOP names no memory.
        unsafe { ring.push(&opcode::nop().user_data(7)).unwrap() };
        let c = ring.wait_for(7).unwrap();
        assert_eq!(c.res, 0);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let _ = ring.submit();
        assert_eq!(ring.pop_cqe(), None, "a completion of the failed call");
    }

    fn enable(ring: &Ring) {
        // SAFETY: ENABLE_RINGS takes no argument.
        let r = unsafe { ring.register_raw(IORING_REGISTER_ENABLE_RINGS, std::ptr::null_mut(), 0) };
        assert_eq!(r, 0, "IORING_REGISTER_ENABLE_RINGS");
    }

    #[test]
    fn failed_submit_on_disabled_ring_leaves_no_sqe() {
        let mut ring = Ring::builder(4)
            .flags(IORING_SETUP_R_DISABLED)
            .build()
            .unwrap();
        let (r, w) = pipe();
        write_all(&w, b"pipe data");
        let mut canary = CANARY;
        let res = ring.sync_op(
            opcode::read(r.as_raw_fd(), canary.as_mut_ptr(), 16, -1),
            "READ",
        );
        assert_eq!(res.unwrap_err().errno(), Some(libc::EBADFD));
        assert_eq!(ring.sq_space(), 4, "the failed call left an SQE queued");
        enable(&ring);
        only_a_nop_completes(&mut ring);
        assert_eq!(canary, CANARY);
        assert_eq!(drain(&r), b"pipe data");
    }

    /// A SINGLE_ISSUER ring, or None (printing SKIP) on kernels without.
    fn single_issuer_ring() -> Option<Ring> {
        match Ring::builder(4).single_issuer().build() {
            Ok(r) => Some(r),
            Err(e) if e.errno() == Some(libc::EINVAL) => {
                eprintln!("SKIP: no IORING_SETUP_SINGLE_ISSUER: {e}");
                None
            }
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn single_issuer_ring_on_another_thread_leaves_no_sqe() {
        let Some(ring) = single_issuer_ring() else {
            return;
        };
        let (r, w) = pipe();
        write_all(&w, b"pipe data");
        let mut canary = Box::new(CANARY);
        let fd = r.as_raw_fd();
        let (mut ring, canary) = std::thread::spawn(move || {
            let mut ring = ring;
            let res = ring.sync_op(opcode::read(fd, canary.as_mut_ptr(), 16, -1), "READ");
            assert_eq!(res.unwrap_err().errno(), Some(libc::EEXIST));
            assert_eq!(ring.sq_space(), 4, "the failed call left an SQE queued");
            (ring, canary)
        })
        .join()
        .unwrap();
        only_a_nop_completes(&mut ring);
        assert_eq!(*canary, CANARY);
        assert_eq!(drain(&r), b"pipe data");
    }

    #[test]
    fn failed_wait_cancels_the_request_in_flight() {
        let mut ring = Ring::new(4).unwrap();
        let (r, w) = pipe();
        let mut canary = CANARY;
        // The submit succeeds (the READ parks on the empty pipe), the wait
        // that follows fails.
        ring.fail_enter.set(Some((1, libc::EBUSY)));
        let res = ring.sync_op(
            opcode::read(r.as_raw_fd(), canary.as_mut_ptr(), 16, -1),
            "READ",
        );
        assert_eq!(res.unwrap_err().errno(), Some(libc::EBUSY));
        // A READ still in flight would take this.
        write_all(&w, b"late");
        only_a_nop_completes(&mut ring);
        assert_eq!(canary, CANARY);
        assert_eq!(drain(&r), b"late");
    }

    /// The kernel refuses the enter (EEXIST: a forked child is another task
    /// than the submitter, though its thread looks like the parent's).
    #[test]
    fn single_issuer_ring_in_forked_child_leaves_no_sqe() {
        let Some(mut ring) = single_issuer_ring() else {
            return;
        };
        let (r, w) = pipe();
        write_all(&w, b"pipe data");
        let mut canary = CANARY;
        // SAFETY: the child only runs the call under test and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let res = ring.sync_op(
                opcode::read(r.as_raw_fd(), canary.as_mut_ptr(), 16, -1),
                "READ",
            );
            let code = match res {
                Err(e) if e.errno() == Some(libc::EEXIST) && ring.sq_ready() == 0 => 0,
                Err(_) => 2,
                Ok(_) => 3,
            };
            // SAFETY: leave without running the parent's destructors.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: reaping our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status));
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "child: 2 = stale SQE or wrong error"
        );
        assert_eq!(
            ring.sq_ready(),
            0,
            "the child's failed call left an SQE queued"
        );
        only_a_nop_completes(&mut ring);
        assert_eq!(canary, CANARY);
        assert_eq!(drain(&r), b"pipe data");
    }

    #[test]
    fn another_thread_cannot_submit_to_a_single_issuer_ring() {
        let Ok(ring) = Ring::builder(4).single_issuer().build() else {
            eprintln!("SKIP: no IORING_SETUP_SINGLE_ISSUER");
            return;
        };
        std::thread::spawn(move || {
            let mut ring = ring;
            // SAFETY: a NOP names no memory.
            unsafe { ring.push(&opcode::nop().user_data(1)).unwrap() };
            assert_eq!(ring.submit(), Err(Error::NotSubmitterThread));
            assert_eq!(ring.submit_no_getevents(), Err(Error::NotSubmitterThread));
            assert_eq!(ring.sq_ready(), 0, "published from the wrong thread");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn push_refuses_the_reserved_user_data() {
        let mut ring = Ring::new(4).unwrap();
        for v in [
            *crate::RESERVED_USER_DATA.start(),
            *crate::RESERVED_USER_DATA.end(),
        ] {
            // SAFETY: a NOP names no memory.
            let r = unsafe { ring.push(&opcode::nop().user_data(v)) };
            assert!(matches!(r, Err(Error::InvalidArgument(_))), "{v:#x}: {r:?}");
        }
        assert_eq!(ring.sq_space(), 4);
    }

    /// A payload copy racing with a writer (the kernel, in RingView::read)
    /// must read with atomic loads: under ThreadSanitizer
    /// (RUSTFLAGS=-Zsanitizer=thread cargo +nightly test) a plain copy is
    /// reported as a data race. Without it this checks the copy is exact
    /// at every alignment.
    #[test]
    fn shared_copy_is_exact_and_race_free() {
        use std::sync::atomic::AtomicBool;
        let words: Vec<AtomicU64> = (0..64u64)
            .map(|i| AtomicU64::new(i * 0x0101_0101_0101_0101))
            .collect();
        let base = words.as_ptr().cast::<u8>();
        let want = |i: usize| (i / 8) as u8;
        for start in 0..9 {
            for len in [0, 1, 7, 8, 9, 63, 64, 65, 200] {
                let mut dst = vec![0xffu8; len];
                // SAFETY: start + len < 64 * 8 bytes of `words`.
                unsafe { copy_from_shared(base.add(start), &mut dst) };
                let exp: Vec<u8> = (start..start + len).map(want).collect();
                assert_eq!(dst, exp, "start {start} len {len}");
            }
        }
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut v = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for w in &words {
                        w.store(v, Ordering::Relaxed);
                    }
                    v = v.wrapping_add(1);
                }
            });
            let mut dst = vec![0u8; 64 * 8 - 3];
            for _ in 0..2000 {
                // SAFETY: in bounds of `words`.
                unsafe { copy_from_shared(base.add(3), &mut dst) };
            }
            stop.store(true, Ordering::Relaxed);
        });
    }
}
