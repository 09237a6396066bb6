//! The index's redb tables, what their rows hold, and the helpers that read and write them:
//! leaf references' encoding, the counter keys of tiers, and redb errors as [`StoreError`]s.

use bytes::Bytes;
use redb::TableDefinition;

use crate::{Cid, LeafRef, StoreError};

/// cid → (segment, offset, length) of its payload in the segment files
pub(super) const LOCS: TableDefinition<&[u8], (u64, u64, u64)> =
    TableDefinition::new("block_locations");
/// segment → live payload bytes in it
pub(super) const SEG_LIVE: TableDefinition<u64, u64> = TableDefinition::new("segment_live_bytes");
/// segment → bytes (padding included) of the payloads deleted or moved out of it, which
/// compaction reclaims; added with tiers (absent in older stores: nothing counted yet)
pub(super) const SEG_DEAD: TableDefinition<u64, u64> = TableDefinition::new("segment_dead_bytes");
/// cid → (references, expires at unix secs)
pub(super) const META: TableDefinition<&[u8], (u64, u64)> = TableDefinition::new("block_meta");
/// (tree cid, index) → [cid length][cid][proof]
pub(super) const LEAVES: TableDefinition<(&[u8], u64), &[u8]> = TableDefinition::new("leaves");
/// manifest cid → (tree cid, blocks)
pub(super) const DATASETS: TableDefinition<&[u8], (&[u8], u64)> = TableDefinition::new("datasets");
/// (upload id, sequence) → cid held by that unfinished upload
pub(super) const PENDING: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("pending");
pub(super) const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

/// (segment, offset, length) of a payload.
pub(super) type Loc = (u64, u64, u64);

/// Counter keys of tiers after the first; tier 0's figures are the totals less these, so
/// a single-directory store writes no key it did not write before tiers existed.
pub(super) fn tier_key(tier: usize, what: &str) -> String {
    format!("tier{tier}.{what}")
}

pub(super) fn db<E: Into<redb::Error>>(doing: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::db(doing)(e.into())
}

pub(super) fn encode_leaf(leaf: &LeafRef) -> Vec<u8> {
    let cid = leaf.cid.to_bytes();
    let mut v = Vec::with_capacity(1 + cid.len() + leaf.proof.len());
    v.push(cid.len() as u8);
    v.extend_from_slice(&cid);
    v.extend_from_slice(&leaf.proof);
    v
}

pub(super) fn decode_leaf(bytes: &[u8]) -> Result<LeafRef, StoreError> {
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
