//! What a channel shows besides its messages: the read-only mapping of its
//! ring, fdinfo, tracepoints.

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;

use liburing_ipc::ipc::{Delivery, RingView};
use liburing_ipc::uapi::io_uring::*;
use liburing_ipc::{Error, Ring};
use selftests::ipc::{attach, channel, recv_msg};
use selftests::util::{pattern, trace_fields, tracefs};
use selftests::{check, check_eq, expect_errno, skip, Context, Outcome, TestResult};

pub fn mmap_layout_matches_messages() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Broadcast, 8, 100)?;
    let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let view = RingView::map(&rx)?;
    let h = view.header();
    check_eq!((h.ring_entries, h.ring_mask, h.max_msg_size), (8, 7, 100));
    check!(
        h.slot_size >= 100,
        "slot_size {} < max_msg_size",
        h.slot_size
    );
    check_eq!(h.flags & IOIPC_F_BROADCAST, IOIPC_F_BROADCAST);
    check!(
        h.data_offset as usize + 8 * h.slot_size as usize <= view.len(),
        "slots beyond the region"
    );
    let first = h.head;
    for i in 0..3u64 {
        ring.ipc_send(tx.id, &pattern(i, 20 + i as usize))?;
    }
    check_eq!(view.header().head, first + 3);
    for i in 0..3u64 {
        let Some((d, data)) = view.read(first + i) else {
            return Err(Outcome::Fail(format!(
                "seq {} not readable from the mapping",
                first + i
            )));
        };
        check_eq!(d.len as usize, 20 + i as usize);
        check_eq!(d.sender_id, tx.id);
        check!(
            data == pattern(i, 20 + i as usize),
            "mapped payload {i} differs"
        );
    }
    for _ in 0..3 {
        recv_msg(&mut ring, rx.id, 100)?;
    }
    check_eq!(view.header().tail, first + 3);
    Ok(())
}

pub fn mmap_after_detach_is_enoent() -> TestResult {
    let mut ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Unicast, 8, 64)?;
    let s = attach(&ring, ch, IOIPC_SUB_BOTH)?;
    let view = RingView::map(&s)?;
    ring.ipc_send(s.id, b"before")?;
    let head = view.header().head;
    ring.ipc_detach(s.id)?;
    expect_errno(RingView::map(&s), libc::ENOENT).context("mmap after detach")?;
    // The mapping made before stays readable.
    check_eq!(view.header().head, head);
    Ok(())
}

pub fn fdinfo_describes_the_channel() -> TestResult {
    let ring = Ring::new(8)?;
    let ch = channel(&ring, Delivery::Multicast, 16, 64)?;
    let s = attach(&ring, ch, IOIPC_SUB_RECV)?;
    let _t = attach(&ring, ch, IOIPC_SUB_SEND)?;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", s.fd.as_raw_fd()))?;
    let fields: BTreeMap<&str, &str> = info
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    for k in ["id", "flags", "entries", "subscribers"] {
        check!(
            fields.keys().any(|f| f.contains(k)),
            "fdinfo lacks {k}:\n{info}"
        );
    }
    check!(
        info.contains(&ch.to_string()),
        "fdinfo does not show channel id {ch}:\n{info}"
    );
    check!(
        info.contains("16"),
        "fdinfo does not show 16 entries:\n{info}"
    );
    Ok(())
}

pub fn tracepoints_report_send_and_recv() -> TestResult {
    let Some(t) = tracefs() else {
        skip!("no tracefs events (kernel without event tracing)");
    };
    let ev = t.join("events/io_uring");
    if !ev.join("io_uring_ipc_send").exists() {
        skip!("the kernel has no io_uring_ipc_send tracepoint");
    }
    let set = |name: &str, v: &str| std::fs::write(ev.join(name).join("enable"), v);
    std::fs::write(t.join("trace"), "")?;
    set("io_uring_ipc_send", "1")?;
    set("io_uring_ipc_recv", "1")?;
    let run = || -> Result<(u32, u32, u32), Error> {
        let mut ring = Ring::new(8)?;
        let ch = channel(&ring, Delivery::Multicast, 8, 64)?;
        let tx = attach(&ring, ch, IOIPC_SUB_SEND)?;
        let rx = attach(&ring, ch, IOIPC_SUB_RECV)?;
        for n in [5usize, 6, 7] {
            ring.ipc_send(tx.id, &pattern(n as u64, n))?;
        }
        for _ in 0..3 {
            ring.ipc_recv(rx.id, &mut [0u8; 64])?;
        }
        let _ = ring.ipc_try_recv(rx.id, &mut [0u8; 64])?;
        Ok((ch, tx.id, rx.id))
    };
    let r = run();
    set("io_uring_ipc_send", "0")?;
    set("io_uring_ipc_recv", "0")?;
    let (ch, tx, rx) = r?;
    let text = std::fs::read_to_string(t.join("trace"))?;
    let mine = |event: &str| -> Vec<BTreeMap<String, String>> {
        text.lines()
            .filter(|l| l.contains(&format!(" {event}: ")))
            .map(trace_fields)
            .filter(|f| f.get("channel") == Some(&ch.to_string()))
            .collect()
    };
    let sends = mine("io_uring_ipc_send");
    let recvs = mine("io_uring_ipc_recv");
    let field = |f: &BTreeMap<String, String>, k: &str| f.get(k).cloned().unwrap_or_default();
    check!(sends.len() == 3, "want 3 send events:\n{text}");
    check!(recvs.len() == 4, "want 3 + one EAGAIN recv events:\n{text}");
    for (i, f) in sends.iter().enumerate() {
        check_eq!(field(f, "subscriber"), tx.to_string());
        check_eq!(field(f, "flags"), format!("{:#x}", IOIPC_F_MULTICAST));
        check_eq!(field(f, "len"), (5 + i).to_string());
        check_eq!(field(f, "res"), (5 + i).to_string());
        check_eq!(field(f, "seq"), i.to_string());
    }
    for (i, f) in recvs[..3].iter().enumerate() {
        check_eq!(field(f, "subscriber"), rx.to_string());
        check_eq!(field(f, "res"), (5 + i).to_string());
        check_eq!(field(f, "seq"), field(&sends[i], "seq"));
    }
    check_eq!(field(&recvs[3], "res"), (-libc::EAGAIN).to_string());
    Ok(())
}
