//! The `cache` section: a tiered node beside a memory-store node under the same skewed
//! reads: which tier served them (over time), how fast each tier and each node answered,
//! what moved between tiers, and the two targets beside what was measured.

use crate::results::{CacheNode, CacheResult};

use super::html::{self, bytes, figure, kv_table, mib, ms, num, paragraph, ratio, table, Section};
use super::plots::{self, BarGroup, BarPanel, Chart, LineChart, Sample, Series};

const ERRORS_SHOWN: usize = 10;
/// The targets the scenario was written for: the memory tier's share of reads at steady
/// state at s = 1.0 with memory 10 % of the dataset, and tiered p50 over memory-store p50.
const TARGET_HIT_RATIO: f64 = 0.85;
const TARGET_P50_RATIO: f64 = 1.5;

fn percent(v: f64) -> String {
    if v.is_finite() {
        format!("{} %", num(v * 100.0, 1))
    } else {
        html::MISSING.into()
    }
}

/// Bytes moved in and out of the memory tier (copies), or between the persistent tiers
/// (each move counted once: a promotion on the tier it went to, a demotion on the one it
/// left).
fn moved(r: &CacheResult, memory: bool) -> u64 {
    r.tiers
        .iter()
        .filter(|t| t.tier.starts_with("memory") == memory)
        .map(|t| {
            if memory {
                t.moved_in_bytes
            } else {
                t.moved_in_bytes + t.moved_out_bytes
            }
        })
        .sum()
}

pub fn cache(r: Option<&CacheResult>) -> Option<Section> {
    let r = r?;
    let memory_tier = r.tiers.iter().find(|t| t.tier.starts_with("memory"));
    let summary = kv_table(vec![
        ("Zipf skew s", num(r.skew, 2).into()),
        (
            "files (one 64 KiB block each)",
            format!("{} ({})", r.files, bytes(r.dataset_bytes)).into(),
        ),
        (
            "reads per node",
            format!("{} ({} at once)", r.reads, r.concurrency).into(),
        ),
        (
            "memory tier",
            memory_tier
                .map_or(html::MISSING.into(), |t| bytes(t.capacity_bytes))
                .into(),
        ),
        (
            "memory tier's share of block reads, steady state",
            format!(
                "{} (target ≥ {}; ideal {})",
                percent(r.memory_hit_ratio_steady),
                percent(TARGET_HIT_RATIO),
                percent(r.memory_hit_ratio_ideal)
            )
            .into(),
        ),
        (
            "p50 tiered / memory store, steady state",
            format!(
                "{} (target ≤ {})",
                ratio(r.p50_ratio),
                ratio(TARGET_P50_RATIO)
            )
            .into(),
        ),
        (
            "p99 tiered / memory store, steady state",
            ratio(r.p99_ratio).into(),
        ),
        (
            "moved between persistent tiers",
            format!("{} MiB", mib(moved(r, false) as f64)).into(),
        ),
        (
            "copied into memory",
            format!("{} MiB", mib(moved(r, true) as f64)).into(),
        ),
    ]);
    let tier_rows = r
        .tiers
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let spec = r.tier_specs.get(i).map_or("", String::as_str);
            let speed = match spec.rsplit_once(':') {
                Some((_, emu)) if t.emulated => format!("emulated: {emu}"),
                _ => "real".into(),
            };
            vec![
                t.tier.as_str().into(),
                speed.into(),
                bytes(t.capacity_bytes).into(),
                percent(t.hit_ratio).into(),
                num(t.read_latency.p50_ms * 1000.0, 1).into(),
                num(t.read_latency.p99_ms * 1000.0, 1).into(),
                mib(t.moved_in_bytes as f64).into(),
                mib(t.moved_out_bytes as f64).into(),
            ]
        })
        .collect();
    let tiers = table(
        &[
            "tier",
            "speed",
            "size",
            "share of block reads",
            "block read p50 (µs)",
            "p99 (µs)",
            "promoted in (MiB)",
            "demoted out (MiB)",
        ],
        tier_rows,
    );
    let node_row = |n: &CacheNode| {
        vec![
            n.store.as_str().into(),
            n.reads.into(),
            html::Cell::zero_expected(n.reads.saturating_sub(n.verified)),
            ms(n.latency.p50).into(),
            ms(n.latency.p99).into(),
            ms(n.steady.p50).into(),
            ms(n.steady.p99).into(),
        ]
    };
    let nodes = table(
        &[
            "node's store",
            "reads",
            "failed or not identical",
            "read p50 (ms)",
            "p99 (ms)",
            "steady p50 (ms)",
            "steady p99 (ms)",
        ],
        vec![node_row(&r.tiered), node_row(&r.memory)],
    );
    let mut hit = LineChart::new(
        Chart::new(
            "Share of block reads per tier over time",
            "time since the reads began (s)",
            "share of the round's block reads",
        ),
        r.tiers
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let points = t
                    .t_s
                    .iter()
                    .copied()
                    .zip(t.hit_ratio_over_time.iter().copied());
                Series::new(t.tier.as_str(), plots::palette(i), points.collect())
                    .mark(plots::Mark::LineAndPoints)
            })
            .collect(),
    );
    hit.y_fixed = Some(0.0..1.0);
    let cdf = plots::cdf_chart(
        Chart::new("Read latency CDF", "latency (ms)", "fraction of reads"),
        &[
            Sample {
                name: "tiered",
                color: plots::palette(0),
                values: &r.tiered.latencies_ms,
            },
            Sample {
                name: "memory store",
                color: plots::palette(1),
                values: &r.memory.latencies_ms,
            },
        ],
    );
    let moved = plots::bar_chart(BarPanel {
        chart: Chart::new("Bytes moved between tiers", "tier", "MiB"),
        labels: r.tiers.iter().map(|t| t.tier.clone()).collect(),
        groups: vec![
            BarGroup::new(
                "promoted into it (memory: copied in)",
                plots::palette(2),
                r.tiers
                    .iter()
                    .map(|t| t.moved_in_bytes as f64 / html::MIB)
                    .collect(),
            ),
            BarGroup::new(
                "demoted out of it (memory: evicted)",
                plots::palette(3),
                r.tiers
                    .iter()
                    .map(|t| t.moved_out_bytes as f64 / html::MIB)
                    .collect(),
            ),
        ],
    });
    let body = paragraph(&format!(
        "Two nodes started for this scenario on this machine: a tiered one ({}) and one on the \
         memory store, given the same files and the same Zipf-distributed reads, taking turns a \
         round each. Tiers marked emulated are directories on one disk whose reads wait as the \
         device named would: an emulation, not the device. A read of a one-block file reads two \
         blocks, its manifest and its data block, and the tiers' shares count both. The ideal \
         share is an oracle's that always holds the most read files that fit (memory tier size / \
         64 KiB of them). Steady state is the last half of the reads.",
        r.tier_specs.join(" ")
    )) + &summary
        + &tiers
        + &nodes
        + &figure(
            "plot-cache-hit-ratio",
            "Each tier's share of the tiered node's block reads in each round, from its metrics.",
            plots::line_chart(&hit),
        )
        + &figure(
            "plot-cache-latency-cdf",
            "Fraction of reads (request to last byte) finished within a latency, tiered node and \
             memory-store node.",
            cdf,
        )
        + &figure(
            "plot-cache-moved",
            "Bytes moved into and out of each tier during the reads (blocks × 64 KiB; a \
             manifest block is smaller, so this is an upper bound). A move up counts on the \
             tier it went to, a move down on the tier it left.",
            moved,
        )
        + &html::errors("Cache errors", &r.errors, ERRORS_SHOWN);
    Some(Section::new("cache", "Tiered cache", body))
}
