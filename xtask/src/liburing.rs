//! liburing's own test suite, from Debian's liburing source package: fetched
//! with `apt-get source` at a pinned version, built on the host (about 15
//! binaries a second on two cores; the tests link liburing statically) and
//! run in the guest by `cargo xtask regress`.
//!
//! Layout under target/regress/liburing/:
//!   dl/               the .dsc, .orig.tar.gz and .debian.tar.xz
//!   src-<version>/    the unpacked (Debian-patched) source, built in place

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::guest::{Convention, GuestTest};

pub const PACKAGE: &str = "liburing";
/// Debian bookworm's version; its test/ directory holds 145 programs.
pub const VERSION: &str = "2.3-3";

fn root() -> PathBuf {
    crate::target_dir().join("regress").join(PACKAGE)
}

fn dsc_name() -> String {
    let upstream_and_rev = VERSION.split_once(':').map_or(VERSION, |(_, v)| v);
    format!("{PACKAGE}_{upstream_and_rev}.dsc")
}

/// Whether apt has any deb-src entry (`apt-get source` needs one).
pub fn have_deb_src() -> bool {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(rd.filter_map(|e| e.ok().map(|e| e.path())));
    }
    files.iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|t| {
            t.lines().any(|l| {
                let l = l.trim();
                l.starts_with("deb-src ")
                    || (l.starts_with("Types:") && l.split_whitespace().any(|w| w == "deb-src"))
            })
        })
    })
}

/// Download (once), unpack and build the suite; returns the test directory.
pub fn prepare(sh: &Shell, jobs: usize) -> Result<PathBuf> {
    let dl = root().join("dl");
    let dsc = dl.join(dsc_name());
    if !dsc.exists() {
        if !have_deb_src() {
            bail!(
                "`apt-get source {PACKAGE}` needs a deb-src entry in apt's sources; \
                 `cargo xtask deps` adds one (as root), then run `apt-get update`"
            );
        }
        std::fs::create_dir_all(&dl)?;
        println!("[liburing] apt-get source --download-only {PACKAGE}={VERSION}");
        let spec = format!("{PACKAGE}={VERSION}");
        let _d = sh.push_dir(&dl);
        let got = cmd!(sh, "apt-get source -q --download-only {spec}")
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run();
        if got.is_err() || !dsc.exists() {
            bail!(
                "could not download the {PACKAGE} {VERSION} source package; check \
                 `apt-cache showsrc {PACKAGE}` (after `apt-get update`): Debian may \
                 serve another version now, in which case pin it in xtask/src/liburing.rs"
            );
        }
    }
    let src = root().join(format!("src-{VERSION}"));
    let stamp = src.join(".xtask-built");
    if stamp.exists() {
        return Ok(src.join("test"));
    }
    let _ = std::fs::remove_dir_all(&src);
    // dpkg-source checks every file against the checksums in the .dsc.
    println!("[liburing] unpacking {}", dsc.display());
    cmd!(sh, "dpkg-source -x {dsc} {src}")
        .quiet()
        .ignore_stdout()
        .run()
        .context("dpkg-source (Debian: dpkg-dev) failed")?;
    let _d = sh.push_dir(&src);
    println!("[liburing] ./configure && make -j{jobs} (library and tests)");
    cmd!(sh, "./configure").quiet().ignore_stdout().run()?;
    let j = format!("-j{jobs}");
    let t0 = std::time::Instant::now();
    cmd!(sh, "make -s {j}")
        .quiet()
        .ignore_stdout()
        .run()
        .context("building liburing and its tests failed (messages above)")?;
    println!(
        "[liburing] built in {}",
        crate::progress::fmt_duration(t0.elapsed())
    );
    std::fs::write(&stamp, VERSION)?;
    Ok(src.join("test"))
}

/// Every test program (`*.t`) of the suite, by name, in liburing's order
/// (alphabetical), as guest tests named `liburing.<program>`.
pub fn tests(test_dir: &Path, timeout: u64) -> Result<Vec<GuestTest>> {
    let mut progs: Vec<PathBuf> = std::fs::read_dir(test_dir)
        .with_context(|| format!("listing {}", test_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "t") && p.is_file())
        .collect();
    progs.sort();
    Ok(progs
        .into_iter()
        .map(|p| GuestTest {
            name: format!("liburing.{}", p.file_stem().unwrap().to_string_lossy()),
            path: p,
            args: Vec::new(),
            convention: Convention::Liburing,
            timeout: Some(timeout),
            // They create files in the working directory; the host's tree
            // is read-only in the guest.
            scratch: true,
        })
        .collect())
}
