//! The in-memory store: the same semantics as the disk store, for benchmarks and tests.
//! One mutex guards everything; it is held only for map operations, never across I/O.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::Bytes;

use crate::{
    is_manifest, unix_secs, BlockStore, Cid, LeafRef, Reclaimed, Space, StoreConfig, StoreError,
    StoreStats, Upload,
};

struct Entry {
    data: Bytes,
    /// Leaf references plus holds of uploads in flight.
    refs: u64,
    expires: u64,
}

#[derive(Default)]
struct Inner {
    blocks: HashMap<Cid, Entry>,
    leaves: HashMap<(Cid, u64), LeafRef>,
    datasets: HashMap<Cid, (Cid, u64)>,
    pending: HashMap<u64, Vec<Cid>>,
    used: u64,
    next_upload: u64,
}

pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    cfg: StoreConfig,
}

impl MemoryStore {
    pub fn new(cfg: StoreConfig) -> Self {
        MemoryStore {
            inner: Arc::default(),
            cfg,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    /// Stores `data` under `cid` if absent (quota permitting), adds `refs`, extends expiry.
    fn add(
        &mut self,
        cfg: &StoreConfig,
        cid: &Cid,
        data: Bytes,
        refs: u64,
    ) -> Result<bool, StoreError> {
        let expires = unix_secs(SystemTime::now()).saturating_add(cfg.block_ttl.as_secs());
        if let Some(e) = self.blocks.get_mut(cid) {
            e.refs += refs;
            e.expires = e.expires.max(expires);
            return Ok(false);
        }
        let len = data.len() as u64;
        if self.used + len > cfg.quota_max_bytes {
            return Err(StoreError::QuotaExceeded {
                needed: len,
                used: self.used,
                max: cfg.quota_max_bytes,
            });
        }
        self.used += len;
        self.blocks.insert(
            *cid,
            Entry {
                data,
                refs,
                expires,
            },
        );
        Ok(true)
    }

    fn remove(&mut self, cid: &Cid) -> Option<u64> {
        let e = self.blocks.remove(cid)?;
        self.used -= e.data.len() as u64;
        Some(e.data.len() as u64)
    }

    /// Drops one reference; a block nothing references any more is deleted.
    fn release(&mut self, cid: &Cid) -> u64 {
        let Some(e) = self.blocks.get_mut(cid) else {
            return 0;
        };
        e.refs = e.refs.saturating_sub(1);
        if e.refs == 0 {
            self.remove(cid).unwrap_or(0)
        } else {
            0
        }
    }

    fn abort(&mut self, id: u64) {
        for cid in self.pending.remove(&id).unwrap_or_default() {
            self.release(&cid);
        }
    }

    fn delete_dataset(&mut self, manifest: &Cid, tree: &Cid, blocks: u64) -> Reclaimed {
        let mut r = Reclaimed::default();
        self.datasets.remove(manifest);
        if let Some(bytes) = self.remove(manifest) {
            r.blocks += 1;
            r.bytes += bytes;
        }
        r.datasets = 1;
        if self.datasets.values().any(|(t, _)| t == tree) {
            return r;
        }
        for index in 0..blocks {
            if let Some(leaf) = self.leaves.remove(&(*tree, index)) {
                let freed = self.release(&leaf.cid);
                if freed > 0 {
                    r.blocks += 1;
                    r.bytes += freed;
                }
            }
        }
        r
    }
}

impl BlockStore for MemoryStore {
    fn put_block(&self, cid: &Cid, data: Bytes) -> Result<bool, StoreError> {
        self.lock().add(&self.cfg, cid, data, 0)
    }

    fn get_block(&self, cid: &Cid) -> Result<Option<Bytes>, StoreError> {
        Ok(self.lock().blocks.get(cid).map(|e| e.data.clone()))
    }

    fn has_block(&self, cid: &Cid) -> Result<bool, StoreError> {
        Ok(self.lock().blocks.contains_key(cid))
    }

    fn delete_block(&self, cid: &Cid) -> Result<bool, StoreError> {
        Ok(self.lock().remove(cid).is_some())
    }

    fn get_leaf(&self, tree: &Cid, index: u64) -> Result<Option<LeafRef>, StoreError> {
        Ok(self.lock().leaves.get(&(*tree, index)).cloned())
    }

    fn put_leaf(&self, tree: &Cid, index: u64, leaf: LeafRef) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let cid = leaf.cid;
        if inner.leaves.insert((*tree, index), leaf).is_none() {
            if let Some(e) = inner.blocks.get_mut(&cid) {
                e.refs += 1;
            }
        }
        Ok(())
    }

    fn begin_upload(&self) -> Result<Box<dyn Upload>, StoreError> {
        let mut inner = self.lock();
        inner.next_upload += 1;
        let id = inner.next_upload;
        inner.pending.insert(id, Vec::new());
        Ok(Box::new(MemoryUpload {
            inner: self.inner.clone(),
            cfg: self.cfg.clone(),
            id,
            open: true,
        }))
    }

    fn delete_dataset(&self, manifest: &Cid, tree: &Cid, blocks: u64) -> Result<(), StoreError> {
        self.lock().delete_dataset(manifest, tree, blocks);
        Ok(())
    }

    fn list_manifests(&self) -> Result<Vec<(Cid, Bytes)>, StoreError> {
        Ok(self
            .lock()
            .blocks
            .iter()
            .filter(|(cid, _)| is_manifest(cid))
            .map(|(cid, e)| (*cid, e.data.clone()))
            .collect())
    }

    fn space(&self) -> Result<Space, StoreError> {
        let inner = self.lock();
        Ok(Space {
            total_blocks: inner.blocks.len() as u64,
            quota_max_bytes: self.cfg.quota_max_bytes,
            quota_used_bytes: inner.used,
            quota_reserved_bytes: 0,
        })
    }

    fn stats(&self) -> StoreStats {
        let inner = self.lock();
        StoreStats {
            block_count: inner.blocks.len() as u64,
            block_bytes: inner.used,
        }
    }

    fn maintain(&self, now: SystemTime) -> Result<Reclaimed, StoreError> {
        let now = unix_secs(now);
        let mut inner = self.lock();
        let expired: Vec<Cid> = inner
            .blocks
            .iter()
            .filter(|(_, e)| e.expires <= now)
            .map(|(c, _)| *c)
            .collect();
        let mut total = Reclaimed::default();
        for cid in expired {
            if let Some((tree, blocks)) = inner.datasets.get(&cid).copied() {
                let r = inner.delete_dataset(&cid, &tree, blocks);
                total.datasets += r.datasets;
                total.blocks += r.blocks;
                total.bytes += r.bytes;
            } else if inner.blocks.get(&cid).is_some_and(|e| e.refs == 0) {
                if let Some(bytes) = inner.remove(&cid) {
                    total.blocks += 1;
                    total.bytes += bytes;
                }
            }
        }
        Ok(total)
    }
}

struct MemoryUpload {
    inner: Arc<Mutex<Inner>>,
    cfg: StoreConfig,
    id: u64,
    open: bool,
}

impl MemoryUpload {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Upload for MemoryUpload {
    fn put_block(&mut self, cid: &Cid, data: Bytes) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.add(&self.cfg, cid, data, 1)?;
        inner.pending.entry(self.id).or_default().push(*cid);
        Ok(())
    }

    fn commit(
        mut self: Box<Self>,
        tree: &Cid,
        leaves: Vec<LeafRef>,
        manifest_cid: &Cid,
        manifest: Bytes,
    ) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.add(&self.cfg, manifest_cid, manifest, 0)?;
        let count = leaves.len() as u64;
        for (index, leaf) in leaves.into_iter().enumerate() {
            let cid = leaf.cid;
            if inner.leaves.insert((*tree, index as u64), leaf).is_none() {
                if let Some(e) = inner.blocks.get_mut(&cid) {
                    e.refs += 1;
                }
            }
        }
        inner.datasets.insert(*manifest_cid, (*tree, count));
        // The leaf references now keep the blocks; the upload's holds go.
        inner.abort(self.id);
        self.open = false;
        Ok(())
    }

    fn abort(mut self: Box<Self>) -> Result<(), StoreError> {
        self.lock().abort(self.id);
        self.open = false;
        Ok(())
    }
}

impl Drop for MemoryUpload {
    fn drop(&mut self) {
        if self.open {
            let id = self.id;
            self.lock().abort(id);
        }
    }
}
