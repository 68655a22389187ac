//! Compiler, sparse and kernel-doc diagnostics: parsed, compared with the
//! base tree's without line numbers, and blamed on the patch that wrote the
//! line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regex::Regex;
use xshell::Shell;

use super::Finding;
use crate::git::git;
use crate::patches::trees::{Input, SeriesTrees};

impl SeriesTrees {
    /// The patch that last wrote `line` of `file` in the series tree, or
    /// None when the line comes from the base (or cannot be blamed).
    fn blame(&self, sh: &Shell, file: &str, line: usize) -> Option<String> {
        if line == 0 || !self.series.join(file).is_file() {
            return None;
        }
        let range = format!("{line},{line}");
        let out = git(sh, &self.series)
            .args(["blame", "--porcelain", "-L", &range, "HEAD", "--", file])
            .ignore_stderr()
            .read()
            .ok()?;
        let sha = out.split_whitespace().next()?;
        self.commits
            .iter()
            .find(|(c, _)| c == sha)
            .map(|(_, name)| name.clone())
    }
}

/// One compiler, sparse or kernel-doc diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    /// Path relative to the tree when it lies inside it.
    pub file: String,
    pub line: usize,
    pub kind: String,
    pub msg: String,
    /// The line as printed.
    pub raw: String,
}

impl Diag {
    /// What stays the same when unrelated lines move: file, kind, message.
    pub fn key(&self) -> String {
        format!("{}: {}: {}", self.file, self.kind, self.msg)
    }
}

/// Parse `file:line[:col]: warning|error: message` lines. `file` is made
/// relative to `tree` (it may be printed relative to `cwd`, or absolute).
pub fn parse_diags(text: &str, tree: &Path, cwd: &Path) -> Vec<Diag> {
    let re = Regex::new(r"^([^:\s]+):(\d+):(?:\d+:)? (warning|error): (.*)$").unwrap();
    let tree_abs = real_path(tree);
    text.lines()
        .filter_map(|l| {
            let c = re.captures(l)?;
            let abs = real_path(&cwd.join(&c[1]));
            let file = abs
                .strip_prefix(&tree_abs)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| c[1].to_string());
            Some(Diag {
                file,
                line: c[2].parse().unwrap_or(0),
                kind: c[3].to_string(),
                msg: c[4].trim().to_string(),
                raw: l.to_string(),
            })
        })
        .collect()
}

/// `p` without `.` and `..` components, and with symlinks resolved when
/// it exists.
fn real_path(p: &Path) -> PathBuf {
    if let Ok(c) = std::fs::canonicalize(p) {
        return c;
    }
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Diagnostics in `new` beyond those in `old`, compared without line
/// numbers: a warning that was already there before the series, merely
/// moved, is not new. When a message occurs more often than before, the
/// surplus instances are returned (the last ones in `new`).
pub fn new_diags(old: &[Diag], new: &[Diag]) -> Vec<Diag> {
    let mut budget: BTreeMap<String, usize> = BTreeMap::new();
    for d in old {
        *budget.entry(d.key()).or_default() += 1;
    }
    let mut out = Vec::new();
    for d in new {
        match budget.get_mut(&d.key()) {
            Some(n) if *n > 0 => *n -= 1,
            _ => out.push(d.clone()),
        }
    }
    out
}

pub fn blame_findings(
    sh: &Shell,
    trees: &SeriesTrees,
    input: &Input,
    check: &'static str,
    diags: &[Diag],
) -> Vec<Finding> {
    diags
        .iter()
        .map(|d| {
            let who = trees.blame(sh, &d.file, d.line);
            let note = if who.is_none() {
                " (the line is from the base; the series made it warn)"
            } else {
                ""
            };
            Finding {
                patch: who.map(|n| input.show(&n)),
                check,
                msg: format!("{}:{}: {}: {}{note}", d.file, d.line, d.kind, d.msg),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(file: &str, line: usize, msg: &str) -> Diag {
        Diag {
            file: file.into(),
            line,
            kind: "warning".into(),
            msg: msg.into(),
            raw: String::new(),
        }
    }

    #[test]
    fn parses_gcc_sparse_and_kernel_doc_lines() {
        let tree = Path::new("/nonexistent/tree");
        let text = "\
/nonexistent/tree/io_uring/ipc.c:12:5: warning: symbol 'x' was not declared. Should it be static?
io_uring/ipc.c:40: warning: Function parameter or struct member 'ctx' not described in 'f'
In file included from ../tree/ipc/util.h:3,
../tree/ipc/mqueue.c:7:1: error: expected ';' before '}' token
make[2]: *** [scripts/Makefile.build:229: ipc/mqueue.o] Error 1
";
        let d = parse_diags(text, tree, tree);
        assert_eq!(d.len(), 3, "{d:?}");
        assert_eq!(d[0].file, "io_uring/ipc.c");
        assert_eq!(d[0].line, 12);
        assert_eq!(
            d[0].key(),
            "io_uring/ipc.c: warning: symbol 'x' was not declared. Should it be static?"
        );
        assert_eq!(d[1].file, "io_uring/ipc.c");
        assert_eq!(d[1].line, 40);
        assert_eq!(d[2].kind, "error");
        // Relative to the build directory, like kbuild prints with O=.
        let d = parse_diags(
            "../tree/ipc/mqueue.c:7:1: warning: w\n",
            tree,
            &tree.join("../out"),
        );
        assert_eq!(d[0].file, "ipc/mqueue.c");
    }

    #[test]
    fn only_new_diagnostics_count_whatever_their_line() {
        let old = vec![diag("a.c", 10, "unused x"), diag("a.c", 20, "unused y")];
        // Both moved down by five lines; one more "unused x" appeared.
        let new = vec![
            diag("a.c", 15, "unused x"),
            diag("a.c", 25, "unused y"),
            diag("a.c", 30, "unused x"),
            diag("b.c", 1, "shadowed z"),
        ];
        let fresh = new_diags(&old, &new);
        assert_eq!(
            fresh,
            vec![diag("a.c", 30, "unused x"), diag("b.c", 1, "shadowed z")]
        );
        assert!(new_diags(&new, &old).is_empty());
    }
}
