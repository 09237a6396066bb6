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
//!
//! ```no_run
//! # async fn demo(keypair: libp2p::identity::Keypair, cid: &[u8]) -> anyhow::Result<()> {
//! use neverust_disc::Discovery;
//! // Our DHT record names 127.0.0.1 and the bound UDP port; provider records name TCP.
//! let dht = Discovery::start(
//!     keypair,
//!     "127.0.0.1:8090".parse()?,
//!     vec!["/ip4/127.0.0.1/tcp/8070".parse()?],
//! )
//! .await?;
//! dht.bootstrap("spr:CiUIAh…").await?; // e.g. an Archivist node's /api/archivist/v1/spr
//! let providers = dht.find_providers(cid).await?; // [(PeerId, Vec<Multiaddr>)]
//! dht.add_provider(cid).await?; // announce our provider record
//! println!("{}", dht.local_spr()); // what others bootstrap from
//! # let _ = providers; Ok(()) }
//! ```
//!
//! Not done here, unlike Archivist: IPv6 records and sockets, persisting provider records
//! across restarts, updating our record while running (NAT/IP voting), TALKREQ protocols
//! (answered empty), and re-announcing: callers announce again before the 24 h provider TTL.

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
