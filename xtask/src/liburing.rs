//! liburing's own test suite, from Debian's liburing source package: the
//! files pinned by content in ci/liburing.toml (apt, Debian's pool, the
//! snapshot archive or the local cache), built on the host (about 15
//! binaries a second on two cores; the tests link liburing statically) and
//! run in the guest by `cargo xtask regress`.
//!
//! Layout under target/regress/liburing/:
//!   dl/               the .dsc, .orig.tar.gz(.asc) and .debian.tar.xz
//!   src-<version>/    the unpacked (Debian-patched) source, built in place

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::guest::{Convention, GuestTest};

/// The pinned source package: name, version and its files by content.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiburingPin {
    pub package: String,
    pub version: String,
    pub fetch: crate::fetch::Pin,
}

impl LiburingPin {
    pub fn path() -> PathBuf {
        crate::project_root().join("ci/liburing.toml")
    }

    pub fn load() -> Result<LiburingPin> {
        let path = Self::path();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let pin: LiburingPin =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        pin.fetch.validate(&path.display().to_string())?;
        if !pin.fetch.files.iter().any(|f| f.name.ends_with(".dsc")) {
            bail!("{}: [fetch] pins no .dsc", path.display());
        }
        Ok(pin)
    }

    fn dsc(&self) -> &str {
        let f = self.fetch.files.iter().find(|f| f.name.ends_with(".dsc"));
        &f.expect("checked by load").name
    }
}

fn root() -> PathBuf {
    crate::target_dir().join("regress").join("liburing")
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

/// Fetch (once), unpack and build the suite; returns the test directory.
pub fn prepare(sh: &Shell, jobs: usize) -> Result<PathBuf> {
    let pin = LiburingPin::load()?;
    let version = &pin.version;
    let src = root().join(format!("src-{version}"));
    let stamp = src.join(".xtask-built");
    if stamp.exists() {
        return Ok(src.join("test"));
    }
    let dl = root().join("dl");
    let spec = format!("{}={version}", pin.package);
    let mut fetcher =
        crate::fetch::Fetcher::new(&pin.fetch, &spec, &dl, &crate::fetch::cache_dir());
    for (name, origin) in fetcher
        .fetch_all()
        .with_context(|| format!("getting the {spec} source package (ci/liburing.toml)"))?
    {
        if let crate::fetch::Origin::Source(s) = origin {
            println!("[liburing] {name}: sha256 ok, from {s}");
        }
    }
    let dsc = fetcher.path(pin.dsc());
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
    std::fs::write(&stamp, version)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_in_pins_parse() {
        let lu = LiburingPin::load().unwrap();
        assert_eq!(lu.dsc(), format!("liburing_{}.dsc", lu.version));
        let base = crate::kernel::BaseSource::load().unwrap();
        let deb = &base.fetch.files[0].name;
        assert_eq!(
            deb,
            &format!(
                "{}_{}_all.deb",
                base.package,
                base.version.replace(':', "%3a")
            )
        );
        for pin in [&lu.fetch, &base.fetch] {
            assert_eq!(pin.sources.first().map(|s| &s[..3]), Some("apt"));
            assert_eq!(pin.sources.last().map(String::as_str), Some("cache"));
        }
    }

    /// Fetches the real pin through its first source that works (apt-get
    /// source here): `cargo test -p xtask -- --ignored fetches_the_pinned`.
    #[test]
    #[ignore = "needs apt with a deb-src entry, or the network"]
    fn fetches_the_pinned_source_package() {
        let pin = LiburingPin::load().unwrap();
        let d = std::env::temp_dir().join(format!("xtask-liburing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let spec = format!("{}={}", pin.package, pin.version);
        let got = crate::fetch::Fetcher::new(&pin.fetch, &spec, &d.join("dl"), &d.join("cache"))
            .fetch_all();
        let names: Vec<String> = std::fs::read_dir(d.join("cache"))
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let _ = std::fs::remove_dir_all(&d);
        let got = got.unwrap();
        assert_eq!(got.len(), pin.fetch.files.len());
        assert_eq!(names.len(), pin.fetch.files.len(), "{names:?}");
    }
}
