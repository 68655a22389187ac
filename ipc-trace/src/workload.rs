//! A known workload: traffic on one channel of each mode, a full ring
//! (ENOBUFS), empty receives (EAGAIN) and mq_timedreceive2() peeks and
//! receives. It counts what it did from its own completions, so a trace of
//! it can be checked against those counts exactly.

use liburing_ipc::ipc::{Attach, ChannelConfig, Delivery, Subscription};
use liburing_ipc::mq::{Access, Attr, MessageQueue};
use liburing_ipc::uapi::io_uring::{IOIPC_SUB_RECV, IOIPC_SUB_SEND};
use liburing_ipc::{Error, Ring};
use serde::Serialize;

/// Parameters of the workload.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Messages sent per channel; rounded up to a power of two (the ring
    /// size), so that one more send finds the ring full.
    pub messages: u32,
    /// Receivers of the broadcast and multicast channels.
    pub receivers: u32,
    /// Payload size in bytes.
    pub size: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            messages: 32,
            receivers: 3,
            size: 100,
        }
    }
}

/// What one channel saw, counted from completions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChannelCounts {
    pub id: u32,
    pub mode: &'static str,
    pub sent: u64,
    pub sent_bytes: u64,
    pub send_enobufs: u64,
    pub received: u64,
    pub received_bytes: u64,
    pub recv_eagain: u64,
}

/// What the mq part did, counted from return values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MqCounts {
    pub peeks: u64,
    pub peek_bytes: u64,
    pub peek_eagain: u64,
    pub receives: u64,
    pub receive_bytes: u64,
}

fn mode_name(d: Delivery) -> &'static str {
    match d {
        Delivery::Unicast => "unicast",
        Delivery::Broadcast => "broadcast",
        Delivery::Multicast => "multicast",
    }
}

fn payload(i: u64, len: u32) -> Vec<u8> {
    (0..len as u64).map(|j| (i * 31 + j * 7) as u8).collect()
}

/// Run one channel of mode `d`: fill its ring, one send too many, then every
/// receiver drains it until EAGAIN.
pub fn run_channel(cfg: &Config, d: Delivery) -> Result<ChannelCounts, Error> {
    let entries = cfg.messages.max(1).next_power_of_two();
    let mut ring = Ring::new(16)?;
    let ch = ring.ipc_create(&ChannelConfig::new(d, entries, cfg.size.max(1)))?;
    let mut c = ChannelCounts {
        id: ch,
        mode: mode_name(d),
        ..Default::default()
    };
    let result = (|| {
        let tx = ring.ipc_attach(Attach::Id(ch), IOIPC_SUB_SEND)?;
        let n_rx = if d == Delivery::Unicast {
            1
        } else {
            cfg.receivers.max(1)
        };
        let rxs: Vec<Subscription> = (0..n_rx)
            .map(|_| ring.ipc_attach(Attach::Id(ch), IOIPC_SUB_RECV))
            .collect::<Result<_, _>>()?;
        for i in 0..=entries as u64 {
            match ring.ipc_send(tx.id, &payload(i, cfg.size)) {
                Ok(n) => {
                    c.sent += 1;
                    c.sent_bytes += n as u64;
                }
                Err(e) if e.errno() == Some(libc::ENOBUFS) => c.send_enobufs += 1,
                Err(e) => return Err(e),
            }
        }
        let mut buf = vec![0u8; cfg.size.max(1) as usize];
        for rx in &rxs {
            loop {
                match ring.ipc_try_recv(rx.id, &mut buf)? {
                    Some(n) => {
                        c.received += 1;
                        c.received_bytes += n as u64;
                    }
                    None => {
                        c.recv_eagain += 1;
                        break;
                    }
                }
            }
        }
        Ok(())
    })();
    let destroyed = ring.ipc_destroy(ch);
    result?;
    destroyed?;
    Ok(c)
}

/// One channel of each mode.
pub fn run_ipc(cfg: &Config) -> Result<Vec<ChannelCounts>, Error> {
    [Delivery::Unicast, Delivery::Broadcast, Delivery::Multicast]
        .into_iter()
        .map(|d| run_channel(cfg, d))
        .collect()
}

/// `cfg.messages` rounds of send, peek and receive on a fresh queue, then
/// one peek at the empty queue (EAGAIN). Every receive is the
/// mq_timedreceive2() system call.
pub fn run_mq(cfg: &Config) -> Result<MqCounts, Error> {
    // SAFETY: getpid() cannot fail.
    let name = format!("/ipc-trace-{}", unsafe { libc::getpid() });
    let _ = MessageQueue::unlink(&name);
    let size = cfg.size.max(1);
    let q = MessageQueue::create(
        &name,
        Attr {
            max_msgs: 4,
            msg_size: size.into(),
        },
        Access::ReadWrite,
    )?;
    let mut c = MqCounts::default();
    for i in 0..cfg.messages as u64 {
        q.send(&payload(i, size), 0)?;
        c.peeks += 1;
        let m = q.peek(0)?.ok_or(Error::InvalidArgument(
            "peek found no message in a queue of one",
        ))?;
        c.peek_bytes += m.data.len() as u64;
        c.receives += 1;
        c.receive_bytes += q.receive2(0, 0, None)?.data.len() as u64;
    }
    // The kernel answers EAGAIN for an empty queue, which peek reports as
    // None.
    match q.peek(0) {
        Ok(None) => {
            c.peeks += 1;
            c.peek_eagain += 1;
        }
        Err(e) => return Err(e),
        Ok(Some(_)) => {
            return Err(Error::InvalidArgument(
                "peek found a message in an empty queue",
            ))
        }
    }
    Ok(c)
}
