//! The Neverust storage node: configuration, lifecycle, the Archivist-compatible REST API,
//! metrics, and the upload/download paths between the API and the block store.
//!
//! Networking between nodes lives in `neverust-net`; this crate wires it to the store and
//! the API and joins the bootstrap node.

pub mod api;
pub mod bootstrap;
pub mod config;
pub mod identity;
pub mod local_read;
pub mod logging;
pub mod manifest;
pub mod market;
pub mod metrics;
pub mod network_fetch;
pub mod node;
pub mod procfs;
pub mod state;
pub mod tiers;
pub mod upload;

pub use config::{Mode, NodeConfig, StoreKind};
pub use node::{run_until_signal, Node, RunError, StartError};
