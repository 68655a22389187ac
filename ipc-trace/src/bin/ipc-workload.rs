//! `ipc-workload`: a known io_uring IPC + mq_timedreceive2() workload that
//! prints what it did, to compare with `ipc-trace`'s counts.

use anyhow::{Context, Result};
use clap::Parser;
use ipc_trace::workload::{self, Config};

/// Fill and drain one channel of each mode (plus one ENOBUFS send and the
/// EAGAIN receives that end each drain), then peek and receive messages
/// with mq_timedreceive2(). Prints the counts from its own completions.
#[derive(Debug, Parser)]
#[command(name = "ipc-workload")]
struct Cli {
    /// Messages per channel (rounded up to a power of two) and mq rounds.
    #[arg(long, default_value_t = 32)]
    messages: u32,
    /// Receivers of the broadcast and multicast channels.
    #[arg(long, default_value_t = 3)]
    receivers: u32,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 100)]
    size: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let cfg = Config {
        messages: cli.messages,
        receivers: cli.receivers,
        size: cli.size,
    };
    let channels = workload::run_ipc(&cfg).context("io_uring IPC workload")?;
    let mq = workload::run_mq(&cfg).context("mq_timedreceive2 workload")?;
    if cli.json {
        println!("{}", serde_json::json!({ "channels": channels, "mq": mq }));
        return Ok(());
    }
    println!("ipc-workload: what was done (from completions)");
    for c in &channels {
        println!(
            "  channel {} {}: sent {} ({} bytes), ENOBUFS {}, received {} ({} bytes), EAGAIN {}",
            c.id,
            c.mode,
            c.sent,
            c.sent_bytes,
            c.send_enobufs,
            c.received,
            c.received_bytes,
            c.recv_eagain
        );
    }
    println!(
        "  mq_timedreceive2: {} peeks ({} bytes, {} EAGAIN), {} receives ({} bytes)",
        mq.peeks, mq.peek_bytes, mq.peek_eagain, mq.receives, mq.receive_bytes
    );
    Ok(())
}
