//! The series built for other architectures: `make vmlinux` of the series
//! tree for arm64 (Debian's cross compiler) and i386 (the host's gcc), each
//! from tinyconfig + kernel-config/cross-<arch>.config in
//! target/kernel/gate/build-<arch>/. A system call wired into a table
//! without its entry point, or code that only builds on x86_64, fails the
//! link or the compile here. Errors, and warnings on lines the series
//! wrote, are findings blamed on their patch.

use std::time::Instant;

use anyhow::Result;
use xshell::Shell;

use super::diag::{blame_findings, parse_diags, Diag};
use super::{make, tail, Finding};
use crate::cross::{self, Target};
use crate::git::git;
use crate::kbuild::{self, Check};
use crate::kconfig::Fragment;
use crate::patches::trees::{gate_dir, Input, SeriesTrees};
use crate::progress::fmt_duration;

pub const TARGETS: &[Target] = &[cross::ARM64, cross::I386];

/// Of a build's diagnostics, those that are the series' business: every
/// error, and warnings on lines a patch wrote (`blamed`) — a warning the
/// base kernel already has on this architecture is not.
fn relevant(diags: Vec<Diag>, blamed: impl Fn(&Diag) -> bool) -> Vec<Diag> {
    diags
        .into_iter()
        .filter(|d| d.kind == "error" || blamed(d))
        .collect()
}

pub fn cross(
    sh: &Shell,
    trees: &SeriesTrees,
    input: &Input,
    jobs: Option<usize>,
) -> Result<(Vec<Finding>, String)> {
    let mut findings = Vec::new();
    let mut notes = Vec::new();
    let tree = &trees.series;
    let tree_id = git(sh, tree).args(["rev-parse", "HEAD^{tree}"]).read()?;
    for &target in TARGETS {
        let t0 = Instant::now();
        let vars = match cross::make_vars(sh, target) {
            Ok(v) => v,
            Err(e) => {
                findings.push(Finding {
                    patch: None,
                    check: "cross",
                    msg: format!("{}: no compiler: {e:#}", target.name),
                });
                continue;
            }
        };
        let fragment_path = crate::project_root()
            .join("kernel-config")
            .join(target.fragment);
        let request = Fragment::load(&fragment_path)?;
        let out = gate_dir().join(format!("build-{}", target.name));
        let what = format!("{} ({})", target.fragment, target.name);
        kbuild::configure_with(
            sh,
            tree,
            &out,
            &request,
            &tree_id,
            Check::Strict(&what),
            &vars,
        )?;
        let mut args = vars.clone();
        args.push("vmlinux".into());
        println!("[cross] {}: make vmlinux ({})", target.name, vars.join(" "));
        let r = make(tree, &out, jobs, args, &format!("cross {}", target.name))?;
        let diags = relevant(parse_diags(&r.stderr, tree, &out), |d| {
            d.kind == "warning" && trees.touched.contains(&d.file)
        });
        let mut found = blame_findings(sh, trees, input, "cross", &diags);
        // A warning in a touched file on a line of the base is the base's.
        found.retain(|f| f.patch.is_some() || f.msg.contains(": error: "));
        for f in &mut found {
            f.msg = format!("{}: {}", target.name, f.msg);
        }
        if !r.ok && found.is_empty() {
            found.push(Finding {
                patch: None,
                check: "cross",
                msg: format!(
                    "{}: vmlinux does not build:\n{}",
                    target.name,
                    tail(&r.stderr, 15)
                ),
            });
        }
        let verdict = if r.ok { "builds" } else { "FAILED" };
        println!(
            "[cross] {}: vmlinux {verdict} ({})",
            target.name,
            fmt_duration(t0.elapsed())
        );
        notes.push(format!(
            "{} {verdict} in {}",
            target.name,
            fmt_duration(t0.elapsed())
        ));
        findings.extend(found);
    }
    Ok((findings, notes.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(file: &str, kind: &str) -> Diag {
        Diag {
            file: file.into(),
            line: 1,
            kind: kind.into(),
            msg: "m".into(),
            raw: String::new(),
        }
    }

    #[test]
    fn errors_always_count_warnings_only_where_blamed() {
        let diags = vec![
            diag("drivers/base.c", "warning"),
            diag("io_uring/ipc.c", "warning"),
            diag("drivers/base.c", "error"),
        ];
        let kept = relevant(diags, |d| d.file == "io_uring/ipc.c");
        let files: Vec<(&str, &str)> = kept
            .iter()
            .map(|d| (d.file.as_str(), d.kind.as_str()))
            .collect();
        assert_eq!(
            files,
            vec![("io_uring/ipc.c", "warning"), ("drivers/base.c", "error")]
        );
    }

    #[test]
    fn every_target_has_its_fragment() {
        for t in TARGETS {
            let p = crate::project_root().join("kernel-config").join(t.fragment);
            let f = Fragment::load(&p).unwrap();
            assert!(
                f.render().contains("CONFIG_POSIX_MQUEUE=y"),
                "{}",
                p.display()
            );
        }
    }
}
