//! Neverust's peer-to-peer layer: one libp2p swarm (TCP, Noise, yamux/mplex, identify,
//! Kademlia), Archivist's blockexc protocol, and downloads that pull datasets from several
//! providers at once.
//!
//! [`Network`] is the handle the node holds. It does not serve HTTP and does not decide
//! what to store: the node asks it to find, fetch and announce; it verifies every block it
//! hands back.

mod announce;
pub mod archivist_dht;
pub mod block_fetch;
pub mod blockexc;
pub mod download;
pub mod ledger;
pub mod metrics;
pub mod reconcile;
pub mod swarm;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use libp2p::identity::Keypair;
use libp2p::{kad, Multiaddr, PeerId};
use neverust_content::{cid_string, Cid};
use neverust_store::BlockStore;
use tokio::sync::{broadcast, mpsc, oneshot};

pub use blockexc::{BlockAddress, Engine, Message, WantEntry, WantEvent};
pub use download::{DownloadError, DownloadProgress, FetchedLeaf};
pub use ledger::{Account, LedgerPolicy};
pub use metrics::NetMetrics;
pub use swarm::{ConnectionEvent, PeerInfo, SwarmConfig, SwarmError};

use block_fetch::{BlockFetch, Next};
use blockexc::Presence;
use swarm::Command;

pub use block_fetch::NO_PROVIDER_GRACE;

#[derive(Clone, Debug)]
pub struct NetConfig {
    pub swarm: SwarmConfig,
    pub policy: LedgerPolicy,
    /// Where Archivist's DHT listens (UDP), when the node takes part in it.
    pub archivist_dht: Option<std::net::SocketAddr>,
    /// Downloads learn which peers hold which blocks by set reconciliation; without it, by
    /// a want-have per missing block per peer, as blockexc alone does.
    pub reconcile: bool,
}

impl NetConfig {
    /// A node on a free loopback port with a node's usual timings, taking part in neither
    /// DHT beyond Kademlia: how tests and benchmarks start nodes in-process.
    pub fn loopback(agent: &str) -> NetConfig {
        NetConfig {
            swarm: SwarmConfig {
                listen: "/ip4/127.0.0.1/tcp/0".parse().expect("a valid multiaddr"),
                agent: agent.into(),
                idle_timeout: Duration::from_secs(600),
                dht_replication: std::num::NonZeroUsize::new(4).expect("non-zero"),
                provider_ttl: Duration::from_secs(600),
                reprovide_interval: Duration::from_secs(300),
                random_walk_interval: Duration::from_secs(300),
            },
            policy: LedgerPolicy::altruistic(),
            archivist_dht: None,
            reconcile: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    #[error("cannot connect to {target}: {reason}")]
    Dial { target: String, reason: String },
    #[error("no peer provides {cid}")]
    NoProviders { cid: String },
    #[error("no provider delivered {cid} within {waited:?}")]
    Timeout { cid: String, waited: Duration },
    #[error("the network task has stopped")]
    Stopped,
}

/// Why the network could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error(transparent)]
    Swarm(#[from] SwarmError),
    #[error("cannot start Archivist's DHT: {0}")]
    ArchivistDht(#[from] neverust_disc::StartError),
}

#[derive(Clone)]
pub struct Network {
    inner: Arc<Inner>,
}

struct Inner {
    peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<ConnectionEvent>,
    engine: Arc<Engine>,
    store: Arc<dyn BlockStore>,
    metrics: NetMetrics,
    listen_addrs: swarm::ListenAddrs,
    /// Providers that just answered for a key (a manifest fetched a moment ago), so the
    /// download that follows starts from them instead of walking the DHT again.
    recent_providers:
        std::sync::Mutex<std::collections::HashMap<Cid, (std::time::Instant, Vec<PeerId>)>>,
    archivist_dht: Option<archivist_dht::ArchivistDht>,
    reconcile: Arc<reconcile::Reconcile>,
    reconcile_peers: bool,
    partial: Arc<reconcile::PartialDatasets>,
    control: libp2p_stream::Control,
}

/// A provider named by Archivist's DHT that does not answer a dial within this long is
/// left out (its record may be a day old).
const PROVIDER_DIAL_LIMIT: Duration = Duration::from_secs(3);

/// How many connected peers a block fetch asks directly when the DHT knows no provider.
const MAX_ASKED_DIRECTLY: usize = 64;

/// How long a provider list found by one lookup may seed the next operation on that key.
const RECENT_PROVIDERS_TTL: Duration = Duration::from_secs(10);

impl Network {
    pub async fn start(
        keypair: Keypair,
        config: NetConfig,
        store: Arc<dyn BlockStore>,
        metrics: NetMetrics,
    ) -> Result<Network, StartError> {
        Self::start_with_holdings(keypair, config, store, metrics, None).await
    }

    /// As [`Network::start`], with the sets reconciliation compares taken from `holdings`
    /// instead of the store and the downloads (benchmarks of the protocol at set sizes
    /// no store here could hold).
    pub async fn start_with_holdings(
        keypair: Keypair,
        config: NetConfig,
        store: Arc<dyn BlockStore>,
        metrics: NetMetrics,
        holdings: Option<Arc<dyn reconcile::Holdings>>,
    ) -> Result<Network, StartError> {
        let peer_id = keypair.public().to_peer_id();
        let parts = swarm::spawn(keypair.clone(), config.swarm, metrics.clone()).await?;
        let archivist_dht = match config.archivist_dht {
            Some(bind) => {
                let tcp = parts
                    .listen_addrs
                    .read()
                    .expect("listen addrs lock")
                    .clone();
                Some(archivist_dht::ArchivistDht::start(keypair, bind, tcp).await?)
            }
            None => None,
        };
        let partial = Arc::new(reconcile::PartialDatasets::default());
        let engine = Engine::start(
            store.clone(),
            partial.clone(),
            parts.control.clone(),
            config.policy,
            metrics.clone(),
            parts.commands.clone(),
            parts.events.subscribe(),
        );
        let holdings = holdings.unwrap_or_else(|| {
            Arc::new(reconcile::NodeHoldings {
                store: store.clone(),
                partial: partial.clone(),
            })
        });
        let reconcile = reconcile::Reconcile::start(
            parts.control.clone(),
            holdings,
            engine.clone(),
            metrics.clone(),
        );
        Ok(Network {
            inner: Arc::new(Inner {
                peer_id,
                commands: parts.commands,
                events: parts.events,
                engine,
                store,
                metrics,
                listen_addrs: parts.listen_addrs,
                recent_providers: Default::default(),
                archivist_dht,
                reconcile,
                reconcile_peers: config.reconcile,
                partial,
                control: parts.control,
            }),
        })
    }

    pub fn local_peer_id(&self) -> PeerId {
        self.inner.peer_id
    }

    /// The addresses the swarm listens on (the real port when 0 was asked for).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.inner
            .listen_addrs
            .read()
            .expect("listen addrs lock")
            .clone()
    }

    /// A handle for protocols of one's own beside blockexc and reconciliation, on the
    /// same connections (benchmarks use it for their baselines).
    pub fn stream_control(&self) -> libp2p_stream::Control {
        self.inner.control.clone()
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.inner.engine
    }

    pub fn store(&self) -> &Arc<dyn BlockStore> {
        &self.inner.store
    }

    pub fn metrics(&self) -> &NetMetrics {
        &self.inner.metrics
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.inner.events.subscribe()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .commands
            .send(make(tx))
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Connects to a peer (by id, addresses, or both) and returns its id once connected.
    pub async fn dial(
        &self,
        peer: Option<PeerId>,
        addrs: Vec<Multiaddr>,
    ) -> Result<PeerId, NetError> {
        let target = match (&peer, addrs.first()) {
            (Some(p), _) => p.to_string(),
            (None, Some(a)) => a.to_string(),
            (None, None) => "nobody".into(),
        };
        let result = tokio::time::timeout(
            Duration::from_secs(20),
            self.ask(|reply| Command::Dial { peer, addrs, reply }),
        )
        .await
        .map_err(|_| NetError::Dial {
            target: target.clone(),
            reason: "timed out".into(),
        })??;
        result.map_err(|reason| NetError::Dial { target, reason })
    }

    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NetError> {
        self.ask(Command::Peers).await
    }

    /// Announces that this node holds `cid`: queued behind the announcements already walking
    /// the DHT (see `announce`); Kademlia re-announces it periodically.
    pub async fn provide(&self, cid: &Cid) {
        let _ = self
            .inner
            .commands
            .send(Command::Provide(dht_key(cid)))
            .await;
    }

    /// Announces a dataset this node now holds whole: its manifest CID in Kademlia, and its
    /// manifest and tree CIDs in Archivist's DHT when the node takes part in it.
    pub async fn provide_dataset(&self, manifest: &Cid, tree: &Cid) {
        self.provide(manifest).await;
        if let Some(dht) = &self.inner.archivist_dht {
            dht.announce(&[*manifest, *tree]);
        }
    }

    /// Learns which blocks of `tree` `peer` holds that this node lacks, and the reverse,
    /// with `/neverust/reconcile/1.0.0`.
    pub async fn reconcile(
        &self,
        peer: PeerId,
        tree: Cid,
    ) -> Result<reconcile::Reconciled, reconcile::ReconcileError> {
        self.inner.reconcile.initiate(peer, tree).await
    }

    /// The downloads in progress, whose verified blocks this node already serves.
    pub(crate) fn partial(&self) -> &Arc<reconcile::PartialDatasets> {
        &self.inner.partial
    }

    /// Archivist's DHT, when the node takes part in it.
    pub fn archivist_dht(&self) -> Option<&archivist_dht::ArchivistDht> {
        self.inner.archivist_dht.as_ref()
    }

    /// Stops announcing `cid`; records already at other peers expire with their TTL.
    pub async fn unprovide(&self, cid: &Cid) {
        if let Some(dht) = &self.inner.archivist_dht {
            dht.forget(cid);
        }
        let _ = self
            .inner
            .commands
            .send(Command::Unprovide(dht_key(cid)))
            .await;
    }

    /// Peers that announced `cid` (never this node), dialled as they are found: Kademlia's,
    /// else Archivist's DHT's when the node takes part in it. Kademlia answers first: it
    /// ends at the first peer that names providers, and a lookup in Archivist's DHT costs
    /// more (every node record it meets is signed); content only Archivist nodes hold is
    /// found in the second.
    pub async fn find_providers(&self, cid: &Cid) -> Result<Vec<PeerId>, NetError> {
        let key = dht_key(cid);
        let providers = self
            .ask(|reply| Command::FindProviders { key, reply })
            .await?;
        let Some(dht) = self
            .inner
            .archivist_dht
            .as_ref()
            .filter(|_| providers.is_empty())
        else {
            return Ok(providers);
        };
        let mut found = dht.find(cid).await;
        let mut seen = HashSet::new();
        found.retain(|(p, _)| *p != self.inner.peer_id && seen.insert(*p));
        // Providers from Archivist's DHT are dialled now: blocks are asked over a connection.
        let dials = found.into_iter().map(|(p, addrs)| async move {
            let dial = self.dial(Some(p), addrs);
            tokio::time::timeout(PROVIDER_DIAL_LIMIT, dial)
                .await
                .ok()?
                .ok()
        });
        Ok(futures::future::join_all(dials)
            .await
            .into_iter()
            .flatten()
            .collect())
    }

    /// Peers with a live connection, at most [`MAX_ASKED_DIRECTLY`].
    async fn connected_peers(&self) -> Vec<PeerId> {
        self.peers()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.connected)
            .map(|p| p.peer_id)
            .take(MAX_ASKED_DIRECTLY)
            .collect()
    }

    fn remember_providers(&self, cid: &Cid, providers: Vec<PeerId>) {
        let mut recent = self.inner.recent_providers.lock().expect("providers lock");
        recent.retain(|_, (at, _)| at.elapsed() < RECENT_PROVIDERS_TTL);
        recent.insert(*cid, (std::time::Instant::now(), providers));
    }

    /// Providers of `cid` found within the last seconds, taken (used once).
    pub(crate) fn take_recent_providers(&self, cid: &Cid) -> Option<Vec<PeerId>> {
        let mut recent = self.inner.recent_providers.lock().expect("providers lock");
        recent
            .remove(cid)
            .filter(|(at, p)| at.elapsed() < RECENT_PROVIDERS_TTL && !p.is_empty())
            .map(|(_, p)| p)
    }

    /// Fetches one block by its own CID (a manifest) from the DHT's providers, checked
    /// against the CID. Not stored: the caller decides. The decisions are
    /// [`block_fetch::BlockFetch`]'s; this moves the messages.
    pub async fn fetch_block(&self, cid: &Cid, timeout: Duration) -> Result<Bytes, NetError> {
        let now = || tokio::time::Instant::now().into_std();
        let (_guard, mut events) = self.inner.engine.want(*cid);
        let mut fetch = BlockFetch::new(now(), timeout);
        let mut next = fetch.start(now());
        loop {
            next = match next {
                Next::LookUp { until } => {
                    let lookup = tokio::time::timeout_at(until.into(), self.find_providers(cid));
                    match lookup.await {
                        Ok(found) => fetch.looked_up(Some(found?), now()),
                        Err(_) => fetch.looked_up(None, now()),
                    }
                }
                Next::ListConnected => fetch.connected(self.connected_peers().await, now()),
                Next::Ask(peers) => {
                    for p in peers {
                        let msg = Message {
                            wantlist: blockexc::Wantlist {
                                entries: vec![WantEntry::block(BlockAddress::Cid(*cid))],
                                full: false,
                            },
                            ..Message::default()
                        };
                        let engine = self.inner.engine.clone();
                        tokio::spawn(async move { engine.send(p, msg).await });
                    }
                    fetch.wait()
                }
                Next::Pause { until } => {
                    tokio::time::sleep_until(until.into()).await;
                    fetch.start(now())
                }
                Next::Wait { until } => {
                    match tokio::time::timeout_at(until.into(), events.recv()).await {
                        Err(_) => fetch.waited_out(now()),
                        Ok(None) => return Err(NetError::Stopped),
                        Ok(Some(WantEvent::Block {
                            cid: got,
                            data,
                            peer,
                            ..
                        })) if got == *cid => {
                            self.remember_providers(cid, fetch.providers_after(peer));
                            return Ok(data);
                        }
                        Ok(Some(
                            WantEvent::Presence {
                                peer,
                                presence: Presence::DontHave,
                                ..
                            }
                            | WantEvent::Invalid { peer, .. }
                            | WantEvent::PeerGone(peer),
                        )) => {
                            fetch.answered_no(&peer);
                            fetch.wait()
                        }
                        Ok(Some(_)) => fetch.wait(),
                    }
                }
                Next::Fail(block_fetch::Failure::NoProviders) => {
                    return Err(NetError::NoProviders {
                        cid: cid_string(cid),
                    })
                }
                Next::Fail(block_fetch::Failure::Timeout { waited }) => {
                    return Err(NetError::Timeout {
                        cid: cid_string(cid),
                        waited,
                    })
                }
            };
        }
    }
}

/// The DHT key of a CID: its binary form (Kademlia hashes keys itself for distance).
pub fn dht_key(cid: &Cid) -> kad::RecordKey {
    kad::RecordKey::new(&cid.to_bytes())
}
