//! Plain tables, rendered for a terminal (aligned columns, like the tables
//! of a kernel cover letter) or as markdown.

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Lines printed under the table.
    pub notes: Vec<String>,
    /// Left-align every column (key/value tables), not only the first.
    pub align_left: bool,
}

impl Table {
    pub fn new(title: impl Into<String>, header: Vec<String>) -> Table {
        Table {
            title: title.into(),
            header,
            ..Default::default()
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn widths(&self) -> Vec<usize> {
        let cols = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.header.len()])
            .max()
            .unwrap_or(0);
        (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .chain([&self.header])
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    /// First column left-aligned, the others right-aligned.
    pub fn render_text(&self) -> String {
        let w = self.widths();
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (c, width) in w.iter().enumerate() {
                let cell = cells.get(c).map(String::as_str).unwrap_or("");
                if c == 0 {
                    s.push_str(&format!("{cell:<width$}"));
                } else if self.align_left {
                    s.push_str(&format!("  {cell:<width$}"));
                } else {
                    s.push_str(&format!("  {cell:>width$}"));
                }
            }
            s.trim_end().to_string()
        };
        let mut out = format!("{}\n", self.title);
        let head = line(&self.header);
        out.push_str(&head);
        out.push('\n');
        out.push_str(&"-".repeat(head.chars().count()));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        for n in &self.notes {
            out.push_str(&format!("  {n}\n"));
        }
        out
    }

    pub fn render_markdown(&self) -> String {
        let esc = |s: &str| s.replace('|', "\\|");
        let cols = self.widths().len();
        let mut out = format!("**{}**\n\n", esc(&self.title));
        let cells = |r: &[String]| {
            let v: Vec<String> = (0..cols)
                .map(|c| esc(r.get(c).map(String::as_str).unwrap_or("")))
                .collect();
            format!("| {} |\n", v.join(" | "))
        };
        out.push_str(&cells(&self.header));
        let align: Vec<&str> = (0..cols)
            .map(|c| {
                if c == 0 || self.align_left {
                    "---"
                } else {
                    "---:"
                }
            })
            .collect();
        out.push_str(&format!("| {} |\n", align.join(" | ")));
        for r in &self.rows {
            out.push_str(&cells(r));
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for n in &self.notes {
                out.push_str(&format!("{}\n", esc(n)));
            }
        }
        out
    }
}

/// A nanosecond figure, as an integer.
pub fn fmt_ns(ns: f64) -> String {
    if ns.is_finite() {
        format!("{ns:.0}")
    } else {
        "-".into()
    }
}

/// Microseconds with one decimal.
pub fn fmt_us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

pub fn fmt_ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}x")
    } else if r >= 10.0 {
        format!("{r:.1}x")
    } else {
        format!("{r:.2}x")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(
            "sender ns/msg",
            vec!["mechanism".into(), "64B".into(), "32KiB".into()],
        );
        t.row(vec!["pipe".into(), "212".into(), "9000".into()]);
        t.row(vec!["uring-ipc".into(), "632".into(), "|x".into()]);
        t.notes.push("lower is better".into());
        t
    }

    #[test]
    fn text_is_aligned() {
        let s = sample().render_text();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "sender ns/msg");
        assert_eq!(lines[1], "mechanism  64B  32KiB");
        assert_eq!(lines[2], "-".repeat(lines[1].len()));
        assert_eq!(lines[3], "pipe       212   9000");
        assert_eq!(lines[4], "uring-ipc  632     |x");
        assert_eq!(lines[5], "  lower is better");
    }

    #[test]
    fn markdown_escapes_and_aligns() {
        let s = sample().render_markdown();
        assert!(s.starts_with(
            "**sender ns/msg**\n\n| mechanism | 64B | 32KiB |\n| --- | ---: | ---: |\n"
        ));
        assert!(s.contains("| uring-ipc | 632 | \\|x |"));
        assert!(s.trim_end().ends_with("lower is better"));
    }

    #[test]
    fn key_value_tables_align_left() {
        let mut t = Table::new("c", vec!["k".into(), "value".into()]);
        t.align_left = true;
        t.row(vec!["kernel".into(), "6.12".into()]);
        assert!(t.render_text().contains("kernel  6.12\n"));
        assert!(t.render_markdown().contains("| --- | --- |"));
    }

    #[test]
    fn ragged_rows_are_padded() {
        let mut t = Table::new("t", vec!["a".into()]);
        t.row(vec!["x".into(), "long cell".into()]);
        assert!(t.render_markdown().contains("| a |  |"));
        assert!(t.render_text().contains("x  long cell"));
    }

    #[test]
    fn number_formats() {
        assert_eq!(fmt_ns(212.4), "212");
        assert_eq!(fmt_ns(250_000.4), "250000");
        assert_eq!(fmt_ns(f64::NAN), "-");
        assert_eq!(fmt_us(12_345), "12.3");
        assert_eq!(fmt_ratio(2.981), "2.98x");
        assert_eq!(fmt_ratio(27.04), "27.0x");
        assert_eq!(fmt_ratio(135.2), "135x");
    }
}
