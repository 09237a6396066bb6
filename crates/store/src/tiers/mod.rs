//! The tiered store: one memory tier (a cache, optional) in front of persistent tiers,
//! fastest first (`memory → nvme → ssd → hdd`), behind the same [`BlockStore`] trait.
//!
//! Everything durable is the [`DiskStore`]'s: one redb index in the first persistent tier's
//! directory holds every block's metadata and the tier and segment of its payload, and each
//! persistent tier has its own `segments/` directory. Writes behave exactly as the disk
//! store's (acknowledged once the payload is fsync'd on a persistent tier and indexed), new
//! payloads going to the fastest persistent tier with room. Reads count how often each
//! block is read; [`TieredStore::rebalance`], which the node calls from a background task,
//! moves hot blocks up into tiers with room and pushes the coldest blocks of a tier over its
//! size down, each move one crash-safe migration (see `disk/migrate.rs`), and compacts
//! segments that moves and deletes left mostly dead. The memory tier only ever holds
//! copies: it is filled by reads and forgets what a commit removes.
//!
//! This module holds no durable state and decides nothing itself (see `placement.rs`); it
//! runs no thread either: the store stays synchronous, and moving blocks is whatever the
//! caller of `rebalance` gives it time for.

mod cache;
mod emulation;
pub(crate) mod placement;
mod spec;
mod stats;

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use bytes::Bytes;

pub use spec::{
    parse_duration, parse_size, validate, Emulation, TierKind, TierSpec, TierSpecError,
};
pub use stats::{LatencyHistogram, TierStats, LATENCY_BUCKETS};

use crate::disk::{DiskStore, TierDir};
use crate::{
    BlockStore, Cid, LeafRef, Reclaimed, Space, StoreConfig, StoreError, StoreStats, Upload,
};
use cache::MemoryTier;
use emulation::Emulator;
use placement::{Candidates, FrequencySketch};
use stats::TierCounters;

/// Reads of a block on a slower tier (within the sketch's window) that make it a candidate
/// for promotion. Two: a block read once is not worth a copy; a block read twice soon is
/// likely read again.
const PROMOTE_AFTER: u8 = 2;
/// How many more reads a block needs than the coldest block of the tier above to take its
/// place there.
const SWAP_MARGIN: u8 = 1;
/// Index entries looked at to find a tier's coldest block: the sample it is chosen from.
const SAMPLE_SCAN: usize = 512;
/// Blocks of a tier a sample should hold before the coldest is picked.
const SAMPLE_WANTED: usize = 16;
/// Scans of [`SAMPLE_SCAN`] entries one sample may take: a tier holding few of the index's
/// blocks is sampled from what this many found, not by reading the whole index.
const SAMPLE_SCANS_MAX: usize = 64;
/// Blocks moved in one durable commit (one fsync), at most: a batch's payloads are held in
/// memory between their read and the commit.
const MOVE_BATCH: usize = 64;
/// Index entries one rebalance looks at for blocks in segments worth compacting: bounds
/// the work of a call however large the index is (the cursor goes on next time).
const COMPACT_SCAN: usize = 16 * SAMPLE_SCAN;

/// What one [`TieredStore::rebalance`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rebalanced {
    pub promoted: u64,
    pub demoted: u64,
    /// Blocks moved within their tier out of segments mostly made of dead bytes.
    pub compacted: u64,
}

struct Persistent {
    spec: TierSpec,
    emulator: Option<Emulator>,
    counters: TierCounters,
}

struct Memory {
    tier: Arc<MemoryTier>,
    emulator: Option<Emulator>,
    counters: TierCounters,
}

pub struct TieredStore {
    disk: DiskStore,
    memory: Option<Memory>,
    persistent: Vec<Persistent>,
    sketch: FrequencySketch,
    candidates: Candidates,
    /// Where sampling of each persistent tier goes on from; the last one is compaction's.
    cursors: Mutex<Vec<Option<Vec<u8>>>>,
}

impl TieredStore {
    /// Opens the tiers of a validated-here `--tier` list; the index lives in the first
    /// persistent tier's directory, which may be an existing single-directory store's.
    pub fn open(specs: &[TierSpec], cfg: StoreConfig) -> Result<TieredStore, StoreError> {
        validate(specs)?;
        if specs.is_empty() {
            return Err(spec::TierSpecError::NoPersistentTier.into());
        }
        let memory_spec = specs.iter().find(|s| s.kind == TierKind::Memory).cloned();
        let memory_tier = memory_spec
            .as_ref()
            .map(|s| Arc::new(MemoryTier::new(s.capacity)));
        let on_remove = memory_tier.clone().map(|m| {
            let hook: crate::disk::RemoveHook = Arc::new(move |cid: &Cid| m.forget(cid));
            hook
        });
        let persistent: Vec<Persistent> = specs
            .iter()
            .filter(|s| s.kind.is_persistent())
            .map(|s| Persistent {
                spec: s.clone(),
                emulator: Emulator::new(s.emulation),
                counters: TierCounters::default(),
            })
            .collect();
        let dirs: Vec<TierDir> = persistent
            .iter()
            .map(|p| TierDir {
                dir: p
                    .spec
                    .dir
                    .clone()
                    .expect("validated: persistent tiers have a dir"),
                capacity: p.spec.capacity,
            })
            .collect();
        let disk = DiskStore::open_tiers(&dirs, cfg, on_remove)?;
        // Track about as many blocks as the faster tiers can hold: those are the ones
        // whose heat decides anything.
        let tracked = specs
            .iter()
            .take(specs.len().saturating_sub(1).max(1))
            .map(|s| s.capacity / neverust_content::BLOCK_SIZE as u64)
            .sum::<u64>() as usize;
        Ok(TieredStore {
            disk,
            memory: memory_spec.zip(memory_tier).map(|(spec, tier)| Memory {
                emulator: Emulator::new(spec.emulation),
                tier,
                counters: TierCounters::default(),
            }),
            cursors: Mutex::new(vec![None; persistent.len() + 1]),
            persistent,
            sketch: FrequencySketch::new(tracked),
            candidates: Candidates::default(),
        })
    }

    /// One snapshot per tier, in the order given (memory first if there is one).
    pub fn tier_stats(&self) -> Vec<TierStats> {
        let mut out = Vec::with_capacity(self.persistent.len() + 1);
        if let Some(m) = &self.memory {
            let (blocks, bytes, capacity, promotions, demotions) = m.tier.figures();
            out.push(TierStats {
                kind: TierKind::Memory,
                dir: None,
                blocks,
                bytes,
                capacity,
                hits: TierCounters::get(&m.counters.hits),
                misses: TierCounters::get(&m.counters.misses),
                promotions,
                demotions,
                read_latency: m.counters.histogram(),
            });
        }
        for (p, usage) in self.persistent.iter().zip(self.disk.tier_usage()) {
            let c = &p.counters;
            out.push(TierStats {
                kind: p.spec.kind,
                dir: p.spec.dir.clone(),
                blocks: usage.blocks,
                bytes: usage.bytes,
                capacity: usage.capacity,
                hits: TierCounters::get(&c.hits),
                misses: TierCounters::get(&c.misses),
                promotions: TierCounters::get(&c.promotions),
                demotions: TierCounters::get(&c.demotions),
                read_latency: c.histogram(),
            });
        }
        out
    }

    /// Moves at most `budget` blocks: first the coldest blocks of any tier over its size one
    /// tier down, then blocks read often enough from a slower tier up to the fastest tier
    /// with room, then (budget left) blocks out of segments mostly made of dead bytes, so
    /// their files go. Each move is durable before the next starts; a kill at any moment
    /// loses nothing. Returns what moved.
    pub fn rebalance(&self, budget: usize) -> Result<Rebalanced, StoreError> {
        let mut done = Rebalanced::default();
        let mut steps = 0;
        while steps < budget {
            steps += 1;
            let usage = self.disk.tier_usage();
            if let Some(tier) = placement::overfull(&usage) {
                // The coldest of a sample, as many as bring the tier under its limit, in
                // one commit.
                let excess = usage[tier].bytes - placement::fill_limit(usage[tier].capacity);
                let most = (budget - steps + 1).min(MOVE_BATCH);
                let sample = self.sample_of(tier)?;
                let victims = placement::demotions(&sample, &self.sketch, excess, most);
                if victims.is_empty() {
                    break;
                }
                steps += victims.len() - 1;
                let moved = self.disk.migrate_all(&victims, tier + 1)? as u64;
                self.persistent[tier]
                    .counters
                    .demotions
                    .fetch_add(moved, std::sync::atomic::Ordering::Relaxed);
                done.demoted += moved;
                continue;
            }
            let Some(cid) = self.candidates.pop() else {
                break;
            };
            let Some((from, len)) = self.disk.locate(&cid)? else {
                continue;
            };
            let mut target = placement::promotion_target(&usage, from, len);
            if target.is_none() && from > 0 {
                // No room above: trade places with the coldest block of a sample of the
                // next tier up, if it is clearly colder. The victim goes down first, so the
                // tier never holds both, and it is that very block that leaves: a demotion
                // choosing from another sample could pick the block just promoted. The
                // margin keeps two blocks of about the same heat from trading back and forth.
                let heat = self.sketch.estimate(&cid);
                if let Some((victim, coldest)) = self.coldest_on(from - 1)? {
                    if coldest.saturating_add(SWAP_MARGIN) < heat
                        && self.disk.migrate(&victim, from)?
                    {
                        TierCounters::bump(&self.persistent[from - 1].counters.demotions);
                        done.demoted += 1;
                        target = Some(from - 1);
                    }
                }
            }
            if let Some(to) = target {
                if self.disk.migrate(&cid, to)? {
                    TierCounters::bump(&self.persistent[to].counters.promotions);
                    done.promoted += 1;
                }
            }
        }
        done.compacted = self.compact(budget.saturating_sub(steps))?;
        Ok(done)
    }

    /// Moves up to `budget` blocks out of sparse segments (see `disk/migrate.rs`).
    fn compact(&self, budget: usize) -> Result<u64, StoreError> {
        if budget == 0 {
            return Ok(0);
        }
        let mut sparse = std::collections::HashSet::new();
        for tier in 0..self.persistent.len() {
            sparse.extend(self.disk.sparse_segments(tier)?);
        }
        if sparse.is_empty() {
            return Ok(0);
        }
        let mut cursors = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
        let cursor = cursors.last_mut().expect("compaction has a cursor");
        let (mut picked, mut scanned) = (Vec::new(), 0);
        while scanned < COMPACT_SCAN && picked.len() < budget {
            let found = self.disk.scan(cursor.as_deref(), SAMPLE_SCAN)?;
            scanned += SAMPLE_SCAN;
            let in_sparse = found
                .blocks
                .iter()
                .filter(|(_, seg, _)| sparse.contains(seg));
            picked.extend(
                in_sparse
                    .map(|(cid, _, _)| *cid)
                    .take(budget - picked.len()),
            );
            let wrapped = found.next.is_none();
            *cursor = found.next;
            if wrapped {
                break;
            }
        }
        drop(cursors);
        let mut moved = 0;
        for batch in picked.chunks(MOVE_BATCH) {
            moved += self.disk.compact(batch, &sparse)? as u64;
        }
        Ok(moved)
    }

    /// The coldest of a sample of `tier`'s blocks, with its estimated read count.
    fn coldest_on(&self, tier: usize) -> Result<Option<(Cid, u8)>, StoreError> {
        Ok(placement::coldest(&self.sample_of(tier)?, &self.sketch))
    }

    /// Some of `tier`'s blocks (CID, length), read from the index where the last sample
    /// of this tier stopped.
    fn sample_of(&self, tier: usize) -> Result<Vec<(Cid, u64)>, StoreError> {
        let mut cursors = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
        let mut sample = Vec::new();
        for _ in 0..SAMPLE_SCANS_MAX {
            if sample.len() >= SAMPLE_WANTED {
                break;
            }
            let cursor = cursors[tier].take();
            let found = self.disk.scan(cursor.as_deref(), SAMPLE_SCAN)?;
            sample.extend(
                found
                    .blocks
                    .into_iter()
                    .filter(|&(_, segment, _)| crate::disk::tier_of(segment) == tier)
                    .map(|(cid, _, len)| (cid, len)),
            );
            let wrapped = found.next.is_none();
            cursors[tier] = found.next;
            if wrapped && cursor.is_none() {
                break; // the whole index, from its start: there is no more to find
            }
        }
        Ok(sample)
    }

    fn read_persistent(&self, cid: &Cid) -> Result<Option<Bytes>, StoreError> {
        // Only reads the memory tier missed count: a block memory serves needs no fast disk
        // tier, and should cool down there so that the blocks memory misses get the room.
        self.sketch.record(cid);
        let epoch = self.memory.as_ref().map(|m| m.tier.epoch());
        let started = Instant::now();
        let Some(found) = self.disk.get_located(cid)? else {
            for p in &self.persistent {
                TierCounters::bump(&p.counters.misses);
            }
            return Ok(None);
        };
        let tier = &self.persistent[found.tier];
        if let Some(e) = &tier.emulator {
            e.wait(found.data.len() as u64);
        }
        tier.counters.observe(started.elapsed());
        TierCounters::bump(&tier.counters.hits);
        for p in &self.persistent[..found.tier] {
            TierCounters::bump(&p.counters.misses);
        }
        if found.tier > 0 && self.sketch.estimate(cid) >= PROMOTE_AFTER {
            self.candidates.push(*cid);
        }
        if let (Some(m), Some(epoch)) = (&self.memory, epoch) {
            m.tier.fill(*cid, found.data.clone(), epoch);
        }
        Ok(Some(found.data))
    }
}

impl BlockStore for TieredStore {
    fn put_block(&self, cid: &Cid, data: Bytes) -> Result<bool, StoreError> {
        self.disk.put_block(cid, data)
    }

    fn get_block(&self, cid: &Cid) -> Result<Option<Bytes>, StoreError> {
        if let Some(m) = &self.memory {
            let started = Instant::now();
            if let Some(data) = m.tier.get(cid) {
                if let Some(e) = &m.emulator {
                    e.wait(data.len() as u64);
                }
                m.counters.observe(started.elapsed());
                TierCounters::bump(&m.counters.hits);
                return Ok(Some(data));
            }
            TierCounters::bump(&m.counters.misses);
        }
        self.read_persistent(cid)
    }

    fn has_block(&self, cid: &Cid) -> Result<bool, StoreError> {
        self.disk.has_block(cid)
    }

    fn delete_block(&self, cid: &Cid) -> Result<bool, StoreError> {
        self.disk.delete_block(cid)
    }

    fn get_leaf(&self, tree: &Cid, index: u64) -> Result<Option<LeafRef>, StoreError> {
        self.disk.get_leaf(tree, index)
    }

    fn put_leaf(&self, tree: &Cid, index: u64, leaf: LeafRef) -> Result<(), StoreError> {
        self.disk.put_leaf(tree, index, leaf)
    }

    fn begin_upload(&self) -> Result<Box<dyn Upload>, StoreError> {
        self.disk.begin_upload()
    }

    fn delete_dataset(&self, manifest: &Cid, tree: &Cid, blocks: u64) -> Result<(), StoreError> {
        self.disk.delete_dataset(manifest, tree, blocks)
    }

    fn list_manifests(&self) -> Result<Vec<(Cid, Bytes)>, StoreError> {
        self.disk.list_manifests()
    }

    fn space(&self) -> Result<Space, StoreError> {
        self.disk.space()
    }

    fn stats(&self) -> StoreStats {
        self.disk.stats()
    }

    fn maintain(&self, now: SystemTime) -> Result<Reclaimed, StoreError> {
        self.disk.maintain(now)
    }
}
