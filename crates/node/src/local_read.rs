//! Reading content from the local store to serve it: a dataset streamed in order from its
//! blocks, or a single block. Nothing here reaches the network (see `network_fetch`).
//!
//! A blocking reader walks the dataset's leaf references ahead of the client through a
//! bounded channel, so a slow client holds at most a few blocks in memory and a fast one is
//! never waiting on one store call at a time.

use std::sync::Arc;

use bytes::Bytes;
use neverust_content::{cid_string, codec, Cid, Manifest};
use neverust_store::{BlockStore, StoreError};
use tokio::sync::mpsc;

use crate::manifest::{self, BadManifest};
use crate::state::{BlockingError, NodeState};

const READ_AHEAD: usize = 8;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalReadError {
    #[error("the requested CID could not be retrieved ({cid} is not stored on this node)")]
    NotFound { cid: String },
    #[error(transparent)]
    BadManifest(#[from] BadManifest),
    #[error("block {index} of dataset {tree} is missing")]
    MissingBlock { tree: String, index: u64 },
    #[error(transparent)]
    Store(#[from] BlockingError),
}

impl From<StoreError> for LocalReadError {
    fn from(e: StoreError) -> Self {
        LocalReadError::Store(BlockingError::Store(e))
    }
}

/// What a local read serves: the manifest (when the CID names a dataset), the exact byte
/// count, and the bytes in order.
pub struct Content {
    pub manifest: Option<Manifest>,
    pub len: u64,
    pub body: mpsc::Receiver<Result<Bytes, LocalReadError>>,
}

async fn local_block(state: &NodeState, cid: Cid) -> Result<Bytes, LocalReadError> {
    state
        .with_store("get", move |s| s.get_block(&cid))
        .await?
        .ok_or_else(|| LocalReadError::NotFound {
            cid: cid_string(&cid),
        })
}

/// Loads and decodes a manifest held locally.
pub async fn local_manifest(state: &NodeState, cid: Cid) -> Result<Manifest, LocalReadError> {
    let block = local_block(state, cid).await?;
    Ok(manifest::decode(&cid, &block)?)
}

pub async fn open(state: &Arc<NodeState>, cid: Cid) -> Result<Content, LocalReadError> {
    if cid.codec() != codec::MANIFEST {
        let block = local_block(state, cid).await?;
        let (tx, rx) = mpsc::channel(1);
        let len = block.len() as u64;
        let _ = tx.try_send(Ok(block));
        return Ok(Content {
            manifest: None,
            len,
            body: rx,
        });
    }
    let manifest = local_manifest(state, cid).await?;
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    let store = state.store.clone();
    let walk = manifest.clone();
    tokio::task::spawn_blocking(move || stream_dataset(store.as_ref(), &walk, tx));
    state.metrics.downloads.inc();
    state.metrics.download_bytes.inc_by(manifest.dataset_size);
    Ok(Content {
        len: manifest.dataset_size,
        manifest: Some(manifest),
        body: rx,
    })
}

fn stream_dataset(
    store: &dyn BlockStore,
    manifest: &Manifest,
    tx: mpsc::Sender<Result<Bytes, LocalReadError>>,
) {
    let tree = manifest.tree_cid;
    let block_size = manifest.block_size as u64;
    let mut remaining = manifest.dataset_size;
    for index in 0..manifest.blocks_count() {
        let block = store.get_leaf(&tree, index).and_then(|leaf| match leaf {
            Some(leaf) => store.get_block(&leaf.cid),
            None => Ok(None),
        });
        let item = match block {
            Ok(Some(mut data)) => {
                // The last block is zero-padded in the store; clients get the true length.
                let keep = remaining.min(block_size).min(data.len() as u64);
                data.truncate(keep as usize);
                remaining -= keep;
                Ok(data)
            }
            Ok(None) => Err(LocalReadError::MissingBlock {
                tree: cid_string(&tree),
                index,
            }),
            Err(e) => Err(e.into()),
        };
        let failed = item.is_err();
        if tx.blocking_send(item).is_err() || failed {
            return;
        }
    }
}
