//! Progress display for long jobs (kernel build, VM runs).
//!
//! On a terminal: one status line redrawn in place. Otherwise (CI logs): a
//! line every 30 seconds, so a log shows the job is alive and how far it is.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct Progress {
    label: String,
    start: Instant,
    last: Instant,
    steps: u64,
    expected: Option<u64>,
    current: String,
    tty: bool,
}

pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// A kbuild quiet-mode line ("  CC      kernel/fork.o") as (verb, object).
pub fn kbuild_step(line: &str) -> Option<(&str, &str)> {
    let t = line.strip_prefix("  ")?;
    let (verb, rest) = t.split_once(' ')?;
    let ok = !verb.is_empty()
        && verb.len() <= 10
        && verb
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-');
    ok.then(|| (verb, rest.trim()))
}

/// make's own bookkeeping lines, which say nothing about the build.
fn is_make_chatter(line: &str) -> bool {
    line.starts_with("make")
        && (line.contains("Entering directory") || line.contains("Leaving directory"))
}

impl Progress {
    pub fn new(label: &str, expected: Option<u64>) -> Progress {
        let now = Instant::now();
        Progress {
            label: label.to_string(),
            start: now,
            last: now,
            steps: 0,
            expected,
            current: String::new(),
            tty: std::io::stdout().is_terminal(),
        }
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Feed one line of make's stdout.
    pub fn line(&mut self, line: &str) {
        match kbuild_step(line) {
            Some((verb, obj)) => {
                self.steps += 1;
                self.current = format!("{verb} {obj}");
            }
            None if is_make_chatter(line) => {}
            None => {
                // Not a build step (e.g. "Kernel: arch/x86/boot/bzImage is ready").
                self.clear();
                println!("{line}");
            }
        }
        let every = if self.tty {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(30)
        };
        if self.last.elapsed() >= every {
            self.last = Instant::now();
            self.draw();
        }
    }

    fn status(&self) -> String {
        let done = match self.expected {
            Some(e) if e > 0 => {
                let pct = (self.steps * 100 / e).min(99);
                format!("{}/~{} ({pct}%)", self.steps, e)
            }
            _ => format!("{} steps", self.steps),
        };
        format!(
            "[{}] {done} {} {}",
            self.label,
            fmt_duration(self.start.elapsed()),
            self.current
        )
    }

    fn draw(&self) {
        let mut out = std::io::stdout().lock();
        if self.tty {
            let mut s = self.status();
            s.truncate(120);
            let _ = write!(out, "\r\x1b[2K{s}");
        } else {
            let _ = writeln!(out, "{}", self.status());
        }
        let _ = out.flush();
    }

    fn clear(&self) {
        if self.tty {
            print!("\r\x1b[2K");
        }
    }

    pub fn finish(&self) {
        self.clear();
        println!(
            "[{}] {} steps in {}",
            self.label,
            self.steps,
            fmt_duration(self.start.elapsed())
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_kbuild_steps() {
        assert_eq!(
            kbuild_step("  CC      kernel/fork.o"),
            Some(("CC", "kernel/fork.o"))
        );
        assert_eq!(
            kbuild_step("  LD      vmlinux.o"),
            Some(("LD", "vmlinux.o"))
        );
        assert_eq!(
            kbuild_step("  SYSHDR  arch/x86/include/generated/uapi/asm/unistd_32.h").map(|s| s.0),
            Some("SYSHDR")
        );
        assert_eq!(
            kbuild_step("Kernel: arch/x86/boot/bzImage is ready  (#1)"),
            None
        );
        assert_eq!(kbuild_step("make[1]: Entering directory '/x'"), None);
        assert_eq!(kbuild_step("  lower case"), None);
        assert!(is_make_chatter("make[1]: Entering directory '/x'"));
        assert!(!is_make_chatter("Kernel: arch/x86/boot/bzImage is ready"));
    }

    #[test]
    fn formats_durations() {
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_secs(125)), "2m05s");
    }
}
