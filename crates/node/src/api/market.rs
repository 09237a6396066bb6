//! Archivist's marketplace routes: `/sales/*` (a host's availabilities, reservations and
//! slots) and `/storage/*` (a client's requests and purchases), with its status codes
//! (openapi.yaml): 503 "Persistence is not enabled" on a node that does not trade, 400 for
//! a body or id that does not parse, 422 for parameters the market refuses, 404 for what
//! is not there.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use neverust_market::ids::{AvailabilityId, RequestId, SlotId};
use neverust_market::request::{AvailabilityParams, StorageRequestParams};
use serde::de::DeserializeOwned;

use super::{parse_cid, ApiError};
use crate::market::availabilities::{AvailabilityError, AvailabilityPatch};
use crate::market::purchasing::{self, PurchaseError};
use crate::market::{Market, Trader};
use crate::state::NodeState;

fn trader(state: &NodeState) -> Result<(&Arc<Market>, &Trader), ApiError> {
    state
        .market
        .as_ref()
        .and_then(|m| m.trader.as_ref().map(|t| (m, t)))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Persistence is not enabled",
            )
        })
}

fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        ApiError::bad_request(format!("invalid body at {path}: {}", e.inner()))
    })
}

fn hex_id<T>(raw: &str, parse: fn(&str) -> Option<T>, what: &str) -> Result<T, ApiError> {
    parse(raw).ok_or_else(|| ApiError::bad_request(format!("invalid {what}: {raw}")))
}

impl From<AvailabilityError> for ApiError {
    fn from(e: AvailabilityError) -> Self {
        let status = match &e {
            AvailabilityError::NotFound(_) => StatusCode::NOT_FOUND,
            AvailabilityError::Save { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<PurchaseError> for ApiError {
    fn from(e: PurchaseError) -> Self {
        let status = match &e {
            PurchaseError::UnknownDataset(_) => StatusCode::NOT_FOUND,
            PurchaseError::NotDataset { .. } => StatusCode::BAD_REQUEST,
            PurchaseError::Invalid(_) | PurchaseError::TooSmall(_) | PurchaseError::NoHost(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

/// Bytes the store could still take, for an availability's `totalSize`.
async fn quota_free(state: &Arc<NodeState>) -> Result<u64, ApiError> {
    let space = state.with_store("space", |s| s.space()).await?;
    Ok(space
        .quota_max_bytes
        .saturating_sub(space.quota_used_bytes + space.quota_reserved_bytes))
}

pub async fn availabilities(State(state): State<Arc<NodeState>>) -> Result<Response, ApiError> {
    let (_, trader) = trader(&state)?;
    Ok(Json(trader.availabilities.list()).into_response())
}

pub async fn create_availability(
    State(state): State<Arc<NodeState>>,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let (_, trader) = trader(&state)?;
    let params: AvailabilityParams = body(&raw)?;
    let free = quota_free(&state).await?;
    let created = trader.availabilities.create(&params, free)?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

pub async fn update_availability(
    State(state): State<Arc<NodeState>>,
    Path(id): Path<String>,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let (_, trader) = trader(&state)?;
    let id = hex_id(&id, AvailabilityId::from_hex, "availability id")?;
    let patch: AvailabilityPatch = body(&raw)?;
    let free = quota_free(&state).await?;
    trader.availabilities.update(&id, &patch, free)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn reservations(
    State(state): State<Arc<NodeState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (_, trader) = trader(&state)?;
    let id = hex_id(&id, AvailabilityId::from_hex, "availability id")?;
    Ok(Json(trader.availabilities.reservations(&id)?).into_response())
}

pub async fn slots(State(state): State<Arc<NodeState>>) -> Result<Response, ApiError> {
    let (_, trader) = trader(&state)?;
    Ok(Json(trader.sales.held()).into_response())
}

pub async fn slot(
    State(state): State<Arc<NodeState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (_, trader) = trader(&state)?;
    let id = hex_id(&id, SlotId::from_hex, "slot id")?;
    let agent = trader.sales.agent(&id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Host is not in an active sale for the slot {id}"),
        )
    })?;
    Ok(Json(agent).into_response())
}

pub async fn request_storage(
    State(state): State<Arc<NodeState>>,
    Path(cid): Path<String>,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let (market, _) = trader(&state)?;
    let cid = parse_cid(&cid)?;
    let params: StorageRequestParams = body(&raw)?;
    let id = purchasing::request_storage(&state, market, cid, &params).await?;
    Ok(id.to_hex().into_response())
}

pub async fn purchases(State(state): State<Arc<NodeState>>) -> Result<Response, ApiError> {
    let (market, _) = trader(&state)?;
    let ids: Vec<String> = purchasing::ids(market)
        .iter()
        .map(RequestId::to_hex)
        .collect();
    Ok(Json(ids).into_response())
}

pub async fn purchase(
    State(state): State<Arc<NodeState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (market, _) = trader(&state)?;
    let id = hex_id(&id, RequestId::from_hex, "purchase id")?;
    let p = purchasing::view(market, &id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("Purchase {id} not found")))?;
    Ok(Json(p).into_response())
}
