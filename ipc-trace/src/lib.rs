//! ipc-trace: BPF observability for io_uring IPC channels and
//! mq_timedreceive2().
//!
//! [`Tracer::start`] loads the BPF program (compiled from
//! `src/bpf/ipc_trace.bpf.c` at build time), relocates it against the running
//! kernel's BTF (CO-RE) and attaches it to the tracepoints
//! `io_uring:io_uring_ipc_send`, `io_uring:io_uring_ipc_recv` and
//! `raw_syscalls:sys_enter`/`sys_exit` (filtered on mq_timedreceive2).
//! [`Tracer::snapshot`] reads the counters into a [`Report`]; dropping the
//! tracer detaches and unloads everything.

use std::fmt;
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::time::Instant;

use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, OpenObject};

pub mod report;
pub mod workload;

pub use report::Report;

mod skel {
    include!(concat!(env!("OUT_DIR"), "/ipc_trace.skel.rs"));
}

use skel::{IpcTraceSkel, IpcTraceSkelBuilder};

/// Names of the BPF programs, as the kernel lists them.
pub const PROG_NAMES: [&str; 4] = ["ipct_send", "ipct_recv", "ipct_sys_enter", "ipct_sys_exit"];

/// Errors of this crate.
#[derive(Debug)]
pub enum Error {
    /// The running kernel cannot host the tracer (no BPF, no BTF, no
    /// tracefs); the text says what is missing.
    Unsupported(String),
    /// Loading, relocating or attaching the BPF program failed.
    Bpf {
        what: &'static str,
        source: libbpf_rs::Error,
    },
    /// A counter map did not have the layout this build expects.
    Layout(String),
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unsupported(why) => write!(f, "unsupported: {why}"),
            Error::Bpf { what, source } => write!(f, "{what}: {source}"),
            Error::Layout(why) => write!(f, "unexpected map layout: {why}"),
            Error::Io { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bpf { source, .. } => Some(source),
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

fn bpf(what: &'static str) -> impl FnOnce(libbpf_rs::Error) -> Error {
    move |source| Error::Bpf { what, source }
}

/// What to trace.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only events of this process (thread group id); all when `None`.
    pub pid: Option<u32>,
}

/// What the running kernel offers, as found in tracefs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Features {
    /// io_uring:io_uring_ipc_send and io_uring_ipc_recv exist.
    pub ipc_tracepoints: bool,
    /// Their events carry `seq` (send-to-receive latency is measured).
    pub ipc_seq: bool,
    /// Their events carry `channel_flags` (the channel mode is known).
    pub ipc_channel_flags: bool,
    /// raw_syscalls:sys_enter/sys_exit exist (mq_timedreceive2 is timed).
    pub raw_syscalls: bool,
}

const TRACEFS_MOUNTS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// The tracefs events directory, mounting tracefs on /sys/kernel/tracing
/// when it is not mounted anywhere (minimal VMs).
pub fn tracefs_events() -> Result<PathBuf> {
    let found = || {
        TRACEFS_MOUNTS
            .iter()
            .map(|m| Path::new(m).join("events"))
            .find(|p| p.is_dir())
    };
    if let Some(p) = found() {
        return Ok(p);
    }
    let target = Path::new(TRACEFS_MOUNTS[0]);
    if target.is_dir() {
        // SAFETY: mount(2) with NUL-terminated constant strings and no data.
        let r = unsafe {
            libc::mount(
                c"tracefs".as_ptr(),
                c"/sys/kernel/tracing".as_ptr(),
                c"tracefs".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EPERM) {
                return Err(Error::Unsupported(format!(
                    "{} is not accessible: tracing needs root (or CAP_BPF, CAP_PERFMON and \
                     access to tracefs)",
                    target.display()
                )));
            }
            return Err(Error::Unsupported(format!(
                "tracefs is not mounted and mounting it on {} failed: {e}",
                target.display()
            )));
        }
    }
    found().ok_or_else(|| {
        Error::Unsupported("no tracefs (CONFIG_TRACING / CONFIG_FTRACE off?)".into())
    })
}

fn event_format(events: &Path, system: &str, event: &str) -> Option<String> {
    std::fs::read_to_string(events.join(system).join(event).join("format")).ok()
}

fn has_field(format: &str, name: &str) -> bool {
    format.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("field:")
            && l.split(';')
                .next()
                .and_then(|decl| decl.split_whitespace().last())
                .is_some_and(|f| f == name)
    })
}

/// Probe the kernel: BTF, BPF, tracefs and the tracepoints.
pub fn probe() -> Result<Features> {
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(Error::Unsupported(
            "no kernel BTF at /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF)".into(),
        ));
    }
    let events = tracefs_events()?;
    if let Err(e) = std::fs::read_dir(&events) {
        return Err(Error::Unsupported(format!(
            "cannot read {}: {e} (tracing needs root)",
            events.display()
        )));
    }
    let send = event_format(&events, "io_uring", "io_uring_ipc_send");
    let recv = event_format(&events, "io_uring", "io_uring_ipc_recv");
    let ipc = send.is_some() && recv.is_some();
    let both = |f: &str| {
        send.as_deref().is_some_and(|s| has_field(s, f))
            && recv.as_deref().is_some_and(|s| has_field(s, f))
    };
    Ok(Features {
        ipc_tracepoints: ipc,
        ipc_seq: ipc && both("seq"),
        ipc_channel_flags: ipc && both("channel_flags"),
        raw_syscalls: event_format(&events, "raw_syscalls", "sys_enter").is_some()
            && event_format(&events, "raw_syscalls", "sys_exit").is_some(),
    })
}

/// A loaded and attached tracer. Dropping it detaches every program and
/// frees the maps.
pub struct Tracer {
    skel: IpcTraceSkel<'static>,
    features: Features,
    started: Instant,
}

impl Tracer {
    pub fn start(opts: &Options) -> Result<Tracer> {
        let features = probe()?;
        if !features.ipc_tracepoints && !features.raw_syscalls {
            return Err(Error::Unsupported(
                "neither the io_uring IPC tracepoints nor raw_syscalls exist".into(),
            ));
        }
        // The skeleton borrows its object storage for as long as it lives;
        // a Tracer owns the skeleton, so the storage is given a static
        // lifetime (a few bytes per tracer; the object itself is freed when
        // the skeleton drops).
        let storage: &'static mut MaybeUninit<OpenObject> =
            Box::leak(Box::new(MaybeUninit::uninit()));
        let mut open =
            IpcTraceSkelBuilder::default()
                .open(storage)
                .map_err(|e| match e.kind() {
                    libbpf_rs::ErrorKind::PermissionDenied => Error::Unsupported(format!(
                        "opening the BPF object: {e} (needs root or CAP_BPF+CAP_PERFMON)"
                    )),
                    _ => Error::Bpf {
                        what: "opening the BPF object",
                        source: e,
                    },
                })?;
        let ro = open
            .maps
            .rodata_data
            .as_deref_mut()
            .ok_or_else(|| Error::Layout("the BPF object has no .rodata".into()))?;
        ro.filter_tgid = opts.pid.unwrap_or(0);
        ro.mq_syscall_nr = if features.raw_syscalls {
            uapi_headers::mqueue::NR_MQ_TIMEDRECEIVE2
        } else {
            -1
        };
        ro.mq_peek_flag = uapi_headers::mqueue::MQ_PEEK.into();
        ro.f_broadcast = uapi_headers::io_uring::IOIPC_F_BROADCAST;
        ro.f_multicast = uapi_headers::io_uring::IOIPC_F_MULTICAST;
        if !features.ipc_tracepoints {
            open.progs.ipct_send.set_autoload(false);
            open.progs.ipct_recv.set_autoload(false);
        }
        if !features.raw_syscalls {
            open.progs.ipct_sys_enter.set_autoload(false);
            open.progs.ipct_sys_exit.set_autoload(false);
        }
        let mut skel = open.load().map_err(|e| match e.kind() {
            libbpf_rs::ErrorKind::PermissionDenied => Error::Unsupported(format!(
                "loading BPF programs: {e} (needs root or CAP_BPF+CAP_PERFMON)"
            )),
            libbpf_rs::ErrorKind::Unsupported => Error::Unsupported(format!(
                "loading BPF programs: {e} (CONFIG_BPF_SYSCALL / CONFIG_BPF_EVENTS?)"
            )),
            _ => Error::Bpf {
                what: "loading the BPF programs (see libbpf's messages above)",
                source: e,
            },
        })?;
        skel.attach().map_err(bpf("attaching to the tracepoints"))?;
        Ok(Tracer {
            skel,
            features,
            started: Instant::now(),
        })
    }

    pub fn features(&self) -> &Features {
        &self.features
    }

    /// Ids of the loaded BPF programs, for checking that they go away.
    pub fn prog_ids(&self) -> Vec<u32> {
        use std::os::fd::AsFd;
        let p = &self.skel.progs;
        let mut progs = Vec::new();
        if self.features.ipc_tracepoints {
            progs.extend([&p.ipct_send, &p.ipct_recv]);
        }
        if self.features.raw_syscalls {
            progs.extend([&p.ipct_sys_enter, &p.ipct_sys_exit]);
        }
        progs
            .into_iter()
            .filter_map(|prog| libbpf_rs::Program::id_from_fd(prog.as_fd()).ok())
            .collect()
    }

    /// Read every counter now.
    pub fn snapshot(&self) -> Result<Report> {
        let maps = &self.skel.maps;
        let bss = maps
            .bss_data
            .as_deref()
            .ok_or_else(|| Error::Layout("the BPF object has no .bss".into()))?;
        // SAFETY: `bss` points into the .bss map's shared mapping, valid while
        // the skeleton lives. The BPF programs update it concurrently, so it
        // is copied out with one volatile read rather than through references.
        let bss: skel::types::bss = unsafe { std::ptr::read_volatile(bss) };
        let mq = bss.mq.map(|m| report::RawMq {
            calls: m.calls,
            bytes: m.bytes,
            eagain: m.eagain,
            other_err: m.other_err,
        });
        let mut channels = Vec::new();
        for key in maps.channels.keys() {
            let Some(val) = maps
                .channels
                .lookup(&key, MapFlags::ANY)
                .map_err(bpf("reading the channel map"))?
            else {
                continue; // removed meanwhile
            };
            let id = u32::from_ne_bytes(
                key.as_slice()
                    .try_into()
                    .map_err(|_| Error::Layout(format!("channel key of {} bytes", key.len())))?,
            );
            channels.push(report::RawChannel::parse(id, &val)?);
        }
        Ok(report::Report::build(
            self.started.elapsed(),
            &self.features,
            report::RawCounters {
                channels,
                ipc_lat: bss.ipc_lat,
                mq,
                mq_lat: bss.mq_lat,
                dropped: bss.dropped,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_value_layout_matches_the_bpf_object() {
        assert_eq!(
            std::mem::size_of::<skel::types::ipct_chan>(),
            report::CHAN_VALUE_SIZE
        );
    }

    #[test]
    fn finds_fields_in_tracefs_formats() {
        let fmt = "name: io_uring_ipc_send\nID: 1\nformat:\n\
                   \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
                   \tfield:u32 channel_id;\toffset:32;\tsize:4;\tsigned:0;\n\
                   \tfield:u64 seq;\toffset:48;\tsize:8;\tsigned:0;\n\n\
                   print fmt: \"channel %u seq %llu\", REC->channel_id, REC->seq\n";
        assert!(has_field(fmt, "seq"));
        assert!(has_field(fmt, "channel_id"));
        assert!(!has_field(fmt, "channel_flags"));
        assert!(!has_field(fmt, "channel"));
    }
}
