//! Dataset routes: upload, list, download, delete, manifest lookup and space.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use neverust_content::{cid_string, codec, Cid, Manifest};

use super::answers::{DataItem, DataList, ManifestItem, Space};
use super::upload_meta::upload_meta;
use super::{parse_cid, ApiError};
use crate::local_read;
use crate::state::NodeState;
use crate::upload;

/// A manifest as Archivist's `DataItem` shows it.
pub fn manifest_item(manifest: &Manifest) -> ManifestItem {
    ManifestItem {
        tree_cid: cid_string(&manifest.tree_cid),
        dataset_size: manifest.dataset_size,
        block_size: manifest.block_size as u64,
        filename: manifest.filename.clone(),
        mimetype: manifest.mimetype.clone(),
        protected: manifest.erasure.is_some(),
    }
}

pub(super) fn data_item(cid: &Cid, manifest: &Manifest) -> DataItem {
    DataItem {
        cid: cid_string(cid),
        manifest: manifest_item(manifest),
    }
}

/// Refused uploads up to this size are read to the end before the refusal is sent.
const DRAIN_REFUSED_BODY: u64 = 16 << 20;

pub async fn upload(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<String, ApiError> {
    let meta = upload_meta(&headers)?;
    if let Some(len) = content_length(&headers) {
        if let Err(refused) = check_quota(&state, len).await {
            // Most clients write the whole body before reading the answer; closing on them
            // mid-body shows them a broken pipe instead of the 422. A small body is read
            // and dropped first; a large one is not worth the bandwidth.
            if len <= DRAIN_REFUSED_BODY {
                let mut rest = body.into_data_stream();
                let drain = async { while let Some(Ok(_)) = rest.next().await {} };
                let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
            }
            return Err(refused);
        }
    }
    let uploaded = upload::ingest(&state, body.into_data_stream(), meta).await?;
    tracing::info!(cid = %uploaded.manifest_cid, size = uploaded.manifest.dataset_size, "stored dataset");
    state
        .net
        .provide_dataset(&uploaded.manifest_cid, &uploaded.manifest.tree_cid)
        .await;
    Ok(cid_string(&uploaded.manifest_cid))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Refuses an upload that cannot fit before reading any of it, so a client does not stream
/// gigabytes only to be told no. Uploads without a length are checked block by block.
async fn check_quota(state: &NodeState, len: u64) -> Result<(), ApiError> {
    let space = state.with_store("space", |s| s.space()).await?;
    let blocks = len.div_ceil(neverust_content::BLOCK_SIZE as u64);
    let needed = blocks * neverust_content::BLOCK_SIZE as u64;
    let free = space
        .quota_max_bytes
        .saturating_sub(space.quota_used_bytes + space.quota_reserved_bytes);
    if needed > free {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "Not enough storage quota: the upload needs {needed} bytes, {free} of the quota of {} bytes are free (used: {}, reserved: {})",
                space.quota_max_bytes, space.quota_used_bytes, space.quota_reserved_bytes
            ),
        ));
    }
    Ok(())
}

pub async fn list(State(state): State<Arc<NodeState>>) -> Result<Json<DataList>, ApiError> {
    let manifests = state.with_store("list", |s| s.list_manifests()).await?;
    let content = manifests
        .iter()
        .filter_map(|(cid, bytes)| Manifest::decode(bytes).ok().map(|m| data_item(cid, &m)))
        .collect();
    Ok(Json(DataList { content }))
}

pub async fn download(
    State(state): State<Arc<NodeState>>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let cid = parse_cid(&raw)?;
    let content = local_read::open(&state, cid).await?;
    Ok(content_response(content))
}

pub(super) fn content_response(content: local_read::Content) -> Response {
    let mut headers = HeaderMap::new();
    describe(&mut headers, content.manifest.as_ref(), content.len);
    // A missing block mid-stream cuts the connection: the client sees a short body against
    // Content-Length instead of silently truncated data.
    let stream = tokio_stream_from(content.body).map(|item| item.map_err(std::io::Error::other));
    (headers, Body::from_stream(stream)).into_response()
}

/// The headers of a content response: type and file name from the manifest, exact length.
pub(super) fn describe(headers: &mut HeaderMap, manifest: Option<&Manifest>, len: u64) {
    let mime = manifest
        .and_then(|m| m.mimetype.as_deref())
        .and_then(|m| HeaderValue::from_str(m).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, mime);
    let disposition = manifest
        .and_then(|m| m.filename.as_deref())
        // A name may hold a quote in its extension (Nim's rules allow it): escaped, so the
        // header still parses.
        .and_then(|f| {
            let f = f.replace('\\', "\\\\").replace('"', "\\\"");
            HeaderValue::from_str(&format!("attachment; filename=\"{f}\"")).ok()
        })
        .unwrap_or(HeaderValue::from_static("attachment"));
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(
        "Access-Control-Expose-Headers",
        HeaderValue::from_static("Content-Disposition"),
    );
}

pub(super) fn tokio_stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
}

pub async fn delete(
    State(state): State<Arc<NodeState>>,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let cid = parse_cid(&raw)?;
    if cid.codec() == codec::MANIFEST {
        match local_read::local_manifest(&state, cid).await {
            Ok(m) => {
                let (tree, blocks) = (m.tree_cid, m.blocks_count());
                state.net.unprovide(&cid).await;
                state
                    .with_store("delete", move |s| s.delete_dataset(&cid, &tree, blocks))
                    .await?;
            }
            // Deleting what is not here leaves the node as asked: nothing to do.
            Err(local_read::LocalReadError::NotFound { .. }) => {}
            Err(local_read::LocalReadError::BadManifest { .. }) => {
                state
                    .with_store("delete", move |s| s.delete_block(&cid))
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        state
            .with_store("delete", move |s| s.delete_block(&cid))
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn space(State(state): State<Arc<NodeState>>) -> Result<Json<Space>, ApiError> {
    let space = state.with_store("space", |s| s.space()).await?;
    // Archivist's four fields, and the tiers of a tiered node beside them.
    Ok(Json(Space {
        total_blocks: space.total_blocks,
        quota_max_bytes: space.quota_max_bytes,
        quota_used_bytes: space.quota_used_bytes,
        quota_reserved_bytes: space.quota_reserved_bytes,
        tiers: state.tiers.as_ref().map(|t| t.answer()),
    }))
}
