//! Fetching a contiguous range of a dataset's leaves without keeping them: the slot of an
//! erasure-coded dataset that a storage-marketplace host is to hold. Every leaf is checked
//! as a download's is (bytes against the CID and proof against the tree root by the
//! engine, the proof's leaf count against the manifest by the policy), and the leaves come
//! back in memory, in order. Nothing is stored, committed, registered as held or
//! announced: a slot is not the dataset, and what the host keeps, under which tree, is
//! the host's to decide.
//!
//! Peer sync runs as for a dataset download. The DHT names the dataset's providers, but a
//! slot's blocks are as likely with peers that are not: the hosts of the other slots, a
//! host repairing this one, a download in progress. A session costs one run of indices
//! against a peer holding the whole tree, and the policy keeps only what a peer holds of
//! the range. The range is not registered as a partial dataset, so this node does not
//! serve it while fetching, and its side of every session is, truthfully, empty.

use std::ops::Range;
use std::sync::Arc;

use neverust_content::{cid_string, Cid, Manifest};

use super::exchange::{Exchange, FetchedLeaf};
use super::policy::range_len;
use super::{DownloadError, DownloadProgress};
use crate::Network;

impl Network {
    /// Fetches leaves `range` of the dataset whose manifest is `manifest_cid` from its
    /// providers and from connected peers that hold them, each verified; returns them in
    /// index order and stores nothing. Fails as a dataset download does when blocks stop
    /// coming, and with [`DownloadError::BadRange`] when `range` is empty or reaches past
    /// the dataset's blocks. The whole range is held in memory until it returns.
    pub async fn fetch_range(
        &self,
        manifest_cid: Cid,
        manifest: &Manifest,
        range: Range<u64>,
        progress: Arc<DownloadProgress>,
    ) -> Result<Vec<FetchedLeaf>, DownloadError> {
        let blocks = manifest.blocks_count();
        if range.is_empty() || range.end > blocks {
            return Err(DownloadError::BadRange {
                cid: cid_string(&manifest_cid),
                range,
                blocks,
            });
        }
        let mut leaves: Vec<Option<FetchedLeaf>> = vec![None; range_len(&range) as usize];
        let (tree, first) = (manifest.tree_cid, range.start);
        let mut exchange = Exchange::start(self, manifest_cid, tree, range, blocks, progress).await;
        // The policy yields each leaf of the range once, and none outside it.
        while let Some(leaf) = exchange.next().await? {
            let slot = (leaf.index - first) as usize;
            leaves[slot] = Some(leaf);
        }
        leaves
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| exchange.stalled())
    }
}
