//! Provided buffer rings (IORING_REGISTER_PBUF_RING), the buffers a
//! multishot IPC_RECV receives into.
//!
//! A [`BufRing`] owns the ring of buffer descriptors and the buffers, and
//! knows which buffers the kernel may write to: those it has provided and
//! no CQE has returned yet. Only buffers a CQE handed back can be read
//! ([`BufRing::take`]), and only those can be provided again
//! ([`BufRing::recycle`]), so safe code never reads memory the kernel may
//! be writing.
//!
//! Dropping a `BufRing` unregisters the group first. IPC_RECV fills a
//! buffer within one hold of the ring's lock, so that is safe with IPC
//! receives in flight; requests that keep a selected buffer across an
//! io-wq issue (reads of regular files) must be completed before.

use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU16, Ordering};

use uapi_headers::io_uring::*;

use crate::error::{Error, Result};
use crate::ring::{Cqe, Mmap, Ring};
use crate::sys;

/// `entries` buffers of `buf_len` bytes each, registered with a ring as
/// buffer group `bgid`.
pub struct BufRing {
    /// A duplicate of the ring's fd: the ring stays alive until the group
    /// is unregistered, whatever order things are dropped in.
    ring_fd: OwnedFd,
    bgid: u16,
    buf_len: u32,
    /// Dropped only once the group is unregistered (see Drop).
    descs: ManuallyDrop<Mmap>,
    bufs: ManuallyDrop<Mmap>,
    /// Our copy of the tail published to the kernel.
    tail: u16,
    /// Per buffer: returned by a CQE and not provided again yet.
    ours: Vec<bool>,
}

impl BufRing {
    /// Register `entries` (a power of two, at most 32768) buffers of
    /// `buf_len` bytes with `ring` as group `bgid`, all provided.
    pub fn new(ring: &Ring, bgid: u16, entries: u16, buf_len: u32) -> Result<BufRing> {
        if !entries.is_power_of_two() || entries > 32768 {
            return Err(Error::InvalidArgument(
                "buffer ring entries must be a power of two up to 32768",
            ));
        }
        if buf_len == 0 {
            return Err(Error::InvalidArgument("buffer length must not be 0"));
        }
        let n = entries as usize;
        // unmapped by drop if the registration below fails
        let descs = Mmap::anon(n * std::mem::size_of::<io_uring_buf>())?;
        let bufs = Mmap::anon(n * buf_len as usize)?;
        // SAFETY: dup of an fd the ring owns; the result is owned below.
        let dup = unsafe { libc::fcntl(ring.fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(Error::last_os("F_DUPFD_CLOEXEC"));
        }
        // SAFETY: dup is a fresh fd nobody else owns.
        let ring_fd = unsafe { OwnedFd::from_raw_fd(dup) };
        let mut reg = io_uring_buf_reg {
            ring_addr: descs.as_ptr() as u64,
            ring_entries: entries as u32,
            bgid,
            ..Default::default()
        };
        // SAFETY: reg describes a live, page-aligned mapping of `entries`
        // descriptors, which stays mapped until unregistered in Drop.
        let r = unsafe {
            sys::io_uring_register(
                ring_fd.as_raw_fd(),
                IORING_REGISTER_PBUF_RING,
                (&mut reg as *mut io_uring_buf_reg).cast(),
                1,
            )
        };
        if r < 0 {
            return Err(Error::last_os("IORING_REGISTER_PBUF_RING"));
        }
        let mut br = BufRing {
            ring_fd,
            bgid,
            buf_len,
            descs: ManuallyDrop::new(descs),
            bufs: ManuallyDrop::new(bufs),
            tail: 0,
            ours: vec![true; n],
        };
        for bid in 0..entries {
            br.put(bid);
        }
        br.publish();
        Ok(br)
    }

    /// The buffer group id to put in an SQE.
    pub fn bgid(&self) -> u16 {
        self.bgid
    }

    /// The length of each buffer.
    pub fn buf_len(&self) -> u32 {
        self.buf_len
    }

    fn entries(&self) -> u16 {
        self.ours.len() as u16
    }

    fn desc(&self, i: u16) -> *mut io_uring_buf {
        let i = (i & (self.entries() - 1)) as usize;
        // SAFETY: i is below entries, the mapping holds that many.
        unsafe { self.descs.as_ptr().cast::<io_uring_buf>().add(i) }
    }

    /// Queue buffer `bid` at the local tail (not visible until publish).
    fn put(&mut self, bid: u16) {
        let d = self.desc(self.tail);
        // SAFETY: the descriptor at the unpublished tail is not read by the
        // kernel until the tail moves past it. Only addr/len/bid are
        // written: resv of entry 0 is the tail itself.
        unsafe {
            std::ptr::addr_of_mut!((*d).addr).write(self.buf_ptr(bid) as u64);
            std::ptr::addr_of_mut!((*d).len).write(self.buf_len);
            std::ptr::addr_of_mut!((*d).bid).write(bid);
        }
        self.ours[bid as usize] = false;
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail is the u16 `resv` of descriptor 0, 2-aligned, in
        // the mapping; the kernel reads it with an acquire load.
        let tail = unsafe { &*(std::ptr::addr_of_mut!((*self.desc(0)).resv) as *const AtomicU16) };
        tail.store(self.tail, Ordering::Release);
    }

    fn buf_ptr(&self, bid: u16) -> *mut u8 {
        // SAFETY: bid < entries, the buffer mapping holds entries buffers.
        unsafe { self.bufs.as_ptr().add(bid as usize * self.buf_len as usize) }
    }

    /// The buffer a completion of this group returned, and the bytes in it:
    /// None if the CQE carries no buffer.
    pub fn take(&mut self, cqe: &Cqe) -> Option<(u16, usize)> {
        if cqe.flags & IORING_CQE_F_BUFFER == 0 {
            return None;
        }
        let bid = (cqe.flags >> IORING_CQE_BUFFER_SHIFT) as u16;
        if bid >= self.entries() {
            return None;
        }
        self.ours[bid as usize] = true;
        let len = (cqe.res.max(0) as usize).min(self.buf_len as usize);
        Some((bid, len))
    }

    /// The contents of buffer `bid`, which a CQE returned: panics if the
    /// kernel owns it (it may be writing to it).
    pub fn buf(&self, bid: u16, len: usize) -> &[u8] {
        assert!(
            self.ours.get(bid as usize) == Some(&true),
            "buffer {bid} is provided to the kernel"
        );
        // SAFETY: the buffer is ours (not provided), so the kernel does not
        // write to it while the borrow of self lasts; len is clamped.
        unsafe { std::slice::from_raw_parts(self.buf_ptr(bid), len.min(self.buf_len as usize)) }
    }

    /// Provide buffer `bid`, which a CQE returned, to the kernel again.
    pub fn recycle(&mut self, bid: u16) {
        assert!(
            self.ours.get(bid as usize) == Some(&true),
            "buffer {bid} is already provided"
        );
        self.put(bid);
        self.publish();
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        let mut reg = io_uring_buf_reg {
            bgid: self.bgid,
            ..Default::default()
        };
        // SAFETY: unregisters the group before its memory is unmapped
        // below, on the duplicate of the ring's fd.
        let r = unsafe {
            sys::io_uring_register(
                self.ring_fd.as_raw_fd(),
                IORING_UNREGISTER_PBUF_RING,
                (&mut reg as *mut io_uring_buf_reg).cast(),
                1,
            )
        };
        // Unmapped only once unregistered: while the kernel may still
        // write into the buffers, leaking them is the only safe choice.
        if r >= 0 {
            // SAFETY: the kernel no longer knows the group; nothing else
            // refers to the mappings, and they are not used again.
            unsafe {
                ManuallyDrop::drop(&mut self.bufs);
                ManuallyDrop::drop(&mut self.descs);
            }
        }
    }
}
