//! Node lifecycle: config → identity → store → API, a maintenance timer, and a graceful stop.
//!
//! `Node::start` returns once the API is listening, so callers (the binary, tests,
//! benchmarks) can talk to it at once; `shutdown` stops accepting requests, lets in-flight
//! ones finish for a bounded time, and closes the store so everything acknowledged is on disk.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use neverust_store::{BlockStore, DiskStore, MemoryStore, StoreConfig, TieredStore};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::bootstrap::BootstrapTarget;
use crate::config::{NodeConfig, StoreKind};
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::state::NodeState;
use neverust_net::Network;

/// Provider records live this long at other peers unless re-announced.
const PROVIDER_TTL: Duration = Duration::from_secs(3600);
const REPROVIDE_INTERVAL: Duration = Duration::from_secs(600);
/// Kademlia's own refresh of the routing table (a lookup of a random key).
const RANDOM_WALK_INTERVAL: Duration = Duration::from_secs(300);

/// How long in-flight requests may run on after a stop was asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("cannot create the data dir {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error("cannot open the block store: {0}")]
    Store(#[from] neverust_store::StoreError),
    #[error(transparent)]
    Network(#[from] neverust_net::StartError),
    #[error("invalid --bootstrap-node: {0}")]
    Bootstrap(String),
    #[error("cannot open the market: {0}")]
    Market(#[from] crate::market::MarketStartError),
    #[error("cannot listen for the API on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub struct Node {
    state: Arc<NodeState>,
    api_addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    maintenance: JoinHandle<()>,
}

impl Node {
    pub async fn start(config: NodeConfig) -> Result<Node, StartError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let identity = Identity::load_or_create(&config.data_dir)?;
        let store_config = StoreConfig {
            quota_max_bytes: config.storage_quota,
            block_ttl: config.block_ttl,
        };
        let mut tiers = None;
        let (store, store_kind): (Arc<dyn BlockStore>, _) = match config.store {
            StoreKind::Disk if !config.tiers.is_empty() => {
                let specs = config.tiers.clone();
                let store =
                    tokio::task::spawn_blocking(move || TieredStore::open(&specs, store_config))
                        .await
                        .expect("opening the store does not panic")?;
                let store = Arc::new(store);
                tiers = Some(crate::tiers::Tiers {
                    store: store.clone(),
                    specs: config.tiers.clone(),
                });
                (store, "tiered")
            }
            StoreKind::Disk => {
                let dir = config.data_dir.clone();
                let store =
                    tokio::task::spawn_blocking(move || DiskStore::open(&dir, store_config))
                        .await
                        .expect("opening the store does not panic")?;
                (Arc::new(store), "disk")
            }
            StoreKind::Memory => (Arc::new(MemoryStore::new(store_config)), "memory"),
        };

        let api_addr = SocketAddr::new(config.api_ip, config.api_port);
        let listener = tokio::net::TcpListener::bind(api_addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: api_addr,
                source,
            })?;
        let api_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: api_addr,
            source,
        })?;

        let (metrics, net_metrics) = Metrics::of_node(
            config.mode,
            identity.peer_id().to_string(),
            store_kind,
            tiers.as_ref(),
        );
        let listen = Multiaddr::empty()
            .with(Protocol::from(config.listen_ip))
            .with(Protocol::Tcp(config.listen_port));
        let net_config = neverust_net::NetConfig {
            swarm: neverust_net::SwarmConfig {
                listen,
                agent: format!("neverust/{} ({})", env!("CARGO_PKG_VERSION"), config.mode),
                idle_timeout: config.idle_timeout,
                dht_replication: config.dht_replication,
                provider_ttl: PROVIDER_TTL,
                reprovide_interval: REPROVIDE_INTERVAL,
                random_walk_interval: RANDOM_WALK_INTERVAL,
            },
            policy: config.ledger_policy(),
            archivist_dht: config
                .archivist_dht
                .then(|| SocketAddr::new(config.listen_ip, config.disc_port)),
            reconcile: config.reconcile,
        };
        let net = Network::start(
            identity.keypair().clone(),
            net_config,
            store.clone(),
            net_metrics,
        )
        .await?;
        let maintenance_interval = config.maintenance_interval;
        let bootstrap = match &config.bootstrap_node {
            Some(b) => Some(BootstrapTarget::parse(b).map_err(StartError::Bootstrap)?),
            None => None,
        };
        // The node without a bootstrap node keeps the market's ledger; marketplace nodes
        // follow the bootstrap node's once they have reached it.
        let (keeper_tx, keeper_rx) = watch::channel(None);
        let trading = config.mode == crate::config::Mode::Marketplace;
        let market = if bootstrap.is_none() || trading {
            let keeper = bootstrap.is_some().then_some(keeper_rx);
            Some(
                crate::market::Market::open(
                    &config.data_dir.join("market"),
                    &identity,
                    net.stream_control(),
                    keeper,
                    config.market.clone(),
                    trading,
                )
                .map_err(StartError::Market)?,
            )
        } else {
            None
        };
        let state = Arc::new(NodeState {
            config,
            identity,
            store,
            store_kind,
            metrics,
            net,
            downloads: Default::default(),
            tiers,
            market,
        });
        // Announcing before joining would reach nobody (an empty routing table), and the
        // next re-announcement is minutes away: datasets a restarted node holds would stay
        // unfindable until then.
        let joining = state.clone();
        tokio::spawn(async move {
            if let Some(target) = bootstrap {
                let keeper = crate::bootstrap::join(joining.net.clone(), target).await;
                keeper_tx.send_replace(Some(keeper));
            }
            announce_stored(joining).await;
        });

        let (stop, stopped) = watch::channel(false);
        let router = crate::api::router(state.clone());
        let mut server_stop = stopped.clone();
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = server_stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "API server failed");
            }
        });
        tokio::spawn(give_memory_back_when_idle(stopped.clone()));
        if let Some(m) = state.market.clone() {
            tokio::spawn(crate::market::run_agents(state.clone(), m, stopped.clone()));
        }
        if let Some(t) = state.tiers.clone() {
            tokio::spawn(crate::tiers::rebalance_forever(t, stopped.clone()));
        }
        let maintenance = tokio::spawn(maintain_forever(
            state.store.clone(),
            maintenance_interval,
            stopped,
        ));
        tracing::info!(
            peer_id = %state.identity.peer_id(),
            api = %api_addr,
            mode = %state.config.mode,
            data_dir = %state.config.data_dir.display(),
            "node started"
        );
        Ok(Node {
            state,
            api_addr,
            stop,
            server,
            maintenance,
        })
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    pub fn api_url(&self) -> String {
        format!("http://{}/api/archivist/v1", self.api_addr)
    }

    pub fn state(&self) -> &Arc<NodeState> {
        &self.state
    }

    /// Stops the node: no new requests, in-flight ones get `DRAIN_TIMEOUT`, then the store
    /// is closed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let Node {
            state,
            server,
            maintenance,
            ..
        } = self;
        if tokio::time::timeout(DRAIN_TIMEOUT, server).await.is_err() {
            tracing::warn!("in-flight requests outlived the drain timeout; their uploads are dropped uncommitted");
        }
        let _ = maintenance.await;
        // Dropping the last handle closes the database; uncommitted uploads were aborted by
        // their own drops, or are reclaimed on the next start.
        drop(state);
        tracing::info!("node stopped");
    }
}

/// Announces every dataset already stored (after a restart) as provided by this node.
async fn announce_stored(state: Arc<NodeState>) {
    let store = state.store.clone();
    let manifests = tokio::task::spawn_blocking(move || store.list_manifests())
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    // Only datasets whose manifest still decodes are worth finding.
    for (cid, bytes) in manifests {
        if let Ok(manifest) = neverust_content::Manifest::decode(&bytes) {
            state.net.provide_dataset(&cid, &manifest.tree_cid).await;
        }
    }
}

async fn maintain_forever(
    store: Arc<dyn BlockStore>,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.maintain(SystemTime::now())).await {
            Ok(Ok(reclaimed)) => tracing::debug!(?reclaimed, "maintenance done"),
            Ok(Err(e)) => tracing::warn!(error = %e, "maintenance failed"),
            Err(e) => tracing::warn!(error = %e, "maintenance task panicked"),
        }
    }
}

/// How often the node looks at its own CPU time to see whether it has gone idle.
const IDLE_CHECK_EVERY: Duration = Duration::from_secs(5);
/// CPU seconds per check below which the node counts as idle (2 % of a core; an idle node
/// uses a few hundredths of that).
const IDLE_CPU_SECONDS: f64 = 0.1;
/// Idle checks in a row before the node gives memory back: bursts of work a few seconds
/// apart keep finding their buffers warm.
const IDLE_CHECKS: u32 = 2;

/// Gives pooled buffers and malloc's free pages back once the node has gone idle, once per
/// idle spell. Never while it works: on a virtual machine a page given back costs a trip to
/// the host when it is touched again, and the pools exist to avoid exactly that.
async fn give_memory_back_when_idle(mut stopped: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(IDLE_CHECK_EVERY);
    let mut spell = IdleSpell::default();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        if spell.observe(crate::procfs::self_usage().map(|u| u.cpu_seconds)) {
            let freed = neverust_store::trim_idle_buffers(IDLE_CHECK_EVERY * IDLE_CHECKS);
            neverust_store::release_free_heap();
            tracing::debug!(freed, "idle: buffers and free heap given back");
        }
    }
}

/// Idle checks in a row, from the process's CPU time at each check.
#[derive(Default)]
struct IdleSpell {
    last_cpu: Option<f64>,
    checks: u32,
}

impl IdleSpell {
    /// Whether the node has just been idle for `IDLE_CHECKS` checks: true once per spell.
    /// Without a CPU reading (no /proc) it never is.
    fn observe(&mut self, cpu: Option<f64>) -> bool {
        let idle = matches!((self.last_cpu, cpu), (Some(a), Some(b)) if b - a < IDLE_CPU_SECONDS);
        self.last_cpu = cpu;
        self.checks = if idle { self.checks + 1 } else { 0 };
        self.checks == IDLE_CHECKS
    }
}

/// Why a node could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    #[error(transparent)]
    Logging(#[from] crate::logging::LogLevelError),
    #[error(transparent)]
    Start(#[from] StartError),
}

/// Runs a node until SIGINT or SIGTERM, then stops it gracefully.
pub async fn run_until_signal(config: NodeConfig) -> Result<(), RunError> {
    crate::logging::init(&config.log_level)?;
    let node = Node::start(config).await?;
    // One machine-readable line on stdout: launchers and tests wait for it and read the
    // API address from it, which is how ephemeral ports (--api-port 0) become usable.
    println!(
        "READY api=http://{} peer_id={}",
        node.api_addr(),
        node.state().identity.peer_id()
    );
    wait_for_signal().await;
    tracing::info!("stop requested");
    node.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_goes_back_once_per_idle_spell() {
        let mut spell = IdleSpell::default();
        let busy = IDLE_CPU_SECONDS * 10.0;
        let mut cpu = 0.0;
        let mut at = |step: f64| {
            cpu += step;
            Some(cpu)
        };
        assert!(
            !spell.observe(at(0.0)),
            "the first reading has nothing to compare"
        );
        assert!(!spell.observe(at(busy)));
        assert!(!spell.observe(at(0.0)), "one idle check is not a spell");
        assert!(spell.observe(at(0.0)), "two in a row are");
        assert!(!spell.observe(at(0.0)), "once per spell");
        assert!(!spell.observe(at(busy)), "work ends the spell");
        assert!(!spell.observe(at(0.0)));
        assert!(spell.observe(at(0.0)), "the next spell gives back again");
        let mut blind = IdleSpell::default();
        assert!((0..5).all(|_| !blind.observe(None)), "no /proc: never idle");
    }
}
