//! Node configuration: everything `neverust start` can be told, already validated.
//!
//! Parsing flags and environment variables is the binary's job; this module only holds
//! the resulting values and the few rules that tie them together.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

/// How a node treats peers asking it for blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// Serves any peer for free.
    Altruistic,
    /// Keeps per-peer accounts and serves within a credit limit.
    Marketplace,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Altruistic => "altruistic",
            Mode::Marketplace => "marketplace",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which block store backs the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreKind {
    /// redb database under the data dir: survives restarts.
    Disk,
    /// Process memory only: for benchmarks and throwaway nodes.
    Memory,
}

#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub mode: Mode,
    /// Address the peer-to-peer listeners bind to.
    pub listen_ip: IpAddr,
    /// Address the REST API binds to (loopback unless the node runs in a container).
    pub api_ip: IpAddr,
    pub listen_port: u16,
    pub disc_port: u16,
    pub api_port: u16,
    pub data_dir: PathBuf,
    pub log_level: String,
    /// The bootstrap node's API address (`HOST:PORT`), as the seed's compose files give it.
    pub bootstrap_node: Option<String>,
    pub storage_quota: u64,
    pub block_ttl: Duration,
    pub maintenance_interval: Duration,
    pub store: StoreKind,
    /// `--tier`: memory and devices fastest first; empty for the single store of `store`.
    pub tiers: Vec<neverust_store::TierSpec>,
    /// Marketplace mode: price per byte announced in block presences.
    pub price_per_byte: u64,
    /// Marketplace mode: bytes a peer may take beyond what it gave back.
    pub credit_limit: u64,
    /// Connections with no traffic close after this long.
    pub idle_timeout: Duration,
    /// How many of the peers closest to a CID keep this node's provider record for it.
    pub dht_replication: NonZeroUsize,
    /// Whether the node takes part in Archivist's DHT on `disc_port` (UDP), so Archivist
    /// nodes find its content and it finds theirs.
    pub archivist_dht: bool,
    /// Whether downloads learn which peers hold which blocks by set reconciliation
    /// (`/neverust/reconcile/1.0.0`) rather than a want-have per missing block per peer.
    pub reconcile: bool,
    /// The storage marketplace's parameters and this node's part in it.
    pub market: crate::market::MarketOptions,
}

/// Archivist's defaults: 20 GiB quota, 30 day block TTL, maintenance every 10 minutes.
pub const DEFAULT_STORAGE_QUOTA: u64 = 20 * 1024 * 1024 * 1024;
pub const DEFAULT_BLOCK_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
pub const DEFAULT_MAINTENANCE_INTERVAL: Duration = Duration::from_secs(600);
pub const DEFAULT_PRICE_PER_BYTE: u64 = 1;
pub const DEFAULT_CREDIT_LIMIT: u64 = 256 * 1024 * 1024;
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Each announcement walks the DHT to this many closest peers and stores its record there.
/// libp2p's default of 20 is sized for public networks of thousands of churning peers; in a
/// cluster of 10 to 100 nodes it makes every announcement a walk over much of the network
/// (about 25 ms of CPU across a 50-node cluster, against about 8 ms at 4). Records are
/// republished every 10 minutes, and a fetch that finds no provider asks its connected
/// peers, so 4 copies are enough here.
pub const DEFAULT_DHT_REPLICATION: NonZeroUsize = NonZeroUsize::new(4).unwrap();

impl NodeConfig {
    pub fn ledger_policy(&self) -> neverust_net::LedgerPolicy {
        match self.mode {
            Mode::Altruistic => neverust_net::LedgerPolicy::altruistic(),
            Mode::Marketplace => neverust_net::LedgerPolicy {
                price_per_byte: self.price_per_byte,
                credit_limit: Some(self.credit_limit),
            },
        }
    }

    /// A node on loopback with ephemeral ports, for tests and benchmarks.
    pub fn ephemeral(data_dir: PathBuf) -> Self {
        NodeConfig {
            mode: Mode::Altruistic,
            listen_ip: IpAddr::from([127, 0, 0, 1]),
            api_ip: IpAddr::from([127, 0, 0, 1]),
            listen_port: 0,
            disc_port: 0,
            api_port: 0,
            data_dir,
            log_level: "info".into(),
            bootstrap_node: None,
            storage_quota: DEFAULT_STORAGE_QUOTA,
            block_ttl: DEFAULT_BLOCK_TTL,
            maintenance_interval: DEFAULT_MAINTENANCE_INTERVAL,
            store: StoreKind::Disk,
            tiers: Vec::new(),
            price_per_byte: DEFAULT_PRICE_PER_BYTE,
            credit_limit: DEFAULT_CREDIT_LIMIT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            dht_replication: DEFAULT_DHT_REPLICATION,
            archivist_dht: true,
            reconcile: true,
            market: Default::default(),
        }
    }
}
