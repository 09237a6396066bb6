//! Streaming ingest of an upload: body bytes → 64 KiB blocks → hashes → store, then the
//! Merkle tree, the per-block proofs and the manifest, committed durably in one step.
//!
//! Three stages run side by side so a 2-core machine keeps both cores busy: the async
//! reader cuts the body into blocks, one blocking thread hashes them, another writes them
//! to the store. Bounded channels between the stages cap memory at a few MiB whatever the
//! upload's size. Nothing is acknowledged until `Upload::commit` returns; any failure before
//! that aborts the upload, which removes the blocks it added and releases their quota.

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use neverust_content::{
    cid_from_digest, codec, Chunker, Cid, Digest, Manifest, MerkleTree, BLOCK_SIZE,
};
use neverust_store::{LeafRef, StoreError, Upload};
use tokio::sync::mpsc;

use crate::state::NodeState;

/// Blocks in flight between two stages (16 × 64 KiB = 1 MiB per channel).
const STAGE_DEPTH: usize = 16;

#[derive(Debug, Default, Clone)]
pub struct UploadMeta {
    pub filename: Option<String>,
    pub mimetype: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    #[error("the upload is empty: a dataset needs at least one byte")]
    Empty,
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("reading the request body failed after {received} bytes: {reason}")]
    Body { received: u64, reason: String },
    #[error("building the dataset failed: {0}")]
    Content(#[from] neverust_content::ContentError),
    #[error("upload task failed: {0}")]
    Task(String),
}

impl From<tokio::task::JoinError> for UploadError {
    fn from(e: tokio::task::JoinError) -> Self {
        UploadError::Task(e.to_string())
    }
}

pub struct Uploaded {
    pub manifest_cid: Cid,
    pub manifest: Manifest,
}

/// Stores `body` as a dataset and returns its manifest once everything is durable.
pub async fn ingest<S, E>(
    state: &Arc<NodeState>,
    body: S,
    meta: UploadMeta,
) -> Result<Uploaded, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let store = state.store.clone();
    let upload = tokio::task::spawn_blocking(move || store.begin_upload()).await??;

    let (block_tx, block_rx) = mpsc::channel::<Bytes>(STAGE_DEPTH);
    let (hashed_tx, hashed_rx) = mpsc::channel::<(Cid, Digest, Bytes)>(STAGE_DEPTH);
    let hasher = tokio::task::spawn_blocking(move || hash_stage(block_rx, hashed_tx));
    let writer = tokio::task::spawn_blocking(move || write_stage(upload, hashed_rx));

    let read = read_stage(body, block_tx).await;
    // The hasher ends when the reader drops its sender, the writer when the hasher does; a
    // writer error (quota) makes the earlier stages stop at their next send.
    hasher.await?;
    let written = writer.await?;
    let (upload, digests, dataset_size) = match (read, written) {
        (Ok(size), Ok((upload, digests))) => (upload, digests, size),
        // A store error explains a failed send better than the send error itself.
        (_, Err(e)) => return Err(e),
        (Err(e), Ok((upload, _))) => {
            abort(upload).await;
            return Err(e);
        }
    };
    if digests.is_empty() {
        abort(upload).await;
        return Err(UploadError::Empty);
    }

    let committing = std::time::Instant::now();
    let finished = tokio::task::spawn_blocking(move || {
        let outcome = seal(digests, dataset_size, meta);
        match outcome {
            Ok((tree_cid, leaves, manifest, manifest_cid, manifest_bytes)) => upload
                .commit(&tree_cid, leaves, &manifest_cid, manifest_bytes)
                .map(|()| Uploaded {
                    manifest_cid,
                    manifest,
                })
                .map_err(UploadError::from),
            Err(e) => {
                let _ = upload.abort();
                Err(e)
            }
        }
    })
    .await??;
    state
        .metrics
        .observe_store_op("commit", state.store_kind, committing.elapsed());
    state.metrics.uploads.inc();
    state.metrics.upload_bytes.inc_by(dataset_size);
    Ok(finished)
}

async fn abort(upload: Box<dyn Upload>) {
    match tokio::task::spawn_blocking(move || upload.abort()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "aborting an upload failed; maintenance reclaims it")
        }
        Err(e) => tracing::warn!(error = %e, "aborting an upload failed; maintenance reclaims it"),
    }
}

/// Cuts the body into blocks and feeds the hasher; returns the true byte count.
async fn read_stage<S, E>(mut body: S, tx: mpsc::Sender<Bytes>) -> Result<u64, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut chunker = Chunker::new(BLOCK_SIZE);
    let mut ready = Vec::new();
    let mut received = 0u64;
    let stopped = || UploadError::Task("the upload pipeline stopped".into());
    while let Some(frame) = body.next().await {
        let frame = frame.map_err(|e| UploadError::Body {
            received,
            reason: e.to_string(),
        })?;
        received += frame.len() as u64;
        chunker.push(&frame, |block| ready.push(block));
        for block in ready.drain(..) {
            tx.send(block).await.map_err(|_| stopped())?;
        }
    }
    let total = chunker.finish(|block| ready.push(block));
    for block in ready.drain(..) {
        tx.send(block).await.map_err(|_| stopped())?;
    }
    Ok(total)
}

fn hash_stage(mut rx: mpsc::Receiver<Bytes>, tx: mpsc::Sender<(Cid, Digest, Bytes)>) {
    while let Some(block) = rx.blocking_recv() {
        let digest = neverust_content::sha256(&block);
        let cid = cid_from_digest(codec::BLOCK, &digest);
        if tx.blocking_send((cid, digest, block)).is_err() {
            return;
        }
    }
}

type Written = (Box<dyn Upload>, Vec<Digest>);

fn write_stage(
    mut upload: Box<dyn Upload>,
    mut rx: mpsc::Receiver<(Cid, Digest, Bytes)>,
) -> Result<Written, UploadError> {
    let mut digests = Vec::new();
    while let Some((cid, digest, block)) = rx.blocking_recv() {
        if let Err(e) = upload.put_block(&cid, block) {
            // Dropping the receiver stops the hasher, which stops the reader.
            drop(rx);
            let _ = upload.abort();
            return Err(e.into());
        }
        digests.push(digest);
    }
    Ok((upload, digests))
}

type Sealed = (Cid, Vec<LeafRef>, Manifest, Cid, Bytes);

/// Builds the tree, one proof per block and the manifest: everything `commit` records.
fn seal(digests: Vec<Digest>, dataset_size: u64, meta: UploadMeta) -> Result<Sealed, UploadError> {
    let leaf_cids: Vec<Cid> = digests
        .iter()
        .map(|d| cid_from_digest(codec::BLOCK, d))
        .collect();
    let tree = MerkleTree::new(digests)?;
    let tree_cid = tree.root_cid();
    let leaves = leaf_cids
        .into_iter()
        .enumerate()
        .map(|(i, cid)| {
            Ok(LeafRef {
                cid,
                proof: Bytes::from(tree.proof(i)?.encode()),
            })
        })
        .collect::<Result<Vec<_>, neverust_content::ContentError>>()?;
    let manifest = Manifest::new_dataset(tree_cid, dataset_size, meta.filename, meta.mimetype);
    let bytes = Bytes::from(manifest.encode());
    let manifest_cid = manifest.cid();
    Ok((tree_cid, leaves, manifest, manifest_cid, bytes))
}
