//! Inputs addressed by content: files known by their sha256, fetched from
//! the first of an ordered list of sources that has them.
//!
//! A pin (patches/base.toml, ci/liburing.toml) names each file with its
//! sha256 (and sha1, which snapshot.debian.org addresses files by) and lists
//! where to look, in order:
//!
//! - `apt`: `apt-get download PACKAGE=VERSION` (a binary package);
//! - `apt-source`: `apt-get source --download-only PACKAGE=VERSION` (every
//!   file of a source package);
//! - a URL (`https://`, `http://` through curl, `file://` read directly),
//!   where `{file}` is replaced by the file's name and `{sha1}` by its sha1;
//! - `cache`: the local cache directory, `$URING_IPC_CACHE` or
//!   target/cache/.
//!
//! A file already in the destination directory with the right sha256 is
//! used as it is: no apt, no network. Otherwise the first source that yields
//! the file wins; a source that does not have it is skipped with its reason,
//! but a source that yields different bytes is an error naming it (never
//! silently passed over). What was fetched is also put into the cache, so a
//! later fresh clone on the same machine finds it there.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// One file of a pin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub name: String,
    pub sha256: String,
    /// Only for `{sha1}` in source URLs (snapshot.debian.org's /file/).
    #[serde(default)]
    pub sha1: Option<String>,
}

/// The files of a pin and where to look for them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    pub sources: Vec<String>,
    pub files: Vec<FileSpec>,
}

impl Pin {
    /// Reject malformed checksums and unknown source kinds early, naming
    /// the file the pin came from.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
        for f in &self.files {
            if !hex(&f.sha256, 64) {
                bail!("{origin}: sha256 of {} must be 64 hex digits", f.name);
            }
            if f.sha1.as_deref().is_some_and(|s| !hex(s, 40)) {
                bail!("{origin}: sha1 of {} must be 40 hex digits", f.name);
            }
        }
        for s in &self.sources {
            Source::parse(s).with_context(|| format!("{origin}: source {s:?}"))?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Apt,
    AptSrc,
    Url(String),
    Cache,
}

impl Source {
    pub fn parse(s: &str) -> Result<Source> {
        Ok(match s {
            "apt" => Source::Apt,
            "apt-source" => Source::AptSrc,
            "cache" => Source::Cache,
            u if u.starts_with("https://")
                || u.starts_with("http://")
                || u.starts_with("file://") =>
            {
                Source::Url(u.to_string())
            }
            _ => bail!("not a source: use apt, apt-source, cache or an http(s):// or file:// URL"),
        })
    }

    fn url_for(template: &str, f: &FileSpec) -> Option<String> {
        if template.contains("{sha1}") {
            let sha1 = f.sha1.as_deref()?;
            return Some(template.replace("{sha1}", sha1).replace("{file}", &f.name));
        }
        Some(template.replace("{file}", &f.name))
    }
}

/// Where a file came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Already in the destination with the right checksum.
    Present,
    /// From this source (as written in the pin).
    Source(String),
}

/// The local cache: `$URING_IPC_CACHE`, or target/cache/.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("URING_IPC_CACHE") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => crate::target_dir().join("cache"),
    }
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Fetches the files of one pin into `dest`.
pub struct Fetcher<'a> {
    pub pin: &'a Pin,
    /// `PACKAGE=VERSION`, for the apt sources.
    pub apt_spec: String,
    pub dest: PathBuf,
    pub cache: PathBuf,
    /// Where apt downloads to; apt-source fetches every file at once, so
    /// it runs once per fetcher.
    staging: PathBuf,
    apt_source_ran: Option<Result<(), String>>,
}

impl<'a> Fetcher<'a> {
    pub fn new(pin: &'a Pin, apt_spec: &str, dest: &Path, cache: &Path) -> Fetcher<'a> {
        Fetcher {
            pin,
            apt_spec: apt_spec.to_string(),
            dest: dest.to_path_buf(),
            cache: cache.to_path_buf(),
            staging: dest.join(".staging"),
            apt_source_ran: None,
        }
    }

    /// Every file of the pin, in `dest`, verified. Returns where each came
    /// from, in the pin's order.
    pub fn fetch_all(&mut self) -> Result<Vec<(String, Origin)>> {
        let files = self.pin.files.clone();
        let mut out = Vec::new();
        for f in &files {
            out.push((f.name.clone(), self.fetch(f)?));
        }
        let _ = std::fs::remove_dir_all(&self.staging);
        Ok(out)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dest.join(name)
    }

    fn fetch(&mut self, f: &FileSpec) -> Result<Origin> {
        std::fs::create_dir_all(&self.dest)
            .with_context(|| format!("creating {}", self.dest.display()))?;
        let target = self.dest.join(&f.name);
        if target.exists() {
            let got = sha256_file(&target)?;
            if got == f.sha256 {
                self.put_in_cache(f, &target);
                return Ok(Origin::Present);
            }
            bail!(
                "{} is already there but its sha256 is {got}, not {} as pinned; \
                 delete it to fetch it again",
                target.display(),
                f.sha256
            );
        }
        let part = self.dest.join(format!(".{}.part", f.name));
        let mut tried = Vec::new();
        for s in self.pin.sources.clone() {
            let source = Source::parse(&s)?;
            let _ = std::fs::remove_file(&part);
            match self.obtain(&source, f, &part) {
                Ok(()) => {}
                Err(why) => {
                    tried.push(format!("{s}: {why}"));
                    continue;
                }
            }
            let got = sha256_file(&part)?;
            if got != f.sha256 {
                let _ = std::fs::remove_file(&part);
                bail!(
                    "{} from source {s} has sha256 {got}, but {} is pinned; \
                     that source serves different bytes under this name",
                    f.name,
                    f.sha256
                );
            }
            std::fs::rename(&part, &target)?;
            if source != Source::Cache {
                self.put_in_cache(f, &target);
            }
            return Ok(Origin::Source(s));
        }
        bail!(
            "no source has {} (sha256 {}):\n  {}",
            f.name,
            f.sha256,
            tried.join("\n  ")
        )
    }

    /// Put the file at `to`; Err is the reason this source does not have it.
    fn obtain(&mut self, source: &Source, f: &FileSpec, to: &Path) -> Result<(), String> {
        match source {
            Source::Cache => {
                let p = self.cache.join(&f.name);
                if !p.is_file() {
                    return Err(format!("not in {}", self.cache.display()));
                }
                copy(&p, to)
            }
            Source::Url(template) => {
                let Some(url) = Source::url_for(template, f) else {
                    return Err("the pin gives no sha1 for {sha1}".into());
                };
                if let Some(path) = url.strip_prefix("file://") {
                    if !Path::new(path).is_file() {
                        return Err(format!("{path} does not exist"));
                    }
                    return copy(Path::new(path), to);
                }
                let out = Command::new("curl")
                    .args(["-fsSL", "--retry", "2", "--connect-timeout", "20", "-o"])
                    .arg(to)
                    .arg(&url)
                    .output()
                    .map_err(|e| format!("running curl: {e}"))?;
                if !out.status.success() {
                    let _ = std::fs::remove_file(to);
                    return Err(format!(
                        "curl {url}: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
                Ok(())
            }
            Source::Apt => {
                std::fs::create_dir_all(&self.staging).map_err(|e| e.to_string())?;
                let out = Command::new("apt-get")
                    .args(["download", "-q", &self.apt_spec])
                    .current_dir(&self.staging)
                    .output()
                    .map_err(|e| format!("running apt-get: {e}"))?;
                if !out.status.success() {
                    return Err(format!(
                        "apt-get download {} failed ({}); apt may no longer serve this version",
                        self.apt_spec,
                        last_line(&out.stderr)
                    ));
                }
                self.take_staged(f, to)
            }
            Source::AptSrc => {
                if self.apt_source_ran.is_none() {
                    self.apt_source_ran = Some(self.apt_source());
                }
                if let Some(Err(why)) = &self.apt_source_ran {
                    return Err(why.clone());
                }
                self.take_staged(f, to)
            }
        }
    }

    fn apt_source(&self) -> Result<(), String> {
        if !crate::liburing::have_deb_src() {
            return Err("apt has no deb-src entry (`cargo xtask deps` adds one)".into());
        }
        std::fs::create_dir_all(&self.staging).map_err(|e| e.to_string())?;
        let out = Command::new("apt-get")
            .args(["source", "-q", "--download-only", &self.apt_spec])
            .current_dir(&self.staging)
            .output()
            .map_err(|e| format!("running apt-get: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "apt-get source {} failed ({}); apt may no longer serve this version",
                self.apt_spec,
                last_line(&out.stderr)
            ));
        }
        Ok(())
    }

    fn take_staged(&self, f: &FileSpec, to: &Path) -> Result<(), String> {
        // apt escapes ':' of an epoch as %3a in file names.
        let p = self.staging.join(f.name.replace(':', "%3a"));
        if !p.is_file() {
            return Err(format!("apt did not produce {}", f.name));
        }
        std::fs::rename(&p, to).map_err(|e| e.to_string())
    }

    /// Best effort: a hard link (same filesystem) or a copy in the cache.
    fn put_in_cache(&self, f: &FileSpec, from: &Path) {
        let c = self.cache.join(&f.name);
        if c.exists() || std::fs::create_dir_all(&self.cache).is_err() {
            return;
        }
        if std::fs::hard_link(from, &c).is_err() {
            let tmp = self.cache.join(format!(".{}.part", f.name));
            if std::fs::copy(from, &tmp).is_ok() {
                let _ = std::fs::rename(&tmp, &c);
            }
        }
    }
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("copying {}: {e}", from.display()))
}

fn last_line(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scratch(PathBuf);
    impl Scratch {
        fn new(name: &str) -> Scratch {
            let d = std::env::temp_dir().join(format!("xtask-fetch-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Scratch(d)
        }
        fn dir(&self, sub: &str) -> PathBuf {
            let d = self.0.join(sub);
            std::fs::create_dir_all(&d).unwrap();
            d
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const GOOD: &[u8] = b"the pinned bytes\n";

    fn sha(bytes: &[u8]) -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn pin(sources: &[String]) -> Pin {
        Pin {
            sources: sources.to_vec(),
            files: vec![FileSpec {
                name: "pkg_1.0_all.deb".into(),
                sha256: sha(GOOD),
                sha1: Some("0123456789abcdef0123456789abcdef01234567".into()),
            }],
        }
    }

    fn url(dir: &Path) -> String {
        format!("file://{}/{{file}}", dir.display())
    }

    #[test]
    fn first_source_with_the_file_wins_and_fills_the_cache() {
        let s = Scratch::new("order");
        let (gone, a, b, dest, cache) = (
            s.0.join("gone"),
            s.dir("a"),
            s.dir("b"),
            s.dir("dest"),
            s.0.join("cache"),
        );
        std::fs::write(a.join("pkg_1.0_all.deb"), GOOD).unwrap();
        std::fs::write(b.join("pkg_1.0_all.deb"), GOOD).unwrap();
        let p = pin(&[url(&gone), url(&a), url(&b), "cache".into()]);
        let mut f = Fetcher::new(&p, "pkg=1.0", &dest, &cache);
        let got = f.fetch_all().unwrap();
        assert_eq!(got[0].1, Origin::Source(url(&a)));
        assert_eq!(std::fs::read(dest.join("pkg_1.0_all.deb")).unwrap(), GOOD);
        assert_eq!(std::fs::read(cache.join("pkg_1.0_all.deb")).unwrap(), GOOD);
        assert!(!dest.join(".staging").exists());
    }

    #[test]
    fn the_cache_serves_when_every_earlier_source_fails() {
        let s = Scratch::new("cache");
        let (dest, cache) = (s.dir("dest"), s.dir("cache"));
        std::fs::write(cache.join("pkg_1.0_all.deb"), GOOD).unwrap();
        let p = pin(&[
            url(&s.0.join("none")),
            "file:///nonexistent/snapshot/{sha1}".into(),
            "cache".into(),
        ]);
        let got = Fetcher::new(&p, "pkg=1.0", &dest, &cache)
            .fetch_all()
            .unwrap();
        assert_eq!(got[0].1, Origin::Source("cache".into()));
        assert_eq!(std::fs::read(dest.join("pkg_1.0_all.deb")).unwrap(), GOOD);
    }

    #[test]
    fn a_file_already_there_needs_no_source() {
        let s = Scratch::new("present");
        let (dest, cache) = (s.dir("dest"), s.0.join("cache"));
        std::fs::write(dest.join("pkg_1.0_all.deb"), GOOD).unwrap();
        // Any source would fail loudly: `apt` with a bogus spec, a
        // source that serves other bytes.
        let bad = s.dir("bad");
        std::fs::write(bad.join("pkg_1.0_all.deb"), b"other").unwrap();
        let p = pin(&[url(&bad), "apt".into()]);
        let got = Fetcher::new(&p, "no-such-package=0", &dest, &cache)
            .fetch_all()
            .unwrap();
        assert_eq!(got[0].1, Origin::Present);
        // ... and it is put into the cache for the next clone.
        assert_eq!(std::fs::read(cache.join("pkg_1.0_all.deb")).unwrap(), GOOD);
    }

    #[test]
    fn a_mismatch_is_an_error_naming_the_source() {
        let s = Scratch::new("mismatch");
        let (bad, good, dest, cache) = (s.dir("bad"), s.dir("good"), s.dir("dest"), s.dir("c"));
        std::fs::write(bad.join("pkg_1.0_all.deb"), b"tampered").unwrap();
        std::fs::write(good.join("pkg_1.0_all.deb"), GOOD).unwrap();
        let p = pin(&[url(&bad), url(&good)]);
        let err = Fetcher::new(&p, "pkg=1.0", &dest, &cache)
            .fetch_all()
            .unwrap_err()
            .to_string();
        assert!(err.contains(&url(&bad)), "{err}");
        assert!(err.contains(&sha(b"tampered")), "{err}");
        assert!(!dest.join("pkg_1.0_all.deb").exists());
        assert!(!cache.join("pkg_1.0_all.deb").exists());

        // A corrupted cache entry is named too.
        std::fs::write(cache.join("pkg_1.0_all.deb"), b"bitrot").unwrap();
        let p = pin(&[url(&s.0.join("none")), "cache".into()]);
        let err = Fetcher::new(&p, "pkg=1.0", &dest, &cache)
            .fetch_all()
            .unwrap_err()
            .to_string();
        assert!(err.contains("from source cache"), "{err}");
    }

    #[test]
    fn no_source_lists_every_reason() {
        let s = Scratch::new("none");
        let (dest, cache) = (s.dir("dest"), s.0.join("cache"));
        let p = pin(&[url(&s.0.join("x")), "cache".into()]);
        let err = Fetcher::new(&p, "pkg=1.0", &dest, &cache)
            .fetch_all()
            .unwrap_err()
            .to_string();
        assert!(err.contains("no source has pkg_1.0_all.deb"), "{err}");
        assert!(
            err.contains("does not exist") && err.contains("not in"),
            "{err}"
        );
    }

    #[test]
    fn pins_are_validated() {
        let mut p = pin(&["ftp://x/{file}".into()]);
        assert!(p.validate("t").is_err());
        p.sources = vec!["apt".into(), "cache".into()];
        p.validate("t").unwrap();
        p.files[0].sha256 = "abc".into();
        assert!(p.validate("t").is_err());
    }
}
