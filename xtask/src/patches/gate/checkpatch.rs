//! checkpatch.pl --strict and the mail format rules, on each patch file.

use std::path::Path;

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use super::Finding;
use crate::patches::trees::Input;

/// checkpatch.pl --strict on every patch: any ERROR, WARNING or CHECK fails
/// that patch.
pub fn checkpatch(sh: &Shell, src: &Path, input: &Input) -> Result<Vec<Finding>> {
    let script = src.join("scripts/checkpatch.pl");
    let mut out = Vec::new();
    for (name, path) in input.files() {
        let _d = sh.push_dir(src);
        let res = cmd!(
            sh,
            "perl {script} --strict --no-summary --show-types --color=never {path}"
        )
        .quiet()
        .ignore_status()
        .output()
        .context("running checkpatch.pl")?;
        let text = String::from_utf8_lossy(&res.stdout).into_owned();
        let n = checkpatch_findings(&text);
        if res.status.success() && n == 0 {
            println!("[checkpatch] {name}: clean");
        } else {
            println!("[checkpatch] {name}:\n{}", text.trim_end());
            let first = text
                .lines()
                .find(|l| is_checkpatch_finding(l))
                .unwrap_or("checkpatch.pl failed")
                .to_string();
            out.push(Finding {
                patch: Some(input.show(name)),
                check: "checkpatch",
                msg: format!("{n} finding(s), first: {first}"),
            });
        }
    }
    Ok(out)
}

fn is_checkpatch_finding(l: &str) -> bool {
    l.starts_with("ERROR:") || l.starts_with("WARNING:") || l.starts_with("CHECK:")
}

/// Number of ERROR, WARNING and CHECK reports in checkpatch output.
pub fn checkpatch_findings(output: &str) -> usize {
    output.lines().filter(|l| is_checkpatch_finding(l)).count()
}

// -------------------------------------------------------------------- format

pub fn format_check(input: &Input) -> Result<Vec<Finding>> {
    let mut out = Vec::new();
    for (name, path) in input.files() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let problems = crate::patches::mail::check(&text);
        if problems.is_empty() {
            println!("[format] {name}: ok");
        }
        for p in problems {
            println!("[format] {name}: {p}");
            out.push(Finding {
                patch: Some(input.show(name)),
                check: "format",
                msg: p.to_string(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_kind_of_checkpatch_finding() {
        let clean = "x.patch has no obvious style problems and is ready for submission.\n";
        assert_eq!(checkpatch_findings(clean), 0);
        let dirty = "WARNING:ENOSYS: ENOSYS means 'invalid syscall nr'\n#12: FILE: a.c:3:\n\
                     CHECK:PARENTHESIS_ALIGNMENT: Alignment should match\nERROR:CODE_INDENT: use tabs\n";
        assert_eq!(checkpatch_findings(dirty), 3);
    }
}
