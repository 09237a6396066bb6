//! Archivist's storage marketplace without a blockchain (issue 19): the pure foundation.
//! No network, no HTTP, no clock: every function takes the time it needs and returns
//! decisions, errors or new state.
//!
//! What it holds:
//! - [`request`]: storage requests and availabilities, the REST creation bodies and their
//!   validation (typed errors naming the field), prices and collateral, availability matching;
//! - [`ids`]: request and slot ids derived as Archivist derives them, addresses from libp2p keys;
//! - [`states`]: purchase, sale, request and slot lifecycles that refuse illegal transitions;
//! - [`erasure`]: Reed–Solomon coding of a dataset's blocks into `nodes` slots in Archivist's
//!   layout, per-slot Merkle roots, rebuilding any lost slot from any `nodes − tolerance`;
//! - [`proofs`]: challenges (block indices from verifier entropy), answers (blocks + Merkle
//!   proofs against the slot root), verification;
//! - [`ledger`]: the state a chain would hold behind [`ledger::MarketState`], and
//!   [`ledger::MemoryLedger`], a log of actions each signed by its actor's libp2p key that
//!   anyone can replay to check the books;
//! - [`views`]: the JSON shapes the REST API answers with.
//!
//! Archivist facts followed (paths in durability-labs/archivist-node at 90b7fff):
//! - request, ask and content fields, `id = keccak256(abi.encode(request))`,
//!   `slotId = keccak256(abi.encode(requestId, slotIndex))`, `pricePerSlotPerSecond`,
//!   `totalPrice`, `collateralPerSlot`, request and slot states: archivist/contracts/requests.nim;
//! - request creation rules (0 < expiry < duration, proofProbability, collateralPerByte and
//!   pricePerBytePerSecond > 0, duration ≤ requestDurationLimit, defaults nodes 3 tolerance 1,
//!   tolerance ≥ 1, tolerance ≤ nodes, `1 < K ≥ M`) and availability rules (totalSize,
//!   duration, minPricePerBytePerSecond, totalCollateral > 0): archivist/rest/api.nim;
//!   `ecK = nodes − tolerance`, `ecM = tolerance`, `maxSlotLoss = tolerance`, relative expiry:
//!   `setupRequest` in archivist/node.nim;
//! - availability fields, `maxCollateralPerByte`, matching: archivist/sales/reservations.nim;
//! - JSON names and state names: openapi.yaml (`StorageRequestCreation`, `StorageRequest`,
//!   `StorageAsk`, `SalesAvailability(READ)`, `Purchase`, `SlotAgent`, `Reservation`, `Slot`);
//!   transitions: archivist/purchasing/states/*.nim, archivist/sales/states/*.nim;
//! - erasure layout (`rounded`, `steps`, stepped rows, parity at `rounded + step + j·steps`,
//!   `InsufficientBlocksError` when K exceeds the block count): archivist/erasure/erasure.nim;
//!   linear slots of `blocksCount / numSlots` blocks: archivist/slots/builder/builder.nim,
//!   archivist/indexingstrategy.nim, archivist/manifest/manifest.nim `numSlotBlocks`;
//! - 5 samples per proof drawn from entropy, the slot and a counter:
//!   archivist/archivisttypes.nim `DefaultSamplesNum`, archivist/slots/sampler/utils.nim;
//! - market parameters (slash, validator reward and repair reward percentages, slashes before
//!   freeing, reservations per slot, proof timeout, duration limit):
//!   archivist/contracts/config.nim.
//!
//! Where this differs, and why: slot roots are neverust-content's sha256 tree over each
//! block's tree of 2 KiB cells instead of Poseidon2 trees over the cells, and a proof carries
//! the sampled cells with their Merkle paths instead of a Groth16 proof — no trusted setup, at
//! the price of size (about 25 KB); `reed-solomon-simd` implements Leopard's
//! algorithm but its parity bytes are not claimed identical to libleopard's; amounts are `u128`
//! rather than `UInt256`; a non-secp256k1 key's address hashes its protobuf encoding.
//!
//! What a chain would add: one agreed order of actions (here each party keeps and replays a
//! log, so two logs can diverge), a clock nobody chooses (here the actor states when it
//! signed, and the ledger applies an action then or at its own time if later, refusing one
//! signed more than a minute before), randomness nobody chooses for fill challenges and proof
//! periods (here derived from the slot or given by the verifier), and a token whose
//! balances others honour (here [`ledger::Action::Deposit`] mints).
pub mod erasure;
pub mod ids;
pub mod ledger;
pub mod proofs;
pub mod request;
pub mod states;
pub mod views;
