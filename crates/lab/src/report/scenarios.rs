//! Sections of the load scenarios: upload, block exchange, throughput and stress.
//!
//! Each turns one optional result into a table, its charts and its first errors, or into
//! nothing when the scenario did not run.

use crate::results::{
    ExchangeResult, Histogram, Quantiles, StressResult, ThroughputResult, UploadResult,
};

use super::axis;
use super::html::{self, bytes, figure, kv_table, ms, num, ratio, table, Cell, Section};
use super::plots::{self, BarGroup, BarPanel, Chart, LineChart, Sample, Series};

/// How many error messages a section lists; the rest are only counted.
const ERRORS_SHOWN: usize = 10;

pub fn upload(u: Option<&UploadResult>) -> Option<Section> {
    let u = u?;
    if u.sizes.is_empty() && u.errors.is_empty() {
        return None;
    }
    let names: Vec<String> = u.sizes.iter().map(|s| bytes(s.size_bytes)).collect();
    let rows = u
        .sizes
        .iter()
        .zip(&names)
        .map(|(s, name)| {
            vec![
                name.as_str().into(),
                s.count.into(),
                ms(s.latency.p50).into(),
                ms(s.latency.p99).into(),
                num(s.throughput_mib_s, 1).into(),
                ratio(s.ratio_to_sha256).into(),
                s.verified.into(),
            ]
        })
        .collect();
    let headers = [
        "size",
        "count",
        "p50 (ms)",
        "p99 (ms)",
        "MiB/s",
        "ratio to sha256",
        "verified",
    ];
    let samples: Vec<Sample> = u
        .sizes
        .iter()
        .zip(&names)
        .enumerate()
        .map(|(i, (s, name))| Sample {
            name,
            color: plots::palette(i),
            values: &s.latencies_ms,
        })
        .collect();
    let cdf = plots::cdf_chart(
        Chart::new("Upload latency CDF", "latency (ms)", "fraction of uploads"),
        &samples,
    );
    let bars = plots::bar_chart(BarPanel {
        chart: Chart::new("Upload throughput per size", "file size", "MiB/s"),
        labels: names.clone(),
        groups: vec![BarGroup::new(
            "MiB/s",
            plots::palette(0),
            u.sizes.iter().map(|s| s.throughput_mib_s).collect(),
        )],
    });
    let body = table(&headers, rows)
        + &figure(
            "plot-upload-cdf",
            "Fraction of uploads finished within a latency, one line per file size.",
            cdf,
        )
        + &figure(
            "plot-upload-throughput",
            "Throughput of one upload at a time, per file size.",
            bars,
        )
        + &html::errors("Upload errors", &u.errors, ERRORS_SHOWN);
    Some(Section::new("upload", "Upload", body))
}

fn p50_p99(q: &Quantiles) -> Cell {
    format!("{} / {}", ms(q.p50), ms(q.p99)).into()
}

pub fn exchange(e: Option<&ExchangeResult>) -> Option<Section> {
    let e = e?;
    let a = &e.aggregate;
    let h = &e.block_latency;
    let body = kv_table(vec![
        ("pairs (sequential downloads)", e.pairs.into()),
        ("file size", bytes(e.file_bytes).into()),
        ("verified", e.verified.into()),
        ("TTFB p50 / p99 (ms)", p50_p99(&e.ttfb)),
        ("file p50 / p99 (ms)", p50_p99(&e.file)),
        (
            "block latency p50 / p99 (ms)",
            format!("{} / {}", ms(h.p50_ms), ms(h.p99_ms)).into(),
        ),
        ("blocks measured", h.count.into()),
        ("aggregate: concurrent downloads", a.concurrent.into()),
        ("aggregate: downloads", a.downloads.into()),
        ("aggregate: blocks", a.blocks.into()),
        ("aggregate: seconds", num(a.seconds, 2).into()),
        ("aggregate: blocks/s", num(a.blocks_per_s, 1).into()),
        ("aggregate: MiB/s", num(a.mib_s, 1).into()),
        (
            "aggregate: ratio to loopback TCP",
            ratio(a.ratio_to_loopback_tcp).into(),
        ),
        (
            "aggregate: node CPU per block (µs)",
            a.node_cpu_us_per_block
                .map_or_else(|| "n/a".to_string(), |us| num(us, 0))
                .into(),
        ),
    ]);
    let cdf = plots::cdf_chart(
        Chart::new(
            "Exchange latency CDF",
            "latency (ms)",
            "fraction of downloads",
        ),
        &[
            Sample {
                name: "time to first byte",
                color: plots::palette(0),
                values: &e.ttfb_ms,
            },
            Sample {
                name: "whole file",
                color: plots::palette(1),
                values: &e.file_ms,
            },
        ],
    );
    let body =
        body + &figure(
            "plot-exchange-cdf",
            "Fraction of sequential downloads whose first byte, and whole file, arrived \
             within a latency.",
            cdf,
        ) + &figure(
            "plot-block-histogram",
            "Blocks fetched per latency bucket (upper bound in ms), from the downloaders' \
             own histograms.",
            block_histogram(h),
        ) + &html::errors("Exchange errors", &e.errors, ERRORS_SHOWN);
    Some(Section::new("exchange", "Block exchange", body))
}

fn block_histogram(h: &Histogram) -> Option<String> {
    let (labels, counts) = bucket_counts(&h.buckets);
    plots::bar_chart(BarPanel {
        chart: Chart::new(
            "Per-block fetch latency",
            "latency bucket, upper bound (ms)",
            "blocks",
        ),
        labels,
        groups: vec![BarGroup::new("blocks", plots::palette(0), counts)],
    })
}

/// Per-bucket counts and labels from cumulative Prometheus buckets, without the empty
/// buckets before the first and after the last sample (they only squeeze the bars).
/// Empty when no sample was counted.
pub fn bucket_counts(buckets: &[(f64, u64)]) -> (Vec<String>, Vec<f64>) {
    let mut sorted: Vec<(f64, u64)> = buckets
        .iter()
        .copied()
        .filter(|(bound, _)| !bound.is_nan())
        .collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut previous = 0u64;
    let mut per_bucket = Vec::with_capacity(sorted.len());
    for (bound, cumulative) in sorted {
        // Cumulative counts never decrease; saturate in case a scrape raced an update.
        per_bucket.push((bound, cumulative.saturating_sub(previous)));
        previous = previous.max(cumulative);
    }
    let first = per_bucket.iter().position(|b| b.1 > 0);
    let last = per_bucket.iter().rposition(|b| b.1 > 0);
    let (Some(first), Some(last)) = (first, last) else {
        return (Vec::new(), Vec::new());
    };
    per_bucket[first..=last]
        .iter()
        .map(|&(bound, count)| (bucket_label(bound), count as f64))
        .unzip()
}

fn bucket_label(bound: f64) -> String {
    if bound >= f64::MAX {
        "+Inf".into()
    } else {
        format!("≤{}", axis::tick(bound))
    }
}

pub fn throughput(t: Option<&ThroughputResult>) -> Option<Section> {
    let t = t?;
    let per_node = axis::bounds(&t.swarm.per_node_seconds)
        .map(|(lo, hi)| format!("{} – {}", num(lo, 2), num(hi, 2)))
        .unwrap_or_else(|| html::MISSING.into());
    let body = kv_table(vec![
        ("dataset size", bytes(t.dataset_bytes).into()),
        ("single: seconds", num(t.single.seconds, 2).into()),
        ("single: MiB/s", num(t.single.mib_s, 1).into()),
        (
            "single: ratio to loopback TCP",
            ratio(t.single.ratio_to_loopback_tcp).into(),
        ),
        ("swarm: downloaders", t.swarm.downloaders.into()),
        ("swarm: seconds", num(t.swarm.seconds, 2).into()),
        ("swarm: per-node seconds (min – max)", per_node.into()),
        (
            "swarm: aggregate MiB/s",
            num(t.swarm.aggregate_mib_s, 1).into(),
        ),
        (
            "swarm: ratio to loopback TCP",
            ratio(t.swarm.ratio_to_loopback_tcp).into(),
        ),
    ]);
    let mut spec = LineChart::new(
        Chart::new("Download rate over time", "time since start (s)", "MiB/s"),
        timeline_series(t),
    );
    spec.legend_at = plots::LegendAt::UpperLeft;
    let body = body
        + &figure(
            "plot-throughput-timeline",
            "Receive rate of the downloaders over time, from their metrics, one line per \
             phase.",
            plots::line_chart(&spec),
        );
    Some(Section::new("throughput", "Throughput", body))
}

/// One series per phase, in the order phases first appear.
fn timeline_series(t: &ThroughputResult) -> Vec<Series> {
    let mut phases: Vec<&str> = Vec::new();
    for p in &t.timeline {
        if !phases.contains(&p.phase.as_str()) {
            phases.push(&p.phase);
        }
    }
    phases
        .iter()
        .enumerate()
        .map(|(i, phase)| {
            let mut points: Vec<(f64, f64)> = t
                .timeline
                .iter()
                .filter(|p| p.phase == *phase)
                .map(|p| (p.t_s, p.mib_s))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series::new(*phase, plots::palette(i), points)
        })
        .collect()
}

pub fn stress(s: Option<&StressResult>) -> Option<Section> {
    let s = s?;
    let body = kv_table(vec![
        ("operations", s.operations.into()),
        ("concurrency", s.concurrency.into()),
        ("file size", bytes(s.file_bytes).into()),
        ("uploads ok", s.uploads_ok.into()),
        ("downloads ok", s.downloads_ok.into()),
        ("verified", s.verified.into()),
        ("errors", Cell::zero_expected(s.error_count)),
        ("seconds", num(s.seconds, 2).into()),
        ("upload p50 / p99 (ms)", p50_p99(&s.upload)),
        ("download p50 / p99 (ms)", p50_p99(&s.download)),
    ]);
    let histogram = plots::histogram_chart(
        Chart::new("Stress latency distribution", "latency (ms)", "operations"),
        &[
            Sample {
                name: "upload",
                color: plots::palette(0),
                values: &s.upload_ms,
            },
            Sample {
                name: "download",
                color: plots::palette(1),
                values: &s.download_ms,
            },
        ],
        20,
    );
    let body = body
        + &html::errors("First stress errors", &s.errors, ERRORS_SHOWN)
        + &figure(
            "plot-stress-histogram",
            "Number of uploads and downloads per latency bin, under concurrent load.",
            histogram,
        );
    Some(Section::new("stress", "Stress", body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_buckets_become_per_bucket_counts() {
        let buckets = [(1.0, 0), (2.0, 3), (5.0, 3), (10.0, 7), (f64::MAX, 8)];
        let (labels, counts) = bucket_counts(&buckets);
        assert_eq!(labels, ["≤2", "≤5", "≤10", "+Inf"]);
        assert_eq!(counts, [3.0, 0.0, 4.0, 1.0]);
    }

    #[test]
    fn empty_buckets_draw_nothing() {
        assert!(bucket_counts(&[(1.0, 0), (f64::MAX, 0)]).0.is_empty());
        assert!(bucket_counts(&[]).0.is_empty());
        assert!(block_histogram(&Histogram::default()).is_none());
    }
}
