//! patches/series: the ordered list of patches applied to the base kernel.
//!
//! Format: one patch file name per line, relative to patches/; blank lines
//! and lines starting with `#` are ignored. Quilt-style options after the
//! name are not supported: every patch applies with `git am` (-p1).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// Patch file names, in application order.
    pub patches: Vec<String>,
}

impl Series {
    pub fn parse(text: &str) -> Result<Series> {
        let mut patches: Vec<String> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let lineno = i + 1;
            let mut words = line.split_whitespace();
            let name = words.next().unwrap_or_default();
            if let Some(extra) = words.next() {
                bail!("patches/series:{lineno}: unexpected `{extra}` after `{name}` (options are not supported)");
            }
            if name.contains("..") || name.starts_with('/') {
                bail!("patches/series:{lineno}: `{name}` must be a path inside patches/");
            }
            if !name.ends_with(".patch") {
                bail!("patches/series:{lineno}: `{name}` is not a .patch file");
            }
            if patches.iter().any(|p| p == name) {
                bail!("patches/series:{lineno}: `{name}` is listed twice");
            }
            patches.push(name.to_string());
        }
        Ok(Series { patches })
    }

    pub fn load(patch_dir: &Path) -> Result<Series> {
        let path = patch_dir.join("series");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let series = Series::parse(&text)?;
        for p in &series.patches {
            if !patch_dir.join(p).is_file() {
                bail!("patches/series lists `{p}`, but patches/{p} does not exist");
            }
        }
        Ok(series)
    }

    pub fn paths(&self, patch_dir: &Path) -> Vec<PathBuf> {
        self.patches.iter().map(|p| patch_dir.join(p)).collect()
    }

    /// What identifies the series in `patch_dir` for a stamp: the names
    /// and contents of its patches, in order.
    pub fn hash(&self, patch_dir: &Path) -> Result<String> {
        let mut parts: Vec<Vec<u8>> = Vec::new();
        for (name, path) in self.patches.iter().zip(self.paths(patch_dir)) {
            parts.push(name.as_bytes().to_vec());
            parts.push(std::fs::read(&path)?);
        }
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        Ok(crate::stamp::hash(&refs))
    }

    pub fn render(&self) -> String {
        let mut s = String::from(
            "# Applied in order with `git am` on top of the base kernel (patches/base.toml).\n\
             # Regenerate with `cargo xtask patches export`.\n",
        );
        for p in &self.patches {
            s.push_str(p);
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_comments_and_blanks() {
        let s = Series::parse("# c\n\n0001-a.patch\n  0002-b.patch  \n#x.patch\n").unwrap();
        assert_eq!(s.patches, vec!["0001-a.patch", "0002-b.patch"]);
    }

    #[test]
    fn empty_series_is_valid() {
        assert!(Series::parse("").unwrap().patches.is_empty());
    }

    #[test]
    fn rejects_options_duplicates_and_escapes() {
        let e = Series::parse("0001-a.patch -p0\n").unwrap_err().to_string();
        assert!(e.contains("series:1") && e.contains("-p0"), "{e}");
        let e = Series::parse("a.patch\na.patch\n").unwrap_err().to_string();
        assert!(e.contains("series:2") && e.contains("twice"), "{e}");
        assert!(Series::parse("../x.patch\n").is_err());
        assert!(Series::parse("/etc/x.patch\n").is_err());
        assert!(Series::parse("notes.txt\n").is_err());
    }

    #[test]
    fn render_round_trips() {
        let s = Series {
            patches: vec!["0001-a.patch".into(), "0002-b.patch".into()],
        };
        assert_eq!(Series::parse(&s.render()).unwrap(), s);
    }

    #[test]
    fn load_names_a_missing_patch() {
        let dir = std::env::temp_dir().join(format!("xtask-series-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("series"), "0001-here.patch\n0002-gone.patch\n").unwrap();
        std::fs::write(dir.join("0001-here.patch"), "").unwrap();
        let e = Series::load(&dir).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(e.contains("0002-gone.patch"), "{e}");
    }
}
