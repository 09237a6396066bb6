//! Block stores: one [`BlockStore`] trait, an in-memory store and a durable redb store.
//!
//! A store keeps blocks by CID, the leaf references of datasets ((treeCid, index) → block
//! CID + proof), quota accounting over unique block bytes, reference counts so shared blocks
//! survive the deletion of one dataset, and block expiry (TTL). Uploads go through
//! [`Upload`]: nothing they write counts as stored until `commit`, and an upload that is
//! aborted, dropped or cut off by a crash leaves nothing behind. The trait is synchronous;
//! async callers run it on a blocking pool.
//!
//! [`TieredStore`] spreads the disk store over several directories (nvme → ssd → hdd) with
//! a memory cache in front; see [`tiers`].

mod buffers;
mod disk;
mod error;
mod memory;
mod segments;
pub mod tiers;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
pub use neverust_content::Cid;

pub use buffers::{release_free_heap, trim_idle as trim_idle_buffers, AlignedBlocks, AlignedBuf};
pub use disk::DiskStore;
pub use error::StoreError;
pub use memory::MemoryStore;
pub use tiers::{Rebalanced, TierKind, TierSpec, TierSpecError, TierStats, TieredStore};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafRef {
    pub cid: Cid,
    pub proof: Bytes,
}

#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub quota_max_bytes: u64,
    pub block_ttl: Duration,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Space {
    pub total_blocks: u64,
    pub quota_max_bytes: u64,
    pub quota_used_bytes: u64,
    pub quota_reserved_bytes: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub block_count: u64,
    pub block_bytes: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reclaimed {
    pub datasets: u64,
    pub blocks: u64,
    pub bytes: u64,
}

pub trait BlockStore: Send + Sync + 'static {
    /// Stores a block outside any upload; returns whether it was new. Extends its expiry.
    fn put_block(&self, cid: &Cid, data: Bytes) -> Result<bool, StoreError>;
    fn get_block(&self, cid: &Cid) -> Result<Option<Bytes>, StoreError>;
    fn has_block(&self, cid: &Cid) -> Result<bool, StoreError>;
    /// Removes a block whatever references it; returns whether it was there.
    fn delete_block(&self, cid: &Cid) -> Result<bool, StoreError>;
    fn get_leaf(&self, tree: &Cid, index: u64) -> Result<Option<LeafRef>, StoreError>;
    fn put_leaf(&self, tree: &Cid, index: u64, leaf: LeafRef) -> Result<(), StoreError>;
    fn begin_upload(&self) -> Result<Box<dyn Upload>, StoreError>;
    /// Deletes a dataset: its manifest block, and (unless another manifest shares the tree)
    /// its leaf references and every block no other dataset references.
    fn delete_dataset(&self, manifest: &Cid, tree: &Cid, blocks: u64) -> Result<(), StoreError>;
    /// Every stored manifest block (codec 0xCD01) with its bytes.
    fn list_manifests(&self) -> Result<Vec<(Cid, Bytes)>, StoreError>;
    fn space(&self) -> Result<Space, StoreError>;
    fn stats(&self) -> StoreStats;
    /// Removes expired datasets and unreferenced expired blocks.
    fn maintain(&self, now: SystemTime) -> Result<Reclaimed, StoreError>;
}

/// An upload in progress. Blocks put through it are held (counted against the quota and
/// kept from deletion) but not acknowledged; `commit` makes the dataset durable in one step.
pub trait Upload: Send {
    fn put_block(&mut self, cid: &Cid, data: Bytes) -> Result<(), StoreError>;
    fn commit(
        self: Box<Self>,
        tree: &Cid,
        leaves: Vec<LeafRef>,
        manifest_cid: &Cid,
        manifest: Bytes,
    ) -> Result<(), StoreError>;
    /// Releases what the upload held (also done on drop).
    fn abort(self: Box<Self>) -> Result<(), StoreError>;
}

pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn is_manifest(cid: &Cid) -> bool {
    cid.codec() == neverust_content::codec::MANIFEST
}
