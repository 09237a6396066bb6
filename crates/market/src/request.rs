//! Storage requests (what a client asks for) and availabilities (what a host offers), with
//! Archivist's validation rules and its matching rule between the two.
//!
//! Shapes follow archivist/contracts/requests.nim (`StorageRequest`, `StorageAsk`,
//! `StorageContent`) and archivist/sales/reservations.nim (`Availability`); JSON names follow
//! openapi.yaml (`StorageRequestCreation`, `StorageRequest`, `SalesAvailability`). Token
//! amounts are `UInt256` in Archivist and decimal strings in its JSON; here they are [`Amount`]
//! (`u128`, ample without a chain's 18-decimal tokens) with checked arithmetic, still decimal
//! strings in JSON and still encoded as 256-bit words for the request id.

use neverust_content::{cid_string, parse_cid, Cid, Digest};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::{keccak256, Address, AvailabilityId, Nonce, RequestId, SlotId};

/// Tokens. Archivist's `UInt256`.
pub type Amount = u128;

/// Amounts travel as decimal strings (openapi.yaml: `PricePerBytePerSecond`, ...).
pub mod amount_string {
    use super::Amount;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(a: &Amount, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&a.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a decimal amount")))
    }
}

fn ser_cid<S: Serializer>(c: &Cid, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&cid_string(c))
}

fn de_cid<'de, D: Deserializer<'de>>(d: D) -> Result<Cid, D::Error> {
    let s = String::deserialize(d)?;
    parse_cid(&s).map_err(serde::de::Error::custom)
}

fn ser_digest<S: Serializer>(x: &Digest, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(x))
}

fn de_digest<'de, D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
    let s = String::deserialize(d)?;
    hex::decode(s.trim_start_matches("0x"))
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| serde::de::Error::custom("not a 32-byte hex digest"))
}

/// Why a request, its creation parameters or an availability is refused. Each variant names
/// the field at fault ([`ValidationError::field`]); messages are Archivist's REST messages
/// (archivist/rest/api.nim) where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    #[error("Expiry must be greater than zero and less than the request's duration (expiry {expiry}, duration {duration})")]
    Expiry { expiry: u64, duration: u64 },
    #[error("duration must be larger then zero")]
    Duration,
    #[error("Duration exceeds limit of {limit} seconds")]
    DurationLimit { duration: u64, limit: u64 },
    #[error("Proof probability must be greater than zero")]
    ProofProbability,
    #[error("Collateral per byte must be greater than zero")]
    CollateralPerByte,
    #[error("Price per byte per second must be greater than zero")]
    PricePerBytePerSecond,
    #[error("Tolerance needs to be bigger then zero")]
    Tolerance,
    #[error(
        "Invalid parameters: `tolerance` cannot be greater than `nodes` ({tolerance} > {nodes})"
    )]
    ToleranceAboveNodes { nodes: u64, tolerance: u64 },
    #[error("Invalid parameters: parameters must satify `1 < (nodes - tolerance) ≥ tolerance` (nodes {nodes}, tolerance {tolerance})")]
    ErasureParameters { nodes: u64, tolerance: u64 },
    #[error("slots must be larger than zero")]
    Slots,
    #[error("slotSize must be larger than zero")]
    SlotSize,
    #[error("maxSlotLoss {max_slot_loss} cannot be greater than slots {slots}")]
    MaxSlotLoss { max_slot_loss: u64, slots: u64 },
    #[error("Total size must be larger then zero")]
    TotalSize,
    #[error("minPricePerBytePerSecond must be larger then zero")]
    MinPricePerBytePerSecond,
    #[error("totalCollateral must be larger then zero")]
    TotalCollateral,
    #[error("{field} overflows: the request's price or collateral does not fit")]
    Overflow { field: &'static str },
}

impl ValidationError {
    /// The JSON field (openapi.yaml spelling) the error is about.
    pub fn field(&self) -> &'static str {
        use ValidationError::*;
        match self {
            Expiry { .. } => "expiry",
            Duration | DurationLimit { .. } => "duration",
            ProofProbability => "proofProbability",
            CollateralPerByte => "collateralPerByte",
            PricePerBytePerSecond => "pricePerBytePerSecond",
            Tolerance | ToleranceAboveNodes { .. } | ErasureParameters { .. } => "tolerance",
            Slots => "slots",
            SlotSize => "slotSize",
            MaxSlotLoss { .. } => "maxSlotLoss",
            TotalSize => "totalSize",
            MinPricePerBytePerSecond => "minPricePerBytePerSecond",
            TotalCollateral => "totalCollateral",
            Overflow { field } => field,
        }
    }
}

/// Body of `POST /storage/request/{cid}` (openapi.yaml `StorageRequestCreation`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageRequestParams {
    pub duration: u64,
    #[serde(with = "amount_string")]
    pub price_per_byte_per_second: Amount,
    #[serde(with = "amount_string")]
    pub proof_probability: Amount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<u64>,
    #[serde(with = "amount_string")]
    pub collateral_per_byte: Amount,
    /// Seconds after submission by which every slot must be filled.
    pub expiry: u64,
}

/// Archivist's defaults when `nodes` / `tolerance` are absent (archivist/rest/api.nim).
pub const DEFAULT_NODES: u64 = 3;
pub const DEFAULT_TOLERANCE: u64 = 1;

/// Erasure parameters that passed [`StorageRequestParams::validate`]: `nodes` slots of which
/// `tolerance` may be lost; K = nodes − tolerance data shards, M = tolerance parity shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErasureParams {
    pub nodes: u64,
    pub tolerance: u64,
}

impl ErasureParams {
    pub fn ec_k(&self) -> usize {
        (self.nodes - self.tolerance) as usize
    }

    pub fn ec_m(&self) -> usize {
        self.tolerance as usize
    }

    /// `tolerance ≥ 1`, `tolerance ≤ nodes`, and Leopard's `1 < K ≥ M`.
    pub fn new(nodes: u64, tolerance: u64) -> Result<Self, ValidationError> {
        if tolerance == 0 {
            return Err(ValidationError::Tolerance);
        }
        if tolerance > nodes {
            return Err(ValidationError::ToleranceAboveNodes { nodes, tolerance });
        }
        let k = nodes - tolerance;
        if k <= 1 || k < tolerance {
            return Err(ValidationError::ErasureParameters { nodes, tolerance });
        }
        Ok(ErasureParams { nodes, tolerance })
    }
}

impl StorageRequestParams {
    /// The checks of Archivist's REST handler, in its order (archivist/rest/api.nim,
    /// `POST /storage/request/{cid}`). `duration_limit` is the marketplace's
    /// `requestDurationLimit`.
    pub fn validate(&self, duration_limit: u64) -> Result<ErasureParams, ValidationError> {
        if self.expiry == 0 || self.expiry >= self.duration {
            return Err(ValidationError::Expiry {
                expiry: self.expiry,
                duration: self.duration,
            });
        }
        if self.proof_probability == 0 {
            return Err(ValidationError::ProofProbability);
        }
        if self.collateral_per_byte == 0 {
            return Err(ValidationError::CollateralPerByte);
        }
        if self.price_per_byte_per_second == 0 {
            return Err(ValidationError::PricePerBytePerSecond);
        }
        if self.duration > duration_limit {
            return Err(ValidationError::DurationLimit {
                duration: self.duration,
                limit: duration_limit,
            });
        }
        ErasureParams::new(
            self.nodes.unwrap_or(DEFAULT_NODES),
            self.tolerance.unwrap_or(DEFAULT_TOLERANCE),
        )
    }
}

/// What the client pays and asks for (requests.nim `StorageAsk`; field order is the ABI order).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageAsk {
    #[serde(with = "amount_string")]
    pub proof_probability: Amount,
    #[serde(with = "amount_string")]
    pub price_per_byte_per_second: Amount,
    #[serde(with = "amount_string")]
    pub collateral_per_byte: Amount,
    pub slots: u64,
    pub slot_size: u64,
    pub duration: u64,
    pub max_slot_loss: u64,
}

impl StorageAsk {
    fn mul(a: Amount, b: u64, field: &'static str) -> Result<Amount, ValidationError> {
        a.checked_mul(b as Amount)
            .ok_or(ValidationError::Overflow { field })
    }

    /// `pricePerBytePerSecond × slotSize`.
    pub fn price_per_slot_per_second(&self) -> Result<Amount, ValidationError> {
        Self::mul(
            self.price_per_byte_per_second,
            self.slot_size,
            "pricePerBytePerSecond",
        )
    }

    /// `duration × pricePerSlotPerSecond`.
    pub fn price_per_slot(&self) -> Result<Amount, ValidationError> {
        Self::mul(
            self.price_per_slot_per_second()?,
            self.duration,
            "pricePerBytePerSecond",
        )
    }

    /// `slots × pricePerSlot`: what the client escrows when posting the request.
    pub fn total_price(&self) -> Result<Amount, ValidationError> {
        Self::mul(self.price_per_slot()?, self.slots, "pricePerBytePerSecond")
    }

    /// `collateralPerByte × slotSize`: what a host escrows when filling a slot.
    pub fn collateral_per_slot(&self) -> Result<Amount, ValidationError> {
        Self::mul(
            self.collateral_per_byte,
            self.slot_size,
            "collateralPerByte",
        )
    }

    /// `slots × slotSize`.
    pub fn size(&self) -> u64 {
        self.slots.saturating_mul(self.slot_size)
    }
}

/// What is stored: the (verifiable) manifest's CID and the root over the slot roots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageContent {
    #[serde(serialize_with = "ser_cid", deserialize_with = "de_cid")]
    pub cid: Cid,
    /// Archivist's `verifyRoot` (a Poseidon2 tree over the slot roots); here the sha256
    /// dataset-style tree over the slot roots, see [`crate::erasure::SlotSet::verify_root`].
    #[serde(serialize_with = "ser_digest", deserialize_with = "de_digest")]
    pub merkle_root: Digest,
}

/// A client's storage request (requests.nim `StorageRequest`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageRequest {
    pub client: Address,
    pub ask: StorageAsk,
    pub content: StorageContent,
    /// Seconds after submission by which all slots must be filled, else the request is
    /// cancelled (relative, as `setupRequest` in archivist/node.nim passes it on).
    pub expiry: u64,
    pub nonce: Nonce,
}

fn word_u64(out: &mut Vec<u8>, x: u64) {
    out.extend_from_slice(&[0u8; 24]);
    out.extend_from_slice(&x.to_be_bytes());
}

fn word_amount(out: &mut Vec<u8>, x: Amount) {
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(&x.to_be_bytes());
}

impl StorageRequest {
    /// Solidity `abi.encode(request)` for
    /// `(address client, (uint256×3, uint64×4) ask, (bytes cid, bytes32 merkleRoot) content,
    /// uint64 expiry, bytes32 nonce)`. The struct is dynamic (it holds `bytes`), so the
    /// encoding opens with its offset (0x20); `content` is reached through an offset from the
    /// start of the struct, and `cid` through one from the start of `content`.
    pub fn abi_encode(&self) -> Vec<u8> {
        const HEAD_WORDS: u64 = 1 + 7 + 1 + 1 + 1;
        let cid = self.content.cid.to_bytes();
        let mut out = Vec::with_capacity(32 * 16 + cid.len());
        word_u64(&mut out, 0x20);
        out.extend_from_slice(&[0u8; 12]);
        out.extend_from_slice(&self.client.0);
        let a = &self.ask;
        word_amount(&mut out, a.proof_probability);
        word_amount(&mut out, a.price_per_byte_per_second);
        word_amount(&mut out, a.collateral_per_byte);
        for x in [a.slots, a.slot_size, a.duration, a.max_slot_loss] {
            word_u64(&mut out, x);
        }
        word_u64(&mut out, HEAD_WORDS * 32);
        word_u64(&mut out, self.expiry);
        out.extend_from_slice(&self.nonce.0);
        // content = (bytes, bytes32): head is [offset of the bytes = 0x40, merkleRoot].
        word_u64(&mut out, 0x40);
        out.extend_from_slice(&self.content.merkle_root);
        word_u64(&mut out, cid.len() as u64);
        out.extend_from_slice(&cid);
        out.resize(out.len().next_multiple_of(32), 0);
        out
    }

    /// `keccak256(abi.encode(request))` (requests.nim `id`).
    pub fn id(&self) -> RequestId {
        RequestId(keccak256(&self.abi_encode()))
    }

    pub fn slot_id(&self, slot_index: u64) -> SlotId {
        SlotId::new(&self.id(), slot_index)
    }

    /// What the marketplace checks before accepting a request: the REST rules on the ask
    /// (expiry, probabilities, prices, duration limit) plus the shape of the ask itself
    /// (slots and slot size non-zero, `maxSlotLoss ≤ slots`) and that prices fit.
    pub fn validate(&self, duration_limit: u64) -> Result<(), ValidationError> {
        let a = &self.ask;
        if a.duration == 0 {
            return Err(ValidationError::Duration);
        }
        if self.expiry == 0 || self.expiry >= a.duration {
            return Err(ValidationError::Expiry {
                expiry: self.expiry,
                duration: a.duration,
            });
        }
        if a.proof_probability == 0 {
            return Err(ValidationError::ProofProbability);
        }
        if a.collateral_per_byte == 0 {
            return Err(ValidationError::CollateralPerByte);
        }
        if a.price_per_byte_per_second == 0 {
            return Err(ValidationError::PricePerBytePerSecond);
        }
        if a.duration > duration_limit {
            return Err(ValidationError::DurationLimit {
                duration: a.duration,
                limit: duration_limit,
            });
        }
        if a.slots == 0 {
            return Err(ValidationError::Slots);
        }
        if a.slot_size == 0 {
            return Err(ValidationError::SlotSize);
        }
        if a.max_slot_loss > a.slots {
            return Err(ValidationError::MaxSlotLoss {
                max_slot_loss: a.max_slot_loss,
                slots: a.slots,
            });
        }
        a.total_price()?;
        a.collateral_per_slot()?;
        Ok(())
    }
}

/// Body of `POST /sales/availability` (openapi.yaml `SalesAvailability`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AvailabilityParams {
    pub total_size: u64,
    pub duration: u64,
    #[serde(with = "amount_string")]
    pub min_price_per_byte_per_second: Amount,
    #[serde(with = "amount_string")]
    pub total_collateral: Amount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
}

impl AvailabilityParams {
    /// Archivist's checks in its order (archivist/rest/api.nim, `POST /sales/availability`);
    /// the storage quota check belongs to the node.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.total_size == 0 {
            return Err(ValidationError::TotalSize);
        }
        if self.duration == 0 {
            return Err(ValidationError::Duration);
        }
        if self.min_price_per_byte_per_second == 0 {
            return Err(ValidationError::MinPricePerBytePerSecond);
        }
        if self.total_collateral == 0 {
            return Err(ValidationError::TotalCollateral);
        }
        Ok(())
    }
}

/// Storage a host offers (reservations.nim `Availability`, openapi.yaml
/// `SalesAvailabilityREAD`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Availability {
    pub id: AvailabilityId,
    pub total_size: u64,
    pub free_size: u64,
    pub duration: u64,
    #[serde(with = "amount_string")]
    pub min_price_per_byte_per_second: Amount,
    #[serde(with = "amount_string")]
    pub total_collateral: Amount,
    #[serde(with = "amount_string")]
    pub total_remaining_collateral: Amount,
    pub enabled: bool,
    /// Latest timestamp at which hosted slots may end; 0 means no limit.
    pub until: u64,
}

impl Availability {
    /// A fresh availability from validated parameters (`enabled` defaults to true, `until` to 0).
    pub fn new(id: AvailabilityId, p: &AvailabilityParams) -> Result<Self, ValidationError> {
        p.validate()?;
        Ok(Availability {
            id,
            total_size: p.total_size,
            free_size: p.total_size,
            duration: p.duration,
            min_price_per_byte_per_second: p.min_price_per_byte_per_second,
            total_collateral: p.total_collateral,
            total_remaining_collateral: p.total_collateral,
            enabled: p.enabled.unwrap_or(true),
            until: p.until.unwrap_or(0),
        })
    }

    /// `totalRemainingCollateral / freeSize`, or all of it when nothing is free
    /// (reservations.nim `maxCollateralPerByte`).
    pub fn max_collateral_per_byte(&self) -> Amount {
        match self.free_size {
            0 => self.total_remaining_collateral,
            free => self.total_remaining_collateral / free as Amount,
        }
    }

    /// Whether a slot of `ask` ending at `valid_until` fits (reservations.nim
    /// `findAvailability`): enabled, room, duration, collateral per byte, price, `until`.
    pub fn matches(&self, ask: &StorageAsk, valid_until: u64) -> bool {
        self.enabled && self.terms().matches(ask, valid_until)
    }

    /// What this availability offers, as a host publishes it.
    pub fn terms(&self) -> OfferTerms {
        OfferTerms {
            free_size: self.free_size,
            duration: self.duration,
            min_price_per_byte_per_second: self.min_price_per_byte_per_second,
            max_collateral_per_byte: self.max_collateral_per_byte(),
            until: self.until,
        }
    }

    /// Takes a slot's size and collateral out of what is free; `None` if either is short.
    pub fn reserve(&mut self, ask: &StorageAsk) -> Option<()> {
        let collateral = ask.collateral_per_slot().ok()?;
        let free = self.free_size.checked_sub(ask.slot_size)?;
        let remaining = self.total_remaining_collateral.checked_sub(collateral)?;
        self.free_size = free;
        self.total_remaining_collateral = remaining;
        Some(())
    }

    /// Gives back a slot's size (and whatever collateral came back) once its sale ends.
    pub fn release(&mut self, slot_size: u64, returned_collateral: Amount) {
        self.free_size = (self.free_size + slot_size).min(self.total_size);
        self.total_remaining_collateral = self
            .total_remaining_collateral
            .saturating_add(returned_collateral);
    }
}

/// The terms of one availability, as its host publishes them ([`crate::ledger::Action::Offer`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferTerms {
    pub free_size: u64,
    pub duration: u64,
    #[serde(with = "amount_string")]
    pub min_price_per_byte_per_second: Amount,
    #[serde(with = "amount_string")]
    pub max_collateral_per_byte: Amount,
    pub until: u64,
}

impl OfferTerms {
    /// Room, duration, collateral per byte, price and `until`, as [`Availability::matches`].
    pub fn matches(&self, ask: &StorageAsk, valid_until: u64) -> bool {
        ask.slot_size <= self.free_size
            && ask.duration <= self.duration
            && ask.collateral_per_byte <= self.max_collateral_per_byte
            && ask.price_per_byte_per_second >= self.min_price_per_byte_per_second
            && (self.until == 0 || self.until >= valid_until)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use neverust_content::{cid_from_digest, codec};

    pub(crate) fn ask() -> StorageAsk {
        StorageAsk {
            proof_probability: 10,
            price_per_byte_per_second: 2,
            collateral_per_byte: 3,
            slots: 4,
            slot_size: 1 << 16,
            duration: 1000,
            max_slot_loss: 1,
        }
    }

    pub(crate) fn request(client: Address) -> StorageRequest {
        StorageRequest {
            client,
            ask: ask(),
            content: StorageContent {
                cid: cid_from_digest(codec::MANIFEST, &[9u8; 32]),
                merkle_root: [5u8; 32],
            },
            expiry: 100,
            nonce: Nonce([1u8; 32]),
        }
    }

    fn params() -> StorageRequestParams {
        StorageRequestParams {
            duration: 1000,
            price_per_byte_per_second: 1,
            proof_probability: 5,
            nodes: None,
            tolerance: None,
            collateral_per_byte: 1,
            expiry: 100,
        }
    }

    #[test]
    fn creation_params_follow_archivist_rules() {
        assert_eq!(
            params().validate(u64::MAX),
            Ok(ErasureParams {
                nodes: 3,
                tolerance: 1
            })
        );
        let cases: Vec<(StorageRequestParams, &str)> = vec![
            (
                StorageRequestParams {
                    expiry: 0,
                    ..params()
                },
                "expiry",
            ),
            (
                StorageRequestParams {
                    expiry: 1000,
                    ..params()
                },
                "expiry",
            ),
            (
                StorageRequestParams {
                    proof_probability: 0,
                    ..params()
                },
                "proofProbability",
            ),
            (
                StorageRequestParams {
                    collateral_per_byte: 0,
                    ..params()
                },
                "collateralPerByte",
            ),
            (
                StorageRequestParams {
                    price_per_byte_per_second: 0,
                    ..params()
                },
                "pricePerBytePerSecond",
            ),
            (
                StorageRequestParams {
                    tolerance: Some(0),
                    ..params()
                },
                "tolerance",
            ),
            (
                StorageRequestParams {
                    nodes: Some(2),
                    tolerance: Some(3),
                    ..params()
                },
                "tolerance",
            ),
            (
                StorageRequestParams {
                    nodes: Some(4),
                    tolerance: Some(3),
                    ..params()
                },
                "tolerance",
            ),
        ];
        for (p, field) in cases {
            assert_eq!(p.validate(u64::MAX).unwrap_err().field(), field, "{p:?}");
        }
        assert!(matches!(
            params().validate(999),
            Err(ValidationError::DurationLimit { .. })
        ));
        assert!(ErasureParams::new(2, 1).is_err(), "K must be above 1");
        assert!(ErasureParams::new(4, 2).is_ok(), "K = M is allowed");
        assert!(ErasureParams::new(5, 3).is_err(), "K < M is not");
    }

    #[test]
    fn creation_params_json_is_archivists() {
        let json = r#"{"duration":1000,"pricePerBytePerSecond":"1","proofProbability":"5",
            "nodes":5,"tolerance":2,"collateralPerByte":"1","expiry":100}"#;
        let p: StorageRequestParams = serde_json::from_str(json).unwrap();
        assert_eq!(p.nodes, Some(5));
        assert_eq!(p.validate(u64::MAX).unwrap().ec_k(), 3);
        let back = serde_json::to_value(&p).unwrap();
        assert_eq!(back["pricePerBytePerSecond"], "1");
    }

    #[test]
    fn request_rules_and_prices() {
        let r = request(Address([1; 20]));
        r.validate(u64::MAX).unwrap();
        let a = &r.ask;
        assert_eq!(a.price_per_slot_per_second().unwrap(), 2 << 16);
        assert_eq!(a.price_per_slot().unwrap(), 1000 * (2 << 16));
        assert_eq!(a.total_price().unwrap(), 4 * 1000 * (2 << 16));
        assert_eq!(a.collateral_per_slot().unwrap(), 3 << 16);
        let mut bad = r.clone();
        bad.ask.max_slot_loss = 5;
        assert_eq!(bad.validate(u64::MAX).unwrap_err().field(), "maxSlotLoss");
        let mut bad = r.clone();
        bad.ask.slots = 0;
        assert_eq!(bad.validate(u64::MAX).unwrap_err().field(), "slots");
        let mut bad = r.clone();
        bad.ask.price_per_byte_per_second = u128::MAX / 2;
        assert!(matches!(
            bad.validate(u64::MAX),
            Err(ValidationError::Overflow { .. })
        ));
    }

    #[test]
    fn request_abi_layout() {
        let r = request(Address([0x11; 20]));
        let enc = r.abi_encode();
        let cid_len = r.content.cid.to_bytes().len();
        assert_eq!(
            enc.len(),
            32 * (1 + 11 + 2 + 1) + cid_len.next_multiple_of(32)
        );
        assert_eq!(enc[31], 0x20);
        assert_eq!(&enc[32 + 12..64], &[0x11; 20]);
        // content offset, relative to the struct start, is 11 words.
        let off = 32 + 8 * 32;
        assert_eq!(u16::from_be_bytes([enc[off + 30], enc[off + 31]]), 11 * 32);
        assert_eq!(enc[32 * 12 + 31], 0x40);
        assert_eq!(&enc[32 * 13..32 * 14], &[5u8; 32]);
        assert_eq!(enc[32 * 14 + 31] as usize, cid_len);
        let mut other = r.clone();
        other.nonce = Nonce([2; 32]);
        assert_ne!(r.id(), other.id());
        assert_eq!(r.slot_id(2), SlotId::new(&r.id(), 2));
    }

    #[test]
    fn request_json_round_trip() {
        let r = request(Address([0x11; 20]));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["ask"]["collateralPerByte"], "3");
        assert_eq!(v["ask"]["maxSlotLoss"], 1);
        assert!(v["content"]["cid"].as_str().unwrap().starts_with('z'));
        let back: StorageRequest = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    fn availability() -> Availability {
        Availability::new(
            AvailabilityId([1; 32]),
            &AvailabilityParams {
                total_size: 1 << 20,
                duration: 2000,
                min_price_per_byte_per_second: 1,
                total_collateral: 16 << 20,
                enabled: None,
                until: None,
            },
        )
        .unwrap()
    }

    #[test]
    fn availability_rules_and_matching() {
        let base = AvailabilityParams {
            total_size: 1,
            duration: 1,
            min_price_per_byte_per_second: 1,
            total_collateral: 1,
            enabled: None,
            until: None,
        };
        for (p, field) in [
            (
                AvailabilityParams {
                    total_size: 0,
                    ..base.clone()
                },
                "totalSize",
            ),
            (
                AvailabilityParams {
                    duration: 0,
                    ..base.clone()
                },
                "duration",
            ),
            (
                AvailabilityParams {
                    min_price_per_byte_per_second: 0,
                    ..base.clone()
                },
                "minPricePerBytePerSecond",
            ),
            (
                AvailabilityParams {
                    total_collateral: 0,
                    ..base.clone()
                },
                "totalCollateral",
            ),
        ] {
            assert_eq!(p.validate().unwrap_err().field(), field);
        }

        let mut av = availability();
        assert!(av.enabled);
        assert_eq!(av.max_collateral_per_byte(), 16);
        let a = ask();
        assert!(av.matches(&a, 5000));
        av.until = 4000;
        assert!(!av.matches(&a, 5000), "slot would outlive `until`");
        av.until = 0;
        assert!(!av.matches(
            &StorageAsk {
                price_per_byte_per_second: 0,
                ..a.clone()
            },
            0
        ));
        assert!(!av.matches(
            &StorageAsk {
                duration: 3000,
                ..a.clone()
            },
            0
        ));
        assert!(!av.matches(
            &StorageAsk {
                collateral_per_byte: 17,
                ..a.clone()
            },
            0
        ));
        av.enabled = false;
        assert!(!av.matches(&a, 0));
        av.enabled = true;
        for _ in 0..16 {
            av.reserve(&a).unwrap();
        }
        assert_eq!(av.free_size, 0);
        assert!(av.reserve(&a).is_none());
        assert!(!av.matches(&a, 0));
        av.release(a.slot_size, a.collateral_per_slot().unwrap());
        assert!(av.matches(&a, 0));
    }
}
