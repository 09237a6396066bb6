//! What every request handler shares: config, identity, the block store and metrics.
//!
//! Store calls are synchronous (redb is); `with_store` runs them on tokio's blocking pool and
//! times them, so no handler ever blocks the reactor on disk I/O.

use std::sync::Arc;
use std::time::Instant;

use neverust_net::Network;
use neverust_store::{BlockStore, StoreError};

use crate::config::NodeConfig;
use crate::identity::Identity;
use crate::metrics::Metrics;

pub struct NodeState {
    pub config: NodeConfig,
    pub identity: Identity,
    pub store: Arc<dyn BlockStore>,
    /// `"disk"`, `"memory"` or `"tiered"`: the label of store metrics.
    pub store_kind: &'static str,
    pub metrics: Metrics,
    pub net: Network,
    pub downloads: crate::network_fetch::ActiveDownloads,
    /// The tiers, when the store is tiered (`--tier`).
    pub tiers: Option<crate::tiers::Tiers>,
    /// The storage marketplace: on marketplace nodes, and on the node that keeps its ledger.
    pub market: Option<std::sync::Arc<crate::market::Market>>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlockingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("store task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl NodeState {
    /// Runs one store operation off the async reactor and records its latency.
    pub async fn with_store<T, F>(&self, op: &'static str, f: F) -> Result<T, BlockingError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn BlockStore) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || f(store.as_ref())).await?;
        self.metrics
            .observe_store_op(op, self.store_kind, started.elapsed());
        Ok(result?)
    }

    /// The node's signed peer record. As Archivist's, it is the record of its DHT (naming
    /// its UDP port) when the node takes part in Archivist's DHT; otherwise a libp2p record
    /// of its TCP listeners. The TCP addresses are in `/debug/info` either way.
    pub fn spr(&self) -> Option<String> {
        match self.net.archivist_dht() {
            Some(dht) => Some(dht.record()),
            None => self.identity.spr(self.net.listen_addrs()).ok(),
        }
    }

    /// Refreshes the gauges that mirror the store before a scrape.
    pub fn refresh_store_gauges(&self) {
        let stats = self.store.stats();
        let clamp = |v: u64| v.min(i64::MAX as u64) as i64;
        self.metrics.block_count.set(clamp(stats.block_count));
        self.metrics.block_bytes.set(clamp(stats.block_bytes));
        self.metrics
            .quota_max_bytes
            .set(clamp(self.config.storage_quota));
    }
}
