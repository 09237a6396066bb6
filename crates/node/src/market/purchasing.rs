//! A client's purchases (archivist/purchasing): `POST /storage/request/{cid}` checks the
//! request, codes the dataset into slots, escrows the price and posts the request; from then
//! on the purchase's state is the request's in the books. A refused request leaves nothing
//! behind: the coded dataset is deleted again.

use std::sync::Arc;

use neverust_content::{cid_string, Cid, Manifest, BLOCK_SIZE};
use neverust_market::erasure::{ErasureError, SlotLayout};
use neverust_market::ids::{Nonce, RequestId};
use neverust_market::ledger::{Action, MarketState};
use neverust_market::request::{
    StorageAsk, StorageContent, StorageRequest, StorageRequestParams, ValidationError,
};
use neverust_market::states::{PurchaseState, RequestState};
use neverust_market::views;

use super::link::unix_now;
use super::metrics::MarketMetrics;
use super::slot_data;
use super::Market;
use crate::state::NodeState;

#[derive(Debug, thiserror::Error)]
pub enum PurchaseError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("no dataset {0} is stored on this node")]
    UnknownDataset(String),
    #[error("{cid} is not a dataset manifest: {reason}")]
    NotDataset { cid: String, reason: String },
    #[error("{0}")]
    TooSmall(ErasureError),
    #[error("no host offers storage for this request: {0}")]
    NoHost(String),
    #[error("storing the coded dataset: {0}")]
    Code(#[from] slot_data::SlotDataError),
    #[error("the market refused the request: {0}")]
    Refused(String),
    #[error("reading the dataset: {0}")]
    Store(String),
}

fn purchase_state(s: RequestState) -> PurchaseState {
    match s {
        RequestState::New => PurchaseState::Submitted,
        RequestState::Started => PurchaseState::Started,
        RequestState::Finished => PurchaseState::Finished,
        RequestState::Cancelled => PurchaseState::Cancelled,
        RequestState::Failed => PurchaseState::Failed,
    }
}

/// A client's purchase: a request in the books it signed. A request refused before it
/// reached the market was answered with an error and is kept nowhere.
pub fn view(market: &Market, id: &RequestId) -> Option<views::Purchase> {
    market.copy().read(|l| {
        l.request(id)
            .filter(|r| r.request.client == market.me)
            .map(|r| views::Purchase {
                state: purchase_state(r.state),
                error: None,
                request: Some(r.request.clone()),
                request_id: *id,
            })
    })
}

pub fn ids(market: &Market) -> Vec<RequestId> {
    let mut ids: Vec<RequestId> = market.copy().read(|l| {
        l.books()
            .requests
            .values()
            .filter(|r| r.request.client == market.me)
            .map(|r| r.id)
            .collect()
    });
    ids.sort();
    ids
}

/// Checks, codes, escrows and posts a storage request for dataset `cid`.
pub async fn request_storage(
    state: &Arc<NodeState>,
    market: &Market,
    cid: Cid,
    params: &StorageRequestParams,
) -> Result<RequestId, PurchaseError> {
    let config = market.copy().config();
    let erasure = params.validate(config.request_duration_limit)?;
    let stored = state
        .with_store("get", move |s| s.get_block(&cid))
        .await
        .map_err(|e| PurchaseError::Store(e.to_string()))?
        .ok_or_else(|| PurchaseError::UnknownDataset(cid_string(&cid)))?;
    let manifest = Manifest::decode(&stored).map_err(|e| PurchaseError::NotDataset {
        cid: cid_string(&cid),
        reason: e.to_string(),
    })?;
    let layout = SlotLayout::new(manifest.blocks_count() as usize, BLOCK_SIZE, erasure)
        .map_err(PurchaseError::TooSmall)?;
    let ask = StorageAsk {
        proof_probability: params.proof_probability,
        price_per_byte_per_second: params.price_per_byte_per_second,
        collateral_per_byte: params.collateral_per_byte,
        slots: erasure.nodes,
        slot_size: layout.slot_size(),
        duration: params.duration,
        max_slot_loss: erasure.tolerance,
    };
    ask.total_price()?;
    ask.collateral_per_slot()?;
    check_offers(market, &ask)?;

    let coded = slot_data::code_dataset(state, cid, erasure).await?;
    let request = StorageRequest {
        client: market.me,
        ask,
        content: StorageContent {
            cid: coded.manifest_cid,
            merkle_root: coded.verify_root,
        },
        expiry: params.expiry,
        nonce: Nonce(rand::random()),
    };
    let id = request.id();
    let posted = post(market, request).await;
    if let Err(e) = posted {
        // Nothing partial stays: the coded dataset goes again.
        let coded_cid = coded.manifest_cid;
        let removed = state
            .with_store("delete", move |s| {
                let bytes = s.get_block(&coded_cid)?;
                if let Some(m) = bytes.and_then(|b| Manifest::decode(&b).ok()) {
                    s.delete_dataset(&coded_cid, &m.tree_cid, m.blocks_count())?;
                }
                Ok(())
            })
            .await;
        if let Err(r) = removed {
            tracing::warn!("removing the coded dataset of a refused request: {r}");
        }
        return Err(e);
    }
    // Hosts find the coded dataset as they find any dataset.
    let announcing = state.clone();
    let (manifest_cid, tree_cid) = (coded.manifest_cid, coded.tree_cid);
    tokio::spawn(async move {
        announcing
            .net
            .provide_dataset(&manifest_cid, &tree_cid)
            .await
    });
    tracing::info!(request = %id, dataset = %cid_string(&cid), slots = erasure.nodes, slot_size = layout.slot_size(), "storage requested");
    Ok(id)
}

/// A request that no published availability could take is refused now rather than left
/// to expire.
fn check_offers(market: &Market, ask: &StorageAsk) -> Result<(), PurchaseError> {
    let valid_until = unix_now().saturating_add(ask.duration);
    let offers = market.copy().read(|l| l.books().offers.clone());
    let terms: Vec<_> = offers
        .iter()
        .filter(|(host, _)| **host != market.me)
        .flat_map(|(_, t)| t.iter())
        .collect();
    if terms.iter().any(|t| t.matches(ask, valid_until)) {
        return Ok(());
    }
    let largest = terms.iter().map(|t| t.free_size).max();
    Err(PurchaseError::NoHost(match largest {
        None => "no host has published an availability".into(),
        Some(free) if free < ask.slot_size => format!(
            "a slot is {} bytes, larger than any availability (the largest has {free} bytes free)",
            ask.slot_size
        ),
        Some(_) => format!(
            "no availability takes slots of {} bytes for {} s at price {} and collateral {} per byte",
            ask.slot_size, ask.duration, ask.price_per_byte_per_second, ask.collateral_per_byte
        ),
    }))
}

async fn post(market: &Market, request: StorageRequest) -> Result<(), PurchaseError> {
    let price = request.ask.total_price()?;
    let refused = |e: super::link::ActError| PurchaseError::Refused(e.to_string());
    market.fund(price).await.map_err(refused)?;
    market
        .link
        .act(Action::RequestStorage { request })
        .await
        .map_err(refused)?;
    Ok(())
}

/// Settles this client's requests whose time has come; counts purchases by state.
pub async fn round(state: &Arc<NodeState>, market: &Market) {
    let now = unix_now();
    let (due, states) = market.copy().read(|l| {
        let mut states = Vec::new();
        let mut due = Vec::new();
        for r in l.books().requests.values() {
            if r.request.client != market.me {
                continue;
            }
            states.push(purchase_state(r.state));
            let settle = match r.state {
                RequestState::New => now > r.expires_at,
                RequestState::Started => now >= r.ends_at,
                _ => false,
            };
            if settle {
                due.push(r.id);
            }
        }
        (due, states)
    });
    MarketMetrics::set_states(&state.metrics.market.purchases, states);
    for id in due {
        if let Err(e) = market.link.act(Action::Settle { request: id }).await {
            tracing::debug!(request = %id, "settling: {e}");
        }
    }
}
