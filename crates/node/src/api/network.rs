//! Routes that reach other nodes: datasets fetched from the network (in the background or
//! streamed), manifests from the network, and dialling a peer.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use libp2p::{Multiaddr, PeerId};

use super::answers::DataItem;
use super::data::{content_response, data_item, tokio_stream_from};
use super::{parse_cid, ApiError};
use crate::local_read;
use crate::network_fetch::{self, FetchError};
use crate::state::NodeState;

impl From<FetchError> for ApiError {
    fn from(e: FetchError) -> Self {
        let e = match e {
            // Local store errors map as every other local read does.
            FetchError::Local(inner) => return ApiError::from(inner),
            other => other,
        };
        let status = match &e {
            FetchError::NotManifest { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::NOT_FOUND,
        };
        ApiError::new(status, e.to_string())
    }
}

/// `POST /data/{cid}/network`: answers with the manifest at once and fetches in the
/// background.
pub async fn fetch(
    State(state): State<Arc<NodeState>>,
    Path(raw): Path<String>,
) -> Result<Json<DataItem>, ApiError> {
    let cid = parse_cid(&raw)?;
    let (manifest, bytes) = network_fetch::manifest(&state, cid).await?;
    if !network_fetch::is_complete(&state, cid, &manifest).await {
        network_fetch::start_background(&state, cid, manifest.clone(), bytes);
    }
    Ok(Json(data_item(&cid, &manifest)))
}

/// `GET /data/{cid}/network/stream`: the dataset's bytes in order, from the local store when
/// complete here, else fetched while streaming.
pub async fn stream(
    State(state): State<Arc<NodeState>>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let cid = parse_cid(&raw)?;
    let (manifest, bytes) = network_fetch::manifest(&state, cid).await?;
    if network_fetch::is_complete(&state, cid, &manifest).await {
        let content = local_read::open(&state, cid).await?;
        return Ok(content_response(content));
    }
    state.metrics.downloads.inc();
    state.metrics.download_bytes.inc_by(manifest.dataset_size);
    let (rx, download) = network_fetch::start_streaming(&state, cid, manifest.clone(), bytes);
    // The bytes as they come, then the download's verdict: a failure ends the body with an
    // error, which cuts the response short of its Content-Length.
    let verdict = futures::stream::once(download).filter_map(|joined| async move {
        match joined {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(Err(std::io::Error::other(e))),
            Err(e) => Some(Err(std::io::Error::other(e))),
        }
    });
    let body = tokio_stream_from(rx).map(Ok).chain(verdict);
    let mut headers = HeaderMap::new();
    super::data::describe(&mut headers, Some(&manifest), manifest.dataset_size);
    Ok((headers, Body::from_stream(body)).into_response())
}

/// `GET /data/{cid}/network/manifest`.
pub async fn manifest(
    State(state): State<Arc<NodeState>>,
    Path(raw): Path<String>,
) -> Result<Json<DataItem>, ApiError> {
    let cid = parse_cid(&raw)?;
    let (manifest, _) = network_fetch::manifest(&state, cid).await?;
    Ok(Json(data_item(&cid, &manifest)))
}

/// `GET /connect/{peerId}?addrs=...`: dials the peer at the given addresses, or wherever the
/// DHT's routing table knows it to be.
pub async fn connect(
    State(state): State<Arc<NodeState>>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let peer: PeerId = raw
        .parse()
        .map_err(|e| ApiError::bad_request(format!("invalid peer id {raw:?}: {e}")))?;
    let mut addrs = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        if key == "addrs" {
            for a in value.split(',').filter(|a| !a.is_empty()) {
                let addr: Multiaddr = a
                    .parse()
                    .map_err(|e| ApiError::bad_request(format!("invalid multiaddr {a:?}: {e}")))?;
                addrs.push(addr);
            }
        }
    }
    if peer == state.net.local_peer_id() {
        return Err(ApiError::bad_request("cannot connect to self"));
    }
    state
        .net
        .dial(Some(peer), addrs)
        .await
        .map_err(|e| ApiError::bad_request(format!("Unable to dial peer: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        "Successfully connected to peer",
    )
        .into_response())
}
