//! `cargo xtask patches cover-letter`: each series of patches/series as
//! mails with a cover letter (`git format-patch --cover-letter`), in
//! target/patches/<series>/.
//!
//! patches/cover-letters.toml divides patches/series into series. A series
//! is named by the subject of its first patch rather than by a number, so
//! adding or removing a patch does not move the boundaries; it runs up to
//! the next series' first patch. Without the file the whole of
//! patches/series is one series.

use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use xshell::Shell;

use crate::git::git;
use crate::kernel;
use crate::patches::trees::{Input, SeriesTrees};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CoverFile {
    series: Vec<SeriesDef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesDef {
    /// Directory name under target/patches/.
    pub name: String,
    /// Subject (without `[PATCH]`) of the series' first patch.
    pub first: String,
    /// Subject of the cover letter.
    pub subject: String,
    /// What the series does and why, for reviewers.
    pub blurb: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub def: SeriesDef,
    /// Indices into the patch list.
    pub range: Range<usize>,
}

fn cover_file() -> PathBuf {
    kernel::patch_dir().join("cover-letters.toml")
}

fn load_defs(path: &Path) -> Result<Vec<SeriesDef>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let f: CoverFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(f.series)
}

/// Divide patches (given by subject) into the series `defs` describes.
/// With no definitions, everything is one series.
pub fn split(subjects: &[String], defs: &[SeriesDef]) -> Result<Vec<Group>> {
    if defs.is_empty() {
        let def = SeriesDef {
            name: "series".into(),
            first: subjects.first().cloned().unwrap_or_default(),
            subject: format!("{} patches", subjects.len()),
            blurb: String::new(),
        };
        return Ok(vec![Group {
            def,
            range: 0..subjects.len(),
        }]);
    }
    let mut starts = Vec::new();
    for d in defs {
        if d.name.is_empty()
            || !d
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            bail!(
                "cover-letters.toml: series name `{}` must be letters, digits, `_`, `.` or `-`",
                d.name
            );
        }
        let hits: Vec<usize> = subjects
            .iter()
            .enumerate()
            .filter(|(_, s)| **s == d.first)
            .map(|(i, _)| i)
            .collect();
        match hits.as_slice() {
            [i] => starts.push(*i),
            [] => bail!(
                "cover-letters.toml: series `{}` starts at the patch with subject `{}`, \
                 but no patch in the series has that subject",
                d.name,
                d.first
            ),
            _ => bail!(
                "cover-letters.toml: subject `{}` (series `{}`) belongs to {} patches",
                d.first,
                d.name,
                hits.len()
            ),
        }
    }
    if starts.windows(2).any(|w| w[0] >= w[1]) {
        bail!("cover-letters.toml: series must be listed in the order of patches/series");
    }
    if starts[0] != 0 {
        bail!(
            "cover-letters.toml: patches 1-{} come before the first series (`{}`)",
            starts[0],
            defs[0].name
        );
    }
    Ok(defs
        .iter()
        .enumerate()
        .map(|(k, d)| Group {
            def: d.clone(),
            range: starts[k]..starts.get(k + 1).copied().unwrap_or(subjects.len()),
        })
        .collect())
}

/// The newest markdown report in `dir`, as (file name, text).
pub fn latest_bench(dir: &Path) -> Option<(String, String)> {
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "md") {
            let t = e.metadata().and_then(|m| m.modified()).ok()?;
            if best.as_ref().is_none_or(|(bt, _)| t > *bt) {
                best = Some((t, p));
            }
        }
    }
    let (_, p) = best?;
    let text = std::fs::read_to_string(&p).ok()?;
    Some((p.file_name()?.to_string_lossy().into_owned(), text))
}

/// The text that replaces git's `*** BLURB HERE ***`.
pub fn blurb(def: &SeriesDef, base: &str, bench: Option<&(String, String)>) -> String {
    let mut s = def.blurb.trim().to_string();
    if !s.is_empty() {
        s.push_str("\n\n");
    }
    s.push_str(&format!("Based on {base}.\n"));
    if let Some((name, text)) = bench {
        s.push_str(&format!(
            "\nLatest benchmark report ({name}):\n\n{}\n",
            text.trim_end()
        ));
    }
    s
}

/// Put subject and blurb into git's cover letter template.
pub fn fill(template: &str, subject: &str, blurb: &str) -> Result<String> {
    const SUBJECT: &str = "*** SUBJECT HERE ***";
    const BLURB: &str = "*** BLURB HERE ***";
    if !template.contains(SUBJECT) || !template.contains(BLURB) {
        bail!("git's cover letter has no `{SUBJECT}` / `{BLURB}` placeholders");
    }
    Ok(template
        .replacen(SUBJECT, subject, 1)
        .replacen(BLURB, blurb.trim_end(), 1))
}

pub fn run(sh: &Shell) -> Result<()> {
    let input = Input::load(None)?;
    let mut subjects = Vec::new();
    let mut authors = Vec::new();
    for p in input.series.paths(&input.dir) {
        let text = std::fs::read_to_string(&p)?;
        let mail = crate::patches::mail::parse(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        subjects.push(mail.subject);
        authors.push(mail.from);
    }
    let defs = load_defs(&cover_file())?;
    if defs.is_empty() {
        println!(
            "[cover] no {}: one cover letter for the whole series",
            cover_file().display()
        );
    }
    let groups = split(&subjects, &defs)?;
    let bench = latest_bench(&crate::target_dir().join("bench"));
    match &bench {
        Some((name, _)) => println!("[cover] benchmark report: target/bench/{name}"),
        None => {
            println!("[cover] no target/bench/*.md report (`cargo xtask bench`): none included")
        }
    }
    let b = kernel::BaseSource::load()?;
    let base = format!(
        "Linux {} (Debian {} {})",
        upstream(&b.version),
        b.package,
        b.version
    );

    let src = kernel::prepare_base(sh)?;
    let _trees = crate::patches::trees::lock()?;
    let trees = match SeriesTrees::prepare(sh, &src, &input)? {
        Ok(t) => t,
        Err(f) => bail!("{f}"),
    };
    let root = crate::target_dir().join("patches");
    for g in &groups {
        let dir = root.join(&g.def.name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let first = &trees.commits[g.range.start].0;
        let last = &trees.commits[g.range.end - 1].0;
        let (name, email) = split_ident(&authors[g.range.start]);
        git(sh, &trees.series)
            .arg("-c")
            .arg(format!("user.name={name}"))
            .arg("-c")
            .arg(format!("user.email={email}"))
            .args([
                "format-patch",
                "-q",
                "--cover-letter",
                "--numbered",
                "--zero-commit",
                "--no-signature",
                "-o",
            ])
            .arg(&dir)
            .arg(format!("{first}^..{last}"))
            .run()?;
        let cover = dir.join("0000-cover-letter.patch");
        let template = std::fs::read_to_string(&cover)
            .with_context(|| format!("reading {}", cover.display()))?;
        let text = fill(
            &template,
            &g.def.subject,
            &blurb(&g.def, &base, bench.as_ref()),
        )?;
        std::fs::write(&cover, text)?;
        println!(
            "[cover] {}: patches {}-{} -> {}",
            g.def.name,
            g.range.start + 1,
            g.range.end,
            cover.display()
        );
    }
    Ok(())
}

/// "6.12.117-1~deb12u1" -> "6.12.117".
fn upstream(debian_version: &str) -> &str {
    debian_version
        .split(['-', '+', '~'])
        .next()
        .unwrap_or(debian_version)
}

/// "Name <a@b>" -> ("Name", "a@b").
fn split_ident(ident: &str) -> (String, String) {
    match (ident.find('<'), ident.rfind('>')) {
        (Some(l), Some(r)) if l < r => (
            ident[..l].trim().trim_matches('"').to_string(),
            ident[l + 1..r].to_string(),
        ),
        _ => (ident.trim().to_string(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str, first: &str) -> SeriesDef {
        SeriesDef {
            name: name.into(),
            first: first.into(),
            subject: format!("{name}: cover"),
            blurb: format!("About {name}."),
        }
    }

    fn subjects() -> Vec<String> {
        [
            "ipc/msgutil: a",
            "ipc/mqueue: b",
            "io_uring/ipc: c",
            "io_uring/ipc: d",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    #[test]
    fn splits_at_the_first_subjects() {
        let g = split(
            &subjects(),
            &[def("mq", "ipc/msgutil: a"), def("uring", "io_uring/ipc: c")],
        )
        .unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].def.name.as_str(), g[0].range.clone()), ("mq", 0..2));
        assert_eq!(
            (g[1].def.name.as_str(), g[1].range.clone()),
            ("uring", 2..4)
        );
        let all = split(&subjects(), &[]).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].range, 0..4);
    }

    #[test]
    fn rejects_bad_boundaries() {
        let e = split(&subjects(), &[def("mq", "ipc/mqueue: gone")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("ipc/mqueue: gone"), "{e}");
        let e = split(&subjects(), &[def("mq", "ipc/mqueue: b")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("before the first series"), "{e}");
        let e = split(
            &subjects(),
            &[def("u", "io_uring/ipc: c"), def("m", "ipc/msgutil: a")],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("order"), "{e}");
        assert!(split(&subjects(), &[def("a/b", "ipc/msgutil: a")]).is_err());
    }

    #[test]
    fn fills_git_template_with_blurb_and_bench() {
        let t = "Subject: [PATCH 0/2] *** SUBJECT HERE ***\n\n*** BLURB HERE ***\n\nA (1):\n  x\n";
        let bench = ("run.md".to_string(), "| a | b |\n|---|---|\n".to_string());
        let b = blurb(&def("mq", "x"), "Linux 6.12.117", Some(&bench));
        let out = fill(t, "mq: cover", &b).unwrap();
        assert!(out.starts_with("Subject: [PATCH 0/2] mq: cover\n"), "{out}");
        assert!(
            out.contains("About mq.\n\nBased on Linux 6.12.117.\n"),
            "{out}"
        );
        assert!(
            out.contains("(run.md):\n\n| a | b |\n|---|---|\n\nA (1):"),
            "{out}"
        );
        assert!(fill("no placeholders", "s", "b").is_err());
        assert!(!blurb(&def("mq", "x"), "L", None).contains("benchmark"));
    }

    #[test]
    fn the_newest_report_wins() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(latest_bench(&dir).is_none());
        std::fs::write(dir.join("old.md"), "old").unwrap();
        std::fs::write(dir.join("data.json"), "{}").unwrap();
        let old = std::fs::File::options()
            .write(true)
            .open(dir.join("old.md"))
            .unwrap();
        old.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        std::fs::write(dir.join("new.md"), "new").unwrap();
        let got = latest_bench(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(got, Some(("new.md".into(), "new".into())));
    }

    #[test]
    fn identities_and_versions() {
        assert_eq!(
            split_ident("\"Ada Dev\" <ada@example.org>"),
            ("Ada Dev".into(), "ada@example.org".into())
        );
        assert_eq!(upstream("6.12.117-1~deb12u1"), "6.12.117");
    }
}
