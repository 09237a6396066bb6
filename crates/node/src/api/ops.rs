//! Operational routes: health, Prometheus metrics, and the OpenAPI document we serve.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::IntoResponse;

use super::ApiError;
use crate::state::NodeState;

/// The contract of the API this node serves, checked by the schemathesis run in CI.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

pub async fn health() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "OK")
}

pub async fn metrics(State(state): State<Arc<NodeState>>) -> impl IntoResponse {
    state.refresh_store_gauges();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML)
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {}", uri.path()),
    )
}
