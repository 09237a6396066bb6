//! `/debug/info` (who we are, where we listen, whom we know) and the run-time log level.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Json;
use neverust_content::cid_string;

use super::answers::{DebugInfo, Download, Ledger, Marketplace, PeersTable, TableNode, Version};
use super::ApiError;
use crate::state::NodeState;

pub async fn info(State(state): State<Arc<NodeState>>) -> Json<DebugInfo> {
    let id = state.identity.peer_id().to_string();
    let spr = state.spr().unwrap_or_default();
    let addrs: Vec<String> = state
        .net
        .listen_addrs()
        .iter()
        .map(|a| a.to_string())
        .collect();
    let local_node = TableNode {
        node_id: id.clone(),
        peer_id: id.clone(),
        record: spr.clone(),
        address: Some(addrs.first().cloned().unwrap_or_default()),
        seen: false,
        agent: None,
    };
    let peers = state.net.peers().await.unwrap_or_default();
    // Archivist's table lists the DHT's nodes; `seen` is true for those we hold a live
    // connection to, which is what the visualizer draws as edges.
    let nodes = peers
        .iter()
        .map(|p| TableNode {
            node_id: p.peer_id.to_string(),
            peer_id: p.peer_id.to_string(),
            record: String::new(),
            address: Some(p.addrs.first().map(|a| a.to_string()).unwrap_or_default()),
            seen: p.connected,
            agent: p.agent.clone(),
        })
        .collect();
    let ledgers = state
        .net
        .engine()
        .ledgers()
        .into_iter()
        .map(|(peer, a)| Ledger {
            peer_id: peer.to_string(),
            blocks_sent: a.blocks_sent,
            bytes_sent: a.bytes_sent,
            blocks_received: a.blocks_received,
            bytes_received: a.bytes_received,
            refused: a.refused,
        })
        .collect();
    let policy = state.net.engine().policy();
    let downloads = state
        .downloads
        .snapshot()
        .into_iter()
        .map(|(cid, done, total)| Download {
            cid: cid_string(&cid),
            blocks_done: done,
            blocks_total: total,
        })
        .collect();
    Json(DebugInfo {
        id,
        addrs: addrs.clone(),
        repo: state.config.data_dir.display().to_string(),
        spr,
        announce_addresses: addrs,
        table: PeersTable { local_node, nodes },
        archivist: Some(Version {
            version: env!("CARGO_PKG_VERSION").to_string(),
            revision: "neverust".to_string(),
        }),
        mode: Some(state.config.mode.as_str().to_string()),
        connected_peers: Some(peers.iter().filter(|p| p.connected).count() as u64),
        marketplace: Some(Marketplace {
            price_per_byte: policy.price_per_byte,
            credit_limit: policy.credit_limit,
            ledgers,
        }),
        downloads: Some(downloads),
        store: Some(state.store_kind.to_string()),
        tiers: state.tiers.as_ref().map(|t| t.answer()),
    })
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
