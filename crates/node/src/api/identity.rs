//! Who this node is: `/peerid` and `/spr`, as JSON or text depending on `Accept`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::answers::{PeerIdAnswer, SprAnswer};
use super::{prefers_text, ApiError};
use crate::state::NodeState;

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

pub async fn peer_id(State(state): State<Arc<NodeState>>, headers: HeaderMap) -> Response {
    let id = state.identity.peer_id().to_string();
    if prefers_text(&headers) {
        text(id)
    } else {
        Json(PeerIdAnswer { id }).into_response()
    }
}

pub async fn spr(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let spr = state.spr().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Node SPR not ready, try again later",
        )
    })?;
    Ok(if prefers_text(&headers) {
        text(spr)
    } else {
        Json(SprAnswer { spr }).into_response()
    })
}
