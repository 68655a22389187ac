//! Stamps: a file that records what a finished step was made from (a hash
//! of its inputs), so that the step is skipped while they stay the same.
//!
//! A stamp is removed before its step runs and written only after the step
//! succeeded, so an interrupted or failed step never looks finished.

use std::path::PathBuf;

use anyhow::Result;
use sha2::{Digest, Sha256};

/// The sha256 of `parts`, in hex. Each part is preceded by its length, so
/// two different lists of parts never hash alike (`ab`,`c` and `a`,`bc`).
pub fn hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The stamp of one step: `path` holds `key` once the step finished with
/// the inputs `key` identifies.
pub struct Stamp {
    path: PathBuf,
    key: String,
}

impl Stamp {
    pub fn new(path: impl Into<PathBuf>, key: impl Into<String>) -> Stamp {
        Stamp {
            path: path.into(),
            key: key.into(),
        }
    }

    /// Whether the step last finished with these inputs.
    pub fn holds(&self) -> bool {
        std::fs::read_to_string(&self.path).ok().as_deref() == Some(self.key.as_str())
    }

    /// Forget the last run, before the step is done again.
    pub fn clear(&self) {
        let _ = std::fs::remove_file(&self.path);
    }

    /// Record that the step finished with these inputs.
    pub fn write(&self) -> Result<()> {
        std::fs::write(&self.path, &self.key)?;
        Ok(())
    }

    /// Run `step` unless `kept` (what the step made is still there) and the
    /// stamp holds; returns whether it ran.
    pub fn run(&self, kept: bool, step: impl FnOnce() -> Result<()>) -> Result<bool> {
        if kept && self.holds() {
            return Ok(false);
        }
        self.clear();
        step()?;
        self.write()?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_delimited() {
        assert_ne!(hash(&[b"ab", b"c"]), hash(&[b"a", b"bc"]));
        assert_eq!(hash(&[b"ab", b"c"]), hash(&[b"ab", b"c"]));
        assert_eq!(hash(&[]).len(), 64);
    }

    #[test]
    fn a_step_runs_until_it_succeeds_with_the_same_inputs() {
        let dir = std::env::temp_dir().join(format!("xtask-stamp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut runs = 0;
        let mut step = || {
            runs += 1;
            Ok(())
        };
        let k1 = Stamp::new(dir.join("stamp"), "k1");
        assert!(!k1.holds());
        assert!(k1.run(true, &mut step).unwrap());
        assert!(k1.holds());
        assert!(!k1.run(true, &mut step).unwrap());
        // What the step made is gone: it runs again.
        assert!(k1.run(false, &mut step).unwrap());
        // Other inputs, and the step fails: no stamp is left behind.
        let k2 = Stamp::new(dir.join("stamp"), "k2");
        assert!(k2.run(true, || anyhow::bail!("broke")).is_err());
        assert!(!k1.holds() && !k2.holds());
        assert!(k2.run(true, &mut step).unwrap());
        assert!(k2.holds() && !k1.holds());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(runs, 3);
    }
}
