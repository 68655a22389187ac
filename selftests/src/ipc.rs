//! Helpers for the io_uring IPC channel selftests.

use liburing_ipc::ipc::{Attach, ChannelConfig, Delivery, Subscription};
use liburing_ipc::opcode::IpcRecv;
use liburing_ipc::uapi::io_uring::{IOIPC_SUB_RECV, IOIPC_SUB_SEND};
use liburing_ipc::{Error, Ring};

use crate::uring::push;

/// A channel key unique to this test process and call site `n`.
pub fn key(n: u64) -> u64 {
    // SAFETY: getpid cannot fail.
    (unsafe { libc::getpid() } as u64) << 20 | n
}

/// Create a channel without a key; returns its id.
pub fn channel(ring: &Ring, d: Delivery, entries: u32, size: u32) -> Result<u32, Error> {
    ring.ipc_create(&ChannelConfig::new(d, entries, size))
}

/// Attach to channel `ch` with IOIPC_SUB_* `flags`.
pub fn attach(ring: &Ring, ch: u32, flags: u32) -> Result<Subscription, Error> {
    ring.ipc_attach(Attach::Id(ch), flags)
}

/// Receive one message of at most `cap` bytes, waiting for it.
pub fn recv_msg(ring: &mut Ring, sub: u32, cap: usize) -> Result<Vec<u8>, Error> {
    let mut buf = vec![0u8; cap];
    let n = ring.ipc_recv(sub, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// A channel between a plain sending ring and a receiving
/// SINGLE_ISSUER | DEFER_TASKRUN ring, whose task work runs only when it is
/// entered with GETEVENTS.
pub struct Deferred {
    pub rx_ring: Ring,
    pub tx_ring: Ring,
    pub tx: Subscription,
    pub rx: Subscription,
}

/// A [`Deferred`] channel of `entries` messages of up to 64 bytes.
pub fn deferred_channel(d: Delivery, entries: u32) -> Result<Deferred, Error> {
    let rx_ring = Ring::builder(16).single_issuer().defer_taskrun().build()?;
    let tx_ring = Ring::new(8)?;
    let ch = channel(&tx_ring, d, entries, 64)?;
    let tx = attach(&tx_ring, ch, IOIPC_SUB_SEND)?;
    let rx = attach(&rx_ring, ch, IOIPC_SUB_RECV)?;
    Ok(Deferred {
        rx_ring,
        tx_ring,
        tx,
        rx,
    })
}

/// Queue (not submit) an IPC_RECV of one message into `buf` for subscriber
/// `sub`. As with [`crate::uring::push`], `buf` must outlive the wait for
/// the completion.
pub fn push_recv(ring: &mut Ring, sub: u32, buf: &mut [u8], user_data: u64) -> Result<(), Error> {
    let len = u32::try_from(buf.len()).map_err(|_| Error::InvalidArgument("buffer over 4 GiB"))?;
    let sqe = IpcRecv::new(sub, buf.as_mut_ptr(), len).build();
    push(ring, sqe.user_data(user_data))
}
