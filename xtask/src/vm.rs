//! Booting the built kernel with virtme-ng.

mod session;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use xshell::Shell;

pub use session::{End, Line, Session, Stream};

use crate::flags::{Profile, VmArgs, VmOpts};
use crate::kernel::Built;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    /// Software emulation, with the reason KVM was not used.
    Tcg(String),
}

impl Accel {
    pub fn name(&self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg(_) => "tcg",
        }
    }
}

/// KVM works only if /dev/kvm opens read-write AND the CPU exposes hardware
/// virtualization. A nested guest can have an openable /dev/kvm (through a
/// paravirtual backend) on which QEMU either aborts or crawls.
pub fn detect_accel() -> Accel {
    if std::env::var("URING_IPC_ACCEL").as_deref() == Ok("tcg") {
        return Accel::Tcg("URING_IPC_ACCEL=tcg".into());
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hw = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm");
    match (dev, hw) {
        (Ok(_), true) => Accel::Kvm,
        (Err(e), _) => Accel::Tcg(format!("/dev/kvm: {e}")),
        (Ok(_), false) => {
            Accel::Tcg("/dev/kvm opens but the CPU has no vmx/svm flag (nested guest)".into())
        }
    }
}

/// How long a guest may take from vng's start until it runs what it was
/// given: the debug profile's KASAN and lockdep make boots slow, TCG more so.
pub fn boot_allowance(accel: &Accel, profile: Profile) -> Duration {
    let secs = match (accel, profile) {
        (Accel::Kvm, _) => 60,
        (Accel::Tcg(_), Profile::Fast) => 180,
        (Accel::Tcg(_), Profile::Debug) => 400,
    };
    Duration::from_secs(secs)
}

/// Quote one word for the guest shell that runs `vng --exec`.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

pub struct VmSpec<'a> {
    pub kernel: &'a Built,
    pub vm: &'a VmOpts,
    pub rwdirs: Vec<&'a Path>,
    pub exec: Option<Vec<String>>,
    /// The full serial console on vng's output (`--verbose`, every log
    /// level), for the caller to write to a console.log; otherwise only
    /// warnings and worse reach the console.
    pub console: bool,
    /// Extra QEMU arguments (vng --qemu-opts), e.g. a TCG plugin.
    pub qemu_opts: Vec<String>,
}

pub fn command(spec: &VmSpec<'_>, accel: &Accel) -> Result<Command> {
    let vng = crate::deps::pinned_vng()?;
    let mut c = Command::new(vng);
    c.arg("--run").arg(&spec.kernel.bzimage);
    c.arg("--cpus").arg(spec.vm.cpus.to_string());
    c.arg("--memory").arg(&spec.vm.memory);
    if matches!(accel, Accel::Tcg(_)) {
        c.arg("--disable-kvm");
    }
    // The guest config (kernel-config/base.config) has 9p and virtio-pci,
    // not virtiofs nor virtio-mmio: keep vng on those even when a virtiofsd
    // exists or KVM would let it pick the microvm machine.
    c.arg("--force-9p").arg("--disable-microvm");
    for d in &spec.rwdirs {
        c.arg(format!("--rwdir={}", d.display()));
    }
    if spec.console {
        c.arg("--verbose");
    } else {
        // Keep the console quiet; kernel messages are collected from the log.
        c.arg("--append").arg("loglevel=4");
    }
    if !spec.qemu_opts.is_empty() {
        c.arg(format!("--qemu-opts={}", spec.qemu_opts.join(" ")));
    }
    if let Some(words) = &spec.exec {
        let line: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
        c.arg("--exec").arg(line.join(" "));
    }
    c.current_dir(crate::project_root());
    Ok(c)
}

/// A copy of the running xtask binary in `dir`, for the guest to run. Cargo
/// may rebuild target/debug/xtask while a long VM run is going on, and the
/// guest would then find the path gone; a fresh copy per run also never
/// lags behind the host's binary.
pub fn guest_xtask(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let copy = dir.join("xtask-guest");
    let tmp = dir.join("xtask-guest.tmp");
    std::fs::copy("/proc/self/exe", &tmp).context("copying /proc/self/exe")?;
    std::fs::rename(&tmp, &copy)?;
    Ok(copy)
}

pub fn describe(accel: &Accel, cpus: u32, built: &Built) -> String {
    match accel {
        Accel::Kvm => format!("[vm] {} on KVM, {cpus} vCPUs", built.release),
        Accel::Tcg(why) => format!(
            "[vm] {} under TCG (software emulation; {why}), {cpus} vCPUs: \
             expect slow boots and meaningless absolute timings",
            built.release
        ),
    }
}

pub fn run(sh: &Shell, args: &VmArgs) -> Result<()> {
    crate::deps::require(sh, crate::deps::Need::Vm)?;
    let built = crate::kernel::build_profile(sh, args.kernel.profile)?;
    let accel = detect_accel();
    println!("{}", describe(&accel, args.vm.cpus, &built));
    let spec = VmSpec {
        kernel: &built,
        vm: &args.vm,
        rwdirs: vec![],
        exec: (!args.cmd.is_empty()).then(|| args.cmd.clone()),
        console: false,
        qemu_opts: vec![],
    };
    let status = command(&spec, &accel)?.status()?;
    match status.code() {
        Some(0) => Ok(()),
        Some(c) => std::process::exit(c),
        None => bail!("vng was killed ({status})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/a/b-c.d"), "/a/b-c.d");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(x)"), "'$(x)'");
    }

    #[test]
    fn boot_allowances() {
        let tcg = Accel::Tcg("test".into());
        let secs = |a: &Accel, p| boot_allowance(a, p).as_secs();
        assert_eq!(secs(&Accel::Kvm, Profile::Fast), 60);
        assert_eq!(secs(&Accel::Kvm, Profile::Debug), 60);
        assert_eq!(secs(&tcg, Profile::Fast), 180);
        assert_eq!(secs(&tcg, Profile::Debug), 400);
    }
}
