//! The durable store: a redb database (`blocks.redb`) for the index, refcounts, leaf
//! references and counters, and append-only segment files for the payloads
//! ([`crate::segments`]). A durable commit fsyncs the segments before the index.
//!
//! Every mutation is one write transaction that updates blocks, reference counts, expiry
//! and the quota counters together, so a crash can never leave the counters disagreeing
//! with the blocks. Payloads are written before the transaction that indexes them opens, so
//! disk I/O never holds redb's single writer. Uploads index their blocks in batches with
//! non-durable commits and finish with one durable commit; an abort, or the next open after
//! a crash, releases exactly what an unfinished upload held.
//!
//! The store may spread payloads over several directories, its persistent tiers (fastest
//! first; see [`crate::tiers`]): the index, in the first tier's directory, stays the one
//! authority, and a location's segment id carries its tier in its top byte. Tier 0's ids are
//! the plain segment numbers, so a single-directory store's files are what they always were.
//! Moving a payload between tiers is in [`migrate`].
//!
//! This module opens the store and answers the [`BlockStore`] calls. The rest: [`tables`]
//! (the redb tables and the encoding of their rows), [`tier_dirs`] (tier directories and
//! segment ids), [`payloads`] (reading and writing payloads in the segment files), [`tx`]
//! (write transactions and the logic every mutation shares), [`upload`] (uploads in
//! batches) and [`migrate`] (moving payloads between tiers, compaction).

mod migrate;
mod payloads;
mod tables;
mod tier_dirs;
mod tx;
mod upload;

pub(crate) use migrate::{tier_of, TierUsage};
pub(crate) use tier_dirs::TierDir;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::segments::{self, Segments};
use crate::tiers::placement;
use crate::{
    is_manifest, unix_secs, BlockStore, Cid, LeafRef, Reclaimed, Space, StoreConfig, StoreError,
    StoreStats, Upload,
};
use tables::{db, decode_leaf, DATASETS, LEAVES, LOCS, META, PENDING, SEG_LIVE};
use tier_dirs::{check_tier_marker, global_segment, split_segment, DiskTier};
use upload::DiskUpload;

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

#[derive(Clone)]
pub struct DiskStore {
    shared: Arc<Shared>,
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
            .ok_or_else(|| StoreError::Layout {
                path: Default::default(),
                reason: "no directory given".into(),
            })?
            .dir;
        let mut tiers = Vec::with_capacity(tier_dirs.len());
        for (i, t) in tier_dirs.iter().enumerate() {
            std::fs::create_dir_all(&t.dir)
                .map_err(StoreError::io("creating the store directory", &t.dir))?;
            if tier_dirs.len() > 1 {
                check_tier_marker(&t.dir, i)?;
            }
            let seg_dir = t.dir.join("segments");
            let segments = Segments::open(&seg_dir)
                .map_err(StoreError::io("opening the segment files", &seg_dir))?;
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
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
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
                    return Err(StoreError::Layout {
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
        Ok(Box::new(DiskUpload::begin(self)))
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
