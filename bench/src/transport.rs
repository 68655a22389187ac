//! The mechanisms on raw system calls: pipes, Unix sockets, shared memory
//! with eventfd, POSIX message queues. io_uring IPC lives in `uring.rs`.
//!
//! Endpoints are created by a [`Fabric`] (streams) or [`PingFabric`]
//! (ping-pong) inside the thread that uses them, because io_uring rings set
//! up with IORING_SETUP_SINGLE_ISSUER belong to the thread that created them.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

use uring_ipc_bench::payload;

/// The sending side of a stream.
pub trait Tx {
    /// How many messages one `send` call takes.
    fn batch(&self) -> usize;
    /// Buffer `i` of the next batch, exactly one message long.
    fn buf(&mut self, i: usize) -> &mut [u8];
    /// Send buffers `0..n`, in order, to every receiver (copies) or into
    /// the shared queue.
    fn send(&mut self, n: usize) -> Result<()>;
    /// Send one STOP message per receiver of a work queue.
    fn stop(&mut self, receivers: usize) -> Result<()> {
        for _ in 0..receivers {
            payload::stamp(self.buf(0), payload::STOP);
            self.send(1)?;
        }
        Ok(())
    }
}

/// The receiving side of a stream.
pub trait Rx {
    /// Wait for at least one message and hand every message received to
    /// `f`; `max` bounds how many are still expected. Returns the count.
    fn recv(&mut self, max: usize, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<usize>;
}

/// Creates the endpoints of one stream measurement.
pub trait Fabric: Sync {
    /// In the sender thread, before any receiver is created.
    fn tx(&self) -> Result<Box<dyn Tx + '_>>;
    /// In receiver thread `i`.
    fn rx(&self, i: usize) -> Result<Box<dyn Rx + '_>>;
}

/// One party of a ping-pong.
pub trait Peer {
    /// Send `msg`, then wait for one message into `buf`; returns its length.
    fn send_recv(&mut self, msg: &[u8], buf: &mut [u8]) -> Result<usize> {
        self.send(msg)?;
        self.recv(buf)
    }
    fn send(&mut self, msg: &[u8]) -> Result<()>;
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize>;
}

/// Creates the two parties of a ping-pong.
pub trait PingFabric: Sync {
    /// In the client thread, before the server is created.
    fn client(&self) -> Result<Box<dyn Peer + '_>>;
    fn server(&self) -> Result<Box<dyn Peer + '_>>;
}

fn cvt(r: libc::c_int, what: &str) -> Result<libc::c_int> {
    if r < 0 {
        Err(std::io::Error::last_os_error()).with_context(|| what.to_string())
    } else {
        Ok(r)
    }
}

fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: fd was just returned to us by the kernel and is owned by nobody.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors.
    cvt(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) },
        "pipe2",
    )?;
    Ok((own(fds[0]), own(fds[1])))
}

pub fn socketpair(ty: libc::c_int) -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors.
    cvt(
        unsafe { libc::socketpair(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) },
        "socketpair",
    )?;
    Ok((own(fds[0]), own(fds[1])))
}

fn eventfd() -> Result<OwnedFd> {
    // SAFETY: plain system call, no pointers.
    Ok(own(cvt(
        unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) },
        "eventfd",
    )?))
}

/// What each mechanism's buffer was sized to, by mechanism and message
/// size, as read back from the kernel (for the conditions table).
static BUFFERS: Mutex<BTreeMap<String, BTreeMap<usize, String>>> = Mutex::new(BTreeMap::new());

/// Record how `mech`'s buffer was sized for messages of `size` bytes.
pub fn note_buffer(mech: &str, size: usize, what: String) {
    BUFFERS
        .lock()
        .unwrap()
        .entry(mech.to_string())
        .or_default()
        .insert(size, what);
}

/// One line per mechanism: "pipe: 64B 8192 B, 32KiB 4194304 B".
pub fn buffer_notes() -> Vec<String> {
    BUFFERS
        .lock()
        .unwrap()
        .iter()
        .map(|(mech, by)| {
            let v: Vec<String> = by
                .iter()
                .map(|(z, w)| format!("{} {w}", uring_ipc_bench::model::fmt_size(*z as u32)))
                .collect();
            format!("{mech}: {}", v.join(", "))
        })
        .collect()
}

/// Size a pipe's buffer to `bytes` (rounded up by the kernel to a power of
/// two pages); returns what the kernel reports. Above
/// /proc/sys/fs/pipe-max-size this needs CAP_SYS_RESOURCE; then the pipe
/// keeps its default.
fn size_pipe(fd: RawFd, bytes: usize) -> String {
    // SAFETY: fcntl on a descriptor we own, no pointers.
    let set = unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, bytes as libc::c_int) };
    // SAFETY: as above.
    let got = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
    if set < 0 {
        format!(
            "{got} B (F_SETPIPE_SZ {bytes}: {})",
            std::io::Error::last_os_error()
        )
    } else {
        format!("{got} B")
    }
}

/// Set a socket's send buffer to `bytes` (SO_SNDBUFFORCE, which ignores
/// net.core.wmem_max but needs CAP_NET_ADMIN, else SO_SNDBUF); the kernel
/// doubles the value for its own overhead. Returns what it reports.
fn size_sndbuf(fd: RawFd, bytes: usize) -> String {
    let v = bytes as libc::c_int;
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    for opt in [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF] {
        // SAFETY: v is a c_int of the given length.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                len,
            )
        };
        if r == 0 {
            break;
        }
    }
    let mut got: libc::c_int = 0;
    let mut glen = len;
    // SAFETY: got and glen are valid for getsockopt to fill in.
    unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&mut got as *mut libc::c_int).cast(),
            &mut glen,
        )
    };
    format!("SO_SNDBUF {got} B")
}

/// Datagrams a Unix datagram socket queues before the sender blocks
/// (net.unix.max_dgram_qlen, read when a socket is created). Set once per
/// run to the channel slots; returns what the sysctl says afterwards.
pub fn set_dgram_qlen(slots: u32) -> String {
    const P: &str = "/proc/sys/net/unix/max_dgram_qlen";
    let set = std::fs::write(P, slots.to_string());
    let now = std::fs::read_to_string(P)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| format!("unreadable ({e})"));
    match set {
        Ok(()) => format!("net.unix.max_dgram_qlen {now}"),
        Err(e) => format!("net.unix.max_dgram_qlen {now} (could not set {slots}: {e})"),
    }
}

/// net.unix.max_dgram_qlen as it is.
pub fn dgram_qlen() -> String {
    match std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen") {
        Ok(s) => format!("net.unix.max_dgram_qlen {} (left as it is)", s.trim()),
        Err(e) => format!("net.unix.max_dgram_qlen unreadable ({e})"),
    }
}

/// Lift RLIMIT_MSGQUEUE so POSIX queues of the channel's size fit (root
/// only); returns the limit afterwards.
pub fn lift_mq_rlimit() -> String {
    let inf = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: inf is a valid rlimit.
    let r = unsafe { libc::setrlimit(libc::RLIMIT_MSGQUEUE, &inf) };
    // SAFETY: an all-zero rlimit is valid for getrlimit to fill in.
    let mut now: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: now is a valid rlimit.
    unsafe { libc::getrlimit(libc::RLIMIT_MSGQUEUE, &mut now) };
    let cur = if now.rlim_cur == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        format!("{} B", now.rlim_cur)
    };
    if r == 0 {
        format!("RLIMIT_MSGQUEUE {cur}")
    } else {
        format!(
            "RLIMIT_MSGQUEUE {cur} (could not lift: {})",
            std::io::Error::last_os_error()
        )
    }
}

/// Write all of `buf` (a blocking descriptor writes everything unless a
/// signal interrupts it).
pub fn write_all(fd: RawFd, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        // SAFETY: buf is valid for reads of its length.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e).context("write");
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// Read one message: exactly `size` bytes from a byte stream, or one
/// datagram (into all of `buf`, which is larger than a message so that an
/// oversized one shows).
fn read_msg(fd: RawFd, buf: &mut [u8], size: usize, stream: bool) -> Result<usize> {
    let want = if stream { size } else { buf.len() };
    let mut got = 0;
    loop {
        // SAFETY: buf[got..want] is valid for writes.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), want - got) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e).context("read");
        }
        if n == 0 {
            bail!("end of file after {got} bytes of a message");
        }
        got += n as usize;
        if !stream || got == size {
            return Ok(got);
        }
    }
}

fn efd_read(fd: RawFd) -> Result<u64> {
    let mut v = 0u64;
    loop {
        // SAFETY: v is 8 writable bytes, as eventfd reads need.
        let n = unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
        if n == 8 {
            return Ok(v);
        }
        let e = std::io::Error::last_os_error();
        if n < 0 && e.raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return Err(e).context("eventfd read");
    }
}

fn efd_write(fd: RawFd, v: u64) -> Result<()> {
    write_all(fd, &v.to_le_bytes()).context("eventfd write")
}

// ---------------------------------------------------------------------------
// Descriptor-based mechanisms.

/// Which descriptor pair a mechanism uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdKind {
    Pipe,
    UnixStream,
    UnixDgram,
}

impl FdKind {
    fn stream(self) -> bool {
        self != FdKind::UnixDgram
    }

    /// (write end, read end) for one direction.
    fn pair(self) -> Result<(OwnedFd, OwnedFd)> {
        match self {
            FdKind::Pipe => pipe().map(|(r, w)| (w, r)),
            FdKind::UnixStream => socketpair(libc::SOCK_STREAM),
            FdKind::UnixDgram => socketpair(libc::SOCK_DGRAM),
        }
    }

    /// A pair whose buffer holds `capacity` bytes (see `size_pipe`,
    /// `size_sndbuf`); the sizing is recorded under `mech`.
    pub fn sized_pair(
        self,
        mech: &str,
        size: usize,
        capacity: usize,
    ) -> Result<(OwnedFd, OwnedFd)> {
        let (w, r) = self.pair()?;
        let what = match self {
            FdKind::Pipe => size_pipe(w.as_raw_fd(), capacity),
            FdKind::UnixStream | FdKind::UnixDgram => size_sndbuf(w.as_raw_fd(), capacity),
        };
        note_buffer(mech, size, what);
        Ok((w, r))
    }
}

struct FdTx {
    fds: Vec<RawFd>,
    buf: Vec<u8>,
}

impl Tx for FdTx {
    fn batch(&self) -> usize {
        1
    }
    fn buf(&mut self, _i: usize) -> &mut [u8] {
        &mut self.buf
    }
    fn send(&mut self, n: usize) -> Result<()> {
        debug_assert_eq!(n, 1);
        for &fd in &self.fds {
            write_all(fd, &self.buf)?;
        }
        Ok(())
    }
}

struct FdRx {
    fd: RawFd,
    size: usize,
    stream: bool,
    buf: Vec<u8>,
}

impl Rx for FdRx {
    fn recv(&mut self, _max: usize, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<usize> {
        let n = read_msg(self.fd, &mut self.buf, self.size, self.stream)?;
        f(&self.buf[..n])?;
        Ok(1)
    }
}

/// One descriptor pair per receiver; the sender writes every message to
/// each of them (a copy per receiver).
pub struct FdCopies {
    kind: FdKind,
    size: usize,
    tx: Vec<OwnedFd>,
    rx: Vec<OwnedFd>,
}

impl FdCopies {
    /// `capacity`: bytes each pair buffers.
    pub fn new(
        kind: FdKind,
        mech: &str,
        size: usize,
        receivers: usize,
        capacity: usize,
    ) -> Result<FdCopies> {
        let (mut tx, mut rx) = (Vec::new(), Vec::new());
        for _ in 0..receivers {
            let (w, r) = kind.sized_pair(mech, size, capacity)?;
            tx.push(w);
            rx.push(r);
        }
        Ok(FdCopies { kind, size, tx, rx })
    }
}

impl Fabric for FdCopies {
    fn tx(&self) -> Result<Box<dyn Tx + '_>> {
        Ok(Box::new(FdTx {
            fds: self.tx.iter().map(|f| f.as_raw_fd()).collect(),
            buf: vec![0; self.size],
        }))
    }
    fn rx(&self, i: usize) -> Result<Box<dyn Rx + '_>> {
        Ok(Box::new(FdRx {
            fd: self.rx[i].as_raw_fd(),
            size: self.size,
            stream: self.kind.stream(),
            buf: vec![0; self.size + 64],
        }))
    }
}

/// One descriptor pair shared by every receiver: a work queue, each
/// message taken by whichever receiver reads first.
pub struct FdQueue {
    kind: FdKind,
    size: usize,
    w: OwnedFd,
    r: OwnedFd,
}

impl FdQueue {
    /// A pipe carries messages atomically only up to PIPE_BUF bytes; above
    /// that, readers would get pieces of several messages.
    pub fn new(kind: FdKind, mech: &str, size: usize, capacity: usize) -> Result<FdQueue> {
        if kind == FdKind::Pipe && size > libc::PIPE_BUF {
            bail!("a shared pipe splits messages larger than PIPE_BUF (4096 bytes)");
        }
        let (w, r) = kind.sized_pair(mech, size, capacity)?;
        Ok(FdQueue { kind, size, w, r })
    }
}

impl Fabric for FdQueue {
    fn tx(&self) -> Result<Box<dyn Tx + '_>> {
        Ok(Box::new(FdTx {
            fds: vec![self.w.as_raw_fd()],
            buf: vec![0; self.size],
        }))
    }
    fn rx(&self, _i: usize) -> Result<Box<dyn Rx + '_>> {
        Ok(Box::new(FdRx {
            fd: self.r.as_raw_fd(),
            size: self.size,
            stream: self.kind.stream(),
            buf: vec![0; self.size + 64],
        }))
    }
}

struct FdPeer {
    w: RawFd,
    r: RawFd,
    size: usize,
    stream: bool,
}

impl Peer for FdPeer {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        write_all(self.w, msg)
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        read_msg(self.r, buf, self.size, self.stream)
    }
}

/// Ping-pong over two pipes or one socket pair.
pub struct FdPing {
    kind: FdKind,
    size: usize,
    /// (client write, server read, server write, client read)
    fds: [OwnedFd; 4],
}

impl FdPing {
    pub fn new(kind: FdKind, size: usize) -> Result<FdPing> {
        let fds = match kind {
            FdKind::Pipe => {
                let (cw, sr) = kind.pair()?;
                let (sw, cr) = kind.pair()?;
                [cw, sr, sw, cr]
            }
            _ => {
                let (c, s) = kind.pair()?;
                [c.try_clone()?, s.try_clone()?, s, c]
            }
        };
        Ok(FdPing { kind, size, fds })
    }
}

impl PingFabric for FdPing {
    fn client(&self) -> Result<Box<dyn Peer + '_>> {
        Ok(Box::new(FdPeer {
            w: self.fds[0].as_raw_fd(),
            r: self.fds[3].as_raw_fd(),
            size: self.size,
            stream: self.kind.stream(),
        }))
    }
    fn server(&self) -> Result<Box<dyn Peer + '_>> {
        Ok(Box::new(FdPeer {
            w: self.fds[2].as_raw_fd(),
            r: self.fds[1].as_raw_fd(),
            size: self.size,
            stream: self.kind.stream(),
        }))
    }
}

// ---------------------------------------------------------------------------
// Shared memory + eventfd.

/// A single-producer single-consumer ring of fixed-size slots in a shared
/// mapping. The producer publishes its tail in the mapping and writes 1 to
/// `data` per message; the consumer hands slots back in batches through
/// `space` (credits), so neither side spins.
///
/// The tail is only accessed as an atomic, and a slot is written by the
/// producer only while it holds a credit for it and read by the consumer
/// only between the tail that published it and the credit that returns it.
pub struct ShmRing {
    slots: Slots,
    data: OwnedFd,
    space: OwnedFd,
}

const SHM_HDR: usize = 64;

/// A fresh, populated anonymous shared mapping of `len` bytes.
fn shared_mapping(len: usize) -> std::io::Result<NonNull<u8>> {
    // SAFETY: a fresh anonymous shared mapping, checked below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    Ok(NonNull::new(p.cast()).expect("mmap success is not NULL"))
}

impl ShmRing {
    pub fn new(slots: u32, size: usize) -> Result<ShmRing> {
        Ok(ShmRing {
            slots: Slots::new(slots, size, SHM_HDR)?,
            data: eventfd()?,
            space: eventfd()?,
        })
    }

    /// The header's first word: the producer's tail.
    fn tail(&self) -> &AtomicU64 {
        self.slots.word(0)
    }

    fn slot(&self, seq: u64) -> *mut u8 {
        self.slots.slot(seq)
    }
}

struct ShmSender<'a> {
    ring: &'a ShmRing,
    tail: u64,
    credits: u64,
}

impl<'a> ShmSender<'a> {
    fn new(ring: &'a ShmRing) -> Self {
        // Rings are fresh: both sides start at sequence 0, whichever of
        // them is set up first.
        ShmSender {
            ring,
            tail: 0,
            credits: ring.slots.slots(),
        }
    }

    fn send(&mut self, msg: &[u8]) -> Result<()> {
        while self.credits == 0 {
            self.credits += efd_read(self.ring.space.as_raw_fd())?;
        }
        // SAFETY: we hold a credit for this slot, so the consumer is done
        // with it; msg.len() == size fits the slot.
        unsafe {
            std::ptr::copy_nonoverlapping(msg.as_ptr(), self.ring.slot(self.tail), msg.len())
        };
        self.tail += 1;
        self.credits -= 1;
        // Release: the payload is visible before the new tail.
        self.ring.tail().store(self.tail, Ordering::Release);
        efd_write(self.ring.data.as_raw_fd(), 1)
    }
}

struct ShmReceiver<'a> {
    ring: &'a ShmRing,
    head: u64,
    freed: u64,
}

impl<'a> ShmReceiver<'a> {
    fn new(ring: &'a ShmRing) -> Self {
        ShmReceiver {
            ring,
            head: 0,
            freed: 0,
        }
    }

    fn give_back(&mut self) -> Result<()> {
        if self.freed > 0 {
            efd_write(self.ring.space.as_raw_fd(), self.freed)?;
            self.freed = 0;
        }
        Ok(())
    }

    fn recv(&mut self, max: usize, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<usize> {
        loop {
            // Acquire: pairs with the producer's release of the tail.
            let tail = self.ring.tail().load(Ordering::Acquire);
            if tail == self.head {
                // Hand slots back before sleeping, or the producer may be
                // waiting for them.
                self.give_back()?;
                efd_read(self.ring.data.as_raw_fd())?;
                continue;
            }
            let n = ((tail - self.head) as usize).min(max.max(1));
            for _ in 0..n {
                // SAFETY: the slot was published by the tail above and is
                // not rewritten before we return its credit.
                let msg = unsafe {
                    std::slice::from_raw_parts(self.ring.slot(self.head), self.ring.slots.size())
                };
                f(msg)?;
                self.head += 1;
                self.freed += 1;
                if self.freed >= (self.ring.slots.slots() / 4).max(1) {
                    self.give_back()?;
                }
            }
            return Ok(n);
        }
    }
}

/// One shared ring per receiver; the sender copies every message into each.
pub struct ShmCopies {
    size: usize,
    rings: Vec<ShmRing>,
}

impl ShmCopies {
    pub fn new(slots: u32, size: usize, receivers: usize) -> Result<ShmCopies> {
        let rings = (0..receivers)
            .map(|_| ShmRing::new(slots, size))
            .collect::<Result<_>>()?;
        Ok(ShmCopies { size, rings })
    }
}

struct ShmTx<'a> {
    senders: Vec<ShmSender<'a>>,
    buf: Vec<u8>,
}

impl Tx for ShmTx<'_> {
    fn batch(&self) -> usize {
        1
    }
    fn buf(&mut self, _i: usize) -> &mut [u8] {
        &mut self.buf
    }
    fn send(&mut self, _n: usize) -> Result<()> {
        for s in &mut self.senders {
            s.send(&self.buf)?;
        }
        Ok(())
    }
}

struct ShmRx<'a>(ShmReceiver<'a>);

impl Rx for ShmRx<'_> {
    fn recv(&mut self, max: usize, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<usize> {
        self.0.recv(max, f)
    }
}

impl Fabric for ShmCopies {
    fn tx(&self) -> Result<Box<dyn Tx + '_>> {
        Ok(Box::new(ShmTx {
            senders: self.rings.iter().map(ShmSender::new).collect(),
            buf: vec![0; self.size],
        }))
    }
    fn rx(&self, i: usize) -> Result<Box<dyn Rx + '_>> {
        Ok(Box::new(ShmRx(ShmReceiver::new(&self.rings[i]))))
    }
}

/// Ping-pong over two shared rings.
pub struct ShmPing {
    there: ShmRing,
    back: ShmRing,
}

impl ShmPing {
    pub fn new(slots: u32, size: usize) -> Result<ShmPing> {
        Ok(ShmPing {
            there: ShmRing::new(slots, size)?,
            back: ShmRing::new(slots, size)?,
        })
    }
}

struct ShmPeer<'a> {
    out: ShmSender<'a>,
    inn: ShmReceiver<'a>,
}

impl Peer for ShmPeer<'_> {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.out.send(msg)
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut len = 0;
        self.inn.recv(1, &mut |m| {
            buf[..m.len()].copy_from_slice(m);
            len = m.len();
            Ok(())
        })?;
        Ok(len)
    }
}

impl PingFabric for ShmPing {
    fn client(&self) -> Result<Box<dyn Peer + '_>> {
        Ok(Box::new(ShmPeer {
            out: ShmSender::new(&self.there),
            inn: ShmReceiver::new(&self.back),
        }))
    }
    fn server(&self) -> Result<Box<dyn Peer + '_>> {
        Ok(Box::new(ShmPeer {
            out: ShmSender::new(&self.back),
            inn: ShmReceiver::new(&self.there),
        }))
    }
}

// ---------------------------------------------------------------------------
// Shared slots, and a broadcast ring with one cursor per reader.

/// `slots` message slots of `size` bytes in a shared anonymous mapping
/// (what a multi-process user would map), after a header of `hdr` bytes.
pub struct Slots {
    base: NonNull<u8>,
    len: usize,
    hdr: usize,
    slots: u64,
    stride: usize,
    size: usize,
}

// SAFETY: shared memory; users access the header through atomics and a
// slot only under their own protocol (see ShmBcast, MsgRing).
unsafe impl Sync for Slots {}
// SAFETY: as above; the mapping is not tied to a thread.
unsafe impl Send for Slots {}

impl Slots {
    pub fn new(slots: u32, size: usize, hdr: usize) -> Result<Slots> {
        let stride = size.div_ceil(64) * 64;
        let hdr = hdr.div_ceil(64) * 64;
        let len = hdr + slots as usize * stride;
        let p = shared_mapping(len).context("mmap shared slots")?;
        Ok(Slots {
            base: p,
            len,
            hdr,
            slots: slots as u64,
            stride,
            size,
        })
    }

    pub fn slots(&self) -> u64 {
        self.slots
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// A 64-byte-aligned atomic word at `off` of the header.
    pub fn word<T>(&self, off: usize) -> &T {
        assert!(
            off + std::mem::size_of::<T>() <= self.hdr
                && off.is_multiple_of(std::mem::align_of::<T>())
        );
        // SAFETY: inside the header, aligned; the mapping lives as long as
        // self and zero is a valid value of the atomics this is used for.
        unsafe { &*self.base.as_ptr().add(off).cast::<T>() }
    }

    /// The slot of sequence number `seq`.
    pub fn slot(&self, seq: u64) -> *mut u8 {
        let off = self.hdr + (seq % self.slots) as usize * self.stride;
        debug_assert!(off + self.size <= self.len);
        // SAFETY: in bounds of the mapping (see above).
        unsafe { self.base.as_ptr().add(off) }
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        // SAFETY: unmapping what new() mapped; no endpoint outlives it.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

fn futex_wait(word: &AtomicU32, val: u32) {
    // SAFETY: word is a valid u32 for the kernel to compare; no timeout.
    // EAGAIN (the value changed) and EINTR just mean "look again".
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            val,
            std::ptr::null::<libc::timespec>(),
        )
    };
}

fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: word is a valid futex word.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n) };
}

/// One ring of slots written once per message, read by every receiver
/// through its own cursor (the best case of broadcast without a kernel):
/// the writer may reuse a slot once every reader has passed it. Both sides
/// sleep on futexes and are woken only when they announced it.
///
/// Header: tail (u64) at 0; data futex and the count of sleeping readers
/// at 64; space futex and the writer's "sleeping" flag at 128; reader i's
/// head (u64) at 192 + 64 i.
pub struct ShmBcast {
    ring: Slots,
    readers: usize,
}

const BC_TAIL: usize = 0;
const BC_DATA: usize = 64;
const BC_READERS_WAITING: usize = 68;
const BC_SPACE: usize = 128;
const BC_WRITER_WAITING: usize = 132;
const BC_HEADS: usize = 192;

impl ShmBcast {
    pub fn new(slots: u32, size: usize, readers: usize) -> Result<ShmBcast> {
        Ok(ShmBcast {
            ring: Slots::new(slots, size, BC_HEADS + 64 * readers)?,
            readers,
        })
    }

    fn tail(&self) -> &AtomicU64 {
        self.ring.word(BC_TAIL)
    }

    fn head(&self, i: usize) -> &AtomicU64 {
        self.ring.word(BC_HEADS + 64 * i)
    }

    fn min_head(&self) -> u64 {
        // Acquire: pairs with each reader's release of its head, so its
        // reads of the slots it passed are done before we reuse them.
        (0..self.readers)
            .map(|i| self.head(i).load(Ordering::Acquire))
            .min()
            .unwrap_or(0)
    }
}

struct BcastTx<'a> {
    f: &'a ShmBcast,
    tail: u64,
    buf: Vec<u8>,
}

impl Tx for BcastTx<'_> {
    fn batch(&self) -> usize {
        1
    }
    fn buf(&mut self, _i: usize) -> &mut [u8] {
        &mut self.buf
    }
    fn send(&mut self, _n: usize) -> Result<()> {
        let f = self.f;
        let space: &AtomicU32 = f.ring.word(BC_SPACE);
        let writer_waiting: &AtomicU32 = f.ring.word(BC_WRITER_WAITING);
        while self.tail - f.min_head() >= f.ring.slots() {
            // Announce, then look again: a reader that moves its head
            // after our look sees the flag (SeqCst on both sides) and
            // bumps the futex word we read before announcing.
            let w = space.load(Ordering::SeqCst);
            writer_waiting.store(1, Ordering::SeqCst);
            std::sync::atomic::fence(Ordering::SeqCst);
            if self.tail - f.min_head() >= f.ring.slots() {
                futex_wait(space, w);
            }
            writer_waiting.store(0, Ordering::SeqCst);
        }
        // SAFETY: every reader has passed this slot (min_head above), so
        // nobody reads it until the tail below publishes it again.
        unsafe {
            std::ptr::copy_nonoverlapping(self.buf.as_ptr(), f.ring.slot(self.tail), self.buf.len())
        };
        self.tail += 1;
        // SeqCst (a release, and ordered before the load of the waiting
        // count): pairs with the reader's count increment and tail load.
        f.tail().store(self.tail, Ordering::SeqCst);
        let data: &AtomicU32 = f.ring.word(BC_DATA);
        let waiting: &AtomicU32 = f.ring.word(BC_READERS_WAITING);
        if waiting.load(Ordering::SeqCst) > 0 {
            data.fetch_add(1, Ordering::SeqCst);
            futex_wake(data, i32::MAX);
        }
        Ok(())
    }
}

struct BcastRx<'a> {
    f: &'a ShmBcast,
    i: usize,
    head: u64,
}

impl Rx for BcastRx<'_> {
    fn recv(&mut self, max: usize, cb: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<usize> {
        let f = self.f;
        let data: &AtomicU32 = f.ring.word(BC_DATA);
        let waiting: &AtomicU32 = f.ring.word(BC_READERS_WAITING);
        let tail = loop {
            // Acquire: pairs with the writer's store of the tail.
            let t = f.tail().load(Ordering::Acquire);
            if t != self.head {
                break t;
            }
            let w = data.load(Ordering::SeqCst);
            waiting.fetch_add(1, Ordering::SeqCst);
            if f.tail().load(Ordering::SeqCst) == self.head {
                futex_wait(data, w);
            }
            waiting.fetch_sub(1, Ordering::SeqCst);
        };
        let n = ((tail - self.head) as usize).min(max.max(1));
        for _ in 0..n {
            // SAFETY: published by the tail above; the writer does not
            // reuse the slot before our head passes it.
            let msg = unsafe { std::slice::from_raw_parts(f.ring.slot(self.head), f.ring.size()) };
            cb(msg)?;
            self.head += 1;
            // Release: our read of the slot is done before the writer may
            // reuse it.
            f.head(self.i).store(self.head, Ordering::Release);
        }
        // SeqCst fence between the head stores and the flag: pairs with
        // the writer's announce-then-look.
        std::sync::atomic::fence(Ordering::SeqCst);
        let writer_waiting: &AtomicU32 = f.ring.word(BC_WRITER_WAITING);
        if writer_waiting.swap(0, Ordering::SeqCst) != 0 {
            let space: &AtomicU32 = f.ring.word(BC_SPACE);
            space.fetch_add(1, Ordering::SeqCst);
            futex_wake(space, 1);
        }
        Ok(n)
    }
}

impl Fabric for ShmBcast {
    fn tx(&self) -> Result<Box<dyn Tx + '_>> {
        Ok(Box::new(BcastTx {
            f: self,
            tail: 0,
            buf: vec![0; self.ring.size()],
        }))
    }
    fn rx(&self, i: usize) -> Result<Box<dyn Rx + '_>> {
        Ok(Box::new(BcastRx {
            f: self,
            i,
            head: 0,
        }))
    }
}

// ---------------------------------------------------------------------------
// POSIX message queues.

/// A queue created for one measurement and unlinked at once (the
/// descriptor keeps it alive).
struct Mq {
    mqd: libc::mqd_t,
}

static MQ_SEQ: AtomicU64 = AtomicU64::new(0);

impl Mq {
    fn new(size: usize, depth: i64) -> Result<Mq> {
        let name = CString::new(format!(
            "/uring-ipc-bench-{}-{}",
            std::process::id(),
            MQ_SEQ.fetch_add(1, Ordering::Relaxed)
        ))
        .expect("no NUL in the name");
        // SAFETY: an all-zero mq_attr is valid; the fields we need are set.
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        attr.mq_maxmsg = depth;
        attr.mq_msgsize = size as i64;
        // SAFETY: name is NUL-terminated, attr is a valid mq_attr.
        let mqd = unsafe {
            libc::mq_open(
                name.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                0o600 as libc::mode_t,
                &mut attr as *mut libc::mq_attr,
            )
        };
        if mqd < 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("mq_open (mq_maxmsg {depth}, mq_msgsize {size})"));
        }
        // SAFETY: name is NUL-terminated; the open descriptor stays valid.
        unsafe { libc::mq_unlink(name.as_ptr()) };
        Ok(Mq { mqd })
    }

    fn send(&self, msg: &[u8]) -> Result<()> {
        loop {
            // SAFETY: msg is valid for reads of its length.
            let r = unsafe { libc::mq_send(self.mqd, msg.as_ptr().cast(), msg.len(), 0) };
            if r == 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e).context("mq_send");
            }
        }
    }

    fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        loop {
            // SAFETY: buf is valid for writes of its length, which is at
            // least mq_msgsize (checked by the kernel: EMSGSIZE otherwise).
            let r = unsafe {
                libc::mq_receive(
                    self.mqd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    std::ptr::null_mut(),
                )
            };
            if r >= 0 {
                return Ok(r as usize);
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e).context("mq_receive");
            }
        }
    }
}

impl Drop for Mq {
    fn drop(&mut self) {
        // SAFETY: closing the descriptor this handle owns.
        unsafe { libc::mq_close(self.mqd) };
    }
}

/// Queue depth of the POSIX queues: the default /proc/sys/fs/mqueue/msg_max.
pub const MQ_DEPTH: i64 = 10;

/// A point-to-point POSIX message queue.
pub struct MqStream {
    size: usize,
    q: Mq,
}

impl MqStream {
    /// A queue of `depth` messages, or of the default depth if the kernel
    /// refuses that many (without CAP_SYS_RESOURCE).
    pub fn new(size: usize, depth: i64) -> Result<MqStream> {
        let q = match Mq::new(size, depth) {
            Ok(q) => {
                note_buffer("posix-mq", size, format!("mq_maxmsg {depth}"));
                q
            }
            Err(e) => {
                note_buffer(
                    "posix-mq",
                    size,
                    format!("mq_maxmsg {MQ_DEPTH} ({depth} refused: {e:#})"),
                );
                Mq::new(size, MQ_DEPTH)?
            }
        };
        Ok(MqStream { size, q })
    }
}

struct MqTx<'a> {
    q: &'a Mq,
    buf: Vec<u8>,
}

impl Tx for MqTx<'_> {
    fn batch(&self) -> usize {
        1
    }
    fn buf(&mut self, _i: usize) -> &mut [u8] {
        &mut self.buf
    }
    fn send(&mut self, _n: usize) -> Result<()> {
        self.q.send(&self.buf)
    }
}

struct MqRx<'a> {
    q: &'a Mq,
    buf: Vec<u8>,
}

impl Rx for MqRx<'_> {
    fn recv(&mut self, _max: usize, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<usize> {
        let n = self.q.recv(&mut self.buf)?;
        f(&self.buf[..n])?;
        Ok(1)
    }
}

impl Fabric for MqStream {
    fn tx(&self) -> Result<Box<dyn Tx + '_>> {
        Ok(Box::new(MqTx {
            q: &self.q,
            buf: vec![0; self.size],
        }))
    }
    fn rx(&self, _i: usize) -> Result<Box<dyn Rx + '_>> {
        Ok(Box::new(MqRx {
            q: &self.q,
            buf: vec![0; self.size],
        }))
    }
}

/// Ping-pong over two POSIX queues.
pub struct MqPing {
    there: Mq,
    back: Mq,
}

impl MqPing {
    pub fn new(size: usize) -> Result<MqPing> {
        Ok(MqPing {
            there: Mq::new(size, MQ_DEPTH)?,
            back: Mq::new(size, MQ_DEPTH)?,
        })
    }
}

struct MqPeer<'a> {
    out: &'a Mq,
    inn: &'a Mq,
}

impl Peer for MqPeer<'_> {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.out.send(msg)
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.inn.recv(buf)
    }
}

impl PingFabric for MqPing {
    fn client(&self) -> Result<Box<dyn Peer + '_>> {
        Ok(Box::new(MqPeer {
            out: &self.there,
            inn: &self.back,
        }))
    }
    fn server(&self) -> Result<Box<dyn Peer + '_>> {
        Ok(Box::new(MqPeer {
            out: &self.back,
            inn: &self.there,
        }))
    }
}
