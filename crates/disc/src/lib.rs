//! Archivist's DHT for Neverust.
//!
//! Archivist nodes find content through archivist-dht, a fork of Ethereum's discovery v5:
//! the same packets, masking and handshake, but protobuf messages, libp2p signed peer records
//! (SPR) as node records, node ids that are keccak256 of libp2p peer ids, and provider
//! records (ADDPROVIDER / GETPROVIDERS / PROVIDERS) keyed by keccak256 of a CID. This crate
//! speaks it well enough to join an Archivist DHT, look up providers of a CID and announce
//! this node as one.
//!
//! Layers, bottom up: [`node_id`], [`crypto`], [`packet`], [`messages`] and [`spr`] are pure
//! and byte-exact; [`routing`], [`providers`], [`session`] and [`protocol`] are a sans-I/O
//! core fed datagrams and `Instant`s that returns datagrams to send and events; [`service`]
//! runs that core on a tokio UDP socket behind an async handle.

pub mod crypto;
pub mod messages;
pub mod node_id;
pub mod packet;
pub mod protocol;
pub mod providers;
pub mod routing;
pub mod service;
pub mod session;
pub mod spr;

pub use node_id::NodeId;
pub use protocol::{Config, Outcome, Protocol};
pub use service::{Discovery, DiscoveryHandle, QueryError, ServiceConfig, StartError};
pub use spr::Spr;
