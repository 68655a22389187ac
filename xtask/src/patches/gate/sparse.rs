//! sparse (C=2) and W=1 on the objects of the .c files the series touches.

use std::path::Path;

use anyhow::{bail, Result};
use xshell::Shell;

use super::diag::{blame_findings, new_diags, parse_diags, Diag};
use super::{configure, make, tail, Finding, PROFILE};
use crate::kbuild::MakeResult;
use crate::patches::trees::{gate_dir, Input, SeriesTrees};

/// Kernel objects for the touched .c files: not user-space programs,
/// documentation or host tools.
pub fn kernel_objects(touched: &[String]) -> Vec<String> {
    const NOT_KERNEL: &[&str] = &["tools/", "Documentation/", "scripts/", "samples/", "usr/"];
    touched
        .iter()
        .filter(|f| f.ends_with(".c") && !NOT_KERNEL.iter().any(|p| f.starts_with(p)))
        .map(|f| format!("{}.o", &f[..f.len() - 2]))
        .collect()
}

/// Build `objects` of the `which` tree with sparse (C=2, every file
/// checked) and W=1 in the gate's build-`which`; returns the diagnostics,
/// the objects that were built and whether make succeeded.
fn checked_objects(
    sh: &Shell,
    tree: &Path,
    objects: &[String],
    jobs: Option<usize>,
    which: &str,
) -> Result<(Vec<Diag>, Vec<String>, MakeResult)> {
    let out = &gate_dir().join(format!("build-{which}"));
    configure(sh, tree, out)?;
    let prep = vec!["W=1".to_string(), "prepare".to_string()];
    let r = make(tree, out, jobs, prep, &format!("prepare {which}"))?;
    if !r.ok {
        bail!(
            "`make prepare` failed in {} for the {which} tree:\n{}",
            out.display(),
            tail(&r.stderr, 30)
        );
    }
    for o in objects {
        let _ = std::fs::remove_file(out.join(o));
    }
    let mut args = vec!["W=1".to_string(), "-k".to_string(), "C=2".to_string()];
    args.extend(objects.iter().cloned());
    let r = make(tree, out, jobs, args, &format!("sparse+W=1 {which}"))?;
    let built = objects
        .iter()
        .filter(|o| out.join(o).exists())
        .cloned()
        .collect();
    Ok((parse_diags(&r.stderr, tree, out), built, r))
}

pub fn sparse_w1(
    sh: &Shell,
    trees: &SeriesTrees,
    input: &Input,
    jobs: Option<usize>,
) -> Result<(Vec<Finding>, String)> {
    if crate::deps::which("sparse").is_none() {
        return Ok((
            vec![Finding {
                patch: None,
                check: "sparse",
                msg: "sparse is not installed: `cargo xtask deps` (Debian package `sparse`)".into(),
            }],
            String::new(),
        ));
    }
    let objects = kernel_objects(&trees.touched);
    if objects.is_empty() {
        return Ok((vec![], "no kernel .c files touched".into()));
    }
    let base_objects: Vec<String> = objects
        .iter()
        .filter(|o| {
            trees
                .base
                .join(format!("{}.c", &o[..o.len() - 2]))
                .is_file()
        })
        .cloned()
        .collect();
    println!(
        "[sparse+W=1] objects: {} ({} exist in the base)",
        objects.join(" "),
        base_objects.len()
    );
    let (old, _, _) = checked_objects(sh, &trees.base, &base_objects, jobs, "base")?;
    let (new, built, r) = checked_objects(sh, &trees.series, &objects, jobs, "series")?;
    let mut out = Vec::new();
    let skipped: Vec<&String> = objects.iter().filter(|o| !built.contains(o)).collect();
    let errors: Vec<&Diag> = new.iter().filter(|d| d.kind == "error").collect();
    if !r.ok && errors.is_empty() {
        // make failed without a compiler error: probably an object the
        // config does not build. Say which, as a skip with its reason.
        let why = tail(&r.stderr, 5);
        for o in &skipped {
            println!(
                "[sparse+W=1] SKIP {o}: not built with the {} config ({why})",
                PROFILE.name()
            );
        }
    }
    let fresh = new_diags(&old, &new);
    for d in &fresh {
        println!("[sparse+W=1] new: {}", d.raw);
    }
    out.extend(blame_findings(sh, trees, input, "sparse+W=1", &fresh));
    let note = format!(
        "{} objects checked, {} diagnostics before, {} after, {} new{}",
        built.len(),
        old.len(),
        new.len(),
        fresh.len(),
        if skipped.is_empty() {
            String::new()
        } else {
            format!(
                "; not built by the {} config: {}",
                PROFILE.name(),
                skipped
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    );
    Ok((out, note))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_only_for_kernel_c_files() {
        let touched: Vec<String> = [
            "io_uring/ipc.c",
            "io_uring/ipc.h",
            "tools/testing/selftests/mqueue/mq_peek_test.c",
            "Documentation/x.rst",
            "kernel/sys_ni.c",
            "scripts/syscall.tbl",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            kernel_objects(&touched),
            vec!["io_uring/ipc.o", "kernel/sys_ni.o"]
        );
    }
}
