//! Downloading a dataset from the network: providers from the DHT, blocks requested by
//! (treeCid, index) as the [`scheduler`] decides, each block verified by the engine, kept
//! by a store upload that commits only when every block is in, and optionally streamed in
//! order to a reader while it runs. A range of a dataset's leaves (a marketplace slot) is
//! fetched the same way into memory, without being kept (`range`).
//!
//! This module is the I/O shell: the decisions are the [`policy`]'s (and its
//! [`scheduler`]'s), the order a reader gets bytes in is [`in_order`]'s, and who holds
//! which blocks besides the DHT's providers is asked by `peer_sync`. The `exchange` turns
//! engine events into policy calls and the policy's answers into wantlist messages, and
//! yields the verified leaves; `download_dataset` streams, registers and stores them.

mod exchange;
mod in_order;
mod peer_sync;
pub mod policy;
mod range;
pub mod scheduler;

use std::ops::Range;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use neverust_content::{cid_string, Cid, Manifest};
use neverust_store::{LeafRef, StoreError};
use tokio::sync::mpsc;

use crate::Network;
use exchange::Exchange;
pub use exchange::FetchedLeaf;
use in_order::InOrder;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    #[error("no peer provides dataset {cid}")]
    NoProviders { cid: String },
    #[error("download of {cid} stalled: no provider delivered blocks {missing:?} for {waited:?}")]
    Stalled {
        cid: String,
        missing: Vec<u64>,
        waited: Duration,
    },
    #[error("cannot store the downloaded dataset {cid}: {source}")]
    Store { cid: String, source: StoreError },
    #[error("the reader of {cid} went away")]
    ReaderGone { cid: String },
    #[error("leaves {range:?} are not a range within the {blocks} blocks of dataset {cid}")]
    BadRange {
        cid: String,
        range: Range<u64>,
        blocks: u64,
    },
}

/// Progress of a running download, shared with whoever started it.
#[derive(Debug, Default)]
pub struct DownloadProgress {
    pub blocks_done: AtomicU64,
    pub blocks_total: AtomicU64,
}

enum WriteOp {
    Put(Cid, Bytes),
    Commit {
        tree: Cid,
        leaves: Vec<LeafRef>,
        manifest_cid: Cid,
        manifest: Bytes,
    },
}

impl Network {
    /// Fetches every block of the dataset, stores it durably (one commit at the end) and
    /// announces it. With `sink`, the dataset's bytes are also sent there in order as soon
    /// as they are contiguous (the last block trimmed to the dataset size).
    pub async fn download_dataset(
        &self,
        manifest_cid: Cid,
        manifest: Manifest,
        manifest_bytes: Bytes,
        sink: Option<mpsc::Sender<Bytes>>,
        progress: Arc<DownloadProgress>,
    ) -> Result<(), DownloadError> {
        let tree = manifest.tree_cid;
        let total = manifest.blocks_count();
        let cid_text = cid_string(&manifest_cid);
        let partial = self.partial().register(tree);

        let (writer, write_rx) = mpsc::channel::<WriteOp>(64);
        let store = self.store().clone();
        let writing = tokio::task::spawn_blocking(move || write_upload(store.as_ref(), write_rx));

        let mut reader = sink.map(|s| {
            let order = InOrder::new(total, u64::from(manifest.block_size), manifest.dataset_size);
            (s, order)
        });

        let mut exchange =
            Exchange::start(self, manifest_cid, tree, 0..total, total, progress).await;
        let result = loop {
            let leaf = match exchange.next().await {
                Ok(Some(leaf)) => leaf,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            // Kept once, in the registry that also serves it to peers; the commit takes
            // the dataset's leaves from there.
            let FetchedLeaf {
                index,
                cid,
                data,
                proof,
            } = leaf;
            partial.insert(index, LeafRef { cid, proof });
            let ready = reader
                .as_mut()
                .map(|(_, order)| order.push(index, data.clone()));
            if writer.send(WriteOp::Put(cid, data)).await.is_err() {
                break Ok(()); // the writer failed; its error is collected below
            }
            if let (Some((s, _)), Some(ready)) = (&reader, ready) {
                if !send_all(s, ready).await {
                    break Err(DownloadError::ReaderGone {
                        cid: cid_text.clone(),
                    });
                }
            }
        };

        let leaves = (result.is_ok() && exchange.done_count() == total)
            .then(|| partial.leaves(total))
            .flatten();
        let finished = leaves.is_some();
        if let Some(leaves) = leaves {
            let commit = WriteOp::Commit {
                tree,
                leaves,
                manifest_cid,
                manifest: manifest_bytes,
            };
            let _ = writer.send(commit).await;
        }
        drop(writer);
        let written = writing.await.expect("the upload writer does not panic");
        result?;
        written.map_err(|source| DownloadError::Store {
            cid: cid_text.clone(),
            source,
        })?;
        if !finished {
            // The writer stopped early only on a store error, reported just above.
            return Err(exchange.stalled());
        }
        // Sent before the announcement, so the reader's response ends with its last byte.
        if let Some((s, order)) = reader.take() {
            send_all(&s, order.rest()).await;
        }
        self.provide_dataset(&manifest_cid, &manifest.tree_cid)
            .await;
        Ok(())
    }
}

/// False when the reader went away.
async fn send_all(sink: &mpsc::Sender<Bytes>, chunks: Vec<Bytes>) -> bool {
    for c in chunks {
        if sink.send(c).await.is_err() {
            return false;
        }
    }
    true
}

/// Runs on a blocking thread: every verified block goes into one store upload, which only
/// a `Commit` makes durable; a closed channel without it aborts the upload.
fn write_upload(
    store: &dyn neverust_store::BlockStore,
    mut ops: mpsc::Receiver<WriteOp>,
) -> Result<(), StoreError> {
    let mut upload = store.begin_upload()?;
    while let Some(op) = ops.blocking_recv() {
        match op {
            WriteOp::Put(cid, data) => upload.put_block(&cid, data)?,
            WriteOp::Commit {
                tree,
                leaves,
                manifest_cid,
                manifest,
            } => return upload.commit(&tree, leaves, &manifest_cid, manifest),
        }
    }
    upload.abort()
}
