//! HTML building blocks of the report: escaping, number formatting, tables, figures and
//! the page around them.
//!
//! Everything taken from `results.json` is text from another program (error messages,
//! kernel strings), so tables and lists escape every cell; only markup built here is
//! trusted.

use std::fmt::Write as _;

/// `s` made safe for HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Shown in place of a number that was not measured or is not a number.
pub const MISSING: &str = "–";

/// `v` with `decimals` digits, or a dash: a NaN must never reach the page.
pub fn num(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        MISSING.into()
    }
}

/// A latency in ms with precision that suits its magnitude.
pub fn ms(v: f64) -> String {
    let decimals = match v.abs() {
        a if a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        _ => 2,
    };
    num(v, decimals)
}

/// A ratio to a baseline, as a multiplier.
pub fn ratio(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}×")
    } else {
        MISSING.into()
    }
}

/// A rate, or a dash when it was not measured (zero); for baselines only, since a zero
/// scenario rate is a real result.
pub fn measured_rate(v: f64) -> String {
    if v > 0.0 {
        num(v, 1)
    } else {
        MISSING.into()
    }
}

pub const MIB: f64 = 1024.0 * 1024.0;

pub fn mib(bytes: f64) -> String {
    num(bytes / MIB, 1)
}

/// A size in binary units, e.g. `1 MiB`, `256 KiB`, `1.5 GiB`.
pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    let text = if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    };
    format!("{text} {}", UNITS[unit])
}

/// A duration as `42.0 s`, or `3 min 12 s` when long enough for seconds to be unwieldy.
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return MISSING.into();
    }
    if seconds < 120.0 {
        return format!("{seconds:.1} s");
    }
    let total = seconds.round() as u64;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{h} h {m} min {s} s")
    } else {
        format!("{m} min {s} s")
    }
}

pub fn list<T: ToString>(items: &[T]) -> String {
    if items.is_empty() {
        return MISSING.into();
    }
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One table cell: plain text (escaped when written) and an optional CSS class.
pub struct Cell {
    text: String,
    class: &'static str,
}

impl Cell {
    /// A count that should be zero: red when it is not, green when it is.
    pub fn zero_expected(count: usize) -> Self {
        let class = if count > 0 { "bad" } else { "good" };
        Self {
            text: count.to_string(),
            class,
        }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Self { text, class: "" }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        text.to_string().into()
    }
}

impl From<usize> for Cell {
    fn from(v: usize) -> Self {
        v.to_string().into()
    }
}

impl From<u64> for Cell {
    fn from(v: u64) -> Self {
        v.to_string().into()
    }
}

fn cell(tag: &str, c: &Cell) -> String {
    if c.class.is_empty() {
        format!("<{tag}>{}</{tag}>", escape(&c.text))
    } else {
        format!("<{tag} class=\"{}\">{}</{tag}>", c.class, escape(&c.text))
    }
}

/// A table with a header row and one row per record.
pub fn table(headers: &[&str], rows: Vec<Vec<Cell>>) -> String {
    let mut out = String::from("<table>\n<thead><tr>");
    for h in headers {
        out += &cell("th", &(*h).into());
    }
    out += "</tr></thead>\n<tbody>\n";
    for row in rows {
        out += "<tr>";
        for c in &row {
            out += &cell("td", c);
        }
        out += "</tr>\n";
    }
    out + "</tbody>\n</table>\n"
}

/// A two-column table of named figures, for sections that measure one record.
pub fn kv_table(rows: Vec<(&str, Cell)>) -> String {
    let mut out = String::from("<table class=\"kv\">\n<tbody>\n");
    for (k, v) in rows {
        let _ = writeln!(out, "<tr>{}{}</tr>", cell("th", &k.into()), cell("td", &v));
    }
    out + "</tbody>\n</table>\n"
}

/// The first `limit` errors, escaped; nothing when there are none.
pub fn errors(title: &str, errors: &[String], limit: usize) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "<details class=\"errors\" open><summary>{} ({} shown of {})</summary>\n<ul>\n",
        escape(title),
        errors.len().min(limit),
        errors.len()
    );
    for e in errors.iter().take(limit) {
        let _ = writeln!(out, "<li><code>{}</code></li>", escape(e));
    }
    out + "</ul>\n</details>\n"
}

/// A chart in its figure; nothing when the chart had no data to draw.
pub fn figure(id: &str, caption: &str, svg: Option<String>) -> String {
    match svg {
        Some(svg) => format!(
            "<figure class=\"plot\" id=\"{}\">\n{svg}<figcaption>{}</figcaption>\n</figure>\n",
            escape(id),
            escape(caption)
        ),
        None => String::new(),
    }
}

pub fn paragraph(text: &str) -> String {
    format!("<p>{}</p>\n", escape(text))
}

/// A rendered section of the page.
pub struct Section {
    pub id: &'static str,
    pub title: &'static str,
    pub body: String,
}

impl Section {
    pub fn new(id: &'static str, title: &'static str, body: String) -> Self {
        Self { id, title, body }
    }

    /// A scenario that did not run, and why: the reader sees it was asked for.
    pub fn skipped(id: &'static str, title: &'static str, why: &str) -> Self {
        Self::new(id, title, paragraph(&format!("Skipped: {why}.")))
    }
}

/// The whole page: style, a table of contents, and the sections in order.
pub fn page(title: &str, intro: &str, sections: &[Section]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{t}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n<h1>{t}</h1>\n",
        t = escape(title)
    );
    out += intro;
    out += "<nav><ul>";
    for s in sections {
        let _ = write!(
            out,
            "<li><a href=\"#{}\">{}</a></li>",
            s.id,
            escape(s.title)
        );
    }
    out += "</ul></nav>\n";
    for s in sections {
        let _ = write!(
            out,
            "<section id=\"{}\">\n<h2>{}</h2>\n{}</section>\n",
            s.id,
            escape(s.title),
            s.body
        );
    }
    out + "</main>\n</body>\n</html>\n"
}

const STYLE: &str = r#"
body { margin: 0; background: #f5f6f8; color: #1d2330;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px; }
h1 { margin: 0 0 8px; font-size: 28px; }
h2 { margin: 0 0 12px; font-size: 21px; border-bottom: 2px solid #e1e4ea; padding-bottom: 4px; }
h3 { font-size: 16px; margin: 18px 0 8px; }
section { background: #fff; border: 1px solid #e1e4ea; border-radius: 8px;
  padding: 16px 20px; margin: 18px 0; }
nav ul { list-style: none; padding: 0; margin: 12px 0; display: flex; flex-wrap: wrap; gap: 6px; }
nav a { display: inline-block; padding: 3px 10px; border-radius: 12px; background: #e7ecf5;
  color: #24406e; text-decoration: none; font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0 12px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #e1e4ea; padding: 4px 10px; text-align: right; }
thead th { background: #f0f2f6; }
table.kv th { text-align: left; background: #f8f9fb; font-weight: 600; }
td.bad { background: #fde2e1; color: #a51d15; font-weight: 700; }
td.good { background: #e3f5e3; color: #1d6b1d; font-weight: 700; }
.meta { display: grid; grid-template-columns: repeat(auto-fit, minmax(240px, 1fr)); gap: 4px 18px; }
.meta div span { color: #5b6577; }
.checks { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0 4px; }
.check { border: 1px solid #d5dae3; border-radius: 8px; padding: 8px 14px; min-width: 130px; background: #fff; }
.check .v { display: block; font-size: 24px; font-weight: 700; }
.check .k { color: #5b6577; font-size: 13px; }
.check.bad { border-color: #d93a2f; background: #fde2e1; }
.check.bad .v { color: #a51d15; }
.check.good { border-color: #3a9a3a; background: #e3f5e3; }
.check.good .v { color: #1d6b1d; }
.check.warn { border-color: #d99a2f; background: #fdf1dc; }
figure.plot { margin: 14px 0; }
figure.plot svg { max-width: 100%; height: auto; border: 1px solid #eef0f4; }
figcaption { color: #5b6577; font-size: 13px; margin-top: 4px; }
details.errors { margin: 8px 0; }
details.errors code { white-space: pre-wrap; word-break: break-word; }
.note { color: #5b6577; }
dl dt { font-weight: 600; margin-top: 8px; }
dl dd { margin-left: 18px; }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }

    #[test]
    fn formats_numbers_without_nan() {
        assert_eq!(num(f64::NAN, 1), MISSING);
        assert_eq!(ratio(f64::INFINITY), MISSING);
        assert_eq!(bytes(1024 * 1024), "1 MiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(0), "0 B");
        assert_eq!(duration(3725.0), "1 h 2 min 5 s");
        assert_eq!(duration(12.34), "12.3 s");
    }
}
