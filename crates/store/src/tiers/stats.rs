//! Per-tier figures for the node's metrics: what each tier holds, how its reads went, and
//! a read-latency histogram with fixed buckets (Prometheus-style, cumulative on export).
//! The counters are atomics bumped on the read path; [`TierStats`] is a plain snapshot.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::spec::TierKind;

/// Upper bounds of the latency buckets, from a memory hit to a slow disk; one more bucket
/// (+Inf) takes the rest.
pub const LATENCY_BUCKETS: [Duration; 16] = [
    Duration::from_micros(1),
    Duration::from_micros(2),
    Duration::from_micros(5),
    Duration::from_micros(10),
    Duration::from_micros(20),
    Duration::from_micros(50),
    Duration::from_micros(100),
    Duration::from_micros(200),
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_millis(2),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(20),
    Duration::from_millis(50),
    Duration::from_millis(100),
];

/// A snapshot of one tier.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierStats {
    pub kind: TierKind,
    /// `None` for the memory tier.
    pub dir: Option<PathBuf>,
    pub blocks: u64,
    pub bytes: u64,
    pub capacity: u64,
    /// Reads this tier served.
    pub hits: u64,
    /// Reads that looked here (or passed this tier by) and were served slower, or not at all.
    pub misses: u64,
    /// Blocks moved into this tier from a slower one (for memory: admitted to the cache).
    pub promotions: u64,
    /// Blocks moved out of this tier to a slower one (for memory: evicted).
    pub demotions: u64,
    pub read_latency: LatencyHistogram,
}

/// Read latencies of the reads a tier served.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// Reads per bucket (not cumulative): `counts[i]` took at most `LATENCY_BUCKETS[i]`
    /// (and more than the bound before); the last entry counts the slower ones.
    pub counts: Vec<u64>,
    pub count: u64,
    pub sum: Duration,
}

impl LatencyHistogram {
    /// (upper bound, reads at or under it) pairs as Prometheus exports them; the last bound
    /// is `None` (+Inf).
    pub fn cumulative(&self) -> Vec<(Option<Duration>, u64)> {
        let mut total = 0;
        self.counts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                total += c;
                (LATENCY_BUCKETS.get(i).copied(), total)
            })
            .collect()
    }
}

/// The live counters behind a tier's [`TierStats`].
#[derive(Default)]
pub(crate) struct TierCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub promotions: AtomicU64,
    pub demotions: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl TierCounters {
    pub(crate) fn observe(&self, latency: Duration) {
        let i = LATENCY_BUCKETS.partition_point(|&b| b < latency);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add(latency.as_nanos() as u64, Ordering::Relaxed);
    }

    pub(crate) fn histogram(&self) -> LatencyHistogram {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        LatencyHistogram {
            count: counts.iter().sum(),
            counts,
            sum: Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)),
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_land_in_their_buckets() {
        let c = TierCounters::default();
        c.observe(Duration::from_nanos(500));
        c.observe(Duration::from_micros(1));
        c.observe(Duration::from_micros(70));
        c.observe(Duration::from_secs(1));
        let h = c.histogram();
        assert_eq!(h.count, 4);
        assert_eq!(h.counts[0], 2, "at most 1 us");
        assert_eq!(h.counts[6], 1, "50..100 us");
        assert_eq!(*h.counts.last().unwrap(), 1, "+Inf");
        let cum = h.cumulative();
        assert_eq!(cum.last().unwrap(), &(None, 4));
        assert_eq!(cum[5], (Some(Duration::from_micros(50)), 2));
    }
}
