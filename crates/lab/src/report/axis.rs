//! Axis ranges, tick labels and the category axis shared by every chart.
//!
//! Measured data is often degenerate (one sample, all-equal values, zeros, NaN), and plotters
//! needs `min < max` on every axis, so every range handed to it is built here.

use std::ops::Range;

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};

/// The finite values of `values`: NaN and infinities would turn into NaN coordinates.
pub fn finite(values: impl IntoIterator<Item = f64>) -> Vec<f64> {
    values.into_iter().filter(|v| v.is_finite()).collect()
}

/// Smallest and largest of the finite values, if there is any.
pub fn bounds(values: &[f64]) -> Option<(f64, f64)> {
    values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// A linear axis range covering `values`, with a little headroom.
///
/// `from_zero` anchors non-negative data at 0 so bar heights and latencies are not
/// exaggerated by a cropped axis.
pub fn linear_range(values: &[f64], from_zero: bool) -> Range<f64> {
    let Some((mut lo, mut hi)) = bounds(values) else {
        return 0.0..1.0;
    };
    if from_zero {
        lo = lo.min(0.0);
        hi = hi.max(0.0);
    }
    let span = hi - lo;
    if span > 0.0 && span.is_finite() {
        let pad = span * 0.05;
        hi += pad;
        if !(from_zero && lo == 0.0) {
            lo -= pad;
        }
    } else {
        // All values equal: centre them in a window sized by their magnitude.
        let pad = if lo.abs() > 0.0 { lo.abs() * 0.1 } else { 1.0 };
        hi += pad;
        if !(from_zero && lo == 0.0) {
            lo -= pad;
        }
    }
    checked(lo..hi)
}

/// A logarithmic axis range for strictly positive `values`.
pub fn log_range(values: &[f64]) -> Range<f64> {
    match bounds(values) {
        Some((lo, hi)) if lo > 0.0 => checked(lo / 1.2..hi * 1.2),
        _ => 1.0..10.0,
    }
}

/// Whether positive `values` span more than `decades` powers of ten, where a log axis
/// shows them better than a linear one.
pub fn spans_decades(values: &[f64], decades: f64) -> bool {
    match bounds(values) {
        Some((lo, hi)) if lo > 0.0 => (hi / lo).log10() > decades,
        _ => false,
    }
}

/// `range` if plotters can use it, else a harmless default rather than a panic.
fn checked(range: Range<f64>) -> Range<f64> {
    let ok = range.start.is_finite() && range.end.is_finite() && range.start < range.end;
    if ok {
        range
    } else {
        0.0..1.0
    }
}

/// A compact tick label: few digits, no trailing zeros.
pub fn tick(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        return String::new();
    }
    if a == 0.0 {
        return "0".into();
    }
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:.1e}");
    }
    let decimals = if a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        3
    };
    trim_zeros(format!("{v:.decimals$}"))
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A categorical x axis over `f64`: category `i` spans `[i, i + 1)` and is labelled at
/// its centre, so bars can be placed at fractional positions (grouped bars).
#[derive(Clone)]
pub struct Categories {
    labels: Vec<String>,
}

impl Categories {
    pub fn new(labels: Vec<String>) -> Self {
        Self { labels }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// How many labels fit side by side in `width` pixels; plotters does not prevent
    /// overlapping tick labels.
    pub fn label_capacity(&self, width: u32) -> usize {
        let longest = self
            .labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(1);
        (width as usize / (longest * 8 + 10)).max(1)
    }
}

impl Ranged for Categories {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let n = self.labels.len().max(1) as f64;
        let pixels = f64::from(limit.1 - limit.0);
        limit.0 + (value / n * pixels).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        let n = self.labels.len();
        let max = hint.max_num_points().max(1);
        let step = n.div_ceil(max).max(1);
        (0..n).step_by(step).map(|i| i as f64 + 0.5).collect()
    }

    fn range(&self) -> Range<f64> {
        0.0..self.labels.len().max(1) as f64
    }
}

impl ValueFormatter<f64> for Categories {
    fn format_ext(&self, value: &f64) -> String {
        let i = value.floor();
        if i >= 0.0 {
            self.labels.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_never_empty() {
        for values in [
            vec![],
            vec![f64::NAN],
            vec![0.0],
            vec![5.0, 5.0],
            vec![-3.0],
        ] {
            for zero in [true, false] {
                let r = linear_range(&values, zero);
                assert!(r.start < r.end, "{values:?} {zero} -> {r:?}");
            }
            let r = log_range(&values);
            assert!(r.start < r.end && r.start > 0.0);
        }
    }

    #[test]
    fn ticks_are_compact() {
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(2.50), "2.5");
        assert_eq!(tick(1234.0), "1234");
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick(f64::NAN), "");
    }

    #[test]
    fn category_labels_thin_out() {
        let c = Categories::new((0..100).map(|i| format!("n{i}")).collect());
        assert!(c.key_points(10usize).len() <= 10);
        assert_eq!(c.format_ext(&0.5), "n0");
        assert_eq!(c.format_ext(&-1.0), "");
    }
}
