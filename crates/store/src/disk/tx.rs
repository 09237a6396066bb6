//! Write transactions: [`DiskStore::write`] runs one and publishes what it changed once it
//! commits; [`Tx`] is the logic every mutation shares, updating blocks, reference counts,
//! expiry, leaf references and the quota and tier counters together.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use bytes::Bytes;
use redb::{Durability, ReadableTable, WriteTransaction};

use super::tables::{
    db, decode_leaf, encode_leaf, tier_key, Loc, COUNTERS, DATASETS, LEAVES, LOCS, META, PENDING,
    SEG_DEAD, SEG_LIVE,
};
use super::tier_dirs::{global_segment, split_segment, DiskTier};
use super::DiskStore;
use crate::segments::{self, Unindexed};
use crate::{unix_secs, Cid, LeafRef, Reclaimed, StoreConfig, StoreError};

impl DiskStore {
    pub(super) fn write<T>(
        &self,
        doing: &'static str,
        durability: Durability,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut txn = self.shared.db.begin_write().map_err(db(doing))?;
        txn.set_durability(durability).map_err(db(doing))?;
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
            for tier in &self.shared.tiers {
                tier.segments
                    .sync()
                    .map_err(StoreError::io("syncing segment files", tier.segments.dir()))?;
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
pub(super) struct Tx<'a> {
    pub(super) txn: &'a WriteTransaction,
    cfg: &'a StoreConfig,
    pub(super) tiers: &'a [DiskTier],
    /// Where payloads this transaction writes itself go.
    write_tier: usize,
    used: u64,
    blocks: u64,
    /// (blocks, bytes) on each tier.
    per_tier: Vec<(u64, u64)>,
    /// Segments left without a live block: deleted once the transaction commits.
    pub(super) dead: Vec<u64>,
    removed: Vec<Cid>,
    /// Payloads this transaction appended itself, kept from deletion until it commits.
    unindexed: Unindexed,
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
    pub(super) fn count_on_tier(&mut self, segment: u64, len: u64, arriving: bool) {
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
    pub(super) fn add(
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
    pub(super) fn add_all(
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
                    let segments = &self.tiers[t].segments;
                    let (at, held) = segments.append(&[data]).map_err(StoreError::io(
                        "appending a block to its segment",
                        segments.dir(),
                    ))?;
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
    pub(super) fn remove(&mut self, cid: &Cid) -> Result<Option<u64>, StoreError> {
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
    pub(super) fn forget_payload(&mut self, segment: u64, len: u64) -> Result<(), StoreError> {
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

    pub(super) fn insert_leaf(
        &mut self,
        tree: &Cid,
        index: u64,
        leaf: &LeafRef,
    ) -> Result<(), StoreError> {
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

    pub(super) fn abort(&mut self, id: u64) -> Result<(), StoreError> {
        for cid in self.take_pending(id)? {
            self.release(&cid)?;
        }
        Ok(())
    }

    /// Records the leaf references of a committed upload. Each hold of the upload turns
    /// into the reference of the leaf that names its block, so most blocks need no refcount
    /// write at all; holds no new leaf claims are released.
    pub(super) fn settle(
        &mut self,
        id: u64,
        tree: &Cid,
        leaves: &[LeafRef],
    ) -> Result<(), StoreError> {
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

    pub(super) fn delete_dataset(
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
