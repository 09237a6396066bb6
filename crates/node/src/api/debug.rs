//! `/debug/info` (who we are, where we listen, whom we know) and the run-time log level.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Json;
use serde_json::{json, Value};

use super::ApiError;
use crate::state::NodeState;

pub async fn info(State(state): State<Arc<NodeState>>) -> Json<Value> {
    let id = state.identity.peer_id().to_string();
    let spr = state.spr().unwrap_or_default();
    let addrs: Vec<String> = state.listen_addrs.iter().map(|a| a.to_string()).collect();
    let local = json!({
        "nodeId": id,
        "peerId": id,
        "record": spr,
        "address": addrs.first().cloned().unwrap_or_default(),
        "seen": false,
    });
    Json(json!({
        "id": id,
        "addrs": addrs,
        "repo": state.config.data_dir.display().to_string(),
        "spr": spr,
        "announceAddresses": addrs,
        "table": { "localNode": local, "nodes": [] },
        "archivist": { "version": env!("CARGO_PKG_VERSION"), "revision": "neverust" },
        "mode": state.config.mode.as_str(),
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
