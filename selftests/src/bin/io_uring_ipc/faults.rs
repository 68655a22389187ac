//! User memory that faults: buffers not faulted in yet, unmapped buffers
//! and sender information, arguments the kernel cannot write back. No
//! message is lost or duplicated by it, no slot leaks.

use liburing_ipc::ipc::{Attach, ChannelConfig, Delivery, MsgInfo, RingView};
use liburing_ipc::opcode::{IpcRecv, IpcSend};
use liburing_ipc::uapi::io_uring::*;
use liburing_ipc::{Error, Ring};
use selftests::ipc::{attach, channel, key, recv_msg};
use selftests::uring::push;
use selftests::util::pattern;
use selftests::{check, check_eq, expect_errno, Context, Outcome, TestResult};

pub fn recv_into_unfaulted_buffer() -> TestResult {
    for d in [Delivery::Unicast, Delivery::Broadcast] {
        let mut ring = Ring::new(8)?;
        let ch = channel(&ring, d, 8, 8192)?;
        let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
        let a = attach(&ring, ch, IOIPC_SUB_RECV)?;
        let b = attach(&ring, ch, IOIPC_SUB_RECV)?;
        let data = pattern(5, 8000);
        ring.ipc_send(tx.id, &data)?;
        let buf = Untouched::new(3 * 4096)?;
        check_eq!(recv_raw(&mut ring, a.id, buf.ptr, 8192)?, 8000);
        check!(buf.bytes(8000) == data, "{d:?}: payload differs");
        // The retry must neither lose nor duplicate the message.
        let other = ring.ipc_try_recv(b.id, &mut [0u8; 8192])?;
        match d {
            Delivery::Broadcast => check_eq!(other, Some(8000)),
            _ => check_eq!(other, None),
        }
        check_eq!(ring.ipc_try_recv(a.id, &mut [0u8; 8192])?, None);
    }
    Ok(())
}

pub fn send_from_unfaulted_buffer() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 8192)?;
    let s = attach(&ring, ch, IOIPC_SUB_BOTH)?;
    // Never written: the kernel reads zero pages it has to fault in.
    let buf = Untouched::new(2 * 4096)?;
    push(
        &mut ring,
        IpcSend::new(s.id, buf.ptr, 6000).build().user_data(5),
    )?;
    ring.submit()?;
    check_eq!(ring.wait_for(5)?.res, 6000);
    let got = recv_msg(&mut ring, s.id, 8192)?;
    check_eq!(got.len(), 6000);
    check!(got.iter().all(|&b| b == 0), "payload of zero pages differs");
    Ok(())
}

pub fn bad_buffers_change_nothing() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let s = attach(&ring, ch, IOIPC_SUB_BOTH)?;
    let view = RingView::map(&s)?;
    let head = view.header().head;
    // An unmapped user address: nothing is queued.
    push(
        &mut ring,
        IpcSend::new(s.id, 8 as *const u8, 16).build().user_data(6),
    )?;
    ring.submit()?;
    check_eq!(ring.wait_for(6)?.res, -libc::EFAULT);
    check_eq!(view.header().head, head);
    // A receive into it fails and leaves the message for the next one.
    ring.ipc_send(s.id, b"keep me")?;
    check_eq!(recv_raw(&mut ring, s.id, 8 as *mut u8, 64)?, -libc::EFAULT);
    check_eq!(recv_msg(&mut ring, s.id, 64)?, b"keep me".to_vec());
    Ok(())
}

pub fn broadcast_bad_buffer_loses_only_its_copy() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Broadcast, 8, 64)?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let a = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let b = attach(&ring, ch, IOIPC_SUB_RECV)?;
    ring.ipc_send(tx.id, b"one")?;
    ring.ipc_send(tx.id, b"two")?;
    check_eq!(recv_raw(&mut ring, a.id, 8 as *mut u8, 64)?, -libc::EFAULT);
    // a lost "one" like a datagram; b still gets both, a the next one.
    check_eq!(recv_msg(&mut ring, a.id, 64)?, b"two".to_vec());
    check_eq!(recv_msg(&mut ring, b.id, 64)?, b"one".to_vec());
    check_eq!(recv_msg(&mut ring, b.id, 64)?, b"two".to_vec());
    // Every slot is free again.
    for i in 0..8u64 {
        ring.ipc_send(tx.id, &i.to_le_bytes())?;
    }
    Ok(())
}

pub fn bad_msg_info_keeps_the_message() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let s = attach(&ring, ch, IOIPC_SUB_BOTH)?;
    ring.ipc_send(s.id, b"with info")?;
    let mut buf = [0u8; 64];
    push(
        &mut ring,
        IpcRecv::new(s.id, buf.as_mut_ptr(), 64)
            .info(4096 as *mut MsgInfo)
            .nonblock()
            .build()
            .user_data(9),
    )?;
    ring.submit()?;
    check_eq!(ring.wait_for(9)?.res, -libc::EFAULT);
    let (n, info) = ring.ipc_recv_info(s.id, &mut buf)?;
    check_eq!(n, 9);
    check_eq!(info.len, 9);
    check!(&buf[..9] == b"with info", "payload differs");
    Ok(())
}

/// A SEND_WAIT whose buffer is unmapped while it waits completes with
/// -EFAULT once it is granted a slot, and that slot is not lost: after
/// `ring_entries` such sends the channel still takes `ring_entries`
/// messages. (The re-issue checked the buffer before it used its grant and
/// leaked the grant: one slot fewer each time, until nothing could be
/// sent.)
pub fn send_wait_with_vanished_buffer_leaks_no_slot() -> TestResult {
    const ENTRIES: u32 = 2;
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, ENTRIES, 64)?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
    for round in 0..ENTRIES as u64 {
        for i in 0..ENTRIES {
            ring.ipc_send(tx.id, b"fill").map_err(|e| {
                Outcome::Fail(format!("round {round}: send {i} into an empty ring: {e}"))
            })?;
        }
        let page = Untouched::new(4096)?;
        push(
            &mut ring,
            IpcSend::new(tx.id, page.ptr, 16)
                .wait()
                .build()
                .user_data(0x100 + round),
        )?;
        ring.submit()?;
        check!(
            ring.pop_cqe().is_none(),
            "a SEND_WAIT into a full ring completed"
        );
        drop(page);
        // one message out: its slot goes to the waiting send
        check_eq!(recv_msg(&mut ring, rx.id, 64)?, b"fill".to_vec());
        check_eq!(ring.wait_for(0x100 + round)?.res, -libc::EFAULT);
        let mut buf = [0u8; 64];
        while ring.ipc_try_recv(rx.id, &mut buf)?.is_some() {}
    }
    for i in 0..ENTRIES {
        ring.ipc_send(tx.id, b"after")
            .map_err(|e| Outcome::Fail(format!("send {i} after the faulted waits: {e}")))?;
    }
    Ok(())
}

pub fn create_fault_leaves_no_channel() -> TestResult {
    let ring = Ring::new(8)?;
    let k = key(21);
    let page = Untouched::new(4096)?;
    let arg = io_uring_ipc_channel_create {
        flags: 0,
        ring_entries: 8,
        max_msg_size: 64,
        mode: 0o600,
        key: k,
        ..Default::default()
    };
    // SAFETY: the page is ours and large enough; it becomes read-only, so
    // the kernel can read the argument but not write channel_id_out.
    let p = unsafe {
        std::ptr::write(page.ptr.cast::<io_uring_ipc_channel_create>(), arg);
        if libc::mprotect(page.ptr.cast(), 4096, libc::PROT_READ) != 0 {
            return Err(Outcome::Fail("mprotect failed".into()));
        }
        &mut *page.ptr.cast::<io_uring_ipc_channel_create>()
    };
    expect_errno(ring.ipc_create_raw(p), libc::EFAULT).context("read-only argument")?;
    expect_errno(
        ring.ipc_attach(Attach::Key(k), IOIPC_SUB_RECV),
        libc::ENOENT,
    )
    .context("attach to the failed channel")?;
    // The key is free again.
    ring.ipc_create(&ChannelConfig::new(Delivery::Unicast, 8, 64).key(k))?;
    Ok(())
}

/// An anonymous mapping that is never touched here: its pages are not
/// present until the kernel faults them in, so a copy with page faults
/// disabled into it fails and the kernel has to take its retry path.
struct Untouched {
    ptr: *mut u8,
    len: usize,
}

impl Untouched {
    fn new(len: usize) -> Result<Untouched, Outcome> {
        // SAFETY: a fresh private anonymous mapping, checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Outcome::Fail(format!(
                "mmap: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(Untouched { ptr: p.cast(), len })
    }

    fn bytes(&self, n: usize) -> Vec<u8> {
        // SAFETY: n <= len bytes of our own live mapping.
        unsafe { std::slice::from_raw_parts(self.ptr, n.min(self.len)) }.to_vec()
    }
}

impl Drop for Untouched {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in new().
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Receive one message into `buf` with a raw SQE and return the CQE result.
fn recv_raw(ring: &mut Ring, sub: u32, buf: *mut u8, len: u32) -> Result<i32, Error> {
    push(
        ring,
        IpcRecv::new(sub, buf, len).nonblock().build().user_data(77),
    )?;
    ring.submit()?;
    Ok(ring.wait_for(77)?.res)
}
