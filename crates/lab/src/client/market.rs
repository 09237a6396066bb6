//! Archivist's marketplace routes as the lab uses them: a host's availability and the slots
//! it holds, a client's storage request and its purchase. Bodies and answers are the
//! market crate's own types, so the lab and the node cannot disagree on a field.

use std::time::Duration;

use neverust_market::request::{AvailabilityParams, StorageRequestParams};
use neverust_market::states::PurchaseState;
use neverust_market::views;
use neverust_node::api::answers;

use super::{ClientError, NodeClient};

const LIMIT: Duration = Duration::from_secs(10);

/// A slot a host holds: which request, which of its slots (also as the visualizer's
/// snapshot carries it).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize,
)]
pub struct HeldSlot {
    /// The request id as the API writes it (`0x…`).
    pub request: String,
    pub slot_index: u64,
}

impl ClientError {
    /// The HTTP status the node answered with, when it answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl NodeClient {
    async fn get_answer<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let text = self.get_text(url.clone(), LIMIT).await?;
        answers::decode(&text).map_err(|source| ClientError::Answer { url, source })
    }

    /// `POST /sales/availability`: offers storage on these terms.
    pub async fn post_availability(&self, terms: &AvailabilityParams) -> Result<(), ClientError> {
        self.post_json(self.url("/sales/availability"), terms, LIMIT)
            .await
            .map(drop)
    }

    /// `POST /storage/request/{cid}`: the request's id (`0x…`). A 422 while no host's terms
    /// have reached this node's copy of the ledger is expected: the caller retries.
    pub async fn request_storage(
        &self,
        cid: &str,
        params: &StorageRequestParams,
    ) -> Result<String, ClientError> {
        // Coding the dataset into slots happens before the answer.
        let limit = Duration::from_secs(60);
        let url = self.url(&format!("/storage/request/{cid}"));
        Ok(self.post_json(url, params, limit).await?.trim().to_string())
    }

    /// `GET /storage/purchases/{id}`: the purchase's state.
    pub async fn purchase_state(&self, id: &str) -> Result<PurchaseState, ClientError> {
        let p: views::Purchase = self.get_answer(&format!("/storage/purchases/{id}")).await?;
        Ok(p.state)
    }

    /// `GET /storage/purchases`: the ids of the requests this node made.
    pub async fn purchase_ids(&self) -> Result<Vec<String>, ClientError> {
        self.get_answer("/storage/purchases").await
    }

    /// `GET /sales/slots`: the slots this host holds (filled and being proven).
    pub async fn held_slots(&self) -> Result<Vec<HeldSlot>, ClientError> {
        let slots: Vec<views::Slot> = self.get_answer("/sales/slots").await?;
        let mut held: Vec<HeldSlot> = slots
            .iter()
            .map(|s| HeldSlot {
                request: s.request.id().to_hex(),
                slot_index: s.slot_index,
            })
            .collect();
        held.sort();
        Ok(held)
    }
}
