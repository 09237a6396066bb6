//! A node on a tiered store (`--tier`): its placement work in the background, and what it
//! tells about each tier (metrics, `/space`, `/debug/info`).
//!
//! The store keeps every decision (what is hot, where a block goes, when a move is
//! durable); this module only calls it on a timer and reads its counters out. A tier with
//! device-speed emulation is labelled `emulated="true"` everywhere it is shown, so a lab
//! figure is never mistaken for a real device's.

use std::sync::Arc;
use std::time::Duration;

use neverust_store::tiers::LATENCY_BUCKETS;
pub use neverust_store::tiers::{validate, TierSpec, TierSpecError};
use neverust_store::{TierStats, TieredStore};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use tokio::sync::watch;

use crate::api::answers;

/// How often placement runs, and how many blocks one run may move: small steps, so a
/// burst of reads is followed within a second and a move never holds a thread for long.
const REBALANCE_EVERY: Duration = Duration::from_millis(500);
const REBALANCE_BUDGET: usize = 256;

/// The tiered store and the specs it was opened with (for the emulation labels), in the
/// order `tier_stats` reports them.
#[derive(Clone)]
pub struct Tiers {
    pub store: Arc<TieredStore>,
    pub specs: Vec<TierSpec>,
}

impl std::fmt::Debug for Tiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tiers").field("specs", &self.specs).finish()
    }
}

impl Tiers {
    /// Snapshots of every tier with whether its speed is emulated.
    pub fn stats(&self) -> Vec<(TierStats, bool)> {
        let emulated = self.specs.iter().map(|s| !s.emulation.is_none());
        self.store.tier_stats().into_iter().zip(emulated).collect()
    }

    /// The tiers as `/space` and `/debug/info` show them.
    pub fn answer(&self) -> Vec<answers::Tier> {
        self.stats()
            .into_iter()
            .map(|(t, emulated)| answers::Tier {
                tier: t.kind.name().to_string(),
                dir: t.dir.map(|d| d.display().to_string()),
                emulated,
                blocks: t.blocks,
                bytes: t.bytes,
                capacity_bytes: t.capacity,
                hits: t.hits,
                misses: t.misses,
                promotions: t.promotions,
                demotions: t.demotions,
            })
            .collect()
    }
}

/// Moves blocks between tiers until the node stops.
pub async fn rebalance_forever(tiers: Tiers, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(REBALANCE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let store = tiers.store.clone();
        match tokio::task::spawn_blocking(move || store.rebalance(REBALANCE_BUDGET)).await {
            Ok(Ok(moved)) if moved.promoted + moved.demoted > 0 => {
                tracing::debug!(
                    promoted = moved.promoted,
                    demoted = moved.demoted,
                    "tiers rebalanced"
                )
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "moving blocks between tiers failed"),
            Err(e) => tracing::error!(error = %e, "the tier rebalance task panicked"),
        }
    }
}

/// `neverust_tier_*` series, read from the store at scrape time (so they cannot drift from
/// it), one per tier, labelled `tier` (its kind and position) and `emulated`.
#[derive(Debug)]
pub struct TierCollector(pub Tiers);

/// A series: its name (after `neverust_`), its help, and how to read it from a tier.
type Series = (&'static str, &'static str, fn(&TierStats) -> u64);

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct TierLabels {
    tier: String,
    emulated: &'static str,
}

impl Collector for TierCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats: Vec<(TierLabels, TierStats)> = self
            .0
            .stats()
            .into_iter()
            .enumerate()
            .map(|(i, (t, emulated))| {
                let labels = TierLabels {
                    tier: format!("{}{i}", t.kind.name()),
                    emulated: if emulated { "true" } else { "false" },
                };
                (labels, t)
            })
            .collect();
        let gauges: [Series; 3] = [
            ("tier_blocks", "Blocks whose copy this tier holds", |t| {
                t.blocks
            }),
            ("tier_bytes", "Bytes of block data this tier holds", |t| {
                t.bytes
            }),
            (
                "tier_capacity_bytes",
                "Bytes of block data this tier may hold (--tier)",
                |t| t.capacity,
            ),
        ];
        for (name, help, value) in gauges {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (labels, t) in &stats {
                let gauge = ConstGauge::new(value(t).min(i64::MAX as u64) as i64);
                gauge.encode(family.encode_family(labels)?)?;
            }
        }
        let counters: [Series; 4] = [
            ("tier_hits", "Reads this tier served", |t| t.hits),
            (
                "tier_misses",
                "Reads that looked in this tier and went on to a slower one",
                |t| t.misses,
            ),
            (
                "tier_promotions",
                "Blocks moved into this tier from a slower one",
                |t| t.promotions,
            ),
            (
                "tier_demotions",
                "Blocks moved out of this tier to a slower one",
                |t| t.demotions,
            ),
        ];
        for (name, help, value) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (labels, t) in &stats {
                ConstCounter::new(value(t)).encode(family.encode_family(labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "tier_read_latency_seconds",
            "Latency of block reads this tier served (emulated delays included)",
            None,
            MetricType::Histogram,
        )?;
        for (labels, t) in &stats {
            let h = &t.read_latency;
            // Reads per bucket: the encoder adds them up into Prometheus's cumulative
            // counts (given cumulative counts, it exported sums of sums).
            let buckets: Vec<(f64, u64)> = h
                .counts
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    let le = LATENCY_BUCKETS
                        .get(i)
                        .map_or(f64::INFINITY, |d| d.as_secs_f64());
                    (le, n)
                })
                .collect();
            family
                .encode_family(labels)?
                .encode_histogram::<NoLabelSet>(h.sum.as_secs_f64(), h.count, &buckets, None)?;
        }
        Ok(())
    }
}
