//! The memory tier: a cache of payloads in front of the persistent tiers, never the only
//! copy of a block. Admission and eviction are quick_cache's (S3-FIFO with a ghost queue:
//! a one-off scan does not wash out the blocks read again and again).
//!
//! A read that misses fills the cache after reading the disk, which races with a delete
//! of the same block: a delete bumps the epoch before dropping the cached copy, and a fill
//! that sees the epoch moved while it read drops what it inserted, so a deleted block is
//! never served from memory afterwards.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter};

use crate::Cid;

/// Bookkeeping a cached block costs beyond its payload (key, entry, `Bytes` header).
const ENTRY_OVERHEAD: u64 = 128;
/// Block size the cache's item table is sized for.
const TYPICAL_BLOCK: u64 = 64 << 10;

#[derive(Clone)]
struct PayloadWeight;

impl Weighter<Cid, Bytes> for PayloadWeight {
    fn weight(&self, _: &Cid, data: &Bytes) -> u64 {
        data.len() as u64 + ENTRY_OVERHEAD
    }
}

/// Counts evictions: the memory tier's demotions.
#[derive(Clone, Default)]
struct CountEvictions(Arc<AtomicU64>);

impl Lifecycle<Cid, Bytes> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, _: &mut (), _: Cid, _: Bytes) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) struct MemoryTier {
    cache: Cache<Cid, Bytes, PayloadWeight, DefaultHashBuilder, CountEvictions>,
    capacity: u64,
    epoch: AtomicU64,
    evictions: Arc<AtomicU64>,
    admissions: AtomicU64,
}

impl MemoryTier {
    pub(crate) fn new(capacity: u64) -> Self {
        let evictions = CountEvictions::default();
        let items = (capacity / TYPICAL_BLOCK).clamp(16, 1 << 24) as usize;
        MemoryTier {
            cache: Cache::with(
                items,
                capacity,
                PayloadWeight,
                DefaultHashBuilder::default(),
                evictions.clone(),
            ),
            capacity,
            epoch: AtomicU64::new(0),
            evictions: evictions.0,
            admissions: AtomicU64::new(0),
        }
    }

    pub(crate) fn get(&self, cid: &Cid) -> Option<Bytes> {
        self.cache.get(cid)
    }

    /// Read before looking a block up on disk; handed back to [`Self::fill`].
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Offers a block just read from disk to the cache.
    pub(crate) fn fill(&self, cid: Cid, data: Bytes, epoch_before_read: u64) {
        self.cache.insert(cid, data);
        // A block larger than the cache is refused (and counted as evicted): not admitted.
        if self.cache.contains_key(&cid) {
            self.admissions.fetch_add(1, Ordering::Relaxed);
        }
        if self.epoch.load(Ordering::SeqCst) != epoch_before_read {
            // A delete ran meanwhile and may have been this block's: its copy must not stay.
            self.cache.remove(&cid);
        }
    }

    /// Drops a block a commit removed.
    pub(crate) fn forget(&self, cid: &Cid) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.cache.remove(cid);
    }

    /// (blocks, bytes, capacity, admissions, evictions)
    pub(crate) fn figures(&self) -> (u64, u64, u64, u64, u64) {
        (
            self.cache.len() as u64,
            self.cache.weight(),
            self.capacity,
            self.admissions.load(Ordering::Relaxed),
            self.evictions.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neverust_content::block_cid;

    #[test]
    fn holds_no_more_than_its_size_and_counts_evictions() {
        let tier = MemoryTier::new(10 * (1000 + ENTRY_OVERHEAD));
        for i in 0..50u32 {
            let data = Bytes::from(vec![i as u8; 1000]);
            tier.fill(block_cid(&i.to_le_bytes()), data, tier.epoch());
        }
        let (blocks, bytes, capacity, admitted, evicted) = tier.figures();
        assert!(bytes <= capacity, "{bytes} > {capacity}");
        assert!(blocks <= 10);
        assert_eq!(admitted, 50);
        assert!(evicted >= 40, "{evicted}");
    }

    #[test]
    fn a_fill_racing_a_delete_is_dropped() {
        let tier = MemoryTier::new(1 << 20);
        let cid = block_cid(b"a");
        let seen = tier.epoch();
        tier.forget(&cid); // the delete commits while the read is on its way
        tier.fill(cid, Bytes::from_static(b"a"), seen);
        assert_eq!(tier.get(&cid), None);
        tier.fill(cid, Bytes::from_static(b"a"), tier.epoch());
        assert!(tier.get(&cid).is_some());
    }
}
