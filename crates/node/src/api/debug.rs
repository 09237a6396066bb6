//! `/debug/info` (who we are, where we listen, whom we know) and the run-time log level.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Json;
use neverust_content::cid_string;
use serde_json::{json, Value};

use super::ApiError;
use crate::state::NodeState;

pub async fn info(State(state): State<Arc<NodeState>>) -> Json<Value> {
    let id = state.identity.peer_id().to_string();
    let spr = state.spr().unwrap_or_default();
    let addrs: Vec<String> = state
        .net
        .listen_addrs()
        .iter()
        .map(|a| a.to_string())
        .collect();
    let local = json!({
        "nodeId": id,
        "peerId": id,
        "record": spr,
        "address": addrs.first().cloned().unwrap_or_default(),
        "seen": false,
    });
    let peers = state.net.peers().await.unwrap_or_default();
    // Archivist's table lists the DHT's nodes; `seen` is true for those we hold a live
    // connection to, which is what the visualizer draws as edges.
    let nodes: Vec<Value> = peers
        .iter()
        .map(|p| {
            let mut node = json!({
                "nodeId": p.peer_id.to_string(),
                "peerId": p.peer_id.to_string(),
                "record": "",
                "address": p.addrs.first().map(|a| a.to_string()).unwrap_or_default(),
                "seen": p.connected,
            });
            if let Some(agent) = &p.agent {
                node["agent"] = json!(agent);
            }
            node
        })
        .collect();
    let ledgers: Vec<Value> = state
        .net
        .engine()
        .ledgers()
        .into_iter()
        .map(|(peer, a)| {
            json!({
                "peerId": peer.to_string(),
                "blocksSent": a.blocks_sent,
                "bytesSent": a.bytes_sent,
                "blocksReceived": a.blocks_received,
                "bytesReceived": a.bytes_received,
                "refused": a.refused,
            })
        })
        .collect();
    let policy = state.net.engine().policy();
    let downloads: Vec<Value> = state
        .downloads
        .snapshot()
        .into_iter()
        .map(|(cid, done, total)| json!({ "cid": cid_string(&cid), "blocksDone": done, "blocksTotal": total }))
        .collect();
    Json(json!({
        "id": id,
        "addrs": addrs,
        "repo": state.config.data_dir.display().to_string(),
        "spr": spr,
        "announceAddresses": addrs,
        "table": { "localNode": local, "nodes": nodes },
        "archivist": { "version": env!("CARGO_PKG_VERSION"), "revision": "neverust" },
        "mode": state.config.mode.as_str(),
        "connectedPeers": peers.iter().filter(|p| p.connected).count(),
        "marketplace": {
            "pricePerByte": policy.price_per_byte,
            "creditLimit": policy.credit_limit,
            "ledgers": ledgers,
        },
        "downloads": downloads,
        "store": state.store_kind,
        "tiers": state.tiers.as_ref().map(|t| t.json()),
    }))
}

pub async fn set_log_level(
    Query(query): Query<HashMap<String, String>>,
) -> Result<&'static str, ApiError> {
    let level = query
        .get("level")
        .ok_or_else(|| ApiError::bad_request("Missing log level"))?;
    crate::logging::set_level(level).map_err(|e| match e {
        crate::logging::LogLevelError::Invalid { .. } => ApiError::bad_request(e.to_string()),
        _ => ApiError::internal(e),
    })?;
    Ok("")
}
