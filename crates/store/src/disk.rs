//! The durable store: a redb database (`blocks.redb`) for the index, refcounts, leaf
//! references and counters, and append-only segment files for the payloads
//! ([`crate::segments`]). A durable commit fsyncs the segments before the index.
//!
//! Every mutation is one write transaction that updates blocks, reference counts, expiry
//! and the quota counters together, so a crash can never leave the counters disagreeing
//! with the blocks. Payloads are written before the transaction that indexes them opens, so
//! disk I/O never holds redb's single writer. Uploads write their blocks in batches, several
//! in flight on writer threads, index each with a non-durable commit (cheap; nothing is
//! acknowledged yet) and finish with one durable commit; the pending table
//! remembers what each unfinished upload holds, so an abort, or the next open after a
//! crash, releases exactly that.
//!
//! The store may spread payloads over several directories, its persistent tiers (fastest
//! first; see [`crate::tiers`]): the index, in the first tier's directory, stays the one
//! authority, and a location's segment id carries its tier in its top byte. Tier 0's ids are
//! the plain segment numbers, so a single-directory store's files are what they always were.
//! Moving a payload between tiers is in [`migrate`].

mod migrate;

pub(crate) use migrate::{tier_of, TierUsage};

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};

use crate::segments::{self, Segments, Unindexed};
use crate::tiers::placement;
use crate::{
    is_manifest, unix_secs, BlockStore, Cid, LeafRef, Reclaimed, Space, StoreConfig, StoreError,
    StoreStats, Upload,
};

/// cid → (segment, offset, length) of its payload in the segment files
const LOCS: TableDefinition<&[u8], (u64, u64, u64)> = TableDefinition::new("block_locations");
/// segment → live payload bytes in it
const SEG_LIVE: TableDefinition<u64, u64> = TableDefinition::new("segment_live_bytes");
/// segment → bytes (padding included) of the payloads deleted or moved out of it, which
/// compaction reclaims; added with tiers (absent in older stores: nothing counted yet)
const SEG_DEAD: TableDefinition<u64, u64> = TableDefinition::new("segment_dead_bytes");
/// cid → (references, expires at unix secs)
const META: TableDefinition<&[u8], (u64, u64)> = TableDefinition::new("block_meta");
/// (tree cid, index) → [cid length][cid][proof]
const LEAVES: TableDefinition<(&[u8], u64), &[u8]> = TableDefinition::new("leaves");
/// manifest cid → (tree cid, blocks)
const DATASETS: TableDefinition<&[u8], (&[u8], u64)> = TableDefinition::new("datasets");
/// (upload id, sequence) → cid held by that unfinished upload
const PENDING: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("pending");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

/// (segment, offset, length) of a payload.
type Loc = (u64, u64, u64);

/// Blocks an upload buffers before writing them in one transaction (8 MiB of 64 KiB blocks).
const UPLOAD_BATCH: usize = 128;
/// Upload batches whose payloads may be on their way to disk at once: enough that the
/// hasher never waits for the disk, few enough that an upload holds at most 24 MiB.
const WRITES_IN_FLIGHT: usize = 2;
/// Enough for the hot metadata pages; block payloads are read from the segments.
const CACHE_BYTES: usize = 16 << 20;

struct Shared {
    db: Database,
    tiers: Vec<DiskTier>,
    cfg: StoreConfig,
    used: AtomicU64,
    blocks: AtomicU64,
    next_upload: AtomicU64,
    /// Told every CID a committed transaction removed (the memory tier drops its copy).
    on_remove: Option<RemoveHook>,
}

pub(crate) type RemoveHook = Arc<dyn Fn(&Cid) + Send + Sync>;

/// One directory of segment files: a persistent tier.
struct DiskTier {
    dir: std::path::PathBuf,
    segments: Segments,
    capacity: u64,
    /// Live blocks and payload bytes on this tier, as of the last commit.
    blocks: AtomicU64,
    bytes: AtomicU64,
}

/// Where a persistent tier is and how much it should hold.
#[derive(Clone, Debug)]
pub(crate) struct TierDir {
    pub dir: std::path::PathBuf,
    pub capacity: u64,
}

/// Top byte of a segment id: the tier whose directory holds the segment file.
const TIER_SHIFT: u32 = 56;

fn global_segment(tier: usize, local: u64) -> u64 {
    ((tier as u64) << TIER_SHIFT) | local
}

/// (tier, segment number within the tier's directory)
fn split_segment(id: u64) -> (usize, u64) {
    ((id >> TIER_SHIFT) as usize, id & ((1 << TIER_SHIFT) - 1))
}

/// Counter keys of tiers after the first; tier 0's figures are the totals less these, so
/// a single-directory store writes no key it did not write before tiers existed.
fn tier_key(tier: usize, what: &str) -> String {
    format!("tier{tier}.{what}")
}

/// Each tier directory remembers its position, so a reordered `--tier` list (which would
/// make the index point into the wrong directories) is refused instead of losing blocks.
fn check_tier_marker(dir: &Path, tier: usize) -> Result<(), StoreError> {
    let path = dir.join("TIER");
    let expected = format!("neverust tier {tier}\n");
    let open_err = |reason: String| StoreError::Open {
        path: path.clone(),
        reason,
    };
    match std::fs::read_to_string(&path) {
        Ok(found) if found == expected => Ok(()),
        Ok(found) => Err(open_err(format!(
            "this directory was tier {} and is now given as tier {tier}: tiers must keep their order",
            found.trim().trim_start_matches("neverust tier ")
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&path, expected).map_err(|e| open_err(e.to_string()))
        }
        Err(e) => Err(open_err(e.to_string())),
    }
}

#[derive(Clone)]
pub struct DiskStore {
    shared: Arc<Shared>,
}

fn db<E: Into<redb::Error>>(doing: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::db(doing)(e.into())
}

impl DiskStore {
    /// Opens (or creates) `dir/blocks.redb`, and releases what uploads cut off by a crash held.
    pub fn open(dir: &Path, cfg: StoreConfig) -> Result<Self, StoreError> {
        let only = TierDir {
            dir: dir.to_path_buf(),
            capacity: u64::MAX,
        };
        Self::open_tiers(&[only], cfg, None)
    }

    /// Opens a store over several tier directories, fastest first; the index lives in the
    /// first. `on_remove` hears of every block a commit removes.
    pub(crate) fn open_tiers(
        tier_dirs: &[TierDir],
        cfg: StoreConfig,
        on_remove: Option<RemoveHook>,
    ) -> Result<Self, StoreError> {
        let dir = &tier_dirs
            .first()
            .ok_or_else(|| StoreError::Open {
                path: Default::default(),
                reason: "no directory given".into(),
            })?
            .dir;
        let mut tiers = Vec::with_capacity(tier_dirs.len());
        for (i, t) in tier_dirs.iter().enumerate() {
            std::fs::create_dir_all(&t.dir).map_err(|e| StoreError::Open {
                path: t.dir.clone(),
                reason: e.to_string(),
            })?;
            if tier_dirs.len() > 1 {
                check_tier_marker(&t.dir, i)?;
            }
            let seg_dir = t.dir.join("segments");
            let segments = Segments::open(&seg_dir).map_err(|e| StoreError::Open {
                path: seg_dir.clone(),
                reason: e.to_string(),
            })?;
            tiers.push(DiskTier {
                dir: t.dir.clone(),
                segments,
                capacity: t.capacity,
                blocks: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
            });
        }
        let path = dir.join("blocks.redb");
        let database = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| StoreError::Open {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let store = DiskStore {
            shared: Arc::new(Shared {
                db: database,
                tiers,
                cfg,
                used: AtomicU64::new(0),
                blocks: AtomicU64::new(0),
                next_upload: AtomicU64::new(0),
                on_remove,
            }),
        };
        store.write("recovering uploads", Durability::Immediate, |tx| {
            let ids: Vec<u64> = {
                let pending = tx.txn.open_table(PENDING).map_err(db("opening pending"))?;
                let mut ids: Vec<u64> = pending
                    .iter()
                    .map_err(db("reading pending"))?
                    .filter_map(|e| e.ok().map(|(k, _)| k.value().0))
                    .collect();
                ids.dedup();
                ids
            };
            for id in ids {
                tracing::info!(upload = id, "releasing an upload a crash cut off");
                tx.abort(id)?;
            }
            // Segment files the index no longer points into: written by a transaction that
            // never committed, or emptied just before a crash.
            let live = tx
                .txn
                .open_table(SEG_LIVE)
                .map_err(db("opening segments"))?;
            for (t, tier) in tx.tiers.iter().enumerate() {
                let active = tier.segments.active_id();
                let seg_dir = tier.dir.join("segments");
                for local in segments::existing(&seg_dir).unwrap_or_default() {
                    let id = global_segment(t, local);
                    if local != active && live.get(id).map_err(db("reading segments"))?.is_none() {
                        tx.dead.push(id);
                    }
                }
            }
            // A tier the index still has blocks on must not have been left out.
            let last = live.last().map_err(db("reading segments"))?;
            if let Some((id, _)) = last {
                let (t, _) = split_segment(id.value());
                if t >= tx.tiers.len() {
                    return Err(StoreError::Open {
                        path: path.clone(),
                        reason: format!(
                            "the index holds blocks on tier {t} but only {} tiers are given",
                            tx.tiers.len()
                        ),
                    });
                }
            }
            Ok(())
        })?;
        Ok(store)
    }

    /// The tier new payloads of `bytes` go to: the fastest with room, else the first.
    fn write_tier(&self, bytes: u64) -> usize {
        placement::write_tier(&self.tier_usage(), bytes)
    }

    fn cfg(&self) -> &StoreConfig {
        &self.shared.cfg
    }

    /// One read of one table; a table that was never written reads as empty.
    fn lookup<K: redb::Key + 'static, V: redb::Value + 'static, T>(
        &self,
        table: TableDefinition<K, V>,
        doing: &'static str,
        f: impl FnOnce(&redb::ReadOnlyTable<K, V>) -> Result<Option<T>, redb::StorageError>,
    ) -> Result<Option<T>, StoreError> {
        let txn = self.shared.db.begin_read().map_err(db(doing))?;
        match txn.open_table(table) {
            Ok(t) => f(&t).map_err(db(doing)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(db(doing)(e)),
        }
    }

    fn read_payload(&self, (segment, offset, len): Loc) -> Result<Bytes, StoreError> {
        self.read_raw((segment, offset, len))
            .map_err(|e| self.segment_error("reading a block from its segment", segment, e))
    }

    fn read_raw(&self, (segment, offset, len): Loc) -> std::io::Result<Bytes> {
        let (tier, local) = split_segment(segment);
        let tier = self.shared.tiers.get(tier).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "location on no known tier")
        })?;
        tier.segments.read(local, offset, len)
    }

    fn segment_error(&self, doing: &'static str, segment: u64, e: std::io::Error) -> StoreError {
        let (tier, local) = split_segment(segment);
        let dir = self
            .shared
            .tiers
            .get(tier)
            .map(|t| t.dir.display().to_string())
            .unwrap_or_default();
        StoreError::Db {
            doing,
            reason: format!("tier {tier} ({dir}), segment {local}: {e}"),
        }
    }

    /// Writes the payloads of the blocks the index lacks before their write transaction
    /// opens, so the I/O neither holds redb's single writer nor waits for it. Returns where
    /// each block went; a block already stored, a repeat within `blocks`, or every block
    /// when the quota is close gets `None`, and the transaction decides (and writes) those.
    /// Hold the [`Unindexed`] until the transaction indexing them has committed.
    fn stage(&self, blocks: &[(Cid, Bytes)]) -> Result<(Vec<Option<Loc>>, Unindexed), StoreError> {
        let mut staged = vec![None; blocks.len()];
        let fresh: Vec<usize> = {
            let txn = self
                .shared
                .db
                .begin_read()
                .map_err(db("reading block locations"))?;
            let locs = match txn.open_table(LOCS) {
                Ok(t) => Some(t),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(db("reading block locations")(e)),
            };
            let mut seen = HashSet::new();
            let mut fresh = Vec::new();
            for (i, (cid, _)) in blocks.iter().enumerate() {
                let key = cid.to_bytes();
                let present = match &locs {
                    Some(t) => t
                        .get(key.as_slice())
                        .map_err(db("reading block locations"))?
                        .is_some(),
                    None => false,
                };
                if !present && seen.insert(*cid) {
                    fresh.push(i);
                }
            }
            fresh
        };
        let bytes: u64 = fresh.iter().map(|&i| blocks[i].1.len() as u64).sum();
        if self.shared.used.load(Ordering::Relaxed) + bytes > self.cfg().quota_max_bytes {
            return Ok((staged, Unindexed::default()));
        }
        let payloads: Vec<&[u8]> = fresh.iter().map(|&i| &blocks[i].1[..]).collect();
        let tier = self.write_tier(bytes);
        let (locs, held) = self.shared.tiers[tier]
            .segments
            .append(&payloads)
            .map_err(|e| StoreError::Db {
                doing: "appending blocks to their segment",
                reason: format!("tier {tier}: {e}"),
            })?;
        for (&i, (segment, offset)) in fresh.iter().zip(locs) {
            staged[i] = Some((
                global_segment(tier, segment),
                offset,
                blocks[i].1.len() as u64,
            ));
        }
        Ok((staged, held))
    }

    fn write<T>(
        &self,
        doing: &'static str,
        durability: Durability,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut txn = self.shared.db.begin_write().map_err(db(doing))?;
        txn.set_durability(durability).map_err(|e| StoreError::Db {
            doing,
            reason: e.to_string(),
        })?;
        let write_tier = self.write_tier(0);
        let (out, used, blocks, dead, per_tier, removed, unindexed) = {
            let mut tx = Tx::new(&txn, &self.shared.cfg, &self.shared.tiers, write_tier)?;
            let out = f(&mut tx)?;
            tx.save_counters()?;
            let Tx {
                used,
                blocks,
                dead,
                per_tier,
                removed,
                unindexed,
                ..
            } = tx;
            (out, used, blocks, dead, per_tier, removed, unindexed)
        };
        if matches!(durability, Durability::Immediate) {
            // Every tier: an earlier non-durable commit (an upload's batch) may point into
            // any of them, and this commit makes it durable too.
            for (t, tier) in self.shared.tiers.iter().enumerate() {
                tier.segments.sync().map_err(|e| StoreError::Db {
                    doing,
                    reason: format!(
                        "syncing segment files of tier {t} ({}): {e}",
                        tier.dir.display()
                    ),
                })?;
            }
        }
        txn.commit().map_err(db(doing))?;
        drop(unindexed);
        for id in dead {
            let (t, local) = split_segment(id);
            if let Some(Err(e)) = self.shared.tiers.get(t).map(|t| t.segments.remove(local)) {
                tracing::warn!(tier = t, segment = local, error = %e, "could not delete an empty segment");
            }
        }
        self.shared.used.store(used, Ordering::Relaxed);
        self.shared.blocks.store(blocks, Ordering::Relaxed);
        for (tier, (blocks, bytes)) in self.shared.tiers.iter().zip(per_tier) {
            tier.blocks.store(blocks, Ordering::Relaxed);
            tier.bytes.store(bytes, Ordering::Relaxed);
        }
        if let Some(hook) = &self.shared.on_remove {
            removed.iter().for_each(|cid| hook(cid));
        }
        Ok(out)
    }
}

/// One write transaction with the quota counters loaded: the shared logic of every mutation.
struct Tx<'a> {
    txn: &'a WriteTransaction,
    cfg: &'a StoreConfig,
    tiers: &'a [DiskTier],
    /// Where payloads this transaction writes itself go.
    write_tier: usize,
    used: u64,
    blocks: u64,
    /// (blocks, bytes) on each tier.
    per_tier: Vec<(u64, u64)>,
    /// Segments left without a live block: deleted once the transaction commits.
    dead: Vec<u64>,
    removed: Vec<Cid>,
    /// Payloads this transaction appended itself, kept from deletion until it commits.
    unindexed: Unindexed,
}

fn encode_leaf(leaf: &LeafRef) -> Vec<u8> {
    let cid = leaf.cid.to_bytes();
    let mut v = Vec::with_capacity(1 + cid.len() + leaf.proof.len());
    v.push(cid.len() as u8);
    v.extend_from_slice(&cid);
    v.extend_from_slice(&leaf.proof);
    v
}

fn decode_leaf(bytes: &[u8]) -> Result<LeafRef, StoreError> {
    let corrupt = || StoreError::Corrupt {
        what: "leaf reference".into(),
    };
    let n = *bytes.first().ok_or_else(corrupt)? as usize;
    let cid_bytes = bytes.get(1..1 + n).ok_or_else(corrupt)?;
    let cid = Cid::try_from(cid_bytes).map_err(|_| corrupt())?;
    Ok(LeafRef {
        cid,
        proof: Bytes::copy_from_slice(&bytes[1 + n..]),
    })
}

impl<'a> Tx<'a> {
    fn new(
        txn: &'a WriteTransaction,
        cfg: &'a StoreConfig,
        tiers: &'a [DiskTier],
        write_tier: usize,
    ) -> Result<Self, StoreError> {
        let counters = txn.open_table(COUNTERS).map_err(db("opening counters"))?;
        let get = |k: &str| -> Result<u64, StoreError> {
            Ok(counters
                .get(k)
                .map_err(db("reading counters"))?
                .map(|v| v.value())
                .unwrap_or(0))
        };
        let (used, blocks) = (get("used")?, get("blocks")?);
        let mut per_tier = vec![(blocks, used)];
        for t in 1..tiers.len() {
            let (b, n) = (get(&tier_key(t, "blocks"))?, get(&tier_key(t, "bytes"))?);
            per_tier[0].0 = per_tier[0].0.saturating_sub(b);
            per_tier[0].1 = per_tier[0].1.saturating_sub(n);
            per_tier.push((b, n));
        }
        drop(counters);
        Ok(Tx {
            txn,
            cfg,
            tiers,
            write_tier,
            used,
            blocks,
            per_tier,
            dead: Vec::new(),
            removed: Vec::new(),
            unindexed: Unindexed::default(),
        })
    }

    /// Counts a payload of `len` bytes arriving on (`sign` +1) or leaving (-1) a segment.
    fn count_on_tier(&mut self, segment: u64, len: u64, arriving: bool) {
        let (t, _) = split_segment(segment);
        if let Some((blocks, bytes)) = self.per_tier.get_mut(t) {
            if arriving {
                *blocks += 1;
                *bytes += len;
            } else {
                *blocks = blocks.saturating_sub(1);
                *bytes = bytes.saturating_sub(len);
            }
        }
    }

    fn save_counters(&self) -> Result<(), StoreError> {
        let mut counters = self
            .txn
            .open_table(COUNTERS)
            .map_err(db("opening counters"))?;
        counters
            .insert("used", self.used)
            .map_err(db("writing counters"))?;
        counters
            .insert("blocks", self.blocks)
            .map_err(db("writing counters"))?;
        for (t, &(blocks, bytes)) in self.per_tier.iter().enumerate().skip(1) {
            counters
                .insert(tier_key(t, "blocks").as_str(), blocks)
                .map_err(db("writing counters"))?;
            counters
                .insert(tier_key(t, "bytes").as_str(), bytes)
                .map_err(db("writing counters"))?;
        }
        Ok(())
    }

    /// Stores the block if absent (quota permitting), adds `refs`, extends expiry.
    fn add(
        &mut self,
        cid: &Cid,
        data: &Bytes,
        staged: Option<Loc>,
        refs: u64,
    ) -> Result<bool, StoreError> {
        let added = self.add_all(&[(*cid, data.clone())], &[staged], refs, None)?;
        Ok(added == 1)
    }

    /// `add` for many blocks with each table opened once. `staged` holds where
    /// [`DiskStore::stage`] already wrote each payload; a payload staged for a block that
    /// turns out to be present is left as dead bytes. When `hold` names an upload (id, first
    /// sequence number), each block is also recorded as pending for it. Returns how many
    /// blocks were new.
    fn add_all(
        &mut self,
        blocks: &[(Cid, Bytes)],
        staged: &[Option<Loc>],
        refs: u64,
        hold: Option<(u64, u64)>,
    ) -> Result<u64, StoreError> {
        let expires = unix_secs(SystemTime::now()).saturating_add(self.cfg.block_ttl.as_secs());
        let mut meta = self
            .txn
            .open_table(META)
            .map_err(db("opening block meta"))?;
        let mut locs = self
            .txn
            .open_table(LOCS)
            .map_err(db("opening block locations"))?;
        let mut pending = self
            .txn
            .open_table(PENDING)
            .map_err(db("opening pending"))?;
        let mut grown: HashMap<u64, u64> = HashMap::new();
        let mut added = 0;
        for (i, (cid, data)) in blocks.iter().enumerate() {
            let key = cid.to_bytes();
            if let Some((id, first)) = hold {
                pending
                    .insert((id, first + i as u64), key.as_slice())
                    .map_err(db("writing pending"))?;
            }
            let existing = meta
                .get(key.as_slice())
                .map_err(db("reading block meta"))?
                .map(|v| v.value());
            if let Some((r, e)) = existing {
                meta.insert(key.as_slice(), (r + refs, e.max(expires)))
                    .map_err(db("writing block meta"))?;
                continue;
            }
            let len = data.len() as u64;
            if self.used + len > self.cfg.quota_max_bytes {
                return Err(StoreError::QuotaExceeded {
                    needed: len,
                    used: self.used,
                    max: self.cfg.quota_max_bytes,
                });
            }
            meta.insert(key.as_slice(), (refs, expires))
                .map_err(db("writing block meta"))?;
            let (segment, offset, len) = match staged.get(i).copied().flatten() {
                Some(loc) => loc,
                None => {
                    let t = self.write_tier;
                    let (at, held) =
                        self.tiers[t]
                            .segments
                            .append(&[data])
                            .map_err(|e| StoreError::Db {
                                doing: "appending a block to its segment",
                                reason: format!("tier {t}: {e}"),
                            })?;
                    self.unindexed.merge(held);
                    (global_segment(t, at[0].0), at[0].1, len)
                }
            };
            locs.insert(key.as_slice(), (segment, offset, len))
                .map_err(db("writing a block location"))?;
            *grown.entry(segment).or_default() += len;
            self.count_on_tier(segment, len, true);
            self.used += len;
            self.blocks += 1;
            added += 1;
        }
        let mut live = self
            .txn
            .open_table(SEG_LIVE)
            .map_err(db("opening segments"))?;
        for (segment, len) in grown {
            let before = live
                .get(segment)
                .map_err(db("reading segments"))?
                .map(|v| v.value());
            live.insert(segment, before.unwrap_or(0) + len)
                .map_err(db("writing segments"))?;
        }
        Ok(added)
    }

    /// Removes a block; returns its size if it was there.
    fn remove(&mut self, cid: &Cid) -> Result<Option<u64>, StoreError> {
        let key = cid.to_bytes();
        let mut locs = self
            .txn
            .open_table(LOCS)
            .map_err(db("opening block locations"))?;
        let loc = locs
            .remove(key.as_slice())
            .map_err(db("deleting a block"))?
            .map(|v| v.value());
        drop(locs);
        let len = match loc {
            Some((segment, _, len)) => {
                self.forget_payload(segment, len)?;
                self.removed.push(*cid);
                Some(len)
            }
            None => None,
        };
        let mut meta = self
            .txn
            .open_table(META)
            .map_err(db("opening block meta"))?;
        meta.remove(key.as_slice())
            .map_err(db("deleting block meta"))?;
        if let Some(len) = len {
            self.used -= len.min(self.used);
            self.blocks = self.blocks.saturating_sub(1);
        }
        Ok(len)
    }

    /// Takes a payload's bytes off its segment's live count (the segment goes once none is
    /// left) and off its tier.
    fn forget_payload(&mut self, segment: u64, len: u64) -> Result<(), StoreError> {
        let mut live = self
            .txn
            .open_table(SEG_LIVE)
            .map_err(db("opening segments"))?;
        let before = live
            .get(segment)
            .map_err(db("reading segments"))?
            .map(|v| v.value());
        let after = before.unwrap_or(0).saturating_sub(len);
        let mut dead = self
            .txn
            .open_table(SEG_DEAD)
            .map_err(db("opening segments"))?;
        if after == 0 {
            live.remove(segment).map_err(db("writing segments"))?;
            dead.remove(segment).map_err(db("writing segments"))?;
            self.dead.push(segment);
        } else {
            live.insert(segment, after)
                .map_err(db("writing segments"))?;
            let was = dead
                .get(segment)
                .map_err(db("reading segments"))?
                .map(|v| v.value())
                .unwrap_or(0);
            dead.insert(segment, was + segments::padded(len as usize) as u64)
                .map_err(db("writing segments"))?;
        }
        self.count_on_tier(segment, len, false);
        Ok(())
    }

    fn refs(&self, cid: &Cid) -> Result<Option<(u64, u64)>, StoreError> {
        let meta = self
            .txn
            .open_table(META)
            .map_err(db("opening block meta"))?;
        let v = meta
            .get(cid.to_bytes().as_slice())
            .map_err(db("reading block meta"))?
            .map(|v| v.value());
        Ok(v)
    }

    fn add_ref(&mut self, cid: &Cid) -> Result<(), StoreError> {
        if let Some((r, e)) = self.refs(cid)? {
            let mut meta = self
                .txn
                .open_table(META)
                .map_err(db("opening block meta"))?;
            meta.insert(cid.to_bytes().as_slice(), (r + 1, e))
                .map_err(db("writing block meta"))?;
        }
        Ok(())
    }

    /// Drops one reference; deletes the block when none is left. Returns bytes freed.
    fn release(&mut self, cid: &Cid) -> Result<u64, StoreError> {
        let Some((r, e)) = self.refs(cid)? else {
            return Ok(0);
        };
        if r <= 1 {
            return Ok(self.remove(cid)?.unwrap_or(0));
        }
        let mut meta = self
            .txn
            .open_table(META)
            .map_err(db("opening block meta"))?;
        meta.insert(cid.to_bytes().as_slice(), (r - 1, e))
            .map_err(db("writing block meta"))?;
        Ok(0)
    }

    fn insert_leaf(&mut self, tree: &Cid, index: u64, leaf: &LeafRef) -> Result<(), StoreError> {
        let tree_key = tree.to_bytes();
        let mut leaves = self.txn.open_table(LEAVES).map_err(db("opening leaves"))?;
        let fresh = leaves
            .insert((tree_key.as_slice(), index), encode_leaf(leaf).as_slice())
            .map_err(db("writing a leaf"))?
            .is_none();
        drop(leaves);
        if fresh {
            self.add_ref(&leaf.cid)?;
        }
        Ok(())
    }

    /// Takes the upload's pending entries out of the table; returns the CIDs it held.
    fn take_pending(&mut self, id: u64) -> Result<Vec<Cid>, StoreError> {
        let mut pending = self
            .txn
            .open_table(PENDING)
            .map_err(db("opening pending"))?;
        let held = pending
            .extract_from_if((id, 0)..=(id, u64::MAX), |_, _| true)
            .map_err(db("reading pending"))?
            .filter_map(|e| e.ok())
            .filter_map(|(_, v)| Cid::try_from(v.value()).ok())
            .collect();
        Ok(held)
    }

    fn abort(&mut self, id: u64) -> Result<(), StoreError> {
        for cid in self.take_pending(id)? {
            self.release(&cid)?;
        }
        Ok(())
    }

    /// Records the leaf references of a committed upload. Each hold of the upload turns
    /// into the reference of the leaf that names its block, so most blocks need no refcount
    /// write at all; holds no new leaf claims are released.
    fn settle(&mut self, id: u64, tree: &Cid, leaves: &[LeafRef]) -> Result<(), StoreError> {
        let mut held: HashMap<Cid, u64> = HashMap::new();
        for cid in self.take_pending(id)? {
            *held.entry(cid).or_default() += 1;
        }
        let tree_key = tree.to_bytes();
        let mut claimed = Vec::new();
        {
            let mut table = self.txn.open_table(LEAVES).map_err(db("opening leaves"))?;
            for (index, leaf) in leaves.iter().enumerate() {
                let fresh = table
                    .insert(
                        (tree_key.as_slice(), index as u64),
                        encode_leaf(leaf).as_slice(),
                    )
                    .map_err(db("writing a leaf"))?
                    .is_none();
                if fresh {
                    match held.get_mut(&leaf.cid) {
                        Some(n) if *n > 0 => *n -= 1,
                        _ => claimed.push(leaf.cid),
                    }
                }
            }
        }
        for cid in claimed {
            self.add_ref(&cid)?;
        }
        for (cid, n) in held {
            for _ in 0..n {
                self.release(&cid)?;
            }
        }
        Ok(())
    }

    fn delete_dataset(
        &mut self,
        manifest: &Cid,
        tree: &Cid,
        blocks: u64,
    ) -> Result<Reclaimed, StoreError> {
        let mut r = Reclaimed {
            datasets: 1,
            ..Default::default()
        };
        let tree_key = tree.to_bytes();
        let mut datasets = self
            .txn
            .open_table(DATASETS)
            .map_err(db("opening datasets"))?;
        datasets
            .remove(manifest.to_bytes().as_slice())
            .map_err(db("deleting a dataset"))?;
        let shared_tree = datasets
            .iter()
            .map_err(db("reading datasets"))?
            .filter_map(|e| e.ok())
            .any(|(_, v)| v.value().0 == tree_key.as_slice());
        drop(datasets);
        if let Some(bytes) = self.remove(manifest)? {
            r.blocks += 1;
            r.bytes += bytes;
        }
        if shared_tree {
            return Ok(r);
        }
        for index in 0..blocks {
            let mut leaves = self.txn.open_table(LEAVES).map_err(db("opening leaves"))?;
            let leaf = leaves
                .remove((tree_key.as_slice(), index))
                .map_err(db("deleting a leaf"))?
                .map(|v| decode_leaf(v.value()));
            drop(leaves);
            if let Some(leaf) = leaf {
                let freed = self.release(&leaf?.cid)?;
                if freed > 0 {
                    r.blocks += 1;
                    r.bytes += freed;
                }
            }
        }
        Ok(r)
    }
}

impl BlockStore for DiskStore {
    fn put_block(&self, cid: &Cid, data: Bytes) -> Result<bool, StoreError> {
        let (staged, _unindexed) = self.stage(&[(*cid, data.clone())])?;
        self.write("storing a block", Durability::Immediate, |tx| {
            tx.add(cid, &data, staged[0], 0)
        })
    }

    fn get_block(&self, cid: &Cid) -> Result<Option<Bytes>, StoreError> {
        Ok(self.get_located(cid)?.map(|found| found.data))
    }

    fn has_block(&self, cid: &Cid) -> Result<bool, StoreError> {
        let key = cid.to_bytes();
        let found = self.lookup(META, "reading block meta", |t| {
            Ok(t.get(key.as_slice())?.map(|_| ()))
        })?;
        Ok(found.is_some())
    }

    fn delete_block(&self, cid: &Cid) -> Result<bool, StoreError> {
        self.write("deleting a block", Durability::Immediate, |tx| {
            Ok(tx.remove(cid)?.is_some())
        })
    }

    fn get_leaf(&self, tree: &Cid, index: u64) -> Result<Option<LeafRef>, StoreError> {
        let key = tree.to_bytes();
        let leaf = self.lookup(LEAVES, "reading a leaf", |t| {
            Ok(t.get((key.as_slice(), index))?.map(|v| v.value().to_vec()))
        })?;
        leaf.map(|bytes| decode_leaf(&bytes)).transpose()
    }

    fn put_leaf(&self, tree: &Cid, index: u64, leaf: LeafRef) -> Result<(), StoreError> {
        self.write("storing a leaf", Durability::Immediate, |tx| {
            tx.insert_leaf(tree, index, &leaf)
        })
    }

    fn begin_upload(&self) -> Result<Box<dyn Upload>, StoreError> {
        Ok(Box::new(DiskUpload {
            _staging: self.shared.tiers[0].segments.staging_user(),
            store: self.clone(),
            id: self.shared.next_upload.fetch_add(1, Ordering::Relaxed) + 1,
            seq: 0,
            batch: Vec::with_capacity(UPLOAD_BATCH),
            writing: Default::default(),
            open: true,
        }))
    }

    fn delete_dataset(&self, manifest: &Cid, tree: &Cid, blocks: u64) -> Result<(), StoreError> {
        self.write("deleting a dataset", Durability::Immediate, |tx| {
            tx.delete_dataset(manifest, tree, blocks).map(|_| ())
        })
    }

    fn list_manifests(&self) -> Result<Vec<(Cid, Bytes)>, StoreError> {
        let txn = self.shared.db.begin_read().map_err(db("reading"))?;
        let (datasets, locs) = match (txn.open_table(DATASETS), txn.open_table(LOCS)) {
            (Ok(d), Ok(b)) => (d, b),
            _ => return Ok(Vec::new()),
        };
        let mut out = Vec::new();
        for entry in datasets.iter().map_err(db("listing datasets"))? {
            let (k, _) = entry.map_err(db("listing datasets"))?;
            let Ok(cid) = Cid::try_from(k.value()) else {
                continue;
            };
            let loc = locs.get(k.value()).map_err(db("reading a manifest"))?;
            if let Some(loc) = loc.map(|v| v.value()) {
                out.push((cid, self.read_payload(loc)?));
            }
        }
        Ok(out)
    }

    fn space(&self) -> Result<Space, StoreError> {
        Ok(Space {
            total_blocks: self.shared.blocks.load(Ordering::Relaxed),
            quota_max_bytes: self.cfg().quota_max_bytes,
            quota_used_bytes: self.shared.used.load(Ordering::Relaxed),
            quota_reserved_bytes: 0,
        })
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            block_count: self.shared.blocks.load(Ordering::Relaxed),
            block_bytes: self.shared.used.load(Ordering::Relaxed),
        }
    }

    fn maintain(&self, now: SystemTime) -> Result<Reclaimed, StoreError> {
        let now = unix_secs(now);
        self.write("maintenance", Durability::Immediate, |tx| {
            let expired: Vec<(Cid, u64)> = {
                let meta = tx.txn.open_table(META).map_err(db("opening block meta"))?;
                let rows = meta.iter().map_err(db("scanning block meta"))?;
                rows.filter_map(|e| e.ok())
                    .filter(|(_, v)| v.value().1 <= now)
                    .filter_map(|(k, v)| Cid::try_from(k.value()).ok().map(|c| (c, v.value().0)))
                    .collect()
            };
            let mut total = Reclaimed::default();
            for (cid, refs) in expired {
                let dataset = if is_manifest(&cid) {
                    let datasets = tx
                        .txn
                        .open_table(DATASETS)
                        .map_err(db("opening datasets"))?;
                    let v = datasets
                        .get(cid.to_bytes().as_slice())
                        .map_err(db("reading datasets"))?
                        .map(|v| (v.value().0.to_vec(), v.value().1));
                    v
                } else {
                    None
                };
                if let Some((tree, blocks)) = dataset {
                    let tree = Cid::try_from(tree.as_slice()).map_err(|_| StoreError::Corrupt {
                        what: "dataset tree cid".into(),
                    })?;
                    let r = tx.delete_dataset(&cid, &tree, blocks)?;
                    total.datasets += r.datasets;
                    total.blocks += r.blocks;
                    total.bytes += r.bytes;
                } else if refs == 0 {
                    if let Some(bytes) = tx.remove(&cid)? {
                        total.blocks += 1;
                        total.bytes += bytes;
                    }
                }
            }
            Ok(total)
        })
    }
}

type Batch = Vec<(Cid, Bytes)>;
type Writing = std::thread::JoinHandle<Result<(Batch, Vec<Option<Loc>>, Unindexed), StoreError>>;

struct DiskUpload {
    store: DiskStore,
    id: u64,
    seq: u64,
    batch: Batch,
    /// Batches whose payloads are being written, each on a thread of its own, oldest first:
    /// the disk stays busy while this upload's caller hashes the next batch, and the index
    /// records a batch only once its bytes are written.
    writing: VecDeque<Writing>,
    open: bool,
    /// Keeps the segments' staging buffers pooled while this upload runs.
    _staging: crate::buffers::PoolUser,
}

impl DiskUpload {
    /// Starts writing the buffered batch's payloads; indexes the oldest batch in flight once
    /// more than [`WRITES_IN_FLIGHT`] are.
    fn flush(&mut self) -> Result<(), StoreError> {
        let batch = std::mem::take(&mut self.batch);
        let store = self.store.clone();
        let started = std::thread::Builder::new()
            .name("neverust-store-io".into())
            .spawn(move || {
                store
                    .stage(&batch)
                    .map(|(staged, held)| (batch, staged, held))
            })
            .map_err(|e| StoreError::Db {
                doing: "starting a block writer",
                reason: e.to_string(),
            })?;
        self.writing.push_back(started);
        while self.writing.len() > WRITES_IN_FLIGHT {
            let previous = self.writing.pop_front().unwrap();
            self.index(previous)?;
        }
        Ok(())
    }

    /// Waits for every batch in flight and indexes it.
    fn settle_writing(&mut self) -> Result<(), StoreError> {
        while let Some(writing) = self.writing.pop_front() {
            self.index(writing)?;
        }
        Ok(())
    }

    fn index(&mut self, writing: Writing) -> Result<(), StoreError> {
        let (batch, staged, _unindexed) = writing.join().map_err(|_| StoreError::Db {
            doing: "writing upload blocks",
            reason: "the block writer panicked".into(),
        })??;
        let (id, seq) = (self.id, self.seq);
        self.store
            .write("writing upload blocks", Durability::None, |tx| {
                tx.add_all(&batch, &staged, 1, Some((id, seq)))
            })?;
        self.seq += batch.len() as u64;
        Ok(())
    }

    fn release(&mut self) {
        self.open = false;
        self.batch.clear();
        // Their bytes are garbage once nothing indexes them; the writers only must not
        // outlive the upload.
        for writing in self.writing.drain(..) {
            let _ = writing.join();
        }
        let id = self.id;
        if let Err(e) = self
            .store
            .write("aborting an upload", Durability::None, |tx| tx.abort(id))
        {
            tracing::warn!(upload = id, error = %e, "abort failed; the next open reclaims it");
        }
    }
}

impl Upload for DiskUpload {
    fn put_block(&mut self, cid: &Cid, data: Bytes) -> Result<(), StoreError> {
        self.batch.push((*cid, data));
        if self.batch.len() >= UPLOAD_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn commit(
        mut self: Box<Self>,
        tree: &Cid,
        leaves: Vec<LeafRef>,
        manifest_cid: &Cid,
        manifest: Bytes,
    ) -> Result<(), StoreError> {
        if !self.batch.is_empty() {
            self.flush()?;
        }
        self.settle_writing()?;
        let id = self.id;
        let count = leaves.len() as u64;
        let (staged, _unindexed) = self.store.stage(&[(*manifest_cid, manifest.clone())])?;
        self.store
            .write("committing an upload", Durability::Immediate, |tx| {
                tx.add(manifest_cid, &manifest, staged[0], 0)?;
                tx.settle(id, tree, &leaves)?;
                let tree_key = tree.to_bytes();
                let mut datasets = tx
                    .txn
                    .open_table(DATASETS)
                    .map_err(db("opening datasets"))?;
                datasets
                    .insert(
                        manifest_cid.to_bytes().as_slice(),
                        (tree_key.as_slice(), count),
                    )
                    .map_err(db("writing a dataset"))?;
                Ok(())
            })?;
        self.open = false;
        Ok(())
    }

    fn abort(mut self: Box<Self>) -> Result<(), StoreError> {
        self.release();
        Ok(())
    }
}

impl Drop for DiskUpload {
    fn drop(&mut self) {
        if self.open {
            self.release();
        }
    }
}
