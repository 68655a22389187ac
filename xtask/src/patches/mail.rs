//! The shape of one patch mail, as `git format-patch` writes it, and the
//! submission rules the gate checks on it that checkpatch.pl does not:
//! a `subsys/area: summary` subject, a body that explains the change, a
//! Signed-off-by from the author, and no trailing whitespace anywhere.

use regex::Regex;

/// The parts of a patch file the format rules look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchMail {
    /// `From:` header, as written ("Name <email>").
    pub from: String,
    /// Subject with the `[PATCH ...]` tag removed and folded lines joined.
    pub subject: String,
    /// Commit message lines after the headers, up to the `---` separator.
    pub body: Vec<String>,
    /// Whether a diff follows the separator.
    pub has_diff: bool,
}

/// One rule a patch breaks, with the 1-based line of the patch file when
/// the problem sits on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

fn problem(line: Option<usize>, what: impl Into<String>) -> Problem {
    Problem {
        line,
        what: what.into(),
    }
}

/// Split a patch mail into headers, message and diff. Errors describe what
/// is missing for it to be a mail at all.
pub fn parse(text: &str) -> Result<PatchMail, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    // The mbox "From <hash> <date>" line, if present.
    if lines.first().is_some_and(|l| l.starts_with("From ")) {
        i = 1;
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    while i < lines.len() && !lines[i].is_empty() {
        let l = lines[i];
        if l.starts_with(' ') || l.starts_with('\t') {
            // RFC 5322 folding: a continuation of the previous header.
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(l.trim());
            }
        } else if let Some((k, v)) = l.split_once(':') {
            headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
        } else {
            return Err(format!("line {}: `{l}` is not a mail header", i + 1));
        }
        i += 1;
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let from = header("from").ok_or("no From: header")?;
    let subject = header("subject").ok_or("no Subject: header")?;
    let subject = strip_patch_tag(&subject).to_string();
    // Skip the blank line after the headers.
    i += 1;
    let mut body = Vec::new();
    let mut has_diff = false;
    while i < lines.len() {
        if lines[i] == "---" {
            has_diff = lines[i..].iter().any(|l| l.starts_with("diff --git "));
            break;
        }
        body.push(lines[i].to_string());
        i += 1;
    }
    Ok(PatchMail {
        from,
        subject,
        body,
        has_diff,
    })
}

/// "[PATCH v2 3/7] foo: bar" -> "foo: bar".
fn strip_patch_tag(subject: &str) -> &str {
    let s = subject.trim();
    if s.starts_with('[') {
        if let Some(end) = s.find(']') {
            return s[end + 1..].trim_start();
        }
    }
    s
}

/// "Name <a@b>" with quotes and surrounding blanks removed, for comparing
/// the author with a Signed-off-by.
fn normalize_ident(s: &str) -> String {
    s.replace('"', "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A trailer line such as "Signed-off-by: A <a@b>" or "Link: ...".
fn is_trailer(line: &str) -> bool {
    let re = Regex::new(r"^[A-Za-z][A-Za-z0-9-]*: \S").unwrap();
    re.is_match(line)
}

/// Every format rule the patch breaks; empty when it is fine.
pub fn check(text: &str) -> Vec<Problem> {
    let mail = match parse(text) {
        Ok(m) => m,
        Err(e) => return vec![problem(None, format!("not a patch mail: {e}"))],
    };
    let mut out = Vec::new();

    let prefix = Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*(/[A-Za-z0-9_.+-]+)*: \S").unwrap();
    if !prefix.is_match(&mail.subject) {
        out.push(problem(
            None,
            format!(
                "subject `{}` does not start with a `subsys/area: ` prefix",
                mail.subject
            ),
        ));
    } else if mail.subject.ends_with('.') {
        out.push(problem(
            None,
            format!("subject `{}` ends with a period", mail.subject),
        ));
    }

    let prose: Vec<&String> = mail
        .body
        .iter()
        .filter(|l| !l.trim().is_empty() && !is_trailer(l))
        .collect();
    if prose.is_empty() {
        out.push(problem(
            None,
            "empty commit message body: say what the patch does and why",
        ));
    }

    let author = normalize_ident(&mail.from);
    let sobs: Vec<String> = mail
        .body
        .iter()
        .filter_map(|l| l.strip_prefix("Signed-off-by:"))
        .map(normalize_ident)
        .collect();
    if sobs.is_empty() {
        out.push(problem(None, "no Signed-off-by: line"));
    } else if !sobs.contains(&author) {
        out.push(problem(
            None,
            format!(
                "no Signed-off-by: from the author `{author}` (found: {})",
                sobs.join("; ")
            ),
        ));
    }

    if !mail.has_diff {
        out.push(problem(None, "no diff after the `---` separator"));
    }

    // Trailing whitespace in the message, the subject and added lines.
    // Removed and context lines are not the patch's doing.
    let mut in_diff = false;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("diff --git ") {
            in_diff = true;
        }
        let judged = if in_diff {
            line.starts_with('+') && !line.starts_with("+++")
        } else {
            // The "-- " mail signature separator is the one allowed case.
            line != "-- "
        };
        if judged && line != line.trim_end() {
            out.push(problem(Some(n + 1), "trailing whitespace"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: Ada Dev <ada@example.org>
Date: Mon, 23 Nov 2026 08:44:16 +0000
Subject: [PATCH] ipc/msgutil: add copy_msg_to_buf() helper, with a long
 subject folded onto a second line

Explain the change.

Signed-off-by: Ada Dev <ada@example.org>
---
 ipc/msgutil.c | 1 +
 1 file changed, 1 insertion(+)

diff --git a/ipc/msgutil.c b/ipc/msgutil.c
--- a/ipc/msgutil.c
+++ b/ipc/msgutil.c
@@ -1,2 +1,3 @@
 a
+b
 c 
";

    #[test]
    fn parses_a_format_patch_mail() {
        let m = parse(GOOD).unwrap();
        assert_eq!(m.from, "Ada Dev <ada@example.org>");
        assert_eq!(
            m.subject,
            "ipc/msgutil: add copy_msg_to_buf() helper, with a long subject folded onto a second line"
        );
        assert_eq!(m.body[0], "Explain the change.");
        assert!(m.has_diff);
    }

    #[test]
    fn a_good_patch_passes_even_with_whitespace_in_context_lines() {
        assert_eq!(check(GOOD), vec![]);
    }

    #[test]
    fn subject_needs_a_prefix() {
        let bad = GOOD.replace("ipc/msgutil: add", "Add");
        let p = check(&bad);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].what.contains("prefix"), "{p:?}");
        for ok in ["asm-generic: x", "Documentation: x", "selftests/mqueue: x"] {
            let t = GOOD.replace("ipc/msgutil: add copy_msg_to_buf() helper, with a long", ok);
            assert_eq!(check(&t), vec![], "{ok}");
        }
        let dot = GOOD.replace("second line", "second line.");
        assert!(check(&dot)[0].what.contains("period"));
    }

    #[test]
    fn body_must_not_be_only_trailers() {
        let bad = GOOD.replace("Explain the change.\n", "");
        let p = check(&bad);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].what.contains("empty commit message"), "{p:?}");
    }

    #[test]
    fn signed_off_by_must_match_the_author() {
        let other = GOOD.replace(
            "Signed-off-by: Ada Dev <ada@example.org>",
            "Signed-off-by: Bob <bob@example.org>",
        );
        let p = check(&other);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].what.contains("`Ada Dev <ada@example.org>`"), "{p:?}");
        let none = GOOD.replace("Signed-off-by: Ada Dev <ada@example.org>\n", "");
        assert!(check(&none)
            .iter()
            .any(|p| p.what == "no Signed-off-by: line"));
        let quoted = GOOD.replace("From: Ada Dev", "From: \"Ada Dev\"");
        assert_eq!(check(&quoted), vec![]);
    }

    #[test]
    fn trailing_whitespace_is_reported_with_its_line() {
        let bad = GOOD.replace("+b\n", "+b \n");
        assert_eq!(check(&bad), vec![problem(Some(19), "trailing whitespace")]);
        let msg = GOOD.replace("Explain the change.", "Explain the change.\t");
        assert_eq!(check(&msg), vec![problem(Some(7), "trailing whitespace")]);
    }

    #[test]
    fn not_a_mail_and_no_diff() {
        assert!(check("hello\n")[0].what.starts_with("not a patch mail"));
        let cut = &GOOD[..GOOD.find("diff --git").unwrap()];
        assert!(check(cut).iter().any(|p| p.what.contains("no diff")));
    }
}
