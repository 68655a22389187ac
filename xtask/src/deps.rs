//! Host dependencies: check what is missing, install it when we can.
//!
//! Debian and Ubuntu only (apt + dpkg). virtme-ng comes from PyPI, because
//! bookworm does not package it.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::flags::DepsArgs;

/// What a command is about to do, and so which tools it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Fetch, patch, configure and build the kernel.
    Build,
    /// Boot it (and build it first).
    Vm,
    /// Everything, including 32-bit toolchains for compat selftests.
    All,
}

/// Debian packages and what each provides, grouped by the need they serve.
const BUILD_PACKAGES: &[&str] = &[
    "make",
    "gcc",
    "git",
    "flex",
    "bison",
    "bc",
    "perl",
    "xz-utils",
    "cpio",
    "zstd",
    "libelf-dev",
    "libssl-dev",
    "ccache",
    "python3",
    "rsync",
    // pahole, which turns the kernel's DWARF into BTF (trace.config).
    "dwarves",
];
/// Building the workspace itself: ipc-trace compiles its BPF program with
/// clang (libbpf-cargo) and links a vendored libbpf, which needs libelf and
/// zlib found through pkg-config.
const BPF_PACKAGES: &[&str] = &["clang", "llvm", "libelf-dev", "zlib1g-dev", "pkg-config"];
const VM_PACKAGES: &[&str] = &["qemu-system-x86", "udev"];
const TEST_PACKAGES: &[&str] = &[
    "gcc-multilib",
    "sparse",
    "libpopt-dev",
    // dpkg-source, to unpack liburing's source package (`regress`).
    "dpkg-dev",
    "g++",
];

fn packages_for(need: Need) -> Vec<&'static str> {
    let mut p = BUILD_PACKAGES.to_vec();
    p.extend_from_slice(BPF_PACKAGES);
    if matches!(need, Need::Vm | Need::All) {
        p.extend_from_slice(VM_PACKAGES);
    }
    if need == Need::All {
        p.extend_from_slice(TEST_PACKAGES);
    }
    p
}

fn is_root() -> bool {
    // SAFETY: geteuid() has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// How this process can install system packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    Root,
    /// Not root, but `sudo -n` works (no password asked).
    Sudo,
    /// Neither: print the commands for the user to run.
    None,
}

impl Privilege {
    pub fn detect(sh: &Shell) -> Privilege {
        if is_root() {
            return Privilege::Root;
        }
        let sudo_ok = which("sudo").is_some()
            && cmd!(sh, "sudo -n true")
                .quiet()
                .ignore_stdout()
                .ignore_stderr()
                .run()
                .is_ok();
        if sudo_ok {
            Privilege::Sudo
        } else {
            Privilege::None
        }
    }

    /// A command run as root (with a non-interactive apt); append the
    /// program and its arguments.
    fn as_root(self, sh: &Shell) -> xshell::Cmd<'_> {
        match self {
            Privilege::Root => cmd!(sh, "env DEBIAN_FRONTEND=noninteractive"),
            _ => cmd!(sh, "sudo -n env DEBIAN_FRONTEND=noninteractive"),
        }
    }
}

fn missing_packages(sh: &Shell, pkgs: &[&str]) -> Result<Vec<String>> {
    if which("dpkg-query").is_none() {
        bail!(
            "dpkg-query not found: `cargo xtask deps` supports Debian and Ubuntu hosts; \
             elsewhere install the equivalents of: {}",
            pkgs.join(" ")
        );
    }
    let mut missing = Vec::new();
    for p in pkgs {
        let fmt = "-f=${Status}";
        let status = cmd!(sh, "dpkg-query -W {fmt} {p}")
            .quiet()
            .ignore_status()
            .ignore_stderr()
            .read()?;
        if !status.ends_with("install ok installed") {
            missing.push(p.to_string());
        }
    }
    Ok(missing)
}

/// The virtme-ng release the VM options are made for (`vm.rs`): newer ones
/// pick virtiofs and the microvm machine by themselves, and change options.
pub const VNG_VERSION: &str = "1.42";

/// The version a `vng --version` output names ("virtme-ng 1.42").
pub fn parse_vng_version(out: &str) -> Option<&str> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("virtme-ng "))
        .map(str::trim)
}

/// The virtme-ng version of the `vng` that would run, if any.
pub fn vng_version() -> Option<String> {
    let out = std::process::Command::new(vng_path()?)
        .arg("--version")
        .output()
        .ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    parse_vng_version(&text).map(str::to_string)
}

/// The pinned `vng`, or an error saying what was found instead and how to
/// install the pinned one. Checked once per process (regress boots often).
pub fn pinned_vng() -> Result<PathBuf> {
    static CHECKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    if let Some(p) = CHECKED.get() {
        return Ok(p.clone());
    }
    let p = check_vng()?;
    Ok(CHECKED.get_or_init(|| p).clone())
}

fn check_vng() -> Result<PathBuf> {
    let Some(path) = vng_path() else {
        bail!("vng not found: run `cargo xtask deps` (virtme-ng {VNG_VERSION} from PyPI)");
    };
    match vng_version() {
        Some(v) if v == VNG_VERSION => Ok(path),
        found => bail!(
            "{} is virtme-ng {}, but the workspace is made for {VNG_VERSION} (newer \
             releases choose virtiofs and the microvm machine, which the guest config \
             lacks); run `cargo xtask deps`, or `python3 -m pip install virtme-ng=={VNG_VERSION}`",
            path.display(),
            found.as_deref().unwrap_or("of an unknown version")
        ),
    }
}

/// Path of the `vng` launcher, wherever pip put it.
pub fn vng_path() -> Option<PathBuf> {
    if let Some(p) = which("vng") {
        return Some(p);
    }
    let home = std::env::var_os("HOME")?;
    let local = PathBuf::from(home).join(".local/bin/vng");
    local.exists().then_some(local)
}

/// Find an executable on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

struct Missing {
    apt: Vec<String>,
    vng: bool,
}

impl Missing {
    fn is_empty(&self) -> bool {
        self.apt.is_empty() && !self.vng
    }

    fn commands(&self) -> Vec<String> {
        let sudo = if is_root() { "" } else { "sudo " };
        let mut c = Vec::new();
        if !self.apt.is_empty() {
            c.push(format!("{sudo}apt-get update"));
            c.push(format!(
                "{sudo}apt-get install -y --no-install-recommends {}",
                self.apt.join(" ")
            ));
        }
        if self.vng {
            c.push(format!("python3 -m pip install virtme-ng=={VNG_VERSION}"));
        }
        c
    }
}

fn missing(sh: &Shell, need: Need) -> Result<Missing> {
    let mut apt = missing_packages(sh, &packages_for(need))?;
    let vng = need != Need::Build && vng_version().as_deref() != Some(VNG_VERSION);
    let have_pip = cmd!(sh, "python3 -m pip --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok();
    if vng && !have_pip {
        apt.push("python3-pip".into());
    }
    Ok(Missing { apt, vng })
}

/// Make sure what `need` requires is installed: install it when this
/// process can (root, or sudo without a password), with the same code as
/// `cargo xtask deps`; otherwise fail with the exact commands to run. Every
/// xtask command calls this before doing real work.
pub fn require(sh: &Shell, need: Need) -> Result<()> {
    let m = missing(sh, need)?;
    if m.is_empty() {
        return Ok(());
    }
    let mut what: Vec<String> = m.apt.clone();
    if m.vng {
        what.push(format!("virtme-ng {VNG_VERSION} (PyPI)"));
    }
    let privilege = Privilege::detect(sh);
    if privilege == Privilege::None && !m.apt.is_empty() {
        bail!(
            "missing host dependencies: {}\ninstalling them needs root; run:\n  {}\n\
             (or `sudo cargo xtask deps`), then this command again",
            what.join(", "),
            m.commands().join("\n  ")
        );
    }
    println!(
        "deps: installing what this command needs: {}",
        what.join(", ")
    );
    install(sh, need, &m, privilege)?;
    let left = missing(sh, need)?;
    if !left.is_empty() {
        bail!(
            "still missing after installing: {}; run by hand:\n  {}",
            left.apt.join(" "),
            left.commands().join("\n  ")
        );
    }
    Ok(())
}

/// Install `m` (what `need` lacks): apt packages as root or through sudo,
/// virtme-ng with pip (for the user when not root).
fn install(sh: &Shell, need: Need, m: &Missing, privilege: Privilege) -> Result<()> {
    if !m.apt.is_empty() {
        let pkgs = &m.apt;
        println!("deps: apt-get install {}", pkgs.join(" "));
        privilege
            .as_root(sh)
            .args(["apt-get", "update", "-q"])
            .run()?;
        privilege
            .as_root(sh)
            .args(["apt-get", "install", "-y", "-q", "--no-install-recommends"])
            .args(pkgs)
            .run()?;
    }
    if missing(sh, need)?.vng {
        install_vng(sh)?;
    }
    Ok(())
}

/// Where `deps` adds deb-src entries (`cargo xtask regress` runs liburing's
/// tests from its Debian source package).
const DEB_SRC_FILE: &str = "/etc/apt/sources.list.d/uring-ipc-deb-src.sources";

/// deb-src stanzas (deb822) mirroring the distribution archive's `deb`
/// entries in `sources` (the texts of apt's source files); third-party
/// repositories are left out, they rarely serve sources.
pub fn deb_src_for(sources: &[String]) -> String {
    let official = |uri: &str| uri.contains("debian.org") || uri.contains("ubuntu.com");
    let mut out = String::new();
    let mut add = |uris: &str, suites: &str, comps: &str, signed: Option<&str>| {
        out.push_str(&format!(
            "Types: deb-src\nURIs: {uris}\nSuites: {suites}\nComponents: {comps}\n"
        ));
        if let Some(k) = signed {
            out.push_str(&format!("Signed-By: {k}\n"));
        }
        out.push('\n');
    };
    for text in sources {
        for stanza in text.split("\n\n") {
            let field = |name: &str| {
                stanza.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    (k.trim() == name).then(|| v.trim().to_string())
                })
            };
            if let (Some(types), Some(uris), Some(suites)) =
                (field("Types"), field("URIs"), field("Suites"))
            {
                let enabled = field("Enabled").is_none_or(|e| e != "no");
                if enabled && types.split_whitespace().any(|t| t == "deb") && official(&uris) {
                    let comps = field("Components").unwrap_or_else(|| "main".into());
                    add(&uris, &suites, &comps, field("Signed-By").as_deref());
                }
                continue;
            }
            for l in stanza.lines() {
                let mut w = l.split_whitespace();
                if w.next() != Some("deb") {
                    continue;
                }
                let mut rest: Vec<&str> = w.collect();
                if rest.first().is_some_and(|o| o.starts_with('[')) {
                    rest.remove(0);
                }
                if let [uri, suite, comps @ ..] = rest.as_slice() {
                    if official(uri) && !comps.is_empty() {
                        add(uri, suite, &comps.join(" "), None);
                    }
                }
            }
        }
    }
    out
}

/// Add deb-src entries when apt has none.
fn ensure_deb_src(sh: &Shell, check: bool, privilege: Privilege) -> Result<()> {
    if crate::liburing::have_deb_src() {
        return Ok(());
    }
    println!("deps: apt has no deb-src entry (`apt-get source liburing` needs one)");
    if check {
        bail!("no deb-src entry in apt's sources; `cargo xtask deps` adds {DEB_SRC_FILE}");
    }
    let mut texts = Vec::new();
    texts.extend(std::fs::read_to_string("/etc/apt/sources.list").ok());
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for e in rd.filter_map(|e| e.ok()) {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "list" || x == "sources") {
                texts.extend(std::fs::read_to_string(&p).ok());
            }
        }
    }
    let stanzas = deb_src_for(&texts);
    if stanzas.is_empty() {
        bail!("no Debian/Ubuntu archive among apt's sources to add a deb-src entry for");
    }
    if privilege == Privilege::None {
        // Not fatal: only `cargo xtask regress` needs it, and it says so.
        println!(
            "deps: adding deb-src entries needs root; write this to {DEB_SRC_FILE} \
             and run `apt-get update`:\n{stanzas}"
        );
        return Ok(());
    }
    let text = format!(
        "# Added by `cargo xtask deps`: source packages for `cargo xtask regress`.\n{stanzas}"
    );
    privilege
        .as_root(sh)
        .args(["tee", DEB_SRC_FILE])
        .stdin(text)
        .quiet()
        .ignore_stdout()
        .run()?;
    println!("deps: wrote {DEB_SRC_FILE}; apt-get update");
    privilege
        .as_root(sh)
        .args(["apt-get", "update", "-q"])
        .run()?;
    Ok(())
}

/// pip-install the pinned virtme-ng (for the user when not root).
fn install_vng(sh: &Shell) -> Result<()> {
    let spec = format!("virtme-ng=={VNG_VERSION}");
    println!("deps: pip install {spec}");
    let user = if is_root() { None } else { Some("--user") };
    let first = cmd!(sh, "python3 -m pip install -q {user...} {spec}")
        .ignore_stderr()
        .run();
    if first.is_err() {
        // Distribution pythons refuse pip installs (PEP 668) unless told.
        cmd!(
            sh,
            "python3 -m pip install -q {user...} --break-system-packages {spec}"
        )
        .run()?;
    }
    pinned_vng().context("after installing virtme-ng")?;
    Ok(())
}

pub fn run(sh: &Shell, args: &DepsArgs) -> Result<()> {
    let privilege = Privilege::detect(sh);
    ensure_deb_src(sh, args.check, privilege)?;
    let m = missing(sh, Need::All)?;
    if m.is_empty() {
        println!("deps: everything is installed");
        return Ok(());
    }
    if !m.apt.is_empty() {
        println!("deps: missing Debian packages: {}", m.apt.join(" "));
    }
    if m.vng {
        println!(
            "deps: missing virtme-ng {VNG_VERSION} (installed from PyPI; found: {})",
            vng_version().as_deref().unwrap_or("none")
        );
    }
    if args.check {
        bail!(
            "missing host dependencies; install with:\n  {}",
            m.commands().join("\n  ")
        );
    }
    if !m.apt.is_empty() && privilege == Privilege::None {
        bail!(
            "installing Debian packages needs root (or sudo without a password); run:\n  {}",
            m.commands().join("\n  ")
        );
    }
    install(sh, Need::All, &m, privilege)?;
    println!("deps: done");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vng_versions() {
        assert_eq!(parse_vng_version("virtme-ng 1.42\n"), Some("1.42"));
        assert_eq!(parse_vng_version("junk\nvirtme-ng 1.38 \n"), Some("1.38"));
        assert_eq!(parse_vng_version("usage: vng"), None);
    }

    #[test]
    fn deb_src_mirrors_archive_entries() {
        let deb822 = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n\
                      Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
                      Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\n";
        let one_line =
            "# comment\ndeb [arch=amd64] http://archive.ubuntu.com/ubuntu noble main universe\n\
                        deb https://example.com/repo stable main\n";
        let out = deb_src_for(&[deb822.to_string(), one_line.to_string()]);
        assert_eq!(
            out,
            "Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n\
             Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
             Types: deb-src\nURIs: http://archive.ubuntu.com/ubuntu\nSuites: noble\n\
             Components: main universe\n\n"
        );
        assert!(deb_src_for(&["Types: deb\nURIs: https://x.org/\nSuites: a\n".into()]).is_empty());
    }
}
