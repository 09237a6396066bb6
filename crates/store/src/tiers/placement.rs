//! Placement across the persistent tiers, as decisions without I/O: where a new payload
//! goes, which tier is over its size, where a hot block may move up to, which sampled
//! block is coldest, and how often blocks are read (a frequency sketch).
//!
//! The tiered store feeds these reads and index samples and carries out what they return;
//! the memory tier is not placed here (its cache admits and evicts by itself). Tiers are
//! indexed fastest first; the last tier takes whatever no faster tier has room for.
//!
//! Each tier but the last keeps a tenth of its size free: writes may use it (they go to
//! the fastest tier with room, full size), and demotion then brings the tier back under
//! [`fill_limit`], so a fast tier has room for the next writes without waiting for a
//! demotion. Promotions stop at the same limit, so a block promoted is never the reason
//! for a demotion right after (except when it takes a colder block's place on purpose).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use crate::disk::TierUsage;
use crate::Cid;

/// The fastest tier with room for `bytes` more; the first when none has (demotion then
/// makes room, as it does after promotions).
pub(crate) fn write_tier(usage: &[TierUsage], bytes: u64) -> usize {
    usage
        .iter()
        .position(|u| u.bytes.saturating_add(bytes) <= u.capacity)
        .unwrap_or(0)
}

/// What demotion brings a tier back under, and what promotions fill it up to.
pub(crate) fn fill_limit(capacity: u64) -> u64 {
    capacity - capacity / 10
}

/// The fastest tier holding more than its fill limit that has a slower tier to demote into.
pub(crate) fn overfull(usage: &[TierUsage]) -> Option<usize> {
    let last = usage.len().checked_sub(1)?;
    (0..last).find(|&t| usage[t].bytes > fill_limit(usage[t].capacity))
}

/// The fastest tier above `from` with room for a block of `len` bytes under its fill limit.
pub(crate) fn promotion_target(usage: &[TierUsage], from: usize, len: u64) -> Option<usize> {
    (0..from).find(|&t| usage[t].bytes.saturating_add(len) <= fill_limit(usage[t].capacity))
}

/// The least read of `sample` by the sketch's estimate (the first of equals: the index
/// order is a hash order, so that is no bias).
pub(crate) fn coldest(sample: &[(Cid, u64)], sketch: &FrequencySketch) -> Option<(Cid, u8)> {
    sample
        .iter()
        .map(|(cid, _)| (*cid, sketch.estimate(cid)))
        .min_by_key(|&(_, f)| f)
}

/// The blocks to demote from a sample of a tier holding `excess` bytes over its limit:
/// the coldest first, as many as make up the excess, at most `most`.
pub(crate) fn demotions(
    sample: &[(Cid, u64)],
    sketch: &FrequencySketch,
    excess: u64,
    most: usize,
) -> Vec<Cid> {
    let mut by_heat: Vec<(u8, Cid, u64)> = sample
        .iter()
        .map(|&(cid, len)| (sketch.estimate(&cid), cid, len))
        .collect();
    // Stable: equals keep the index's (hash) order.
    by_heat.sort_by_key(|&(heat, _, _)| heat);
    let mut seen = HashSet::new();
    let mut freed = 0;
    let mut out = Vec::new();
    for (_, cid, len) in by_heat {
        if freed >= excess || out.len() >= most {
            break;
        }
        if seen.insert(cid) {
            freed += len;
            out.push(cid);
        }
    }
    out
}

/// A count-min sketch of recent reads, aged by halving (as TinyLFU does) so a block that
/// was hot long ago cools down. Lock-free: a read on the hot path costs four atomic adds.
pub(crate) struct FrequencySketch {
    rows: [Box<[AtomicU8]>; ROWS],
    mask: u64,
    reads: AtomicU64,
    /// Reads between two halvings.
    window: u64,
}

const ROWS: usize = 4;

impl FrequencySketch {
    /// Sized for about `blocks` distinct blocks being tracked at once.
    pub(crate) fn new(blocks: usize) -> Self {
        // At most 4 Mi counters a row (16 MiB in all): beyond that the estimates of the
        // blocks competing for the fast tiers are already sharp.
        let width = blocks.clamp(1024, 1 << 22).next_power_of_two();
        let row = || (0..width).map(|_| AtomicU8::new(0)).collect::<Box<[_]>>();
        FrequencySketch {
            rows: [row(), row(), row(), row()],
            mask: width as u64 - 1,
            reads: AtomicU64::new(0),
            window: width as u64 * 8,
        }
    }

    /// A CID's digest is already a uniform hash: its bytes index the rows directly.
    fn slots(&self, cid: &Cid) -> [usize; ROWS] {
        let d = cid.hash().digest();
        let word = |i: usize| {
            let mut b = [0u8; 8];
            let part = d.get(i * 8..i * 8 + 8).unwrap_or(&[]);
            b[..part.len()].copy_from_slice(part);
            u64::from_le_bytes(b)
        };
        std::array::from_fn(|i| (word(i) & self.mask) as usize)
    }

    pub(crate) fn record(&self, cid: &Cid) {
        for (row, slot) in self.rows.iter().zip(self.slots(cid)) {
            let c = &row[slot];
            let v = c.load(Ordering::Relaxed);
            if v < u8::MAX {
                c.store(v + 1, Ordering::Relaxed);
            }
        }
        if self.reads.fetch_add(1, Ordering::Relaxed) + 1 == self.window {
            self.reads.store(0, Ordering::Relaxed);
            for c in self.rows.iter().flat_map(|r| r.iter()) {
                c.store(c.load(Ordering::Relaxed) / 2, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn estimate(&self, cid: &Cid) -> u8 {
        self.rows
            .iter()
            .zip(self.slots(cid))
            .map(|(row, slot)| row[slot].load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }
}

/// Blocks read often enough from a slower tier to be worth moving up, oldest first,
/// bounded so a burst of reads cannot grow it without end.
#[derive(Default)]
pub(crate) struct Candidates {
    inner: Mutex<(VecDeque<Cid>, HashSet<Cid>)>,
}

const MAX_CANDIDATES: usize = 4096;

impl Candidates {
    pub(crate) fn push(&self, cid: Cid) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (queue, set) = &mut *g;
        if queue.len() < MAX_CANDIDATES && set.insert(cid) {
            queue.push_back(cid);
        }
    }

    pub(crate) fn pop(&self) -> Option<Cid> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (queue, set) = &mut *g;
        let cid = queue.pop_front()?;
        set.remove(&cid);
        Some(cid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neverust_content::block_cid;

    fn usage(tiers: &[(u64, u64)]) -> Vec<TierUsage> {
        tiers
            .iter()
            .map(|&(bytes, capacity)| TierUsage {
                blocks: bytes / 10,
                bytes,
                capacity,
            })
            .collect()
    }

    #[test]
    fn writes_go_to_the_fastest_tier_with_room() {
        assert_eq!(write_tier(&usage(&[(50, 100), (0, 1000)]), 50), 0);
        assert_eq!(write_tier(&usage(&[(60, 100), (0, 1000)]), 50), 1);
        assert_eq!(write_tier(&usage(&[(100, 100), (1000, 1000)]), 1), 0);
    }

    #[test]
    fn only_a_tier_with_a_slower_one_below_is_overfull() {
        assert_eq!(overfull(&usage(&[(91, 100), (0, 1000)])), Some(0));
        assert_eq!(overfull(&usage(&[(90, 100), (2000, 1000)])), None);
        assert_eq!(
            overfull(&usage(&[(10, 100), (2000, 1000), (0, 10)])),
            Some(1)
        );
    }

    #[test]
    fn promotion_goes_to_the_fastest_tier_with_room() {
        let u = usage(&[(85, 100), (500, 1000), (0, 10_000)]);
        assert_eq!(promotion_target(&u, 2, 10), Some(1));
        assert_eq!(promotion_target(&u, 2, 5), Some(0));
        assert_eq!(promotion_target(&u, 0, 5), None);
    }

    #[test]
    fn the_sketch_tells_hot_from_cold_and_forgets() {
        let sketch = FrequencySketch::new(1024);
        let cids: Vec<Cid> = (0..200u32).map(|i| block_cid(&i.to_le_bytes())).collect();
        for _ in 0..10 {
            sketch.record(&cids[0]);
        }
        sketch.record(&cids[1]);
        assert!(sketch.estimate(&cids[0]) >= 10);
        assert_eq!(sketch.estimate(&cids[1]), 1);
        let sample: Vec<(Cid, u64)> = cids[..2].iter().map(|c| (*c, 1)).collect();
        assert_eq!(coldest(&sample, &sketch).unwrap().0, cids[1]);
        // A window of other reads halves the counts.
        for i in 0..(1024 * 8) {
            sketch.record(&cids[2 + i % 198]);
        }
        assert!(sketch.estimate(&cids[0]) <= 5 + 1);
    }

    #[test]
    fn demotion_takes_the_coldest_until_the_excess_is_covered() {
        let sketch = FrequencySketch::new(1024);
        let cids: Vec<Cid> = (0..6u32).map(|i| block_cid(&i.to_le_bytes())).collect();
        for (i, cid) in cids.iter().enumerate() {
            for _ in 0..i {
                sketch.record(cid);
            }
        }
        // Reversed and repeated, as a sample that wrapped around the index may be.
        let mut sample: Vec<(Cid, u64)> = cids.iter().rev().map(|c| (*c, 100)).collect();
        sample.push((cids[0], 100));
        assert_eq!(demotions(&sample, &sketch, 250, 10), cids[..3].to_vec());
        assert_eq!(demotions(&sample, &sketch, 250, 2), cids[..2].to_vec());
        assert_eq!(
            demotions(&sample, &sketch, 10_000, 10).len(),
            6,
            "each once"
        );
        assert!(demotions(&sample, &sketch, 0, 10).is_empty());
    }

    #[test]
    fn candidates_are_deduplicated() {
        let c = Candidates::default();
        let cid = block_cid(b"x");
        c.push(cid);
        c.push(cid);
        assert_eq!(c.pop(), Some(cid));
        assert_eq!(c.pop(), None);
    }
}
