//! The ring: setup, the three mappings, submission and completion.
//!
//! Memory ordering follows the contract in the header comment of the
//! kernel's io_uring/io_uring.c:
//! - SQ: SQE stores must be visible before the new SQ tail; we publish the
//!   tail with a release store (the kernel reads it with smp_load_acquire).
//! - CQ: the kernel publishes the CQ tail with smp_store_release; we read it
//!   with an acquire load before reading CQEs, and release our CQ head store
//!   so the kernel cannot overwrite a CQE we are still reading.
//! - SQPOLL: between publishing the tail and reading IORING_SQ_NEED_WAKEUP a
//!   full fence is needed (the kernel sets the flag, then rechecks the tail
//!   after its own smp_mb); otherwise both sides can miss each other and the
//!   poller sleeps with work queued.

use std::ops::RangeInclusive;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::thread::ThreadId;
use std::time::Duration;

use uapi_headers::io_uring::*;

use crate::error::{Error, Result};
use crate::opcode::Sqe;
use crate::sys;

/// One mmap'ed region, unmapped on drop.
pub(crate) struct Mmap {
    ptr: NonNull<libc::c_void>,
    len: usize,
}

impl Mmap {
    fn new(fd: RawFd, offset: u64, len: usize) -> Result<Mmap> {
        Self::map(fd, offset, len, libc::MAP_SHARED, "mmap io_uring")
    }

    /// Private anonymous memory of `len` bytes (for buffers given to the
    /// kernel), populated.
    pub(crate) fn anon(len: usize) -> Result<Mmap> {
        Self::map(-1, 0, len, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, "mmap")
    }

    fn map(
        fd: RawFd,
        offset: u64,
        len: usize,
        flags: libc::c_int,
        what: &'static str,
    ) -> Result<Mmap> {
        // SAFETY: a fresh mapping (of the ring fd, or anonymous); no existing
        // memory is affected, and the result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags | libc::MAP_POPULATE,
                fd,
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(Error::last_os(what));
        }
        Ok(Mmap {
            ptr: NonNull::new(ptr).expect("mmap never returns NULL on success"),
            len,
        })
    }

    /// The start of the mapping.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr().cast()
    }

    /// Pointer `off` bytes into the mapping.
    fn at<T>(&self, off: u32) -> *mut T {
        assert!(
            off as usize + std::mem::size_of::<T>() <= self.len,
            "offset outside mapping"
        );
        // SAFETY: in bounds, checked above.
        unsafe { self.ptr.as_ptr().cast::<u8>().add(off as usize).cast() }
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what mmap returned; nothing borrows it
        // past the Ring that owns it.
        unsafe { libc::munmap(self.ptr.as_ptr(), self.len) };
    }
}

/// user_data values of the SQEs this crate queues itself (its synchronous
/// calls, such as [`Ring::ipc_recv`], and their cancellations): [`Ring::push`]
/// refuses them, so no completion of the caller's can pass for one of those.
pub const RESERVED_USER_DATA: RangeInclusive<u64> = 0xfeed_0000_0000_0000..=0xfeed_ffff_ffff_ffff;

static NEXT_TAG: AtomicU64 = AtomicU64::new(0);

/// A fresh user_data from [`RESERVED_USER_DATA`].
fn reserved_tag() -> u64 {
    let n = NEXT_TAG.fetch_add(1, Ordering::Relaxed);
    RESERVED_USER_DATA.start() | (n & (RESERVED_USER_DATA.end() - RESERVED_USER_DATA.start()))
}

thread_local! {
    static THREAD: ThreadId = std::thread::current().id();
}

fn this_thread() -> ThreadId {
    THREAD.with(|t| *t)
}

/// A completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cqe {
    pub user_data: u64,
    pub res: i32,
    pub flags: u32,
}

/// Which opcodes the running kernel supports (IORING_REGISTER_PROBE).
#[derive(Debug, Clone)]
pub struct Probe {
    pub last_op: u8,
    supported: Vec<bool>,
}

impl Probe {
    pub fn supports(&self, op: u8) -> bool {
        self.supported.get(op as usize).copied().unwrap_or(false)
    }
}

/// The setup flags whose ring [`Ring`] can map and use: 64-byte SQEs,
/// 16-byte CQEs, an SQ index array, rings the kernel allocates, a real fd.
/// Anything else (IORING_SETUP_SQE128, CQE32, NO_SQARRAY, NO_MMAP,
/// REGISTERED_FD_ONLY, flags newer than this crate) is refused by
/// [`RingBuilder::build`].
pub const SUPPORTED_SETUP_FLAGS: u32 = IORING_SETUP_IOPOLL
    | IORING_SETUP_SQPOLL
    | IORING_SETUP_SQ_AFF
    | IORING_SETUP_CQSIZE
    | IORING_SETUP_CLAMP
    | IORING_SETUP_ATTACH_WQ
    | IORING_SETUP_R_DISABLED
    | IORING_SETUP_SUBMIT_ALL
    | IORING_SETUP_COOP_TASKRUN
    | IORING_SETUP_TASKRUN_FLAG
    | IORING_SETUP_SINGLE_ISSUER
    | IORING_SETUP_DEFER_TASKRUN;

/// Options for [`Ring`].
#[derive(Debug, Clone, Default)]
pub struct RingBuilder {
    entries: u32,
    flags: u32,
    cq_entries: Option<u32>,
    sq_thread_idle: u32,
}

impl RingBuilder {
    /// IORING_SETUP_SINGLE_ISSUER: only this thread submits. The `Ring` may
    /// move to another thread, but submitting from there fails with
    /// [`Error::NotSubmitterThread`].
    pub fn single_issuer(mut self) -> Self {
        self.flags |= IORING_SETUP_SINGLE_ISSUER;
        self
    }
    /// IORING_SETUP_DEFER_TASKRUN: completion work runs only when this task
    /// waits for completions (requires SINGLE_ISSUER).
    pub fn defer_taskrun(mut self) -> Self {
        self.flags |= IORING_SETUP_DEFER_TASKRUN;
        self
    }
    /// IORING_SETUP_SQPOLL with the given idle time in milliseconds.
    pub fn sqpoll(mut self, idle_ms: u32) -> Self {
        self.flags |= IORING_SETUP_SQPOLL;
        self.sq_thread_idle = idle_ms;
        self
    }
    pub fn cq_entries(mut self, n: u32) -> Self {
        self.flags |= IORING_SETUP_CQSIZE;
        self.cq_entries = Some(n);
        self
    }
    /// Raw IORING_SETUP_* flags; `build` refuses those outside
    /// [`SUPPORTED_SETUP_FLAGS`].
    pub fn flags(mut self, flags: u32) -> Self {
        self.flags |= flags;
        self
    }

    pub fn build(self) -> Result<Ring> {
        if self.flags & !SUPPORTED_SETUP_FLAGS != 0 {
            return Err(Error::InvalidArgument(
                "setup flags that change the ring layout (SQE128, CQE32, NO_SQARRAY, \
                 NO_MMAP, REGISTERED_FD_ONLY) or that this crate does not know",
            ));
        }
        let mut p = io_uring_params {
            flags: self.flags,
            sq_thread_idle: self.sq_thread_idle,
            cq_entries: self.cq_entries.unwrap_or(0),
            ..Default::default()
        };
        // SAFETY: p is a valid io_uring_params for the kernel to fill in.
        let fd = unsafe { sys::io_uring_setup(self.entries, &mut p) };
        if fd < 0 {
            let e = Error::last_os("io_uring_setup");
            return Err(if e.errno() == Some(libc::ENOSYS) {
                Error::Unsupported("io_uring")
            } else {
                e
            });
        }
        // SAFETY: the kernel just returned this fd to us; nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ring::map(fd, p)
    }
}

/// An io_uring instance.
pub struct Ring {
    fd: OwnedFd,
    params: io_uring_params,
    sq_map: Mmap,
    cq_map: Option<Mmap>,
    sqes: Mmap,
    sq_mask: u32,
    cq_mask: u32,
    /// Next SQE slot to fill (local; published by `flush`).
    sqe_tail: u32,
    /// The SQ tail we last published.
    published: u32,
    /// Completions taken off the CQ while waiting for a specific one.
    backlog: std::collections::VecDeque<Cqe>,
    /// SINGLE_ISSUER (without SQPOLL): the thread the kernel accepts
    /// submissions from, once known (at setup, or for an R_DISABLED ring at
    /// the first enter that worked).
    submitter: Option<ThreadId>,
    /// Test seam: after `n` more io_uring_enter calls, fail one with
    /// `errno` without entering the kernel.
    #[cfg(test)]
    pub(crate) fail_enter: std::cell::Cell<Option<(u32, i32)>>,
}

// SAFETY: the ring's shared memory is only touched through &mut self (SQ)
// or with atomics; moving a Ring to another thread is fine. A SINGLE_ISSUER
// ring answers every submission from another thread than its submitter
// with Error::NotSubmitterThread before anything is published, and the
// synchronous calls withdraw their SQE when the kernel refuses an enter
// (EEXIST from another task, such as a forked child) anyway.
unsafe impl Send for Ring {}

impl Ring {
    /// A ring with `entries` SQEs and default flags.
    pub fn new(entries: u32) -> Result<Ring> {
        Ring::builder(entries).build()
    }

    pub fn builder(entries: u32) -> RingBuilder {
        RingBuilder {
            entries,
            ..Default::default()
        }
    }

    fn map(fd: OwnedFd, p: io_uring_params) -> Result<Ring> {
        let raw = fd.as_raw_fd();
        let sq_len = p.sq_off.array as usize + p.sq_entries as usize * 4;
        let cq_len =
            p.cq_off.cqes as usize + p.cq_entries as usize * std::mem::size_of::<io_uring_cqe>();
        let single = p.features & IORING_FEAT_SINGLE_MMAP != 0;
        let sq_map = Mmap::new(
            raw,
            IORING_OFF_SQ_RING,
            if single { sq_len.max(cq_len) } else { sq_len },
        )?;
        let cq_map = if single {
            None
        } else {
            Some(Mmap::new(raw, IORING_OFF_CQ_RING, cq_len)?)
        };
        let sqes = Mmap::new(
            raw,
            IORING_OFF_SQES,
            p.sq_entries as usize * std::mem::size_of::<io_uring_sqe>(),
        )?;
        let mut ring = Ring {
            fd,
            params: p,
            sq_map,
            cq_map,
            sqes,
            sq_mask: 0,
            cq_mask: 0,
            sqe_tail: 0,
            published: 0,
            backlog: Default::default(),
            submitter: None,
            #[cfg(test)]
            fail_enter: Default::default(),
        };
        // SAFETY: offsets come from the kernel and lie inside the mappings.
        unsafe {
            ring.sq_mask = *ring.sq_map.at::<u32>(p.sq_off.ring_mask);
            ring.cq_mask = *ring.cq().at::<u32>(p.cq_off.ring_mask);
            // Identity indirection: SQ array slot i always names SQE i.
            let array = ring.sq_map.at::<u32>(p.sq_off.array);
            for i in 0..p.sq_entries {
                *array.add(i as usize) = i;
            }
            ring.sqe_tail = (*ring.sq_atomic(p.sq_off.tail)).load(Ordering::Relaxed);
            ring.published = ring.sqe_tail;
        }
        // The kernel made this thread the submitter (an R_DISABLED ring gets
        // whichever enables it).
        if ring.checks_submitter() && p.flags & IORING_SETUP_R_DISABLED == 0 {
            ring.submitter = Some(this_thread());
        }
        Ok(ring)
    }

    fn cq(&self) -> &Mmap {
        self.cq_map.as_ref().unwrap_or(&self.sq_map)
    }

    fn sq_atomic(&self, off: u32) -> &AtomicU32 {
        // SAFETY: a u32 inside the SQ mapping, which lives as long as self;
        // the kernel accesses it concurrently, so only ever as an atomic.
        unsafe { &*self.sq_map.at::<AtomicU32>(off) }
    }

    fn cq_atomic(&self, off: u32) -> &AtomicU32 {
        // SAFETY: as sq_atomic, for the CQ mapping.
        unsafe { &*self.cq().at::<AtomicU32>(off) }
    }

    /// The ring fd, for poll and for registration calls this crate lacks.
    /// Entering the ring through it (or enabling an R_DISABLED ring) while
    /// a call of this `Ring` is running bypasses what keeps the synchronous
    /// calls sound: do that only between calls.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn params(&self) -> &io_uring_params {
        &self.params
    }

    /// Free SQ slots.
    pub fn sq_space(&self) -> u32 {
        let head = self
            .sq_atomic(self.params.sq_off.head)
            .load(Ordering::Acquire);
        self.params.sq_entries - self.sqe_tail.wrapping_sub(head)
    }

    /// SQEs published to the kernel and not consumed by it yet.
    pub fn sq_ready(&self) -> u32 {
        let head = self
            .sq_atomic(self.params.sq_off.head)
            .load(Ordering::Acquire);
        self.published.wrapping_sub(head)
    }

    /// Queue one SQE (not yet visible to the kernel: see [`Ring::submit`]).
    /// Fails with [`Error::InvalidArgument`] for a user_data in
    /// [`RESERVED_USER_DATA`].
    ///
    /// # Safety
    /// Every buffer, struct or fd the SQE points to must stay valid (and
    /// buffers the kernel writes must not be read or moved) until its
    /// completion has been reaped. A submission that fails leaves the SQE
    /// queued: it goes to the kernel with the next one.
    pub unsafe fn push(&mut self, sqe: &Sqe) -> Result<()> {
        if RESERVED_USER_DATA.contains(&sqe.as_raw().user_data) {
            return Err(Error::InvalidArgument(
                "user_data in RESERVED_USER_DATA (the synchronous calls' own)",
            ));
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.queue(sqe) }.map(|_| ())
    }

    /// Queue one SQE; returns its position (the SQ tail value it sits at).
    ///
    /// # Safety
    /// As [`Ring::push`].
    unsafe fn queue(&mut self, sqe: &Sqe) -> Result<u32> {
        if self.sqe_tail == self.published {
            // Nothing of ours is pending: another process sharing the ring
            // (after fork) may have moved the tail since we last published.
            let t = self
                .sq_atomic(self.params.sq_off.tail)
                .load(Ordering::Acquire);
            self.sqe_tail = t;
            self.published = t;
        }
        if self.sq_space() == 0 {
            return Err(Error::SubmissionQueueFull);
        }
        let idx = self.sqe_tail & self.sq_mask;
        let slot = self
            .sqes
            .at::<io_uring_sqe>(idx * std::mem::size_of::<io_uring_sqe>() as u32);
        // SAFETY: idx < sq_entries; the kernel does not read this slot until
        // the tail published in flush() covers it.
        unsafe { slot.write(*sqe.as_raw()) };
        let pos = self.sqe_tail;
        self.sqe_tail = self.sqe_tail.wrapping_add(1);
        Ok(pos)
    }

    /// Take back the SQE at `pos` and every one queued after it, if the
    /// kernel has not consumed it; `err` is why the last enter failed.
    /// Returns false when it is (or may yet be) the kernel's.
    fn withdraw(&mut self, pos: u32, err: &Error) -> bool {
        // With SQPOLL the SQ thread consumes on its own: only when the
        // enter says it does not exist (a disabled ring, a dead thread) can
        // nobody be reading the slot while we rewind.
        if self.sqpoll() && !matches!(err.errno(), Some(libc::EBADFD | libc::EOWNERDEAD)) {
            return false;
        }
        // Without SQPOLL the kernel consumes SQEs only inside
        // io_uring_enter, and no enter of this ring runs now (we hold &mut
        // self; see `fd`). The kernel consumes in order: `pos` is still
        // ours when the head has not passed it.
        let head = self
            .sq_atomic(self.params.sq_off.head)
            .load(Ordering::Acquire);
        if pos.wrapping_sub(head) >= self.sqe_tail.wrapping_sub(head) {
            return false;
        }
        if self.published.wrapping_sub(head) > pos.wrapping_sub(head) {
            // The next enter reads this tail and never sees the slots past it.
            self.sq_atomic(self.params.sq_off.tail)
                .store(pos, Ordering::Release);
            self.published = pos;
        }
        self.sqe_tail = pos;
        true
    }

    /// Publish queued SQEs; returns how many the kernel has not consumed.
    fn flush(&mut self) -> u32 {
        let tail = self.sq_atomic(self.params.sq_off.tail);
        // Release: the SQE writes in push() happen-before the kernel's
        // acquire load of the tail.
        tail.store(self.sqe_tail, Ordering::Release);
        self.published = self.sqe_tail;
        let head = self
            .sq_atomic(self.params.sq_off.head)
            .load(Ordering::Acquire);
        self.sqe_tail.wrapping_sub(head)
    }

    fn sqpoll(&self) -> bool {
        self.params.flags & IORING_SETUP_SQPOLL != 0
    }

    fn checks_submitter(&self) -> bool {
        self.params.flags & IORING_SETUP_SINGLE_ISSUER != 0 && !self.sqpoll()
    }

    /// On a SINGLE_ISSUER ring, refuse other threads than the submitter.
    fn check_submitter(&self) -> Result<()> {
        match self.submitter {
            Some(t) if self.checks_submitter() && t != this_thread() => {
                Err(Error::NotSubmitterThread)
            }
            _ => Ok(()),
        }
    }

    /// Submit queued SQEs and wait for at least `want` completions.
    pub fn submit_and_wait(&mut self, want: u32) -> Result<u32> {
        self.check_submitter()?;
        let pending = self.flush();
        let mut flags = 0;
        // GETEVENTS runs deferred task work, and moves overflowed CQEs into
        // the CQ (as liburing does when the kernel flags either).
        if want > 0 || self.params.flags & IORING_SETUP_DEFER_TASKRUN != 0 || self.cq_needs_flush()
        {
            flags |= IORING_ENTER_GETEVENTS;
        }
        let mut to_submit = pending;
        if self.sqpoll() {
            to_submit = 0;
            // Full fence between the tail store and the flag load: pairs
            // with the SQ thread's smp_mb() after setting NEED_WAKEUP.
            fence(Ordering::SeqCst);
            let sq_flags = self
                .sq_atomic(self.params.sq_off.flags)
                .load(Ordering::Relaxed);
            if sq_flags & IORING_SQ_NEED_WAKEUP != 0 {
                flags |= IORING_ENTER_SQ_WAKEUP;
            }
            if pending > 0 && flags == 0 {
                return Ok(pending);
            }
        }
        let r = self.enter(to_submit, want, flags)?;
        Ok(if self.sqpoll() { pending } else { r })
    }

    /// io_uring_enter without an extended argument, again on EINTR.
    fn enter(&mut self, to_submit: u32, want: u32, flags: u32) -> Result<u32> {
        #[cfg(test)]
        if let Some((n, errno)) = self.fail_enter.get() {
            if n == 0 {
                self.fail_enter.set(None);
                return Err(Error::os("io_uring_enter", errno));
            }
            self.fail_enter.set(Some((n - 1, errno)));
        }
        loop {
            // SAFETY: plain enter without an extended argument.
            let r = unsafe {
                sys::io_uring_enter(self.fd(), to_submit, want, flags, std::ptr::null(), 0)
            };
            if r >= 0 {
                if self.checks_submitter() && self.submitter.is_none() {
                    self.submitter = Some(this_thread());
                }
                return Ok(r as u32);
            }
            let e = Error::last_os("io_uring_enter");
            if e.errno() != Some(libc::EINTR) {
                return Err(e);
            }
        }
    }

    /// Submit queued SQEs without waiting.
    pub fn submit(&mut self) -> Result<u32> {
        self.submit_and_wait(0)
    }

    /// Submit queued SQEs without IORING_ENTER_GETEVENTS: on a
    /// DEFER_TASKRUN ring, the task work of earlier requests stays queued
    /// until the next wait. Same as `submit` on an SQPOLL ring.
    pub fn submit_no_getevents(&mut self) -> Result<u32> {
        if self.sqpoll() {
            return self.submit();
        }
        self.check_submitter()?;
        let pending = self.flush();
        self.enter(pending, 0, 0)
    }

    /// Take the next completion, if there is one.
    ///
    /// When the CQ is empty but the kernel holds completions back (CQEs that
    /// overflowed a full CQ, or task work under IORING_SETUP_TASKRUN_FLAG),
    /// one io_uring_enter with GETEVENTS brings them in first.
    pub fn pop_cqe(&mut self) -> Option<Cqe> {
        if let Some(c) = self.backlog.pop_front() {
            return Some(c);
        }
        if let Some(c) = self.pop_cq() {
            return Some(c);
        }
        if !self.cq_needs_flush() {
            return None;
        }
        // An error (such as EEXIST for a DEFER_TASKRUN ring on another
        // thread) leaves them where they are, for a later wait.
        let _ = self.enter(0, 0, IORING_ENTER_GETEVENTS);
        self.pop_cq()
    }

    /// Does the kernel hold completions that only a GETEVENTS enter posts?
    /// In 6.12 CQEs that found the CQ full wait on an overflow list
    /// (IORING_SQ_CQ_OVERFLOW) until io_cqring_wait() flushes them.
    fn cq_needs_flush(&self) -> bool {
        // Relaxed: a hint; the CQ tail's acquire load orders the CQEs.
        let f = self
            .sq_atomic(self.params.sq_off.flags)
            .load(Ordering::Relaxed);
        f & (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN) != 0
    }

    /// Submit what is queued and wait for the completion with `user_data`;
    /// other completions that arrive meanwhile stay queued for `pop_cqe`.
    pub fn wait_for(&mut self, user_data: u64) -> Result<Cqe> {
        if let Some(c) = self.take(user_data) {
            return Ok(c);
        }
        self.submit()?;
        loop {
            if let Some(c) = self.take(user_data) {
                return Ok(c);
            }
            self.submit_and_wait(1)?;
        }
    }

    /// The completion with `user_data` if it has arrived; the others taken
    /// off the CQ meanwhile go to the backlog.
    fn take(&mut self, user_data: u64) -> Option<Cqe> {
        if let Some(i) = self.backlog.iter().position(|c| c.user_data == user_data) {
            return self.backlog.remove(i);
        }
        while let Some(c) = self.pop_cq() {
            if c.user_data == user_data {
                return Some(c);
            }
            self.backlog.push_back(c);
        }
        None
    }

    /// Wait for the completion with `user_data` whatever io_uring_enter
    /// answers: for a request that names memory which must not be given
    /// back before the kernel is done with it.
    fn wait_until_done(&mut self, user_data: u64) -> Cqe {
        loop {
            if let Some(c) = self.take(user_data) {
                return c;
            }
            if self.submit_and_wait(1).is_err() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Submit `sqe`, whose buffers the caller borrows for the duration of
    /// this call, and wait for its completion. Never returns while the
    /// kernel may still access those buffers: when an io_uring_enter fails,
    /// the SQE is withdrawn if the kernel has not consumed it, and
    /// otherwise cancelled and waited for (blocking until the kernel gives
    /// it back, however long that takes). A request that completed anyway
    /// reports its completion, a cancelled one the enter's error.
    ///
    /// # Safety
    /// What `sqe` points to must stay valid for the duration of the call.
    pub(crate) unsafe fn submit_borrowed(&mut self, sqe: Sqe) -> Result<Cqe> {
        let tag = reserved_tag();
        // SAFETY: the caller keeps the SQE's memory valid until we return,
        // and we return only once the kernel is done with it (below).
        let pos = unsafe { self.queue(&sqe.user_data(tag))? };
        let err = match self.wait_for(tag) {
            Ok(c) => return Ok(c),
            Err(e) => e,
        };
        if self.withdraw(pos, &err) {
            return Err(err);
        }
        // The kernel has it (or an SQ thread may yet take it): cancel it, and
        // wait for it whether or not the cancel gets through.
        let cancel = reserved_tag();
        // SAFETY: ASYNC_CANCEL names no memory.
        let queued =
            unsafe { self.queue(&crate::opcode::async_cancel(tag, 0).user_data(cancel)) }.is_ok();
        let c = self.wait_until_done(tag);
        if queued {
            self.wait_until_done(cancel);
        }
        if c.res == -libc::ECANCELED {
            Err(err)
        } else {
            Ok(c)
        }
    }

    fn pop_cq(&mut self) -> Option<Cqe> {
        let head_a = self.cq_atomic(self.params.cq_off.head);
        let head = head_a.load(Ordering::Relaxed);
        // Acquire: pairs with the kernel's release store of the CQ tail, so
        // the CQE contents below are complete.
        let tail = self
            .cq_atomic(self.params.cq_off.tail)
            .load(Ordering::Acquire);
        if head == tail {
            return None;
        }
        let idx = head & self.cq_mask;
        let off = self.params.cq_off.cqes + idx * std::mem::size_of::<io_uring_cqe>() as u32;
        // SAFETY: the slot lies in the CQ mapping and belongs to us until the
        // head store below hands it back to the kernel.
        let c = unsafe { self.cq().at::<io_uring_cqe>(off).read() };
        // Release: our read of the CQE completes before the kernel may reuse it.
        head_a.store(head.wrapping_add(1), Ordering::Release);
        Some(Cqe {
            user_data: c.user_data,
            res: c.res,
            flags: c.flags,
        })
    }

    /// Wait for and return one completion.
    pub fn wait_cqe(&mut self) -> Result<Cqe> {
        loop {
            if let Some(c) = self.pop_cqe() {
                return Ok(c);
            }
            self.submit_and_wait(1)?;
        }
    }

    /// Submit and collect exactly `n` completions (in completion order).
    pub fn submit_and_collect(&mut self, n: usize) -> Result<Vec<Cqe>> {
        let mut out = Vec::with_capacity(n);
        self.submit()?;
        while out.len() < n {
            out.push(self.wait_cqe()?);
        }
        Ok(out)
    }

    /// IORING_REGISTER_PROBE.
    pub fn probe(&self) -> Result<Probe> {
        const N: usize = 256;
        #[repr(C)]
        struct Buf {
            hdr: io_uring_probe,
            ops: [io_uring_probe_op; N],
        }
        let mut buf = Buf {
            hdr: Default::default(),
            ops: [Default::default(); N],
        };
        // SAFETY: buf has room for the header and N ops, as nr_args says.
        let r = unsafe {
            self.register_raw(
                IORING_REGISTER_PROBE,
                (&mut buf as *mut Buf).cast(),
                N as u32,
            )
        };
        if r < 0 {
            return Err(Error::last_os("IORING_REGISTER_PROBE"));
        }
        let n = buf.hdr.ops_len as usize;
        let mut supported = vec![false; N];
        for op in &buf.ops[..n.min(N)] {
            supported[op.op as usize] = op.flags & IO_URING_OP_SUPPORTED != 0;
        }
        Ok(Probe {
            last_op: buf.hdr.last_op,
            supported,
        })
    }

    /// Raw io_uring_register(2); returns the syscall's result (-1 + errno).
    ///
    /// # Safety
    /// `arg` must be valid for what `opcode` reads and writes.
    pub unsafe fn register_raw(&self, opcode: u32, arg: *mut libc::c_void, nr_args: u32) -> i32 {
        // SAFETY: forwarded from the caller.
        unsafe { sys::io_uring_register(self.fd(), opcode, arg, nr_args) }
    }
}
