//! Kernel config fragments: parse, merge, apply to a base .config, verify.
//!
//! A fragment holds `CONFIG_FOO=value` and `# CONFIG_FOO is not set` lines
//! (`CONFIG_FOO=n` means the same). Later fragments override earlier ones.
//! After `make olddefconfig`, every requested value must be in the final
//! .config: Kconfig silently drops options whose dependencies are missing,
//! and a silently dropped option is a test that quietly stops testing.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Symbol name (with the CONFIG_ prefix) to value (`y`, `m`, `n`, a number or
/// a quoted string, exactly as written in .config).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fragment {
    pub entries: BTreeMap<String, String>,
}

fn parse_line(line: &str) -> Option<Result<(String, String)>> {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("# ") {
        let sym = rest.strip_suffix(" is not set")?;
        if sym.starts_with("CONFIG_") && is_symbol(sym) {
            return Some(Ok((sym.to_string(), "n".into())));
        }
        return None;
    }
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let Some((sym, val)) = line.split_once('=') else {
        return Some(Err(anyhow::anyhow!("`{line}` is not CONFIG_FOO=value")));
    };
    if !sym.starts_with("CONFIG_") || !is_symbol(sym) {
        return Some(Err(anyhow::anyhow!("`{sym}` is not a CONFIG_ symbol")));
    }
    if val.is_empty() {
        return Some(Err(anyhow::anyhow!("`{sym}` has an empty value")));
    }
    Some(Ok((sym.to_string(), val.to_string())))
}

fn is_symbol(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Fragment {
    pub fn parse(text: &str, origin: &str) -> Result<Fragment> {
        let mut entries = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            if let Some(r) = parse_line(line) {
                let (k, v) = r.with_context(|| format!("{origin}:{}", i + 1))?;
                if entries.insert(k.clone(), v).is_some() {
                    bail!("{origin}:{}: {k} is set twice in one fragment", i + 1);
                }
            }
        }
        Ok(Fragment { entries })
    }

    pub fn load(path: &Path) -> Result<Fragment> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Fragment::parse(&text, &path.display().to_string())
    }

    /// Merge fragments in order; a later value wins.
    pub fn merge(frags: &[Fragment]) -> Fragment {
        let mut out = Fragment::default();
        for f in frags {
            for (k, v) in &f.entries {
                out.entries.insert(k.clone(), v.clone());
            }
        }
        out
    }

    /// The merged request as fragment text, for hashing and for the record.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.entries {
            if v == "n" {
                s.push_str(&format!("# {k} is not set\n"));
            } else {
                s.push_str(&format!("{k}={v}\n"));
            }
        }
        s
    }

    /// Apply onto a full .config: drop every line of a symbol we set, then
    /// append our values. `make olddefconfig` resolves the rest.
    pub fn apply_to(&self, base_config: &str) -> String {
        let mut out = String::new();
        for line in base_config.lines() {
            let sym = match parse_line(line) {
                Some(Ok((k, _))) => Some(k),
                _ => None,
            };
            if sym.is_some_and(|k| self.entries.contains_key(&k)) {
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        out.push_str("# Requested by kernel-config/ fragments\n");
        out.push_str(&self.render());
        out
    }

    /// Every requested value that the final .config does not have, as
    /// (symbol, requested, actual) with `n` for unset.
    pub fn verify(&self, final_config: &str) -> Vec<(String, String, String)> {
        let have = Fragment::parse_config(final_config);
        let mut bad = Vec::new();
        for (k, want) in &self.entries {
            let got = have.get(k).cloned().unwrap_or_else(|| "n".into());
            if &got != want {
                bad.push((k.clone(), want.clone(), got));
            }
        }
        bad
    }

    fn parse_config(text: &str) -> BTreeMap<String, String> {
        text.lines()
            .filter_map(parse_line)
            .filter_map(Result::ok)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_set_unset_and_strings() {
        let f = Fragment::parse(
            "# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"-x\"\nCONFIG_D=17\nCONFIG_E=n\n",
            "t",
        )
        .unwrap();
        assert_eq!(f.entries["CONFIG_A"], "y");
        assert_eq!(f.entries["CONFIG_B"], "n");
        assert_eq!(f.entries["CONFIG_C"], "\"-x\"");
        assert_eq!(f.entries["CONFIG_D"], "17");
        assert_eq!(f.entries["CONFIG_E"], "n");
        assert_eq!(f.entries.len(), 5);
    }

    #[test]
    fn rejects_garbage_with_location() {
        let e = Fragment::parse("CONFIG_A=y\nFOO=y\n", "frag").unwrap_err();
        assert!(format!("{e:#}").contains("frag:2"), "{e:#}");
        assert!(Fragment::parse("CONFIG_A\n", "f").is_err());
        assert!(Fragment::parse("CONFIG_A=\n", "f").is_err());
        assert!(Fragment::parse("CONFIG_A=y\nCONFIG_A=n\n", "f").is_err());
    }

    #[test]
    fn later_fragment_wins() {
        let a = Fragment::parse("CONFIG_A=y\nCONFIG_L=\"-a\"\n", "a").unwrap();
        let b = Fragment::parse("CONFIG_L=\"-b\"\n# CONFIG_A is not set\n", "b").unwrap();
        let m = Fragment::merge(&[a, b]);
        assert_eq!(m.entries["CONFIG_L"], "\"-b\"");
        assert_eq!(m.entries["CONFIG_A"], "n");
    }

    #[test]
    fn apply_replaces_existing_lines() {
        let f = Fragment::parse("CONFIG_A=y\nCONFIG_B=n\n", "f").unwrap();
        let base = "CONFIG_X=y\n# CONFIG_A is not set\nCONFIG_B=y\n";
        let out = f.apply_to(base);
        assert!(out.contains("CONFIG_X=y\n"));
        assert!(out.contains("CONFIG_A=y\n"));
        assert!(!out.contains("CONFIG_B=y"));
        assert!(!out.contains("# CONFIG_A is not set"));
        assert!(out.contains("# CONFIG_B is not set"));
    }

    #[test]
    fn verify_names_dropped_options() {
        let f = Fragment::parse(
            "CONFIG_A=y\nCONFIG_KASAN=y\n# CONFIG_C is not set\nCONFIG_S=\"v\"\n",
            "f",
        )
        .unwrap();
        let fin = "CONFIG_A=y\n# CONFIG_KASAN is not set\nCONFIG_S=\"w\"\n";
        let bad = f.verify(fin);
        assert_eq!(
            bad,
            vec![
                ("CONFIG_KASAN".into(), "y".into(), "n".into()),
                ("CONFIG_S".into(), "\"v\"".into(), "\"w\"".into()),
            ]
        );
        let fin_ok = "CONFIG_A=y\nCONFIG_KASAN=y\nCONFIG_S=\"v\"\n";
        assert!(f.verify(fin_ok).is_empty());
    }
}
