//! Quantiles of samples and of Prometheus histograms.

use crate::results::{Histogram, Quantiles};

pub fn quantiles(samples: &[f64]) -> Quantiles {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return Quantiles::default();
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Quantiles {
        count: v.len(),
        min: v[0],
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        max: v[v.len() - 1],
        mean: v.iter().sum::<f64>() / v.len() as f64,
    }
}

/// Cumulative `(le seconds, count)` buckets (the difference of two scrapes) as a histogram
/// in milliseconds, with quantiles interpolated linearly inside a bucket, as Prometheus's
/// `histogram_quantile` does.
pub fn histogram(buckets_s: &[(f64, f64)]) -> Histogram {
    let buckets: Vec<(f64, u64)> = buckets_s
        .iter()
        .map(|(le, c)| {
            let le_ms = if le.is_finite() {
                le * 1000.0
            } else {
                f64::MAX
            };
            (le_ms, c.max(0.0).round() as u64)
        })
        .collect();
    let count = buckets.last().map_or(0, |b| b.1);
    let q = |q: f64| -> f64 {
        if count == 0 {
            return 0.0;
        }
        let rank = q * count as f64;
        let mut prev = (0.0, 0u64);
        for &(le, c) in &buckets {
            if c as f64 >= rank {
                if le == f64::MAX {
                    return prev.0;
                }
                let in_bucket = (c - prev.1) as f64;
                let frac = if in_bucket > 0.0 {
                    (rank - prev.1 as f64) / in_bucket
                } else {
                    1.0
                };
                return prev.0 + (le - prev.0) * frac;
            }
            prev = (le, c);
        }
        prev.0
    };
    Histogram {
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        buckets,
        count,
    }
}

/// `after - before`, bucket by bucket (both cumulative, same bounds).
pub fn bucket_delta(before: &[(f64, f64)], after: &[(f64, f64)]) -> Vec<(f64, f64)> {
    after
        .iter()
        .map(|(le, c)| {
            let b = before
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0.0, |(_, c)| *c);
            (*le, c - b)
        })
        .collect()
}

pub fn mib_s(bytes: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        0.0
    } else {
        bytes as f64 / (1024.0 * 1024.0) / seconds
    }
}

pub fn ratio(value: f64, baseline: f64) -> f64 {
    if baseline > 0.0 {
        value / baseline
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_quantiles() {
        let q = quantiles(&[5.0, 1.0, 3.0, 2.0, 4.0, f64::NAN]);
        assert_eq!(
            (q.count, q.min, q.p50, q.max, q.mean),
            (5, 1.0, 3.0, 5.0, 3.0)
        );
        assert_eq!(quantiles(&[]).count, 0);
    }

    #[test]
    fn histogram_quantiles_interpolate_like_prometheus() {
        // 10 samples: 4 at or below 1 ms, 10 at or below 2 ms.
        let h = histogram(&[(0.001, 4.0), (0.002, 10.0), (f64::INFINITY, 10.0)]);
        assert_eq!(h.count, 10);
        // rank 5 falls 1/6 into the (1, 2] ms bucket.
        assert!((h.p50_ms - (1.0 + 1.0 / 6.0)).abs() < 1e-9, "{}", h.p50_ms);
        assert!(h.p99_ms <= 2.0 && h.p99_ms > 1.9);
        assert_eq!(h.buckets.last().unwrap().0, f64::MAX);
        let d = bucket_delta(
            &[(0.001, 1.0), (f64::INFINITY, 2.0)],
            &[(0.001, 4.0), (f64::INFINITY, 9.0)],
        );
        assert_eq!(d, vec![(0.001, 3.0), (f64::INFINITY, 7.0)]);
        assert_eq!(histogram(&[]).p50_ms, 0.0);
    }
}
