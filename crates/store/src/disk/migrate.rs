//! Moving a block's payload between persistent tiers, and what placement needs to know to
//! decide which (per-tier usage, a sample of one tier's blocks).
//!
//! A move copies the payload into the target tier's active segment, then commits the new
//! location in one durable transaction; `write` fsyncs every tier's segments before that
//! commit. Until the commit the old location is the only one the index knows and its
//! segment cannot be deleted (its live count still includes the block); after it, the new
//! bytes are durable and the old ones are dead. A crash in between leaves the copy as
//! unindexed bytes, which the next open deletes with their segment (or, in a segment that
//! also holds live blocks, leaves as dead bytes like any other). Deciding *what* to move is
//! not done here: see [`crate::tiers::placement`].
//!
//! Compaction is the same move within one tier: the live blocks of a segment that is mostly
//! dead bytes (blocks deleted, or moved to another tier) are copied to the tier's active
//! segment, and the emptied segment file is deleted. Without it, every demotion would leave
//! its bytes behind on the fast tier's disk.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use redb::{Durability, ReadableDatabase, ReadableTable};

use std::collections::HashSet;

use super::tables::{db, Loc, LOCS, SEG_DEAD, SEG_LIVE};
use super::tier_dirs::{global_segment, split_segment};
use super::DiskStore;
use crate::{Cid, StoreError};

/// A block read back with the tier it came from.
pub(crate) struct Located {
    pub data: Bytes,
    pub tier: usize,
}

/// What one persistent tier holds against what it should.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TierUsage {
    pub blocks: u64,
    pub bytes: u64,
    pub capacity: u64,
}

/// A stretch of the index: each block with its segment id and length, and the key to go
/// on from (`None`: the scan reached the end of the index).
pub(crate) struct Scan {
    pub blocks: Vec<(Cid, u64, u64)>,
    pub next: Option<Vec<u8>>,
}

/// The tier a segment id (as in [`Scan`]) belongs to.
pub(crate) fn tier_of(segment: u64) -> usize {
    split_segment(segment).0
}

/// How often a read retries after the block moved under it (a migration deleted the
/// segment between the index lookup and the read).
const READ_RETRIES: usize = 4;

impl DiskStore {
    pub(crate) fn tier_usage(&self) -> Vec<TierUsage> {
        self.shared
            .tiers
            .iter()
            .map(|t| TierUsage {
                blocks: t.blocks.load(Ordering::Relaxed),
                bytes: t.bytes.load(Ordering::Relaxed),
                capacity: t.capacity,
            })
            .collect()
    }

    fn location(&self, cid: &Cid) -> Result<Option<Loc>, StoreError> {
        let key = cid.to_bytes();
        self.lookup(LOCS, "reading a block location", |t| {
            Ok(t.get(key.as_slice())?.map(|v| v.value()))
        })
    }

    /// The tier holding a block and its length.
    pub(crate) fn locate(&self, cid: &Cid) -> Result<Option<(usize, u64)>, StoreError> {
        Ok(self
            .location(cid)?
            .map(|(segment, _, len)| (split_segment(segment).0, len)))
    }

    /// Reads a block and says from which tier.
    pub(crate) fn get_located(&self, cid: &Cid) -> Result<Option<Located>, StoreError> {
        let mut tries = 0;
        loop {
            let Some(loc) = self.location(cid)? else {
                return Ok(None);
            };
            match self.read_raw(loc) {
                Ok(data) => {
                    return Ok(Some(Located {
                        data,
                        tier: split_segment(loc.0).0,
                    }))
                }
                // The block moved (or went) and its old segment with it: look again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < READ_RETRIES => {
                    tries += 1;
                }
                Err(e) => {
                    return Err(self.segment_error("reading a block from its segment", loc.0, e))
                }
            }
        }
    }

    /// Moves a block's payload to tier `to`; returns whether it moved (it may have been
    /// deleted, or already be there). Crash-safe at every point: see the module doc.
    pub(crate) fn migrate(&self, cid: &Cid, to: usize) -> Result<bool, StoreError> {
        Ok(self.migrate_all(&[*cid], to)? == 1)
    }

    /// Moves blocks to tier `to` in one durable commit (one fsync for them all); returns
    /// how many moved (the others were gone, or already there).
    pub(crate) fn migrate_all(&self, cids: &[Cid], to: usize) -> Result<usize, StoreError> {
        let mut moves = Vec::with_capacity(cids.len());
        for cid in cids {
            if let Some(old) = self.location(cid)? {
                if split_segment(old.0).0 != to {
                    moves.push((*cid, old, to));
                }
            }
        }
        self.relocate(&moves)
    }

    /// Moves the blocks among `cids` that lie in a `sparse` segment to their tier's active
    /// segment, in one durable commit; returns how many moved.
    pub(crate) fn compact(&self, cids: &[Cid], sparse: &HashSet<u64>) -> Result<usize, StoreError> {
        let mut moves = Vec::with_capacity(cids.len());
        for cid in cids {
            if let Some(old) = self.location(cid)? {
                if sparse.contains(&old.0) {
                    moves.push((*cid, old, split_segment(old.0).0));
                }
            }
        }
        self.relocate(&moves)
    }

    /// Segments of `tier` (not its active one) at least half of whose file is dead bytes.
    pub(crate) fn sparse_segments(&self, tier: usize) -> Result<HashSet<u64>, StoreError> {
        let Some(t) = self.shared.tiers.get(tier) else {
            return Ok(HashSet::new());
        };
        let rows: Vec<(u64, u64)> = {
            let doing = "reading dead bytes";
            let txn = self.shared.db.begin_read().map_err(db(doing))?;
            let dead = match txn.open_table(SEG_DEAD) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(HashSet::new()),
                Err(e) => return Err(db(doing)(e)),
            };
            let first = global_segment(tier, 0);
            let last = global_segment(tier + 1, 0);
            let rows = dead.range(first..last).map_err(db(doing))?;
            rows.filter_map(|r| r.ok())
                .map(|(k, v)| (k.value(), v.value()))
                .collect()
        };
        let active = t.segments.active_id();
        Ok(rows
            .into_iter()
            .filter(|&(id, dead)| {
                let local = split_segment(id).1;
                local != active && t.segments.file_len(local).is_ok_and(|len| dead * 2 >= len)
            })
            .map(|(id, _)| id)
            .collect())
    }

    /// Copies each block from its old location to tier `to`'s active segment, then, in one
    /// transaction that `write` makes durable after syncing every tier, points the index at
    /// the copies. A block whose location changed meanwhile (deleted, or moved by someone
    /// else) keeps it: its copy is unindexed garbage.
    fn relocate(&self, moves: &[(Cid, Loc, usize)]) -> Result<usize, StoreError> {
        if moves.is_empty() {
            return Ok(0);
        }
        let mut payloads = Vec::with_capacity(moves.len());
        for &(_, old, _) in moves {
            payloads.push(self.read_payload(old)?);
        }
        let mut new: Vec<Loc> = vec![(0, 0, 0); moves.len()];
        let mut held = Vec::new();
        let mut targets: Vec<usize> = moves.iter().map(|m| m.2).collect();
        targets.sort_unstable();
        targets.dedup();
        for to in targets {
            let target = self
                .shared
                .tiers
                .get(to)
                .ok_or(StoreError::NoTier { tier: to })?;
            let picked: Vec<usize> = (0..moves.len()).filter(|&i| moves[i].2 == to).collect();
            let data: Vec<&[u8]> = picked.iter().map(|&i| &payloads[i][..]).collect();
            let (at, hold) = target.segments.append(&data).map_err(StoreError::io(
                "copying blocks to another tier",
                target.segments.dir(),
            ))?;
            held.push(hold);
            for (&i, (segment, offset)) in picked.iter().zip(at) {
                new[i] = (global_segment(to, segment), offset, moves[i].1 .2);
            }
        }
        self.write("moving blocks between tiers", Durability::Immediate, |tx| {
            let mut moved = 0;
            for (&(cid, old, _), &new) in moves.iter().zip(&new) {
                let key = cid.to_bytes();
                let mut locs = tx
                    .txn
                    .open_table(LOCS)
                    .map_err(db("opening block locations"))?;
                let current = locs
                    .get(key.as_slice())
                    .map_err(db("reading a block location"))?
                    .map(|v| v.value());
                if current != Some(old) {
                    continue;
                }
                locs.insert(key.as_slice(), new)
                    .map_err(db("writing a block location"))?;
                drop(locs);
                tx.forget_payload(old.0, old.2)?;
                let mut live = tx
                    .txn
                    .open_table(SEG_LIVE)
                    .map_err(db("opening segments"))?;
                let before = live
                    .get(new.0)
                    .map_err(db("reading segments"))?
                    .map(|v| v.value())
                    .unwrap_or(0);
                live.insert(new.0, before + new.2)
                    .map_err(db("writing segments"))?;
                drop(live);
                tx.count_on_tier(new.0, new.2, true);
                moved += 1;
            }
            Ok(moved)
        })
    }

    /// Up to `scan` index entries from `cursor` on (the start when `None`). Placement
    /// samples a tier this way instead of keeping per-block state in memory.
    pub(crate) fn scan(&self, cursor: Option<&[u8]>, scan: usize) -> Result<Scan, StoreError> {
        let doing = "scanning block locations";
        let txn = self.shared.db.begin_read().map_err(db(doing))?;
        let locs = match txn.open_table(LOCS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => {
                return Ok(Scan {
                    blocks: Vec::new(),
                    next: None,
                })
            }
            Err(e) => return Err(db(doing)(e)),
        };
        let rows = match cursor {
            Some(after) => {
                locs.range::<&[u8]>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
            }
            None => locs.range::<&[u8]>(..),
        }
        .map_err(db(doing))?;
        let mut found = Vec::new();
        let mut last = None;
        let mut seen = 0;
        for row in rows {
            let (k, v) = row.map_err(db(doing))?;
            let (segment, _, len) = v.value();
            if let Ok(cid) = Cid::try_from(k.value()) {
                found.push((cid, segment, len));
            }
            seen += 1;
            if seen >= scan {
                last = Some(k.value().to_vec());
                break;
            }
        }
        Ok(Scan {
            blocks: found,
            next: last,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::disk::TierDir;
    use crate::{BlockStore, StoreConfig};

    fn two_tiers(dir: &Path) -> DiskStore {
        let tier = |name: &str| TierDir {
            dir: dir.join(name),
            capacity: u64::MAX,
        };
        let cfg = StoreConfig {
            quota_max_bytes: 1 << 30,
            block_ttl: Duration::from_secs(3600),
        };
        DiskStore::open_tiers(&[tier("fast"), tier("slow")], cfg, None).unwrap()
    }

    fn segment_file(dir: &Path, tier: &str, local: u64) -> std::path::PathBuf {
        dir.join(tier)
            .join("segments")
            .join(format!("{local:08}.seg"))
    }

    /// The crash point between the copy (written and synced) and the index commit.
    #[test]
    fn a_copy_never_committed_leaves_the_block_where_it_was_and_goes_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let data = Bytes::from(vec![7u8; 10_000]);
        let cid = neverust_content::block_cid(&data);
        let copy = {
            let store = two_tiers(dir.path());
            store.put_block(&cid, data.clone()).unwrap();
            let slow = &store.shared.tiers[1].segments;
            let (at, _held) = slow.append(&[&data]).unwrap();
            slow.sync().unwrap();
            at[0].0
        };
        assert!(segment_file(dir.path(), "slow", copy).exists());
        let store = two_tiers(dir.path());
        let found = store.get_located(&cid).unwrap().unwrap();
        assert_eq!((found.tier, found.data), (0, data));
        assert!(
            !segment_file(dir.path(), "slow", copy).exists(),
            "the orphan went"
        );
    }

    /// The crash point after the commit, before the emptied old segment was deleted.
    #[test]
    fn after_the_commit_the_copy_is_the_block_and_the_old_segment_goes_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let data = Bytes::from(vec![9u8; 10_000]);
        let cid = neverust_content::block_cid(&data);
        let old_segment = {
            let store = two_tiers(dir.path());
            store.put_block(&cid, data.clone()).unwrap();
            let old = store.location(&cid).unwrap().unwrap();
            assert!(store.migrate(&cid, 1).unwrap());
            assert!(!store.migrate(&cid, 1).unwrap(), "already there");
            split_segment(old.0).1
        };
        // The active segment is never deleted while the store runs: still there, as if
        // the process had died before deleting it.
        assert!(segment_file(dir.path(), "fast", old_segment).exists());
        let store = two_tiers(dir.path());
        let found = store.get_located(&cid).unwrap().unwrap();
        assert_eq!((found.tier, found.data), (1, data));
        assert!(!segment_file(dir.path(), "fast", old_segment).exists());
        let usage = store.tier_usage();
        assert_eq!((usage[0].blocks, usage[1].blocks), (0, 1));
        assert_eq!(usage[1].bytes, 10_000);
    }
}
