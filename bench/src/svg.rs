//! Line charts as hand-written SVG: log or linear axes, one polyline per
//! series, a legend, and a banner line (used to flag TCG runs).

use std::fmt::Write;

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
    /// Index into the palette; series of one mechanism share a colour.
    pub color: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub title: String,
    /// Shown in red under the title when not empty.
    pub banner: String,
    pub x_label: String,
    pub y_label: String,
    /// Tick positions and labels on the x axis (log2 scale).
    pub x_ticks: Vec<(f64, String)>,
    pub series: Vec<Series>,
}

const PALETTE: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

const W: f64 = 760.0;
const H: f64 = 460.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 70.0;
const BOTTOM: f64 = 60.0;

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Decades covering [lo, hi] for a log y axis.
fn decades(lo: f64, hi: f64) -> (f64, f64) {
    let a = 10f64.powf(lo.log10().floor());
    let mut b = 10f64.powf(hi.log10().ceil());
    if b <= a {
        b = a * 10.0;
    }
    (a, b)
}

fn y_tick_label(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else {
        format!("{v}")
    }
}

impl Chart {
    /// The SVG document. x is drawn on a log2 scale, y on a log10 scale;
    /// points with non-positive or non-finite values are left out.
    pub fn render(&self) -> String {
        let pts = |s: &Series| -> Vec<(f64, f64)> {
            s.points
                .iter()
                .copied()
                .filter(|(x, y)| *x > 0.0 && *y > 0.0 && x.is_finite() && y.is_finite())
                .collect()
        };
        let all: Vec<(f64, f64)> = self.series.iter().flat_map(pts).collect();
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="24" font-size="16" text-anchor="middle">{}</text>"#,
            W / 2.0,
            escape(&self.title)
        );
        if !self.banner.is_empty() {
            let _ = writeln!(
                svg,
                r##"<text x="{}" y="44" font-size="13" fill="#c00000" font-weight="bold" text-anchor="middle">{}</text>"##,
                W / 2.0,
                escape(&self.banner)
            );
        }
        let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        let _ = writeln!(
            svg,
            r#"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
        );
        if all.is_empty() {
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="middle">no data</text></svg>"#,
                LEFT + pw / 2.0,
                TOP + ph / 2.0
            );
            return svg;
        }
        let xs = all
            .iter()
            .map(|p| p.0)
            .chain(self.x_ticks.iter().map(|t| t.0));
        let (xmin, xmax) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
        let (ylo, yhi) = all
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        let (ymin, ymax) = decades(ylo, yhi);
        let span_x = (xmax.log2() - xmin.log2()).max(1e-9);
        let sx = |x: f64| {
            if xmax > xmin {
                LEFT + (x.log2() - xmin.log2()) / span_x * pw
            } else {
                LEFT + pw / 2.0
            }
        };
        let sy =
            |y: f64| TOP + ph - (y.log10() - ymin.log10()) / (ymax.log10() - ymin.log10()) * ph;
        // Grid and ticks.
        let mut d = ymin;
        while d <= ymax * 1.0001 {
            let y = sy(d);
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#dddddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + pw,
                LEFT - 6.0,
                y + 4.0,
                y_tick_label(d)
            );
            d *= 10.0;
        }
        for (x, label) in &self.x_ticks {
            let px = sx(*x);
            let _ = writeln!(
                svg,
                r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{}" stroke="#eeeeee"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
                TOP + ph,
                TOP + ph + 18.0,
                escape(label)
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            LEFT + pw / 2.0,
            H - 16.0,
            escape(&self.x_label)
        );
        let _ = writeln!(
            svg,
            r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">{}</text>"#,
            TOP + ph / 2.0,
            TOP + ph / 2.0,
            escape(&self.y_label)
        );
        // Series and legend.
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE[s.color % PALETTE.len()];
            let dash = if s.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let p = pts(s);
            let coords: Vec<String> = p
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
                .collect();
            if !coords.is_empty() {
                let _ = writeln!(
                    svg,
                    r#"<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{}"/>"#,
                    coords.join(" ")
                );
                for (x, y) in &p {
                    let _ = writeln!(
                        svg,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                        sx(*x),
                        sy(*y)
                    );
                }
            }
            let ly = TOP + 10.0 + i as f64 * 18.0;
            let lx = LEFT + pw + 14.0;
            let _ = writeln!(
                svg,
                r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
                lx + 24.0,
                lx + 30.0,
                ly + 4.0,
                escape(&s.name)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(series: Vec<Series>) -> Chart {
        Chart {
            title: "sender <cost>".into(),
            banner: "TCG: absolute numbers are not meaningful".into(),
            x_label: "receivers".into(),
            y_label: "ns/msg".into(),
            x_ticks: vec![(1.0, "1".into()), (16.0, "16".into())],
            series,
        }
    }

    #[test]
    fn draws_series_legend_and_banner() {
        let s = chart(vec![
            Series {
                name: "pipe".into(),
                points: vec![(1.0, 200.0), (16.0, 27_000.0)],
                dashed: false,
                color: 0,
            },
            Series {
                name: "uring-ipc p99".into(),
                points: vec![(1.0, 600.0), (4.0, 0.0), (16.0, 900.0)],
                dashed: true,
                color: 1,
            },
        ])
        .render();
        assert!(s.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(s.trim_end().ends_with("</svg>"));
        assert!(s.contains("sender &lt;cost&gt;"));
        assert!(s.contains("TCG: absolute numbers are not meaningful"));
        assert_eq!(s.matches("<polyline").count(), 2);
        // The zero point is dropped: 2 + 2 markers.
        assert_eq!(s.matches("<circle").count(), 4);
        assert!(s.contains("stroke-dasharray"));
        assert!(s.contains(">uring-ipc p99</text>"));
        // y axis covers 100 .. 100k in decades.
        for label in [">100<", ">1k<", ">10k<", ">100k<"] {
            assert!(s.contains(label), "{label}");
        }
        // Balanced tags.
        assert_eq!(s.matches("<text").count(), s.matches("</text>").count());
    }

    #[test]
    fn points_land_inside_the_plot() {
        let s = chart(vec![Series {
            name: "a".into(),
            points: vec![(1.0, 10.0), (16.0, 1000.0)],
            dashed: false,
            color: 0,
        }])
        .render();
        let line = s.lines().find(|l| l.starts_with("<polyline")).unwrap();
        let pts = line
            .split("points=\"")
            .nth(1)
            .unwrap()
            .trim_end_matches("\"/>");
        for p in pts.split(' ') {
            let (x, y) = p.split_once(',').unwrap();
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!((LEFT..=W - RIGHT).contains(&x), "{x}");
            assert!((TOP..=H - BOTTOM).contains(&y), "{y}");
        }
        // First point bottom-left, last top-right (10 and 1000 are decades).
        assert!(pts.starts_with(&format!("{LEFT:.1},{:.1}", H - BOTTOM)));
    }

    #[test]
    fn empty_chart_says_so() {
        let s = chart(vec![]).render();
        assert!(s.contains("no data"));
        assert!(s.trim_end().ends_with("</svg>"));
    }
}
