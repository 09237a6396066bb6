//! The JSON shapes Archivist's REST API returns for the market (openapi.yaml `Purchase`,
//! `Reservation`, `SlotAgent`, `Slot`, `StorageRequest` with its `id`), so the REST step only
//! fills them in.

use serde::{Deserialize, Serialize, Serializer};

use crate::ids::{AvailabilityId, RequestId, ReservationId, SlotId};
use crate::request::StorageRequest;
use crate::states::{PurchaseState, SaleState};

/// A request as the API shows it: its fields plus its derived `id`.
#[derive(Serialize)]
struct WithId<'a> {
    id: RequestId,
    #[serde(flatten)]
    request: &'a StorageRequest,
}

fn ser_request<S: Serializer>(r: &StorageRequest, s: S) -> Result<S::Ok, S::Error> {
    WithId {
        id: r.id(),
        request: r,
    }
    .serialize(s)
}

fn ser_opt_request<S: Serializer>(r: &Option<StorageRequest>, s: S) -> Result<S::Ok, S::Error> {
    match r {
        Some(r) => ser_request(r, s),
        None => s.serialize_none(),
    }
}

/// `GET /storage/purchases/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Purchase {
    pub state: PurchaseState,
    pub error: Option<String>,
    #[serde(
        serialize_with = "ser_opt_request",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub request: Option<StorageRequest>,
    pub request_id: RequestId,
}

/// A host's hold on part of an availability for one slot (reservations.nim `Reservation`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    pub id: ReservationId,
    pub availability_id: AvailabilityId,
    pub size: u64,
    pub request_id: RequestId,
    pub slot_index: u64,
    pub valid_until: u64,
}

/// `GET /sales/slots/{slotId}`: one sale in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotAgent {
    pub slot_index: u64,
    pub request_id: RequestId,
    #[serde(
        serialize_with = "ser_opt_request",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub request: Option<StorageRequest>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reservation: Option<Reservation>,
    pub state: SaleState,
}

/// `GET /sales/slots`: a slot the host holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Slot {
    pub id: SlotId,
    #[serde(serialize_with = "ser_request")]
    pub request: StorageRequest,
    pub slot_index: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Address;

    #[test]
    fn purchase_json_has_archivists_fields() {
        let request = crate::request::tests::request(Address([3; 20]));
        let p = Purchase {
            state: PurchaseState::Submitted,
            error: None,
            request_id: request.id(),
            request: Some(request.clone()),
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["state"], "submitted");
        assert_eq!(v["requestId"], request.id().to_hex());
        assert_eq!(v["request"]["id"], request.id().to_hex());
        assert_eq!(v["request"]["ask"]["slots"], 4);
        assert!(v["error"].is_null());
        let back: Purchase = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);

        let agent = SlotAgent {
            slot_index: 1,
            request_id: request.id(),
            request: None,
            reservation: None,
            state: SaleState::SaleDownloading,
        };
        let v = serde_json::to_value(&agent).unwrap();
        assert_eq!(v["state"], "SaleDownloading");
        assert_eq!(v["slotIndex"], 1);
        let slot = Slot {
            id: request.slot_id(1),
            request: request.clone(),
            slot_index: 1,
        };
        let v = serde_json::to_value(&slot).unwrap();
        assert_eq!(v["request"]["id"], request.id().to_hex());
    }
}
