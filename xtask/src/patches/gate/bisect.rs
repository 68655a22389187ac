//! `--bisect`: vmlinux builds at every prefix of the series.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use xshell::Shell;

use super::diag::parse_diags;
use super::{configure, make, tail, Finding, PROFILE};
use crate::git::git;
use crate::kbuild::MakeResult;
use crate::kernel::{self, kernel_dir};
use crate::patches::trees::{Input, SeriesTrees, SERIES_BRANCH};
use crate::progress::fmt_duration;

pub fn bisect_dir() -> PathBuf {
    kernel_dir().join("build-bisect")
}

/// One prefix of the series: the patch that ends it and what identifies
/// its build (the config request and the tree, not the commit).
pub struct Prefix {
    pub name: String,
    pub key: String,
}

/// What became of the prefixes.
pub struct BisectOutcome {
    pub findings: Vec<Finding>,
    pub built: usize,
    pub reused: usize,
}

/// Build each prefix not in `ok` with `build(i)`; a prefix that fails is a
/// finding naming its last patch, with the compiler's errors. Keys of
/// prefixes that build are added to `ok` and handed to `save`.
fn build_prefixes(
    prefixes: &[Prefix],
    ok: &mut Vec<String>,
    mut build: impl FnMut(usize) -> Result<MakeResult>,
    mut save: impl FnMut(&[String]) -> Result<()>,
    show: impl Fn(&str) -> String,
    tree: &Path,
    out: &Path,
) -> Result<BisectOutcome> {
    let n = prefixes.len();
    let mut res = BisectOutcome {
        findings: Vec::new(),
        built: 0,
        reused: 0,
    };
    for (i, p) in prefixes.iter().enumerate() {
        let step = format!("[bisect {}/{n}] {}", i + 1, p.name);
        if ok.contains(&p.key) {
            println!("{step}: built before, skipped");
            res.reused += 1;
            continue;
        }
        println!("{step}: make vmlinux");
        let t = Instant::now();
        let r = build(i)?;
        res.built += 1;
        if r.ok {
            println!("{step}: builds ({})", fmt_duration(t.elapsed()));
            ok.push(p.key.clone());
            save(ok)?;
            continue;
        }
        let errs: Vec<String> = parse_diags(&r.stderr, tree, out)
            .into_iter()
            .filter(|d| d.kind == "error")
            .map(|d| format!("{}:{}: {}", d.file, d.line, d.msg))
            .collect();
        let why = if errs.is_empty() {
            tail(&r.stderr, 8)
        } else {
            errs.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
        };
        println!("{step}: BUILD FAILED\n{}", tail(&r.stderr, 40));
        res.findings.push(Finding {
            patch: Some(show(&p.name)),
            check: "bisect",
            msg: format!(
                "the tree does not build with this patch applied on the ones \
                 before it ({} of {n}): {why}",
                i + 1
            ),
        });
    }
    Ok(res)
}

/// Build vmlinux at every prefix of the series, incrementally, in one
/// build directory. Prefixes whose tree already built with the same config
/// request are not built again.
pub fn bisect(
    sh: &Shell,
    trees: &SeriesTrees,
    input: &Input,
    jobs: Option<usize>,
) -> Result<(Vec<Finding>, String)> {
    let out = bisect_dir();
    std::fs::create_dir_all(&out)?;
    let request = kernel::merged_fragment(PROFILE)?.render();
    let ok_file = out.join(".xtask-bisect-ok");
    let mut ok: Vec<String> = std::fs::read_to_string(&ok_file)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    let mut prefixes = Vec::new();
    for (sha, name) in &trees.commits {
        let tree_id = git(sh, &trees.series)
            .arg("rev-parse")
            .arg(format!("{sha}^{{tree}}"))
            .read()?;
        prefixes.push(Prefix {
            name: name.clone(),
            key: crate::stamp::hash(&[request.as_bytes(), tree_id.as_bytes()]),
        });
    }
    let n = prefixes.len();
    let result = build_prefixes(
        &prefixes,
        &mut ok,
        |i| {
            git(sh, &trees.series)
                .args(["checkout", "-q", "--detach", &trees.commits[i].0])
                .run()?;
            configure(sh, &trees.series, &out)?;
            make(
                &trees.series,
                &out,
                jobs,
                vec!["vmlinux".to_string()],
                &format!("bisect {}/{n}", i + 1),
            )
        },
        |ok| Ok(std::fs::write(&ok_file, ok.join("\n") + "\n")?),
        |name| input.show(name),
        &trees.series,
        &out,
    );
    // Leave the worktree at the tip whatever happened.
    git(sh, &trees.series)
        .args(["checkout", "-q", SERIES_BRANCH])
        .run()?;
    let r = result?;
    Ok((
        r.findings,
        format!(
            "{n} prefixes: {} built, {} known good from an earlier run",
            r.built, r.reused
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_that_does_not_build_names_its_patch() {
        let tree = Path::new("/nonexistent/series");
        let out = Path::new("/nonexistent/build");
        let prefixes: Vec<Prefix> = ["0001-a.patch", "0002-b.patch", "0003-c.patch"]
            .iter()
            .enumerate()
            .map(|(i, n)| Prefix {
                name: n.to_string(),
                key: format!("k{i}"),
            })
            .collect();
        let mut ok = vec!["k0".to_string()];
        let mut asked = Vec::new();
        let mut saved = Vec::new();
        let r = build_prefixes(
            &prefixes,
            &mut ok,
            |i| {
                asked.push(i);
                Ok(MakeResult {
                    ok: i != 1,
                    stderr: if i == 1 {
                        "../series/ipc/mqueue.c:90:9: error: implicit declaration of function \
                         'copy_msg_to_buf' [-Werror=implicit-function-declaration]\n"
                            .into()
                    } else {
                        String::new()
                    },
                })
            },
            |ok| {
                saved = ok.to_vec();
                Ok(())
            },
            |n| format!("scratch/{n}"),
            tree,
            out,
        )
        .unwrap();
        // The first prefix built in an earlier run and is not built again.
        assert_eq!(asked, vec![1, 2]);
        assert_eq!((r.built, r.reused), (2, 1));
        assert_eq!(r.findings.len(), 1);
        let f = r.findings[0].to_string();
        assert!(f.starts_with("scratch/0002-b.patch: bisect: "), "{f}");
        assert!(f.contains("(2 of 3)"), "{f}");
        assert!(f.contains("ipc/mqueue.c:90: implicit declaration"), "{f}");
        // Only prefixes that built are remembered.
        assert_eq!(saved, vec!["k0", "k2"]);
    }
}
