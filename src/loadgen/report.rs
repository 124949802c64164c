//! The load generator's report: percentiles and failures as text, the
//! histograms as CSV, and a percentile plot as SVG.

use std::collections::BTreeMap;
use std::fmt::Write;

use hdrhistogram::Histogram;

/// One measured series: a scenario under one load.
#[derive(Debug)]
pub struct Series {
    pub name: String,
    pub rate: Option<u64>,
    pub concurrency: usize,
    /// Successful answers per second over the measured period.
    pub ok_per_second: f64,
    /// Failed requests by kind (`http 401`, `timeout`, …).
    pub failures: BTreeMap<String, u64>,
    /// Latencies of the successful answers, in microseconds.
    pub histogram: Histogram<u64>,
}

/// The percentiles reported.
const REPORTED: [(&str, f64); 5] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("max", 1.0),
];

impl Series {
    /// Latency at quantile `q` (1.0: the maximum), in milliseconds.
    pub fn millis(&self, q: f64) -> f64 {
        let micros = if q >= 1.0 {
            self.histogram.max()
        } else {
            self.histogram.value_at_quantile(q)
        };
        micros as f64 / 1000.0
    }

    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }
}

pub fn text(series: &[Series]) -> String {
    let mut out = String::new();
    for s in series {
        let _ = writeln!(
            out,
            "{:<20} {:>10} ok ({:>9.0} req/s), {} failed",
            s.name,
            s.histogram.len(),
            s.ok_per_second,
            s.failed()
        );
        let mut line = String::from("  latency ");
        for (label, q) in REPORTED {
            let _ = write!(line, " {label} {:.2} ms ", s.millis(q));
        }
        let _ = writeln!(out, "{}", line.trim_end());
        for (kind, n) in &s.failures {
            let _ = writeln!(out, "  failed: {kind} × {n}");
        }
    }
    if let [first, .., base] = series
        && base.ok_per_second > 0.0
        && base.millis(0.99) > 0.0
    {
        let _ = writeln!(
            out,
            "ratio to {}: throughput {:.2} ×, p99 {:.2} ×",
            base.name,
            first.ok_per_second / base.ok_per_second,
            first.millis(0.99) / base.millis(0.99)
        );
    }
    out
}

/// The histograms' percentile distributions:
/// `series,percentile,latency_ms,count`.
pub fn csv(series: &[Series]) -> String {
    let mut out = String::from("series,percentile,latency_ms,count\n");
    for s in series {
        for v in s.histogram.iter_quantiles(5) {
            let _ = writeln!(
                out,
                "{},{:.6},{:.3},{}",
                s.name,
                v.quantile_iterated_to() * 100.0,
                v.value_iterated_to() as f64 / 1000.0,
                v.count_since_last_iteration()
            );
        }
    }
    out
}

/// The plot's horizontal position of quantile `q`: the "nines", so that
/// 90 %, 99 % and 99.9 % are evenly spaced.
fn nines(q: f64) -> f64 {
    -(1.0 - q).max(1e-6).log10()
}

const COLOURS: [&str; 4] = ["#d9480f", "#1c7ed6", "#2b8a3e", "#7048e8"];

/// A percentile plot of every series: latency (ms) against percentile.
pub fn svg(series: &[Series]) -> String {
    let (w, h, left, bottom, top, right) = (760.0, 420.0, 70.0, 50.0, 40.0, 180.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let max_nines = 5.0;
    let y_max = series
        .iter()
        .map(|s| s.millis(0.99999))
        .fold(0.0_f64, f64::max)
        .max(0.1)
        * 1.1;
    let x = |q: f64| left + nines(q).min(max_nines) / max_nines * pw;
    let y = |ms: f64| top + ph - (ms / y_max).min(1.0) * ph;
    let mut out = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{left}" y="22" font-size="14">warmline loadgen: latency by percentile</text>
<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#333"/>
<line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="#333"/>
"##,
        top + ph,
        left + pw,
        top + ph,
        top + ph
    );
    for (label, q) in [
        ("0%", 0.0),
        ("90%", 0.9),
        ("99%", 0.99),
        ("99.9%", 0.999),
        ("99.99%", 0.9999),
        ("99.999%", 0.99999),
    ] {
        let px = x(q);
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{top}" x2="{px:.1}" y2="{:.1}" stroke="#eee"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            top + ph,
            top + ph + 18.0
        );
    }
    for i in 0..=5 {
        let ms = y_max * f64::from(i) / 5.0;
        let py = y(ms);
        let _ = writeln!(
            out,
            r##"<line x1="{left}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{ms:.2}</text>"##,
            left + pw,
            left - 6.0,
            py + 4.0
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="18" y="{:.1}" transform="rotate(-90 18 {:.1})" text-anchor="middle">latency (ms)</text><text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"##,
        top + ph / 2.0,
        top + ph / 2.0,
        left + pw / 2.0,
        h - 8.0
    );
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = s
            .histogram
            .iter_quantiles(5)
            .map(|v| {
                let q = v.quantile_iterated_to();
                format!(
                    "{:.1},{:.1}",
                    x(q),
                    y(v.value_iterated_to() as f64 / 1000.0)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            r##"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"##,
            points.join(" ")
        );
        let ly = top + 16.0 + 34.0 * i as f64;
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text><text x="{:.1}" y="{:.1}" fill="#555">{:.0} req/s, p99 {:.2} ms</text>"##,
            left + pw + 12.0,
            left + pw + 32.0,
            left + pw + 38.0,
            ly + 4.0,
            escape(&s.name),
            left + pw + 38.0,
            ly + 18.0,
            s.ok_per_second,
            s.millis(0.99)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
