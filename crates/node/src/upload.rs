//! Streaming ingest of an upload: body bytes → 64 KiB blocks → hashes → store, then the
//! Merkle tree, the per-block proofs and the manifest, committed durably in one step.
//!
//! Three stages run side by side so a 2-core machine keeps both cores busy: the async
//! reader cuts the body into blocks, blocking threads (one per core) hash them, another
//! writes them to the store in order. Bounded channels between the stages cap memory at a
//! few MiB whatever the upload's size. Nothing is acknowledged until `Upload::commit` returns; any failure before
//! that aborts the upload, which removes the blocks it added and releases their quota.

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use neverust_content::{
    cid_from_digest, codec, Chunker, Cid, Digest, Manifest, MerkleTree, BLOCK_SIZE,
};
use neverust_store::{AlignedBlocks, LeafRef, StoreError, Upload};
use tokio::sync::mpsc;

use crate::state::NodeState;

/// Blocks handed from stage to stage at once: one wakeup per 512 KiB rather than per block.
const HAND_OFF: usize = 8;
/// Hand-offs in flight between two stages (2 × 8 × 64 KiB = 1 MiB per channel).
const STAGE_DEPTH: usize = 2;

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

    let lanes = hash_lanes();
    let (mut block_txs, mut hashed_rxs, mut hashers) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..lanes {
        let (block_tx, block_rx) = mpsc::channel::<Vec<Bytes>>(STAGE_DEPTH);
        let (hashed_tx, hashed_rx) = mpsc::channel::<Vec<Hashed>>(STAGE_DEPTH);
        hashers.push(tokio::task::spawn_blocking(move || {
            hash_stage(block_rx, hashed_tx)
        }));
        block_txs.push(block_tx);
        hashed_rxs.push(hashed_rx);
    }
    let writer = tokio::task::spawn_blocking(move || write_stage(upload, hashed_rxs));

    let read = read_stage(body, block_txs).await;
    // Hashers end when the reader drops their senders, the writer when they all do; a
    // writer error (quota) makes the earlier stages stop at their next send.
    for hasher in hashers {
        hasher.await?;
    }
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

/// Hashing threads: as many as there are cores (up to 4), since hashing is the one stage
/// that costs more than the copies around it.
fn hash_lanes() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// A block with its CID and digest.
type Hashed = (Cid, Digest, Bytes);

/// Cuts the body into blocks and deals them round-robin to the hashers, [`HAND_OFF`] at a
/// time; returns the true byte count.
async fn read_stage<S, E>(
    mut body: S,
    lanes: Vec<mpsc::Sender<Vec<Bytes>>>,
) -> Result<u64, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    // Aligned, recycled block buffers: the disk store writes them without another copy.
    let mut chunker = Chunker::with_alloc(BLOCK_SIZE, AlignedBlocks::new());
    let mut ready = Vec::new();
    let mut received = 0u64;
    let mut next = 0usize;
    while let Some(frame) = body.next().await {
        let frame = frame.map_err(|e| UploadError::Body {
            received,
            reason: e.to_string(),
        })?;
        received += frame.len() as u64;
        chunker.push(&frame, |block| ready.push(block));
        deal(&lanes, &mut next, &mut ready, false).await?;
    }
    let total = chunker.finish(|block| ready.push(block));
    deal(&lanes, &mut next, &mut ready, true).await?;
    Ok(total)
}

/// Sends `blocks` to the hashers, [`HAND_OFF`] to a lane in turn, keeping a last partial
/// hand-off unless `all`; `next` counts the hand-offs so far, so the writer knows which
/// lane holds the next one.
async fn deal(
    lanes: &[mpsc::Sender<Vec<Bytes>>],
    next: &mut usize,
    blocks: &mut Vec<Bytes>,
    all: bool,
) -> Result<(), UploadError> {
    while blocks.len() >= HAND_OFF || (all && !blocks.is_empty()) {
        let rest = blocks.split_off(blocks.len().min(HAND_OFF));
        let batch = std::mem::replace(blocks, rest);
        lanes[*next % lanes.len()]
            .send(batch)
            .await
            .map_err(|_| UploadError::Task("the upload pipeline stopped".into()))?;
        *next += 1;
    }
    Ok(())
}

fn hash_stage(mut rx: mpsc::Receiver<Vec<Bytes>>, tx: mpsc::Sender<Vec<Hashed>>) {
    while let Some(blocks) = rx.blocking_recv() {
        let hashed = blocks
            .into_iter()
            .map(|block| {
                let digest = neverust_content::sha256(&block);
                (cid_from_digest(codec::BLOCK, &digest), digest, block)
            })
            .collect();
        if tx.blocking_send(hashed).is_err() {
            return;
        }
    }
}

type Written = (Box<dyn Upload>, Vec<Digest>);

/// Takes the hashed blocks back in the order they were dealt: the first lane that runs dry
/// marks the end of the upload.
fn write_stage(
    mut upload: Box<dyn Upload>,
    mut lanes: Vec<mpsc::Receiver<Vec<Hashed>>>,
) -> Result<Written, UploadError> {
    let mut digests = Vec::new();
    let count = lanes.len();
    let mut turn = 0;
    while let Some(hashed) = lanes[turn % count].blocking_recv() {
        turn += 1;
        for (cid, digest, block) in hashed {
            if let Err(e) = upload.put_block(&cid, block) {
                // Dropping the receivers stops the hashers, which stop the reader.
                drop(lanes);
                let _ = upload.abort();
                return Err(e.into());
            }
            digests.push(digest);
        }
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
