//! The REST API: Archivist's routes under `/api/archivist/v1`, plus `/health` and `/metrics`.
//!
//! One file per group of routes; this module assembles the router, maps every error to an
//! HTTP status in one place (`ApiError`), and counts requests by route and status.

pub mod answers;
mod data;
mod debug;
mod identity;
mod market;
mod network;
mod ops;
mod upload_meta;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::metrics::{RequestLabels, RouteLabels};
use crate::state::NodeState;

pub const BASE: &str = "/api/archivist/v1";

pub fn router(state: Arc<NodeState>) -> Router {
    let api = Router::new()
        .route("/data", get(data::list).post(data::upload))
        .route("/data/{cid}", get(data::download).delete(data::delete))
        .route("/data/{cid}/network", post(network::fetch))
        .route("/data/{cid}/network/stream", get(network::stream))
        .route("/data/{cid}/network/manifest", get(network::manifest))
        .route("/connect/{peer_id}", get(network::connect))
        .route("/space", get(data::space))
        .route("/peerid", get(identity::peer_id))
        .route("/spr", get(identity::spr))
        .route("/debug/info", get(debug::info))
        .route("/debug/chronicles/loglevel", post(debug::set_log_level))
        .route("/openapi.yaml", get(ops::openapi))
        .route(
            "/sales/availability",
            get(market::availabilities).post(market::create_availability),
        )
        .route(
            "/sales/availability/{id}",
            axum::routing::patch(market::update_availability),
        )
        .route(
            "/sales/availability/{id}/reservations",
            get(market::reservations),
        )
        .route("/sales/slots", get(market::slots))
        .route("/sales/slots/{slot_id}", get(market::slot))
        .route("/storage/request/{cid}", post(market::request_storage))
        .route("/storage/purchases", get(market::purchases))
        .route("/storage/purchases/{id}", get(market::purchase));
    Router::new()
        .nest(BASE, api)
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .fallback(ops::not_found)
        // Uploads are streamed, so no size limit applies to them; nothing else reads bodies.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

async fn count_requests(State(state): State<Arc<NodeState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let metrics = &state.metrics;
    metrics
        .api_request_duration
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .api_requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// An error as Archivist returns it: a status and a plain-text message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, message = %self.message, "request failed");
        }
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.message,
        )
            .into_response()
    }
}

impl From<crate::upload::UploadError> for ApiError {
    fn from(e: crate::upload::UploadError) -> Self {
        use crate::upload::UploadError as E;
        use neverust_store::StoreError;
        let status = match &e {
            // Archivist answers quota problems with 422 ("Not enough storage quota"), the
            // status its openapi.yaml documents for uploads it refuses.
            E::Store(StoreError::QuotaExceeded { .. }) | E::Empty => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            E::Body { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<crate::local_read::LocalReadError> for ApiError {
    fn from(e: crate::local_read::LocalReadError) -> Self {
        use crate::local_read::LocalReadError as E;
        let status = match &e {
            E::NotFound { .. } => StatusCode::NOT_FOUND,
            E::BadManifest { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<crate::state::BlockingError> for ApiError {
    fn from(e: crate::state::BlockingError) -> Self {
        ApiError::internal(e)
    }
}

/// Parses the `{cid}` path segment; a malformed one is the client's error (400).
fn parse_cid(raw: &str) -> Result<neverust_content::Cid, ApiError> {
    neverust_content::parse_cid(raw).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Whether the client asked for `text/plain` over JSON (Archivist's `/peerid` and `/spr`).
fn prefers_text(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(|accept| {
            let text = accept.find("text/plain");
            let json = accept.find("application/json");
            matches!((text, json), (Some(_), None))
                || matches!((text, json), (Some(t), Some(j)) if t < j)
        })
        .unwrap_or(false)
}
