//! What a node holds of a dataset, by block index: the sets a reconciliation session
//! compares. Whole datasets come from the store; a download in progress registers the
//! blocks it has verified so far, and the engine serves them from here before the
//! download commits, so peers fetching the same dataset at once can trade among themselves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use neverust_content::{Cid, MerkleProof};
use neverust_store::{BlockStore, LeafRef};

/// The block indices of a tree that this node holds and serves.
pub trait Holdings: Send + Sync + 'static {
    /// Sorted, distinct.
    fn held(&self, tree: &Cid) -> Vec<u64>;
    /// This node is fetching `tree` now, so it wants to hear what it lacks.
    fn downloading(&self, tree: &Cid) -> bool;
}

/// Downloads in progress: each tree's verified leaves, before its commit.
#[derive(Default)]
pub struct PartialDatasets {
    trees: Mutex<HashMap<Cid, HashMap<u64, LeafRef>>>,
}

/// Keeps a download's tree registered; unregisters on drop (the commit or the failure).
pub struct PartialGuard {
    partial: Arc<PartialDatasets>,
    tree: Cid,
}

impl PartialDatasets {
    pub fn register(self: &Arc<Self>, tree: Cid) -> PartialGuard {
        self.trees
            .lock()
            .expect("partial lock")
            .entry(tree)
            .or_default();
        PartialGuard {
            partial: self.clone(),
            tree,
        }
    }

    pub fn leaf(&self, tree: &Cid, index: u64) -> Option<LeafRef> {
        self.trees
            .lock()
            .expect("partial lock")
            .get(tree)?
            .get(&index)
            .cloned()
    }

    fn indices(&self, tree: &Cid) -> Option<Vec<u64>> {
        let trees = self.trees.lock().expect("partial lock");
        Some(trees.get(tree)?.keys().copied().collect())
    }

    fn has(&self, tree: &Cid) -> bool {
        self.trees.lock().expect("partial lock").contains_key(tree)
    }
}

impl PartialGuard {
    pub fn insert(&self, index: u64, leaf: LeafRef) {
        if let Some(t) = self
            .partial
            .trees
            .lock()
            .expect("partial lock")
            .get_mut(&self.tree)
        {
            t.insert(index, leaf);
        }
    }

    /// Every leaf of a download of `total` blocks, in order, once all are in: what its
    /// commit records.
    pub fn leaves(&self, total: u64) -> Option<Vec<LeafRef>> {
        let trees = self.partial.trees.lock().expect("partial lock");
        let held = trees.get(&self.tree)?;
        (0..total).map(|i| held.get(&i).cloned()).collect()
    }
}

impl Drop for PartialGuard {
    fn drop(&mut self) {
        self.partial
            .trees
            .lock()
            .expect("partial lock")
            .remove(&self.tree);
    }
}

/// A node's holdings: the store's whole datasets and the downloads in progress.
pub struct NodeHoldings {
    pub store: Arc<dyn BlockStore>,
    pub partial: Arc<PartialDatasets>,
}

impl Holdings for NodeHoldings {
    fn held(&self, tree: &Cid) -> Vec<u64> {
        // A dataset is in the store whole or not at all; its first leaf's proof says how
        // many leaves it has.
        let whole = self
            .store
            .get_leaf(tree, 0)
            .ok()
            .flatten()
            .and_then(|leaf| MerkleProof::decode(&leaf.proof).ok())
            .map(|p| p.nleaves);
        if let Some(n) = whole {
            return (0..n).collect();
        }
        let mut held = self.partial.indices(tree).unwrap_or_default();
        held.sort_unstable();
        held
    }

    fn downloading(&self, tree: &Cid) -> bool {
        self.partial.has(tree)
    }
}
