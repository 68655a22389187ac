//! Post-mortem of a guest: its serial console, and kernel traces decoded to
//! file:line with the kernel's scripts/decode_stacktrace.sh against the
//! build's vmlinux.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::kernel::Built;
use crate::splat::Splat;

/// Lines of the console shown when a guest hung or died without a splat.
const TAIL: usize = 40;

/// `text` with its call-trace lines decoded (`func+0x1/0x2` followed by
/// the source file and line). Unchanged when the script, vmlinux or
/// addr2line is missing; a note says why.
pub fn decode(built: &Built, text: &str) -> String {
    let script = built.src.join("scripts/decode_stacktrace.sh");
    let vmlinux = built.build_dir.join("vmlinux");
    if !script.exists() || !vmlinux.exists() {
        return format!(
            "{text}\n(not decoded: {} or {} is missing)",
            script.display(),
            vmlinux.display()
        );
    }
    let child = Command::new("bash")
        .arg(&script)
        .arg(&vmlinux)
        .arg(&built.src)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        return format!("{text}\n(not decoded: could not run bash)");
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(text.as_bytes());
        let _ = stdin.write_all(b"\n");
    }
    match child.wait_with_output() {
        Ok(out) if out.status.success() && !out.stdout.is_empty() => {
            tree_relative(String::from_utf8_lossy(&out.stdout).trim_end())
        }
        Ok(out) => format!(
            "{text}\n(not decoded: decode_stacktrace.sh: {})",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("{text}\n(not decoded: {e})"),
    }
}

/// Source paths relative to the kernel tree. The debug info names the
/// tree through the build directory (`.../build-fast/../src/ipc/mqueue.c`),
/// and with ccache possibly another checkout's: only the part inside the
/// tree is meaningful.
fn tree_relative(text: &str) -> String {
    let re = regex::Regex::new(r"(?:/[^\s():]+)?/build-[\w-]+/\.\./(?:base-)?src/")
        .expect("valid regex");
    re.replace_all(text, "").into_owned()
}

/// A splat, decoded, under a heading naming where it was seen.
pub fn show_splat(built: &Built, origin: &str, s: &Splat) -> String {
    let body = decode(built, &s.text);
    let indented: Vec<String> = body.lines().map(|l| format!("    {l}")).collect();
    format!(
        "# kernel splat during {origin}: {}\n{}",
        s.headline,
        indented.join("\n")
    )
}

/// What to print when a boot went wrong (`why`: the guest hung, died, or
/// did not finish): every splat the console shows, decoded, or, without
/// one, the console's last lines. Empty when the console is empty.
pub fn boot_failure(built: &Built, console: &Path, why: &str) -> String {
    let text = std::fs::read_to_string(console).unwrap_or_default();
    if text.trim().is_empty() {
        return format!("# {why}; the console ({}) is empty", console.display());
    }
    let splats = crate::splat::find(&text);
    let mut out = format!("# {why}; full console: {}\n", console.display());
    if splats.is_empty() {
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(TAIL)..];
        out.push_str(&format!(
            "# no kernel splat on the console; its last {} lines:\n",
            tail.len()
        ));
        for l in tail {
            out.push_str(&format!("    {l}\n"));
        }
    } else {
        for s in &splats {
            out.push_str(&show_splat(built, "the boot (console)", s));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_tree_relative() {
        assert_eq!(
            tree_relative("f (/x/y/target/kernel/build-fast/../src/ipc/mqueue.c:1489)"),
            "f (ipc/mqueue.c:1489)"
        );
        assert_eq!(
            tree_relative(
                "g (/a/build-base/../base-src/fs/read_write.c:7 /a/build-base/../base-src/x.h:1)"
            ),
            "g (fs/read_write.c:7 x.h:1)"
        );
        assert_eq!(
            tree_relative("h (io_uring/ipc.c:3)"),
            "h (io_uring/ipc.c:3)"
        );
    }

    #[test]
    fn a_failed_boot_shows_its_splats_or_the_console_tail() {
        let d = std::env::temp_dir().join(format!("xtask-pm-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let built = Built {
            bzimage: d.join("bzImage"),
            release: String::new(),
            build_dir: d.join("build"),
            src: d.join("src"),
        };
        let console = crate::results::ResultsDir::new(&d).console();
        let mut text: String = (0..100)
            .map(|i| format!("[    1.{i:06}] line {i}\n"))
            .collect();
        std::fs::write(&console, &text).unwrap();
        let out = boot_failure(&built, &console, "the VM hung");
        assert!(out.contains("the VM hung; full console"), "{out}");
        assert!(
            out.contains("last 40 lines") && out.contains("line 99"),
            "{out}"
        );
        assert!(!out.contains("line 59\n"), "{out}");

        text.push_str("[    2.000000] Kernel panic - not syncing: Attempted to kill init!\n");
        std::fs::write(&console, &text).unwrap();
        let out = boot_failure(&built, &console, "the guest died");
        assert!(
            out.contains("# kernel splat during the boot (console): Kernel panic"),
            "{out}"
        );
        // No vmlinux here: shown as it is, with the reason.
        assert!(out.contains("not decoded"), "{out}");
        assert!(!out.contains("line 99"), "{out}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// Needs a built fast kernel (DWARF): `cargo xtask build-kernel`, then
    /// `cargo test -p xtask -- --ignored decodes_a_warning`.
    #[test]
    #[ignore = "needs target/kernel/build-fast from `cargo xtask build-kernel`"]
    fn decodes_a_warning_against_the_built_vmlinux() {
        let built = Built {
            bzimage: crate::kernel::bzimage(crate::flags::Profile::Fast),
            release: String::new(),
            build_dir: crate::kernel::build_dir(crate::flags::Profile::Fast),
            src: crate::kernel::src_dir(),
        };
        let log = "[   12.3] WARNING: CPU: 1 PID: 99 at ipc/mqueue.c:1 __x64_sys_mq_timedreceive2+0x10/0x30f\n\
                   [   12.3] Call Trace:\n\
                   [   12.3]  <TASK>\n\
                   [   12.3]  __x64_sys_mq_timedreceive2+0x10/0x30f\n\
                   [   12.3]  ksys_write+0x5/0x100\n\
                   [   12.3]  </TASK>\n\
                   [   12.3] ---[ end trace 0000000000000000 ]---\n";
        let splats = crate::splat::find(log);
        assert_eq!(splats.len(), 1);
        let shown = show_splat(&built, "test", &splats[0]);
        println!("{shown}");
        assert!(shown.contains("ipc/mqueue.c:"), "{shown}");
        assert!(shown.contains("ksys_write (fs/read_write.c:"), "{shown}");
    }
}
