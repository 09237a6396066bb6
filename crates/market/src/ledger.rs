//! The market's shared state — what Archivist keeps in its marketplace contract — behind one
//! trait, [`MarketState`], and [`MemoryLedger`], an in-memory implementation whose every entry
//! is signed by the party acting and can be checked by replaying the log.
//!
//! Operations are those of Archivist's marketplace (archivist/contracts/marketplace.nim,
//! archivist/market.nim): `requestStorage`, `reserveSlot`, `fillSlot` (with a proof),
//! `submitProof`, `markProofAsMissing`, `freeSlot`, and the payouts and refunds that follow a
//! request's end. Parameters follow its `MarketplaceConfig` (archivist/contracts/config.nim):
//! slash percentage, validator reward, repair reward, slashes before a slot is freed,
//! reservations per slot, request duration limit, proof timeout.
//!
//! Money model (ours where Archivist defers to the contract): posting escrows
//! `totalPrice = slots × slotSize × pricePerBytePerSecond × duration`; filling escrows
//! `collateralPerByte × slotSize` minus any repair reward the slot carries. A request ends at
//! `requested + duration` and is cancelled if unfilled at `requested + expiry`. At the end
//! each host still holding a slot gets `pricePerSlotPerSecond × (end − filledAt)` plus what
//! remains of its collateral; the client gets back everything else. A missed or invalid proof
//! slashes `slashPercentage` of the slot's collateral, of which `validatorRewardPercentage`
//! goes to whoever marked it, the rest is burned; after the allowed number of slashes the slot
//! is freed for repair: its host forfeits what collateral is left and earns nothing, and
//! `repairRewardPercentage` of a slot's collateral is kept as a discount for the next host.
//! More than `maxSlotLoss` freed slots fail the request; hosts then holding slots are paid up
//! to that moment. Tokens enter only through [`Action::Deposit`] (the token contract's place)
//! and leave only by burning, so `Σ balances + Σ escrow + burned = minted` always holds.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use libp2p_identity::{Keypair, PublicKey};
use neverust_content::{sha256, BLOCK_SIZE};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::{Address, RequestId, SlotId, SlotRef};
use crate::proofs::{self, cells_per_block, Challenge, ProofError, StorageProof};
use crate::request::{Amount, OfferTerms, StorageRequest, ValidationError};
use crate::states::{IllegalTransition, Lifecycle, RequestState, SlotState};

/// Archivist's `CollateralConfig`. `max_number_of_slashes: None` frees a slot after as many
/// slashes as the request tolerates lost slots (`maxSlotLoss`), issue 19's rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollateralConfig {
    pub repair_reward_percentage: u8,
    pub max_number_of_slashes: Option<u8>,
    pub slash_percentage: u8,
    pub validator_reward_percentage: u8,
}

/// The marketplace's parameters (archivist/contracts/config.nim `MarketplaceConfig`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MarketConfig {
    pub collateral: CollateralConfig,
    /// Seconds a host has to answer a challenge (`ProofConfig.timeout`).
    pub proof_timeout: u64,
    /// Hosts that may reserve one slot (`SlotReservationsConfig.maxReservations`).
    pub max_reservations: u8,
    pub request_duration_limit: u64,
    /// Bytes per block, to turn `slotSize` into the blocks a challenge samples from.
    pub block_size: u64,
}

impl Default for MarketConfig {
    fn default() -> Self {
        MarketConfig {
            collateral: CollateralConfig {
                repair_reward_percentage: 10,
                max_number_of_slashes: None,
                slash_percentage: 10,
                validator_reward_percentage: 20,
            },
            proof_timeout: 60,
            max_reservations: 3,
            request_duration_limit: 30 * 24 * 3600,
            block_size: BLOCK_SIZE as u64,
        }
    }
}

/// What a party does. Serialized (JSON) inside the bytes it signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Tokens enter the market (a token contract's mint or transfer in).
    Deposit {
        #[serde(with = "crate::request::amount_string")]
        amount: Amount,
    },
    RequestStorage {
        request: StorageRequest,
    },
    ReserveSlot {
        slot: SlotRef,
    },
    /// Fill with a proof for the fill challenge ([`MemoryLedger::fill_challenge`]).
    FillSlot {
        slot: SlotRef,
        proof: StorageProof,
    },
    /// A validator challenges a filled slot with entropy of its choosing.
    Challenge {
        slot: SlotId,
        #[serde(with = "hex_bytes32")]
        entropy: [u8; 32],
    },
    SubmitProof {
        slot: SlotId,
        challenge: u64,
        proof: StorageProof,
    },
    MarkProofMissing {
        slot: SlotId,
        challenge: u64,
    },
    /// The host gives the slot up (forfeits collateral and payment).
    FreeSlot {
        slot: SlotId,
    },
    /// Anyone: end a request whose time has come (cancel or finish) and pay everyone out.
    Settle {
        request: RequestId,
    },
    /// A host states the terms it would take slots on (its availabilities), replacing what it
    /// said before. Archivist keeps availabilities private; publishing them lets a client
    /// refuse a request no host could take instead of waiting for it to expire.
    Offer {
        terms: Vec<OfferTerms>,
    },
}

impl Action {
    /// Its name on the wire, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Deposit { .. } => "deposit",
            Action::RequestStorage { .. } => "requestStorage",
            Action::ReserveSlot { .. } => "reserveSlot",
            Action::FillSlot { .. } => "fillSlot",
            Action::Challenge { .. } => "challenge",
            Action::SubmitProof { .. } => "submitProof",
            Action::MarkProofMissing { .. } => "markProofMissing",
            Action::FreeSlot { .. } => "freeSlot",
            Action::Settle { .. } => "settle",
            Action::Offer { .. } => "offer",
        }
    }
}

mod hex_bytes32 {
    use super::*;

    pub fn serialize<S: Serializer>(x: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(x))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        hex::decode(String::deserialize(d)?)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| serde::de::Error::custom("not 32 hex bytes"))
    }
}

mod hex_vec {
    use super::*;

    pub fn serialize<S: Serializer>(x: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(x))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

const DOMAIN: &[u8] = b"neverust-market/action/v1\0";

/// How long after it was signed an action may still be applied. Within this window the
/// ledger knows every signature it applied, so a signed action is applied at most once.
pub const MAX_ACTION_AGE: u64 = 60;

/// An action, when its actor signed it, and the actor's signature over both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAction {
    /// The actor's libp2p public key, protobuf-encoded.
    #[serde(with = "hex_vec")]
    pub actor: Vec<u8>,
    /// Seconds since the Unix epoch when the actor signed it. The ledger applies it at
    /// its own time if that is later (a chain applies a transaction at its block's time).
    pub at: u64,
    /// Random, so the same action signed twice in one second is two actions (two deposits
    /// of one amount), while the same signature sent twice is one.
    pub nonce: u64,
    pub action: Action,
    #[serde(with = "hex_vec")]
    pub signature: Vec<u8>,
}

fn signing_bytes(actor: &[u8], at: u64, nonce: u64, action: &Action) -> Vec<u8> {
    let mut out = DOMAIN.to_vec();
    out.extend_from_slice(&(actor.len() as u64).to_be_bytes());
    out.extend_from_slice(actor);
    out.extend_from_slice(&at.to_be_bytes());
    out.extend_from_slice(&nonce.to_be_bytes());
    out.extend_from_slice(&serde_json::to_vec(action).expect("actions serialize"));
    out
}

impl SignedAction {
    pub fn sign(key: &Keypair, at: u64, action: Action) -> SignedAction {
        let actor = key.public().encode_protobuf();
        let nonce = rand::random();
        let signature = key
            .sign(&signing_bytes(&actor, at, nonce, &action))
            .expect("ed25519 and secp256k1 keys sign");
        SignedAction {
            actor,
            at,
            nonce,
            action,
            signature,
        }
    }

    /// Its JSON on one line, as logged and sent. Here rather than at the callers so that the
    /// bytes of a proof are written by this crate's code, which debug builds optimise.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("actions serialize")
    }

    /// Reads one logged or sent line; a line break inside would split the log, so it is
    /// refused.
    pub fn from_json_line(line: &[u8]) -> Result<SignedAction, serde_json::Error> {
        if line.contains(&b'\n') {
            return Err(serde::de::Error::custom(
                "a line break inside a logged action",
            ));
        }
        serde_json::from_slice(line)
    }

    /// The actor's key, if the signature is its.
    pub fn verify(&self) -> Result<PublicKey, LedgerError> {
        let key =
            PublicKey::try_decode_protobuf(&self.actor).map_err(|_| LedgerError::BadSignature)?;
        if key.verify(
            &signing_bytes(&self.actor, self.at, self.nonce, &self.action),
            &self.signature,
        ) {
            Ok(key)
        } else {
            Err(LedgerError::BadSignature)
        }
    }
}

/// Why the market refused an action; a refused action changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    #[error("signature does not verify")]
    BadSignature,
    #[error(
        "action signed at {at} is more than {MAX_ACTION_AGE} s older than the ledger's time {now}"
    )]
    TooOld { at: u64, now: u64 },
    #[error("the action is the ledger's entry {seq} already")]
    Replayed { seq: u64 },
    #[error("invalid request: {0}")]
    Invalid(#[from] ValidationError),
    #[error("request {0} is already posted")]
    Duplicate(RequestId),
    #[error("request {0} is unknown")]
    UnknownRequest(RequestId),
    #[error("slot {0} is unknown")]
    UnknownSlot(SlotId),
    #[error("{actor} is not the client {client} of the request")]
    NotClient { actor: Address, client: Address },
    #[error("{actor} does not hold slot {slot}")]
    NotHost { actor: Address, slot: SlotId },
    #[error("{who} has {have} tokens, needs {need}")]
    InsufficientFunds {
        who: Address,
        need: Amount,
        have: Amount,
    },
    #[error("slot {slot} has {max} reservations already")]
    ReservationsFull { slot: SlotId, max: u8 },
    #[error("{actor} has not reserved slot {slot}")]
    ReservationRequired { actor: Address, slot: SlotId },
    #[error("request {request} is {state:?}, cannot {action}")]
    RequestState {
        request: RequestId,
        state: RequestState,
        action: &'static str,
    },
    #[error("slot {slot} is {state:?}, cannot {action}")]
    SlotState {
        slot: SlotId,
        state: SlotState,
        action: &'static str,
    },
    #[error("request {request} cannot {action} at {at} (expires {expires_at}, ends {ends_at})")]
    Timing {
        request: RequestId,
        action: &'static str,
        at: u64,
        expires_at: u64,
        ends_at: u64,
    },
    #[error("challenge {challenge} of slot {slot} is unknown")]
    UnknownChallenge { slot: SlotId, challenge: u64 },
    #[error("challenge {challenge} of slot {slot} is {status:?}")]
    ChallengeClosed {
        slot: SlotId,
        challenge: u64,
        status: ChallengeStatus,
    },
    #[error("challenge {challenge} of slot {slot} is open until {deadline}")]
    ChallengeOpen {
        slot: SlotId,
        challenge: u64,
        deadline: u64,
    },
    #[error("fill proof: {0}")]
    FillProof(ProofError),
    #[error(transparent)]
    Transition(#[from] IllegalTransition),
    #[error("amount overflow")]
    Overflow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChallengeStatus {
    Open,
    Proven,
    /// Not answered before the deadline, marked by a validator.
    Missed,
    /// Answered with a proof that does not verify: a fault as soon as it is submitted.
    Invalid,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChallengeRecord {
    pub challenge: Challenge,
    pub validator: Address,
    pub deadline: u64,
    pub status: ChallengeStatus,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    pub request: StorageRequest,
    pub id: RequestId,
    pub state: RequestState,
    pub requested_at: u64,
    pub expires_at: u64,
    pub ends_at: u64,
    /// Tokens held for this request: client funds, hosts' collateral, seized collateral.
    pub escrow: Amount,
    pub slots_filled: u64,
    pub slots_freed: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotRecord {
    pub slot: SlotRef,
    pub state: SlotState,
    pub host: Option<Address>,
    pub filled_at: u64,
    /// What remains of the current host's collateral.
    pub collateral: Amount,
    /// Seized collateral kept as a discount for whoever fills the slot next.
    pub repair_reward: Amount,
    /// Slashes of the current host.
    pub slashes: u64,
    /// How many times the slot was filled (salts the fill challenge).
    pub fills: u64,
    pub reservations: BTreeSet<Address>,
    pub challenges: Vec<ChallengeRecord>,
}

/// What an accepted action did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    Deposited,
    Posted(RequestId),
    Reserved,
    Filled {
        started: bool,
    },
    Challenged(u64),
    Proven,
    /// A fault (invalid proof or missed deadline) slashed the host; maybe freed the slot and
    /// failed the request.
    Slashed {
        amount: Amount,
        freed: bool,
        failed: bool,
    },
    Freed {
        failed: bool,
    },
    Settled(RequestState),
    Offered,
}

/// The operations a chain would carry out, with [`MarketState::apply`] as the one way in:
/// every change arrives as a [`SignedAction`]. The named methods sign with the caller's key
/// and apply. Implementations refuse invalid actions without changing anything.
pub trait MarketState {
    fn config(&self) -> &MarketConfig;
    fn apply(&mut self, entry: SignedAction) -> Result<Outcome, LedgerError>;
    fn request(&self, id: &RequestId) -> Option<&RequestRecord>;
    fn slot(&self, id: &SlotId) -> Option<&SlotRecord>;
    fn balance(&self, who: &Address) -> Amount;

    fn deposit(&mut self, key: &Keypair, at: u64, amount: Amount) -> Result<(), LedgerError> {
        self.apply(SignedAction::sign(key, at, Action::Deposit { amount }))
            .map(drop)
    }

    fn post_request(
        &mut self,
        key: &Keypair,
        at: u64,
        request: StorageRequest,
    ) -> Result<RequestId, LedgerError> {
        let id = request.id();
        self.apply(SignedAction::sign(
            key,
            at,
            Action::RequestStorage { request },
        ))?;
        Ok(id)
    }

    fn reserve_slot(&mut self, key: &Keypair, at: u64, slot: SlotRef) -> Result<(), LedgerError> {
        self.apply(SignedAction::sign(key, at, Action::ReserveSlot { slot }))
            .map(drop)
    }

    /// Returns whether this fill started the request.
    fn fill_slot(
        &mut self,
        key: &Keypair,
        at: u64,
        slot: SlotRef,
        proof: StorageProof,
    ) -> Result<bool, LedgerError> {
        match self.apply(SignedAction::sign(
            key,
            at,
            Action::FillSlot { slot, proof },
        ))? {
            Outcome::Filled { started } => Ok(started),
            other => unreachable!("fill gave {other:?}"),
        }
    }

    /// Returns the challenge's number within the slot.
    fn challenge(
        &mut self,
        key: &Keypair,
        at: u64,
        slot: SlotId,
        entropy: [u8; 32],
    ) -> Result<u64, LedgerError> {
        match self.apply(SignedAction::sign(
            key,
            at,
            Action::Challenge { slot, entropy },
        ))? {
            Outcome::Challenged(n) => Ok(n),
            other => unreachable!("challenge gave {other:?}"),
        }
    }

    fn submit_proof(
        &mut self,
        key: &Keypair,
        at: u64,
        slot: SlotId,
        challenge: u64,
        proof: StorageProof,
    ) -> Result<Outcome, LedgerError> {
        self.apply(SignedAction::sign(
            key,
            at,
            Action::SubmitProof {
                slot,
                challenge,
                proof,
            },
        ))
    }

    fn mark_proof_missing(
        &mut self,
        key: &Keypair,
        at: u64,
        slot: SlotId,
        challenge: u64,
    ) -> Result<Outcome, LedgerError> {
        self.apply(SignedAction::sign(
            key,
            at,
            Action::MarkProofMissing { slot, challenge },
        ))
    }

    fn free_slot(&mut self, key: &Keypair, at: u64, slot: SlotId) -> Result<Outcome, LedgerError> {
        self.apply(SignedAction::sign(key, at, Action::FreeSlot { slot }))
    }

    fn settle(
        &mut self,
        key: &Keypair,
        at: u64,
        request: RequestId,
    ) -> Result<RequestState, LedgerError> {
        match self.apply(SignedAction::sign(key, at, Action::Settle { request }))? {
            Outcome::Settled(s) => Ok(s),
            other => unreachable!("settle gave {other:?}"),
        }
    }
}

/// Everything the ledger holds besides its log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Books {
    pub now: u64,
    pub balances: BTreeMap<Address, Amount>,
    pub minted: Amount,
    pub burned: Amount,
    pub requests: BTreeMap<RequestId, RequestRecord>,
    pub slots: BTreeMap<SlotId, SlotRecord>,
    /// Each host's latest [`Action::Offer`].
    pub offers: BTreeMap<Address, Vec<OfferTerms>>,
}

impl Books {
    /// `Σ balances + Σ escrow + burned`, which must equal `minted`.
    pub fn accounted(&self) -> Option<Amount> {
        let mut sum = self.burned;
        for b in self.balances.values() {
            sum = sum.checked_add(*b)?;
        }
        for r in self.requests.values() {
            sum = sum.checked_add(r.escrow)?;
        }
        Some(sum)
    }
}

/// The in-memory market: the signed log and the books it produces.
#[derive(Clone, Debug)]
pub struct MemoryLedger {
    config: MarketConfig,
    log: Vec<SignedAction>,
    books: Books,
    /// Entries applied, logged or not.
    applied: u64,
    recent: RecentSignatures,
}

/// The signatures applied within the last [`MAX_ACTION_AGE`] seconds, with their entries'
/// numbers: an older action is refused for its age, so these are all it takes to refuse a
/// replay.
#[derive(Clone, Debug, Default)]
struct RecentSignatures {
    seq_of: HashMap<Vec<u8>, u64>,
    /// In the order applied, with the time they were applied at (never decreasing).
    order: VecDeque<(u64, Vec<u8>)>,
}

impl RecentSignatures {
    fn insert(&mut self, signature: &[u8], seq: u64, at: u64) {
        self.seq_of.insert(signature.to_vec(), seq);
        self.order.push_back((at, signature.to_vec()));
        while let Some((oldest, _)) = self.order.front() {
            if oldest.saturating_add(MAX_ACTION_AGE) >= at {
                break;
            }
            if let Some((_, sig)) = self.order.pop_front() {
                self.seq_of.remove(&sig);
            }
        }
    }
}

fn pct(amount: Amount, percent: u8) -> Amount {
    amount / 100 * percent as Amount + amount % 100 * percent as Amount / 100
}

fn sub(x: Amount, y: Amount) -> Result<Amount, LedgerError> {
    x.checked_sub(y).ok_or(LedgerError::Overflow)
}

fn add(x: Amount, y: Amount) -> Result<Amount, LedgerError> {
    x.checked_add(y).ok_or(LedgerError::Overflow)
}

impl MemoryLedger {
    pub fn new(config: MarketConfig) -> Self {
        MemoryLedger {
            config,
            log: Vec::new(),
            books: Books::default(),
            applied: 0,
            recent: RecentSignatures::default(),
        }
    }

    /// Rebuilds a ledger from a log, checking every signature and every rule again: anyone
    /// holding the log can verify the books. Fails with the first bad entry's position.
    pub fn replay(
        config: MarketConfig,
        log: impl IntoIterator<Item = SignedAction>,
    ) -> Result<Self, (usize, LedgerError)> {
        let mut ledger = MemoryLedger::new(config);
        for (i, entry) in log.into_iter().enumerate() {
            ledger.apply(entry).map_err(|e| (i, e))?;
        }
        Ok(ledger)
    }

    pub fn log(&self) -> &[SignedAction] {
        &self.log
    }

    pub fn books(&self) -> &Books {
        &self.books
    }

    /// Checks and applies `entry` to the books without keeping it in [`MemoryLedger::log`],
    /// for a caller that keeps the log itself: neither a second copy in memory nor a copy
    /// to hand it over.
    pub fn apply_unlogged(&mut self, entry: &SignedAction) -> Result<Outcome, LedgerError> {
        let key = entry.verify()?;
        let now = self.books.now;
        if entry.at.saturating_add(MAX_ACTION_AGE) < now {
            return Err(LedgerError::TooOld { at: entry.at, now });
        }
        if let Some(&seq) = self.recent.seq_of.get(&entry.signature) {
            return Err(LedgerError::Replayed { seq });
        }
        // Never back in time: parties acting at once are ordered, not refused.
        let at = entry.at.max(now);
        // Work on a copy so a refused action leaves nothing half done.
        let mut books = self.books.clone();
        books.now = at;
        let outcome = Step {
            config: &self.config,
            books: &mut books,
            actor: Address::of(&key),
            at,
        }
        .run(&entry.action)?;
        debug_assert_eq!(books.accounted(), Some(books.minted), "tokens conserved");
        self.books = books;
        self.recent.insert(&entry.signature, self.applied, at);
        self.applied += 1;
        Ok(outcome)
    }

    /// The challenge a host answers when filling a slot: entropy from the slot and how many
    /// times it was filled (a chain would mix in its block hash).
    pub fn fill_challenge(&self, request: &StorageRequest, slot_index: u64) -> Challenge {
        let id = request.slot_id(slot_index);
        let fills = self.books.slots.get(&id).map_or(0, |s| s.fills);
        fill_challenge(&self.config, request, slot_index, fills)
    }
}

fn slot_blocks(config: &MarketConfig, request: &StorageRequest) -> u64 {
    request.ask.slot_size / config.block_size.max(1)
}

fn fill_challenge(
    config: &MarketConfig,
    request: &StorageRequest,
    slot_index: u64,
    fills: u64,
) -> Challenge {
    let id = request.slot_id(slot_index);
    let mut seed = b"fill".to_vec();
    seed.extend_from_slice(&id.0);
    seed.extend_from_slice(&fills.to_be_bytes());
    Challenge::new(
        id,
        slot_index,
        slot_blocks(config, request),
        cells_per_block(config.block_size),
        sha256(&seed),
    )
}

impl MarketState for MemoryLedger {
    fn config(&self) -> &MarketConfig {
        &self.config
    }

    fn apply(&mut self, entry: SignedAction) -> Result<Outcome, LedgerError> {
        let outcome = self.apply_unlogged(&entry)?;
        self.log.push(entry);
        Ok(outcome)
    }

    fn request(&self, id: &RequestId) -> Option<&RequestRecord> {
        self.books.requests.get(id)
    }

    fn slot(&self, id: &SlotId) -> Option<&SlotRecord> {
        self.books.slots.get(id)
    }

    fn balance(&self, who: &Address) -> Amount {
        self.books.balances.get(who).copied().unwrap_or(0)
    }
}

/// One action applied to the books.
struct Step<'a> {
    config: &'a MarketConfig,
    books: &'a mut Books,
    actor: Address,
    at: u64,
}

impl Step<'_> {
    fn run(&mut self, action: &Action) -> Result<Outcome, LedgerError> {
        match action {
            Action::Deposit { amount } => {
                self.books.minted = add(self.books.minted, *amount)?;
                self.credit(self.actor, *amount)?;
                Ok(Outcome::Deposited)
            }
            Action::RequestStorage { request } => self.request_storage(request),
            Action::ReserveSlot { slot } => self.reserve(slot),
            Action::FillSlot { slot, proof } => self.fill(slot, proof),
            Action::Challenge { slot, entropy } => self.challenge(slot, entropy),
            Action::SubmitProof {
                slot,
                challenge,
                proof,
            } => self.submit(slot, *challenge, proof),
            Action::MarkProofMissing { slot, challenge } => self.missed(slot, *challenge),
            Action::FreeSlot { slot } => self.free_by_host(slot),
            Action::Settle { request } => self.settle(request),
            Action::Offer { terms } => {
                self.books.offers.insert(self.actor, terms.clone());
                Ok(Outcome::Offered)
            }
        }
    }

    fn credit(&mut self, who: Address, amount: Amount) -> Result<(), LedgerError> {
        let b = self.books.balances.entry(who).or_default();
        *b = add(*b, amount)?;
        Ok(())
    }

    fn debit(&mut self, who: Address, amount: Amount) -> Result<(), LedgerError> {
        let have = self.books.balances.get(&who).copied().unwrap_or(0);
        let left = have
            .checked_sub(amount)
            .ok_or(LedgerError::InsufficientFunds {
                who,
                need: amount,
                have,
            })?;
        self.books.balances.insert(who, left);
        Ok(())
    }

    fn req(&mut self, id: &RequestId) -> Result<&mut RequestRecord, LedgerError> {
        self.books
            .requests
            .get_mut(id)
            .ok_or(LedgerError::UnknownRequest(*id))
    }

    fn slot(&mut self, id: &SlotId) -> Result<&mut SlotRecord, LedgerError> {
        self.books
            .slots
            .get_mut(id)
            .ok_or(LedgerError::UnknownSlot(*id))
    }

    fn timing(&self, r: &RequestRecord, action: &'static str) -> LedgerError {
        LedgerError::Timing {
            request: r.id,
            action,
            at: self.at,
            expires_at: r.expires_at,
            ends_at: r.ends_at,
        }
    }

    fn request_storage(&mut self, request: &StorageRequest) -> Result<Outcome, LedgerError> {
        request.validate(self.config.request_duration_limit)?;
        if request.client != self.actor {
            return Err(LedgerError::NotClient {
                actor: self.actor,
                client: request.client,
            });
        }
        let id = request.id();
        if self.books.requests.contains_key(&id) {
            return Err(LedgerError::Duplicate(id));
        }
        let price = request.ask.total_price()?;
        self.debit(self.actor, price)?;
        let at = self.at;
        self.books.requests.insert(
            id,
            RequestRecord {
                request: request.clone(),
                id,
                state: RequestState::New,
                requested_at: at,
                expires_at: at.saturating_add(request.expiry),
                ends_at: at.saturating_add(request.ask.duration),
                escrow: price,
                slots_filled: 0,
                slots_freed: 0,
            },
        );
        for slot_index in 0..request.ask.slots {
            let slot = SlotRef {
                request_id: id,
                slot_index,
            };
            self.books.slots.insert(
                slot.id(),
                SlotRecord {
                    slot,
                    state: SlotState::Free,
                    host: None,
                    filled_at: 0,
                    collateral: 0,
                    repair_reward: 0,
                    slashes: 0,
                    fills: 0,
                    reservations: BTreeSet::new(),
                    challenges: Vec::new(),
                },
            );
        }
        Ok(Outcome::Posted(id))
    }

    /// A slot a host may take: free or in repair, of a request still open for it.
    fn open_slot(&mut self, slot: &SlotRef, action: &'static str) -> Result<(), LedgerError> {
        let at = self.at;
        let r = self.req(&slot.request_id)?.clone();
        let open = match r.state {
            RequestState::New => at <= r.expires_at,
            RequestState::Started => at < r.ends_at,
            state => {
                return Err(LedgerError::RequestState {
                    request: r.id,
                    state,
                    action,
                })
            }
        };
        if !open {
            return Err(self.timing(&r, action));
        }
        let id = slot.id();
        let s = self.slot(&id)?;
        if !matches!(s.state, SlotState::Free | SlotState::Repair) {
            return Err(LedgerError::SlotState {
                slot: id,
                state: s.state,
                action,
            });
        }
        Ok(())
    }

    fn reserve(&mut self, slot: &SlotRef) -> Result<Outcome, LedgerError> {
        self.open_slot(slot, "reserve a slot")?;
        let (actor, max) = (self.actor, self.config.max_reservations);
        let id = slot.id();
        let s = self.slot(&id)?;
        if !s.reservations.contains(&actor) {
            if s.reservations.len() >= max as usize {
                return Err(LedgerError::ReservationsFull { slot: id, max });
            }
            s.reservations.insert(actor);
        }
        Ok(Outcome::Reserved)
    }

    fn fill(&mut self, slot: &SlotRef, proof: &StorageProof) -> Result<Outcome, LedgerError> {
        self.open_slot(slot, "fill a slot")?;
        let (actor, at) = (self.actor, self.at);
        let id = slot.id();
        let r = self.req(&slot.request_id)?.clone();
        let s = self.slot(&id)?.clone();
        if !s.reservations.contains(&actor) {
            return Err(LedgerError::ReservationRequired { actor, slot: id });
        }
        let challenge = fill_challenge(self.config, &r.request, slot.slot_index, s.fills);
        proofs::verify(&challenge, &r.request.content.merkle_root, proof)
            .map_err(LedgerError::FillProof)?;
        let collateral = r.request.ask.collateral_per_slot()?;
        let due = collateral.saturating_sub(s.repair_reward);
        self.debit(actor, due)?;
        let s = self.slot(&id)?;
        s.state.go(SlotState::Filled)?;
        s.host = Some(actor);
        s.filled_at = at;
        s.collateral = collateral;
        s.repair_reward = 0;
        s.slashes = 0;
        s.fills += 1;
        s.reservations.clear();
        let r = self.req(&slot.request_id)?;
        r.escrow = add(r.escrow, due)?;
        r.slots_filled += 1;
        let started = r.state == RequestState::New && r.slots_filled == r.request.ask.slots;
        if started {
            r.state.go(RequestState::Started)?;
        }
        Ok(Outcome::Filled { started })
    }

    /// A filled slot of a request that is still running.
    fn live_slot(&mut self, id: &SlotId, action: &'static str) -> Result<(), LedgerError> {
        let at = self.at;
        let s = self.slot(id)?.clone();
        if s.state != SlotState::Filled {
            return Err(LedgerError::SlotState {
                slot: *id,
                state: s.state,
                action,
            });
        }
        let r = self.req(&s.slot.request_id)?.clone();
        if !matches!(r.state, RequestState::New | RequestState::Started) {
            return Err(LedgerError::RequestState {
                request: r.id,
                state: r.state,
                action,
            });
        }
        if at >= r.ends_at {
            return Err(self.timing(&r, action));
        }
        Ok(())
    }

    fn challenge(&mut self, id: &SlotId, entropy: &[u8; 32]) -> Result<Outcome, LedgerError> {
        self.live_slot(id, "challenge a slot")?;
        let (actor, deadline) = (
            self.actor,
            self.at.saturating_add(self.config.proof_timeout),
        );
        let s = self.slot(id)?.clone();
        let r = self.req(&s.slot.request_id)?.clone();
        let challenge = Challenge::new(
            *id,
            s.slot.slot_index,
            slot_blocks(self.config, &r.request),
            cells_per_block(self.config.block_size),
            *entropy,
        );
        let s = self.slot(id)?;
        s.challenges.push(ChallengeRecord {
            challenge,
            validator: actor,
            deadline,
            status: ChallengeStatus::Open,
        });
        Ok(Outcome::Challenged(s.challenges.len() as u64 - 1))
    }

    fn open_challenge(
        &mut self,
        id: &SlotId,
        n: u64,
    ) -> Result<(SlotRecord, ChallengeRecord), LedgerError> {
        let s = self.slot(id)?.clone();
        let c = s
            .challenges
            .get(n as usize)
            .cloned()
            .ok_or(LedgerError::UnknownChallenge {
                slot: *id,
                challenge: n,
            })?;
        if c.status != ChallengeStatus::Open {
            return Err(LedgerError::ChallengeClosed {
                slot: *id,
                challenge: n,
                status: c.status,
            });
        }
        Ok((s, c))
    }

    fn submit(
        &mut self,
        id: &SlotId,
        n: u64,
        proof: &StorageProof,
    ) -> Result<Outcome, LedgerError> {
        self.live_slot(id, "prove a slot")?;
        let (s, c) = self.open_challenge(id, n)?;
        if s.host != Some(self.actor) {
            return Err(LedgerError::NotHost {
                actor: self.actor,
                slot: *id,
            });
        }
        if self.at > c.deadline {
            return Err(LedgerError::ChallengeClosed {
                slot: *id,
                challenge: n,
                status: ChallengeStatus::Missed,
            });
        }
        let root = self.req(&s.slot.request_id)?.request.content.merkle_root;
        let valid = proofs::verify(&c.challenge, &root, proof).is_ok();
        let status = if valid {
            ChallengeStatus::Proven
        } else {
            ChallengeStatus::Invalid
        };
        self.slot(id)?.challenges[n as usize].status = status;
        if valid {
            Ok(Outcome::Proven)
        } else {
            // The host's own signed, invalid answer is the evidence; the challenger is
            // rewarded as if it had marked a missed proof.
            self.slash(id, c.validator)
        }
    }

    fn missed(&mut self, id: &SlotId, n: u64) -> Result<Outcome, LedgerError> {
        self.live_slot(id, "mark a proof missing")?;
        let (_, c) = self.open_challenge(id, n)?;
        if self.at <= c.deadline {
            return Err(LedgerError::ChallengeOpen {
                slot: *id,
                challenge: n,
                deadline: c.deadline,
            });
        }
        self.slot(id)?.challenges[n as usize].status = ChallengeStatus::Missed;
        self.slash(id, self.actor)
    }

    fn slash(&mut self, id: &SlotId, validator: Address) -> Result<Outcome, LedgerError> {
        let cc = self.config.collateral.clone();
        let s = self.slot(id)?.clone();
        let r = self.req(&s.slot.request_id)?.clone();
        let amount =
            pct(r.request.ask.collateral_per_slot()?, cc.slash_percentage).min(s.collateral);
        let reward = pct(amount, cc.validator_reward_percentage);
        self.slot(id)?.collateral -= amount;
        self.slot(id)?.slashes += 1;
        let req = self.req(&r.id)?;
        req.escrow = sub(req.escrow, amount)?;
        self.credit(validator, reward)?;
        self.books.burned = add(self.books.burned, amount - reward)?;
        let limit = cc
            .max_number_of_slashes
            .map_or(r.request.ask.max_slot_loss, u64::from)
            .max(1);
        let (freed, failed) = if s.slashes + 1 >= limit {
            (true, self.free(id)?)
        } else {
            (false, false)
        };
        Ok(Outcome::Slashed {
            amount,
            freed,
            failed,
        })
    }

    fn free_by_host(&mut self, id: &SlotId) -> Result<Outcome, LedgerError> {
        self.live_slot(id, "free a slot")?;
        let actor = self.actor;
        if self.slot(id)?.host != Some(actor) {
            return Err(LedgerError::NotHost {
                actor: self.actor,
                slot: *id,
            });
        }
        let failed = self.free(id)?;
        Ok(Outcome::Freed { failed })
    }

    /// Takes the slot from its host for repair: the remaining collateral is forfeited, part of
    /// it kept as the next host's repair reward, the rest burned. Returns whether the request
    /// failed (more slots freed than it tolerates), in which case it is settled at once.
    fn free(&mut self, id: &SlotId) -> Result<bool, LedgerError> {
        let repair_pct = self.config.collateral.repair_reward_percentage;
        let s = self.slot(id)?.clone();
        let r = self.req(&s.slot.request_id)?.clone();
        let reward = pct(r.request.ask.collateral_per_slot()?, repair_pct).min(s.collateral);
        let burn = s.collateral - reward;
        {
            let s = self.slot(id)?;
            s.state.go(SlotState::Repair)?;
            s.host = None;
            s.collateral = 0;
            s.repair_reward = add(s.repair_reward, reward)?;
            s.slashes = 0;
            for c in &mut s.challenges {
                if c.status == ChallengeStatus::Open {
                    c.status = ChallengeStatus::Missed;
                }
            }
        }
        self.books.burned = add(self.books.burned, burn)?;
        let req = self.req(&r.id)?;
        req.escrow = sub(req.escrow, burn)?;
        req.slots_filled -= 1;
        req.slots_freed += 1;
        let failed =
            req.state == RequestState::Started && req.slots_freed > req.request.ask.max_slot_loss;
        if failed {
            req.state.go(RequestState::Failed)?;
            self.pay_out(&r.id, self.at, SlotState::Failed)?;
        }
        Ok(failed)
    }

    fn settle(&mut self, id: &RequestId) -> Result<Outcome, LedgerError> {
        let at = self.at;
        let r = self.req(id)?.clone();
        let (to, paid_until, slot_end) = match r.state {
            RequestState::New if at > r.expires_at => {
                (RequestState::Cancelled, r.expires_at, SlotState::Cancelled)
            }
            RequestState::Started if at >= r.ends_at => {
                (RequestState::Finished, r.ends_at, SlotState::Finished)
            }
            RequestState::New | RequestState::Started => {
                return Err(self.timing(&r, "settle"));
            }
            state => {
                return Err(LedgerError::RequestState {
                    request: r.id,
                    state,
                    action: "settle",
                })
            }
        };
        self.req(id)?.state.go(to)?;
        self.pay_out(id, paid_until, slot_end)?;
        Ok(Outcome::Settled(to))
    }

    /// Ends every slot of the request: hosts holding one get paid from when they filled it to
    /// `until` and get their collateral back; repair rewards nobody claimed are burned; the
    /// client gets the rest of the escrow.
    fn pay_out(&mut self, id: &RequestId, until: u64, end: SlotState) -> Result<(), LedgerError> {
        let r = self.req(id)?.clone();
        let rate = r.request.ask.price_per_slot_per_second()?;
        let mut escrow = r.escrow;
        for slot_index in 0..r.request.ask.slots {
            let sid = SlotId::new(id, slot_index);
            let s = self.slot(&sid)?.clone();
            if let Some(host) = s.host {
                let earned = rate
                    .checked_mul(until.saturating_sub(s.filled_at) as Amount)
                    .ok_or(LedgerError::Overflow)?;
                let due = add(earned, s.collateral)?;
                escrow = sub(escrow, due)?;
                self.credit(host, due)?;
            }
            escrow = sub(escrow, s.repair_reward)?;
            self.books.burned = add(self.books.burned, s.repair_reward)?;
            let s = self.slot(&sid)?;
            s.state.go(end)?;
            s.state.go(SlotState::Paid)?;
            s.collateral = 0;
            s.repair_reward = 0;
        }
        self.credit(r.request.client, escrow)?;
        self.req(id)?.escrow = 0;
        Ok(())
    }
}
