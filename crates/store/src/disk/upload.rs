//! An upload into the disk store. Blocks are written in batches, several in flight on writer
//! threads, each indexed with a non-durable commit (cheap; nothing is acknowledged yet); the
//! commit is one durable transaction. The pending table remembers what each unfinished upload
//! holds, so an abort, or the next open after a crash, releases exactly that.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use redb::Durability;

use super::tables::{db, Loc, DATASETS};
use super::DiskStore;
use crate::segments::Unindexed;
use crate::{Cid, LeafRef, StoreError, Upload};

/// Blocks an upload buffers before writing them in one transaction (8 MiB of 64 KiB blocks).
const UPLOAD_BATCH: usize = 128;
/// Upload batches whose payloads may be on their way to disk at once: enough that the
/// hasher never waits for the disk, few enough that an upload holds at most 24 MiB.
const WRITES_IN_FLIGHT: usize = 2;

type Batch = Vec<(Cid, Bytes)>;
type Writing = std::thread::JoinHandle<Result<(Batch, Vec<Option<Loc>>, Unindexed), StoreError>>;

pub(super) struct DiskUpload {
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
    pub(super) fn begin(store: &DiskStore) -> DiskUpload {
        DiskUpload {
            _staging: store.shared.tiers[0].segments.staging_user(),
            store: store.clone(),
            id: store.shared.next_upload.fetch_add(1, Ordering::Relaxed) + 1,
            seq: 0,
            batch: Vec::with_capacity(UPLOAD_BATCH),
            writing: Default::default(),
            open: true,
        }
    }

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
            .map_err(|source| StoreError::WriterThread { source })?;
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
        let (batch, staged, _unindexed) =
            writing.join().map_err(|_| StoreError::WriterPanicked)??;
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
