//! Set reconciliation between two peers with a rateless invertible Bloom lookup table
//! (Yang, Gilad, Alizadeh, "Practical Rateless Set Reconciliation", SIGCOMM 2024): one peer
//! streams coded symbols of its set, the other subtracts its own and peels, and about 1.35
//! symbols per item of the difference suffice, whatever the sets' sizes and without knowing
//! the difference in advance. Pure code: no I/O, no clock, no async. The protocol handler
//! (`/neverust/reconcile/1.0.0`, in `net`) opens the session (set sizes, hash key), moves
//! the batches and acts on the [`Progress`]; this crate decides.
//!
//! Our own implementation rather than a crate: `riblt` 0.1.1 rescans every coded symbol per
//! peeled item (quadratic decoding), panics on symbols of the wrong width, and hashes with
//! std's unkeyed `DefaultHasher`; `do-riblt` 1.0.2 rescans the whole set for every coded
//! symbol it encodes (O(set × symbols)), has no count field, and neither bounds what a peer
//! can make it do. The algorithm is small (a mapping, a cell, a peeling loop), and owning it
//! gives us keyed hashing, a compact canonical wire form and hard per-session limits.
//!
//! Measured (`benches/riblt.rs`): 1.34-1.37 symbols per differing item from a difference
//! of 1000 up, 23 bytes per item for block indices, 34 for [`BlockKey`]s; at 1 % of 10^5
//! blocks that is 165x (indices) and 113x (keys) fewer bytes than a wantlist of the set at
//! 40 bytes an entry. Within one dataset whose blocks a peer mostly has, a bitmap of the
//! indices (n/8 bytes) is cheaper above about 0.5 % difference; the caller should pick.
//!
//! Layout: [`symbol`] (items, checksum, coded symbol), `mapping` (which symbols an item
//! goes into), [`wire`] (a batch's bytes), [`encoder`] (the sender), [`session`] (the
//! receiver with its limits).

pub mod encoder;
mod mapping;
pub mod session;
pub mod symbol;
pub mod wire;

pub use encoder::Encoder;
pub use session::{Difference, Limits, Progress, Reconciler, SessionError};
pub use symbol::{BlockKey, CodedSymbol, HashKey, Symbol};
pub use wire::{Batch, WireError};
