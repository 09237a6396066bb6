//! Payload I/O on the segment files: a block's bytes read at its location, and payloads
//! written ahead of the transaction that indexes them.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use redb::ReadableDatabase;

use super::tables::{db, Loc, LOCS};
use super::tier_dirs::{global_segment, split_segment};
use super::DiskStore;
use crate::segments::Unindexed;
use crate::{Cid, StoreError};

impl DiskStore {
    pub(super) fn read_payload(&self, (segment, offset, len): Loc) -> Result<Bytes, StoreError> {
        self.read_raw((segment, offset, len))
            .map_err(|e| self.segment_error("reading a block from its segment", segment, e))
    }

    pub(super) fn read_raw(&self, (segment, offset, len): Loc) -> std::io::Result<Bytes> {
        let (tier, local) = split_segment(segment);
        let tier = self.shared.tiers.get(tier).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "location on no known tier")
        })?;
        tier.segments.read(local, offset, len)
    }

    pub(super) fn segment_error(
        &self,
        doing: &'static str,
        segment: u64,
        e: std::io::Error,
    ) -> StoreError {
        let (tier, local) = split_segment(segment);
        // A location on no known tier has no file to name: its tier and segment number do.
        let path = match self.shared.tiers.get(tier) {
            Some(t) => t.segments.path(local),
            None => format!("tier {tier}, segment {local}").into(),
        };
        StoreError::Io {
            doing,
            path,
            source: e,
        }
    }

    /// Writes the payloads of the blocks the index lacks before their write transaction
    /// opens, so the I/O neither holds redb's single writer nor waits for it. Returns where
    /// each block went; a block already stored, a repeat within `blocks`, or every block
    /// when the quota is close gets `None`, and the transaction decides (and writes) those.
    /// Hold the [`Unindexed`] until the transaction indexing them has committed.
    pub(super) fn stage(
        &self,
        blocks: &[(Cid, Bytes)],
    ) -> Result<(Vec<Option<Loc>>, Unindexed), StoreError> {
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
        let segments = &self.shared.tiers[tier].segments;
        let (locs, held) = segments.append(&payloads).map_err(StoreError::io(
            "appending blocks to their segment",
            segments.dir(),
        ))?;
        for (&i, (segment, offset)) in fresh.iter().zip(locs) {
            staged[i] = Some((
                global_segment(tier, segment),
                offset,
                blocks[i].1.len() as u64,
            ));
        }
        Ok((staged, held))
    }
}
