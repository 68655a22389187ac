//! io_uring IPC channels as a benchmark mechanism.
//!
//! Every ring is set up with IORING_SETUP_SINGLE_ISSUER |
//! IORING_SETUP_DEFER_TASKRUN, in the thread that uses it. Senders queue a
//! batch of IORING_OP_IPC_SEND (with IOIPC_SEND_WAIT: a full channel parks
//! the request instead of failing) and submit it with one io_uring_enter;
//! receivers keep several blocking IORING_OP_IPC_RECV in flight and sleep in
//! io_uring_enter until one completes, or (multishot) keep one IPC_RECV with
//! IOIPC_RECV_MULTISHOT that fills buffers of a provided buffer ring, one
//! CQE per message. Nothing spins.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, OnceLock};

use anyhow::{bail, Context, Result};
use liburing_ipc::ipc::{Attach, ChannelConfig, Delivery};
use liburing_ipc::opcode::{self, IpcRecv, IpcRecvMultishot, IpcSend};
use liburing_ipc::uapi::io_uring::{IOIPC_SUB_RECV, IOIPC_SUB_SEND, IORING_CQE_F_MORE};
use liburing_ipc::{ipc, BufRing, Error, Ring};

use crate::transport::{write_all, Fabric, FdKind, Peer, PingFabric, Rx, Slots, Tx};
use liburing_ipc::uapi::io_uring::{IOSQE_CQE_SKIP_SUCCESS, IOSQE_IO_LINK};
use uring_ipc_bench::payload;

/// SQ entries of every ring.
const RING_ENTRIES: u32 = 64;

/// A ring as the benchmarks use it.
pub fn ring() -> Result<Ring> {
    Ring::builder(RING_ENTRIES)
        .single_issuer()
        .defer_taskrun()
        .build()
        .context("io_uring_setup(SINGLE_ISSUER | DEFER_TASKRUN)")
}

/// Why io_uring IPC can't be measured on this kernel, if it can't.
pub fn unsupported_reason() -> Option<String> {
    let ring = match ring() {
        Ok(r) => r,
        Err(e) => return Some(format!("{e:#}")),
    };
    match ring.ipc_supported() {
        Ok(true) => None,
        Ok(false) => Some(
            "the running kernel has no IORING_OP_IPC_SEND/IPC_RECV (not the patched kernel)".into(),
        ),
        Err(e) => Some(format!("IORING_REGISTER_PROBE: {e}")),
    }
}

/// Take `n` completions off `ring`, waiting as needed; each must have
/// transferred `len` bytes.
fn reap(ring: &mut Ring, mut n: usize, len: usize, op: &str) -> Result<()> {
    while n > 0 {
        match ring.pop_cqe() {
            Some(c) => {
                if c.res < 0 {
                    return Err(Error::os("cqe", -c.res)).with_context(|| op.to_string());
                }
                if c.res as usize != len {
                    bail!("{op} transferred {} bytes, expected {len}", c.res);
                }
                n -= 1;
            }
            None => {
                ring.submit_and_wait(n as u32)?;
            }
        }
    }
    Ok(())
}

/// The channel of one stream measurement: created by the sender's ring.
pub struct UringStream {
    delivery: Delivery,
    size: usize,
    entries: u32,
    batch: usize,
    depth: usize,
    /// Receivers use one multishot IPC_RECV (`depth` provided buffers).
    multishot: bool,
    channel: OnceLock<u32>,
    /// Subscriber ids of the receivers (targets of STOP messages).
    receivers: Mutex<Vec<u32>>,
}

impl UringStream {
    pub fn new(
        delivery: Delivery,
        size: usize,
        entries: u32,
        batch: usize,
        depth: usize,
        multishot: bool,
    ) -> UringStream {
        UringStream {
            delivery,
            size,
            entries,
            batch,
            depth,
            multishot,
            channel: OnceLock::new(),
            receivers: Mutex::new(Vec::new()),
        }
    }
}

struct UringTx<'a> {
    fabric: &'a UringStream,
    ring: Ring,
    sub: u32,
    bufs: Vec<Vec<u8>>,
}

impl Tx for UringTx<'_> {
    fn batch(&self) -> usize {
        self.bufs.len()
    }
    fn buf(&mut self, i: usize) -> &mut [u8] {
        &mut self.bufs[i]
    }
    fn send(&mut self, n: usize) -> Result<()> {
        for (i, b) in self.bufs[..n].iter().enumerate() {
            let sqe = IpcSend::new(self.sub, b.as_ptr(), b.len() as u32)
                .wait()
                .build()
                .user_data(i as u64);
            // SAFETY: the buffers live in self and are not touched until
            // reap() below has collected every completion.
            unsafe { self.ring.push(&sqe)? };
        }
        reap(&mut self.ring, n, self.fabric.size, "IPC_SEND")
    }
    /// Multicast hands messages out round-robin, so a STOP could reach a
    /// receiver that already stopped; target each receiver instead.
    fn stop(&mut self, _receivers: usize) -> Result<()> {
        let targets = self.fabric.receivers.lock().unwrap().clone();
        payload::stamp(&mut self.bufs[0], payload::STOP);
        let b = &self.bufs[0];
        for t in &targets {
            let sqe = IpcSend::new(self.sub, b.as_ptr(), b.len() as u32)
                .target(*t)
                .wait()
                .build();
            // SAFETY: bufs[0] is not touched until the completion is reaped.
            unsafe { self.ring.push(&sqe)? };
            reap(&mut self.ring, 1, self.fabric.size, "IPC_SEND (stop)")?;
        }
        Ok(())
    }
}

struct UringRx {
    ring: Ring,
    sub: u32,
    bufs: Vec<Vec<u8>>,
    busy: Vec<bool>,
    in_flight: usize,
}

impl Rx for UringRx {
    fn recv(&mut self, max: usize, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<usize> {
        let want = self.bufs.len().min(max.max(1));
        while self.in_flight < want {
            let i = self.busy.iter().position(|b| !b).expect("a free buffer");
            let b = &mut self.bufs[i];
            let sqe = IpcRecv::new(self.sub, b.as_mut_ptr(), b.len() as u32)
                .build()
                .user_data(i as u64);
            // SAFETY: buffer i is marked busy and not read or moved until
            // its completion arrives.
            unsafe { self.ring.push(&sqe)? };
            self.busy[i] = true;
            self.in_flight += 1;
        }
        self.ring.submit_and_wait(1)?;
        let mut got = 0;
        while let Some(c) = self.ring.pop_cqe() {
            let i = c.user_data as usize;
            self.busy[i] = false;
            self.in_flight -= 1;
            if c.res < 0 {
                return Err(Error::os("IPC_RECV", -c.res).into());
            }
            f(&self.bufs[i][..c.res as usize])?;
            got += 1;
        }
        Ok(got)
    }
}

impl Fabric for UringStream {
    fn tx(&self) -> Result<Box<dyn Tx + '_>> {
        let ring = ring()?;
        let cfg = ChannelConfig::new(self.delivery, self.entries, self.size as u32).private();
        let ch = ring.ipc_create(&cfg).context("IPC_CHANNEL_CREATE")?;
        let sub = ring
            .ipc_attach(Attach::Id(ch), IOIPC_SUB_SEND)
            .context("IPC_CHANNEL_ATTACH (sender)")?;
        self.channel
            .set(ch)
            .map_err(|_| anyhow::anyhow!("one sender per measurement"))?;
        Ok(Box::new(UringTx {
            fabric: self,
            ring,
            sub: sub.id,
            bufs: vec![vec![0; self.size]; self.batch],
        }))
    }
    fn rx(&self, _i: usize) -> Result<Box<dyn Rx + '_>> {
        let ring = ring()?;
        let ch = *self
            .channel
            .get()
            .context("the sender creates the channel")?;
        let sub = ring
            .ipc_attach(Attach::Id(ch), IOIPC_SUB_RECV)
            .context("IPC_CHANNEL_ATTACH (receiver)")?;
        self.receivers.lock().unwrap().push(sub.id);
        if self.multishot {
            let hdr = std::mem::size_of::<ipc::MsgInfo>();
            let n = (self.depth as u16).next_power_of_two();
            let bufs = BufRing::new(&ring, MSHOT_BGID, n, (self.size + hdr) as u32)
                .context("IORING_REGISTER_PBUF_RING")?;
            return Ok(Box::new(UringMshotRx {
                ring,
                bufs,
                sub: sub.id,
                armed: false,
            }));
        }
        Ok(Box::new(UringRx {
            ring,
            sub: sub.id,
            bufs: vec![vec![0; self.size + 64]; self.depth],
            busy: vec![false; self.depth],
            in_flight: 0,
        }))
    }
}

/// Buffer group of a multishot receiver's buffer ring.
const MSHOT_BGID: u16 = 1;
/// user_data of the multishot IPC_RECV.
const MSHOT_TAG: u64 = 0x4d53;

/// A receiver with one multishot IPC_RECV: each message arrives in a
/// buffer of `bufs`, behind its msg_info header, and the buffer goes back
/// to the ring once the message was checked. When the request ends (out
/// of buffers: -ENOBUFS, the message stays queued) it is queued again.
struct UringMshotRx {
    ring: Ring,
    bufs: BufRing,
    sub: u32,
    armed: bool,
}

impl Rx for UringMshotRx {
    fn recv(&mut self, _max: usize, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<usize> {
        if !self.armed {
            let sqe = IpcRecvMultishot::new(self.sub, MSHOT_BGID)
                .build()
                .user_data(MSHOT_TAG);
            // SAFETY: the SQE points at no memory of ours; the kernel fills
            // buffers of self.bufs, which stays registered while self lives.
            unsafe { self.ring.push(&sqe)? };
            self.armed = true;
        }
        self.ring.submit_and_wait(1)?;
        let mut got = 0;
        while let Some(c) = self.ring.pop_cqe() {
            if c.flags & IORING_CQE_F_MORE == 0 {
                self.armed = false;
            }
            if let Some((bid, len)) = self.bufs.take(&c) {
                let r = match ipc::parse_multishot(self.bufs.buf(bid, len)) {
                    Some((_, payload)) => f(payload),
                    None => Err(anyhow::anyhow!(
                        "multishot IPC_RECV: {len} bytes, shorter than the message header"
                    )),
                };
                self.bufs.recycle(bid);
                r?;
                got += 1;
            } else if c.res < 0 && c.res != -libc::ENOBUFS {
                return Err(Error::os("IPC_RECV (multishot)", -c.res).into());
            }
        }
        Ok(got)
    }
}

/// Ping-pong over two unicast channels, both created by the client's ring.
pub struct UringPing {
    size: usize,
    entries: u32,
    /// (client to server, server to client)
    channels: OnceLock<(u32, u32)>,
}

impl UringPing {
    pub fn new(size: usize, entries: u32) -> UringPing {
        UringPing {
            size,
            entries,
            channels: OnceLock::new(),
        }
    }
}

struct UringPeer {
    ring: Ring,
    out: u32,
    inn: u32,
}

impl Peer for UringPeer {
    /// SEND and RECV go in with one io_uring_enter, which also waits.
    fn send_recv(&mut self, msg: &[u8], buf: &mut [u8]) -> Result<usize> {
        let s = IpcSend::new(self.out, msg.as_ptr(), msg.len() as u32)
            .wait()
            .build()
            .user_data(1);
        let r = IpcRecv::new(self.inn, buf.as_mut_ptr(), buf.len() as u32)
            .build()
            .user_data(2);
        // SAFETY: msg and buf are borrowed until both completions are reaped
        // below, before returning.
        unsafe {
            self.ring.push(&s)?;
            self.ring.push(&r)?;
        }
        let mut len = None;
        let mut left = 2;
        while left > 0 {
            match self.ring.pop_cqe() {
                Some(c) => {
                    left -= 1;
                    if c.res < 0 {
                        let op = if c.user_data == 1 {
                            "IPC_SEND"
                        } else {
                            "IPC_RECV"
                        };
                        return Err(Error::os(op, -c.res).into());
                    }
                    if c.user_data == 2 {
                        len = Some(c.res as usize);
                    }
                }
                None => {
                    self.ring.submit_and_wait(left)?;
                }
            }
        }
        Ok(len.expect("the RECV completed"))
    }
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let s = IpcSend::new(self.out, msg.as_ptr(), msg.len() as u32)
            .wait()
            .build();
        // SAFETY: msg is borrowed until reap() returns.
        unsafe { self.ring.push(&s)? };
        reap(&mut self.ring, 1, msg.len(), "IPC_SEND")
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        Ok(self.ring.ipc_recv(self.inn, buf)?)
    }
}

impl PingFabric for UringPing {
    fn client(&self) -> Result<Box<dyn Peer + '_>> {
        let ring = ring()?;
        let cfg = ChannelConfig::new(Delivery::Unicast, self.entries, self.size as u32).private();
        let there = ring.ipc_create(&cfg).context("IPC_CHANNEL_CREATE")?;
        let back = ring.ipc_create(&cfg).context("IPC_CHANNEL_CREATE")?;
        let out = ring.ipc_attach(Attach::Id(there), IOIPC_SUB_SEND)?;
        let inn = ring.ipc_attach(Attach::Id(back), IOIPC_SUB_RECV)?;
        self.channels
            .set((there, back))
            .map_err(|_| anyhow::anyhow!("one client per measurement"))?;
        Ok(Box::new(UringPeer {
            ring,
            out: out.id,
            inn: inn.id,
        }))
    }
    fn server(&self) -> Result<Box<dyn Peer + '_>> {
        let ring = ring()?;
        let (there, back) = *self
            .channels
            .get()
            .context("the client creates the channels")?;
        let inn = ring.ipc_attach(Attach::Id(there), IOIPC_SUB_RECV)?;
        let out = ring.ipc_attach(Attach::Id(back), IOIPC_SUB_SEND)?;
        Ok(Box::new(UringPeer {
            ring,
            out: out.id,
            inn: inn.id,
        }))
    }
}

// ---------------------------------------------------------------------------
// A pipe written through io_uring: the batched baseline.

/// A pipe whose writer queues a batch of IORING_OP_WRITE (linked, so they
/// land in order) and submits it with one io_uring_enter, on a ring set up
/// like the io_uring IPC ones; the reader takes up to `depth` messages per
/// read(2). The same syscall amortisation as io_uring IPC batched, on a
/// plain pipe.
pub struct PipeUring {
    size: usize,
    batch: usize,
    depth: usize,
    w: OwnedFd,
    r: OwnedFd,
}

impl PipeUring {
    pub fn new(
        mech: &str,
        size: usize,
        capacity: usize,
        batch: usize,
        depth: usize,
    ) -> Result<PipeUring> {
        let (w, r) = FdKind::Pipe.sized_pair(mech, size, capacity)?;
        Ok(PipeUring {
            size,
            batch,
            depth,
            w,
            r,
        })
    }
}

struct PipeUringTx {
    ring: Ring,
    fd: RawFd,
    bufs: Vec<Vec<u8>>,
    res: Vec<i32>,
}

impl Tx for PipeUringTx {
    fn batch(&self) -> usize {
        self.bufs.len()
    }
    fn buf(&mut self, i: usize) -> &mut [u8] {
        &mut self.bufs[i]
    }
    fn send(&mut self, n: usize) -> Result<()> {
        for (i, b) in self.bufs[..n].iter().enumerate() {
            let mut sqe =
                opcode::write(self.fd, b.as_ptr(), b.len() as u32, -1).user_data(i as u64);
            if i + 1 < n {
                sqe = sqe.flags(IOSQE_IO_LINK);
            }
            // SAFETY: the buffers live in self and are not touched until
            // every completion has been collected below.
            unsafe { self.ring.push(&sqe)? };
        }
        let mut left = n;
        while left > 0 {
            match self.ring.pop_cqe() {
                Some(c) => {
                    self.res[c.user_data as usize] = c.res;
                    left -= 1;
                }
                None => {
                    self.ring.submit_and_wait(left as u32)?;
                }
            }
        }
        // A pipe may take part of a large write; the link then breaks and
        // the writes after it are cancelled. Finish them in order.
        let size = self.bufs[0].len();
        if let Some(j) = self.res[..n].iter().position(|&r| r != size as i32) {
            let done = self.res[j];
            if done < 0 && done != -libc::ECANCELED {
                return Err(Error::os("IORING_OP_WRITE", -done).into());
            }
            write_all(self.fd, &self.bufs[j][done.max(0) as usize..])?;
            for i in j + 1..n {
                if self.res[i] != -libc::ECANCELED {
                    bail!(
                        "IORING_OP_WRITE {i} completed with {} after a short write",
                        self.res[i]
                    );
                }
                write_all(self.fd, &self.bufs[i])?;
            }
        }
        Ok(())
    }
}

/// Reads up to `depth` messages per read(2) from a byte stream.
struct BulkRx {
    fd: RawFd,
    size: usize,
    buf: Vec<u8>,
    have: usize,
}

impl Rx for BulkRx {
    fn recv(&mut self, _max: usize, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<usize> {
        loop {
            // SAFETY: buf[have..] is valid for writes of its length.
            let r = unsafe {
                libc::read(
                    self.fd,
                    self.buf[self.have..].as_mut_ptr().cast(),
                    self.buf.len() - self.have,
                )
            };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(e).context("read");
            }
            if r == 0 {
                bail!("end of file with {} bytes of a message", self.have);
            }
            self.have += r as usize;
            let whole = self.have / self.size;
            for k in 0..whole {
                f(&self.buf[k * self.size..(k + 1) * self.size])?;
            }
            let used = whole * self.size;
            self.buf.copy_within(used..self.have, 0);
            self.have -= used;
            if whole > 0 {
                return Ok(whole);
            }
        }
    }
}

impl Fabric for PipeUring {
    fn tx(&self) -> Result<Box<dyn Tx + '_>> {
        Ok(Box::new(PipeUringTx {
            ring: ring()?,
            fd: self.w.as_raw_fd(),
            bufs: vec![vec![0; self.size]; self.batch],
            res: vec![0; self.batch],
        }))
    }
    fn rx(&self, _i: usize) -> Result<Box<dyn Rx + '_>> {
        Ok(Box::new(BulkRx {
            fd: self.r.as_raw_fd(),
            size: self.size,
            buf: vec![0; self.size * self.depth],
            have: 0,
        }))
    }
}

// ---------------------------------------------------------------------------
// IORING_OP_MSG_RING: payload in shared memory, the message is a CQE.

/// user_data of a credit: the receiver's index in the low bits.
const CREDIT: u64 = 1 << 63;
/// user_data of a request whose own completion we do not expect.
const QUIET: u64 = u64::MAX;

/// Messages over IORING_OP_MSG_RING: the sender copies each message once
/// into a shared ring of slots and posts one CQE per receiver on that
/// receiver's ring (result: length, user_data: sequence number), one
/// io_uring_enter per message. Receivers read the slot and hand slots back
/// with a MSG_RING of their own to the sender's ring every quarter ring
/// (and before they sleep). Rings as for io_uring IPC.
pub struct MsgRing {
    slots: Slots,
    receivers: usize,
    rx_fds: Mutex<Vec<Option<RawFd>>>,
    tx_fd: OnceLock<RawFd>,
}

impl MsgRing {
    pub fn new(slots: u32, size: usize, receivers: usize) -> Result<MsgRing> {
        Ok(MsgRing {
            slots: Slots::new(slots, size, 64)?,
            receivers,
            rx_fds: Mutex::new(vec![None; receivers]),
            tx_fd: OnceLock::new(),
        })
    }

    /// A ring whose CQ holds a full channel's worth of messages.
    fn ring(&self) -> Result<Ring> {
        Ring::builder(RING_ENTRIES)
            .single_issuer()
            .defer_taskrun()
            .cq_entries((2 * self.slots.slots() as u32).max(2 * RING_ENTRIES))
            .build()
            .context("io_uring_setup(SINGLE_ISSUER | DEFER_TASKRUN | CQSIZE)")
    }
}

struct MsgRingTx<'a> {
    f: &'a MsgRing,
    ring: Ring,
    tail: u64,
    /// Slots each receiver has handed back, cumulative.
    acked: Vec<u64>,
    fds: Vec<RawFd>,
    buf: Vec<u8>,
}

impl MsgRingTx<'_> {
    /// Take one completion: a credit, or one of our sends (returns true).
    fn absorb(&mut self, c: liburing_ipc::Cqe) -> Result<bool> {
        if c.user_data & CREDIT != 0 && c.user_data != QUIET {
            self.acked[(c.user_data & !CREDIT) as usize] += c.res as u64;
            return Ok(false);
        }
        if c.res < 0 {
            return Err(Error::os("IORING_OP_MSG_RING", -c.res).into());
        }
        Ok(true)
    }
}

impl Tx for MsgRingTx<'_> {
    fn batch(&self) -> usize {
        1
    }
    fn buf(&mut self, _i: usize) -> &mut [u8] {
        &mut self.buf
    }
    fn send(&mut self, _n: usize) -> Result<()> {
        if self.fds.is_empty() {
            let fds = self.f.rx_fds.lock().unwrap();
            self.fds = fds
                .iter()
                .map(|f| f.context("a receiver has no ring"))
                .collect::<Result<_>>()?;
        }
        let slots = self.f.slots.slots();
        while self.tail - self.acked.iter().copied().min().unwrap_or(0) >= slots {
            match self.ring.pop_cqe() {
                Some(c) => {
                    if self.absorb(c)? {
                        bail!("a MSG_RING completion nobody waited for");
                    }
                }
                None => {
                    self.ring.submit_and_wait(1)?;
                }
            }
        }
        // SAFETY: every receiver has handed this slot back (acked above),
        // and none reads it again before the CQEs below name it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.buf.as_ptr(),
                self.f.slots.slot(self.tail),
                self.buf.len(),
            )
        };
        for &fd in &self.fds {
            let sqe = opcode::msg_ring(fd, self.buf.len() as u32, self.tail);
            // SAFETY: MSG_RING references no memory of ours.
            unsafe { self.ring.push(&sqe)? };
        }
        let mut left = self.fds.len();
        while left > 0 {
            match self.ring.pop_cqe() {
                Some(c) => {
                    if self.absorb(c)? {
                        left -= 1;
                    }
                }
                None => {
                    self.ring.submit_and_wait(left as u32)?;
                }
            }
        }
        self.tail += 1;
        Ok(())
    }
}

struct MsgRingRx<'a> {
    f: &'a MsgRing,
    i: usize,
    ring: Ring,
    tx_fd: RawFd,
    freed: u64,
}

impl MsgRingRx<'_> {
    fn give_back(&mut self) -> Result<()> {
        if self.freed > 0 {
            let sqe = opcode::msg_ring(self.tx_fd, self.freed as u32, CREDIT | self.i as u64)
                .flags(IOSQE_CQE_SKIP_SUCCESS)
                .user_data(QUIET);
            // SAFETY: MSG_RING references no memory of ours.
            unsafe { self.ring.push(&sqe)? };
            self.freed = 0;
        }
        Ok(())
    }
}

impl Rx for MsgRingRx<'_> {
    fn recv(&mut self, _max: usize, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<usize> {
        let quarter = (self.f.slots.slots() / 4).max(1);
        loop {
            let mut got = 0;
            while let Some(c) = self.ring.pop_cqe() {
                if c.user_data == QUIET {
                    return Err(Error::os("IORING_OP_MSG_RING (credit)", -c.res).into());
                }
                let len = c.res as usize;
                if c.res < 0 || len > self.f.slots.size() {
                    bail!("message CQE with result {}", c.res);
                }
                // SAFETY: the sender wrote this slot before posting the
                // CQE and does not reuse it before we hand it back.
                let msg =
                    unsafe { std::slice::from_raw_parts(self.f.slots.slot(c.user_data), len) };
                f(msg)?;
                got += 1;
                self.freed += 1;
                if self.freed >= quarter {
                    self.give_back()?;
                }
            }
            if got > 0 {
                self.ring.submit()?;
                return Ok(got);
            }
            // Hand slots back before sleeping: the sender may wait for them.
            self.give_back()?;
            self.ring.submit_and_wait(1)?;
        }
    }
}

impl Fabric for MsgRing {
    fn tx(&self) -> Result<Box<dyn Tx + '_>> {
        let ring = self.ring()?;
        self.tx_fd
            .set(ring.fd())
            .map_err(|_| anyhow::anyhow!("one sender per measurement"))?;
        Ok(Box::new(MsgRingTx {
            f: self,
            ring,
            tail: 0,
            acked: vec![0; self.receivers],
            fds: Vec::new(),
            buf: vec![0; self.slots.size()],
        }))
    }
    fn rx(&self, i: usize) -> Result<Box<dyn Rx + '_>> {
        let ring = self.ring()?;
        let tx_fd = *self.tx_fd.get().context("the sender sets up first")?;
        self.rx_fds.lock().unwrap()[i] = Some(ring.fd());
        Ok(Box::new(MsgRingRx {
            f: self,
            i,
            ring,
            tx_fd,
            freed: 0,
        }))
    }
}

/// ns per IORING_OP_NOP, submitted `batch` at a time: the floor under any
/// io_uring request on this machine.
pub fn nop_cost(total: u64, batch: u32) -> Result<f64> {
    let mut ring = ring()?;
    let t0 = std::time::Instant::now();
    let mut done = 0u64;
    while done < total {
        for _ in 0..batch {
            // SAFETY: NOP references no memory.
            unsafe { ring.push(&opcode::nop())? };
        }
        reap(&mut ring, batch as usize, 0, "NOP")?;
        done += batch as u64;
    }
    Ok(t0.elapsed().as_nanos() as f64 / done as f64)
}
