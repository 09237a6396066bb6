//! Archivist's storage marketplace without a blockchain (issue 19). Pure code, no I/O.
pub mod erasure;
pub mod ids;
pub mod ledger;
pub mod proofs;
pub mod request;
pub mod states;
