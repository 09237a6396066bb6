//! Getting datasets from the network: the manifest first (from whoever provides it), then
//! every block through `neverust-net`'s download, which stores the dataset with one durable
//! commit and announces it. One download per dataset at a time: a second request for the
//! same dataset joins the first instead of fetching everything twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use neverust_content::{cid_string, codec, Cid, Manifest};
use neverust_net::{DownloadError, DownloadProgress, NetError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::local_read::LocalReadError;
use crate::manifest::{self, BadManifest};
use crate::state::NodeState;

/// How long a manifest fetch may wait for a provider to deliver.
const MANIFEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Blocks a streaming reader may lag behind the download before the download waits for it.
const STREAM_BUFFER: usize = 64;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error("{cid} is not a manifest CID (codec 0x{codec:x}, expected 0xcd01)")]
    NotManifest { cid: String, codec: u64 },
    #[error("failed to download dataset manifest: {0}")]
    Manifest(#[from] NetError),
    #[error(transparent)]
    BadManifest(#[from] BadManifest),
    #[error(transparent)]
    Local(#[from] LocalReadError),
}

/// Downloads running in the background, by manifest CID.
#[derive(Default)]
pub struct ActiveDownloads {
    running: Mutex<HashMap<Cid, Arc<DownloadProgress>>>,
}

impl ActiveDownloads {
    pub fn snapshot(&self) -> Vec<(Cid, u64, u64)> {
        use std::sync::atomic::Ordering;
        let running = self.running.lock().expect("downloads lock");
        running
            .iter()
            .map(|(cid, p)| {
                (
                    *cid,
                    p.blocks_done.load(Ordering::Relaxed),
                    p.blocks_total.load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

/// The manifest, from the local store or else from the network (not stored on its own: it
/// is stored with the dataset, so a listed dataset is always a complete one).
pub async fn manifest(state: &NodeState, cid: Cid) -> Result<(Manifest, Bytes), FetchError> {
    if cid.codec() != codec::MANIFEST {
        return Err(FetchError::NotManifest {
            cid: cid_string(&cid),
            codec: cid.codec(),
        });
    }
    let local = state
        .with_store("get", move |s| s.get_block(&cid))
        .await
        .map_err(LocalReadError::from)?;
    let bytes = match local {
        Some(b) => b,
        None => state.net.fetch_block(&cid, MANIFEST_TIMEOUT).await?,
    };
    let manifest = manifest::decode(&cid, &bytes)?;
    Ok((manifest, bytes))
}

/// Whether the whole dataset is here. Uploads and downloads commit manifest and leaves in
/// one transaction, so a stored manifest with its last leaf means all of it.
pub async fn is_complete(state: &NodeState, cid: Cid, manifest: &Manifest) -> bool {
    let (tree, last) = (manifest.tree_cid, manifest.blocks_count().saturating_sub(1));
    state
        .with_store("get", move |s| {
            Ok(s.has_block(&cid)? && s.get_leaf(&tree, last)?.is_some())
        })
        .await
        .unwrap_or(false)
}

/// Starts fetching the dataset in the background unless it is here or already coming.
pub fn start_background(state: &Arc<NodeState>, cid: Cid, manifest: Manifest, bytes: Bytes) {
    let progress = {
        let mut running = state.downloads.running.lock().expect("downloads lock");
        if running.contains_key(&cid) {
            return;
        }
        let p = Arc::new(DownloadProgress::default());
        running.insert(cid, p.clone());
        p
    };
    let state = state.clone();
    tokio::spawn(async move {
        let result = state
            .net
            .download_dataset(cid, manifest, bytes, None, progress)
            .await;
        match result {
            Ok(()) => tracing::info!(cid = %cid_string(&cid), "dataset downloaded"),
            Err(e) => tracing::warn!(cid = %cid_string(&cid), "background download failed: {e}"),
        }
        state
            .downloads
            .running
            .lock()
            .expect("downloads lock")
            .remove(&cid);
    });
}

/// Starts fetching the dataset; its bytes come out of the receiver in order as they arrive,
/// and the handle gives the verdict once the sender closes. Dropping the receiver stops the
/// download, which then keeps nothing.
pub fn start_streaming(
    state: &Arc<NodeState>,
    cid: Cid,
    manifest: Manifest,
    bytes: Bytes,
) -> (mpsc::Receiver<Bytes>, JoinHandle<Result<(), DownloadError>>) {
    let (sink, rx) = mpsc::channel::<Bytes>(STREAM_BUFFER);
    let state = state.clone();
    let download = tokio::spawn(async move {
        let progress = Arc::new(DownloadProgress::default());
        let result = state
            .net
            .download_dataset(cid, manifest, bytes, Some(sink), progress)
            .await;
        match &result {
            Err(DownloadError::ReaderGone { .. }) => {
                tracing::debug!(cid = %cid_string(&cid), "the reader left a streaming download")
            }
            Err(e) => tracing::warn!(cid = %cid_string(&cid), "streaming download failed: {e}"),
            Ok(()) => {}
        }
        result
    });
    (rx, download)
}
