//! kernel-doc -none -Wall on the files the series touches.

use std::path::Path;

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use super::diag::{blame_findings, new_diags, parse_diags, Diag};
use super::Finding;
use crate::patches::trees::{Input, SeriesTrees};

fn kernel_doc_diags(sh: &Shell, tree: &Path, file: &str) -> Result<Vec<Diag>> {
    let _d = sh.push_dir(tree);
    let out = cmd!(sh, "perl scripts/kernel-doc -none -Wall {file}")
        .quiet()
        .ignore_status()
        .output()
        .context("running scripts/kernel-doc")?;
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    Ok(parse_diags(&text, tree, tree))
}

/// kernel-doc -none -Wall on every .c/.h the series touches, in the base
/// and the patched tree.
pub fn kernel_doc(sh: &Shell, trees: &SeriesTrees, input: &Input) -> Result<(Vec<Finding>, usize)> {
    let files: Vec<&String> = trees
        .touched
        .iter()
        .filter(|f| f.ends_with(".c") || f.ends_with(".h"))
        .collect();
    let mut out = Vec::new();
    for f in &files {
        let new = kernel_doc_diags(sh, &trees.series, f)?;
        let old = if trees.base.join(f).is_file() {
            kernel_doc_diags(sh, &trees.base, f)?
        } else {
            Vec::new()
        };
        let fresh = new_diags(&old, &new);
        println!(
            "[kernel-doc] {f}: {} new warning(s) ({} before the series)",
            fresh.len(),
            old.len()
        );
        out.extend(blame_findings(sh, trees, input, "kernel-doc", &fresh));
    }
    Ok((out, files.len()))
}
