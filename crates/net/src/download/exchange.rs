//! The event loop every download of a tree's leaves runs: providers looked up in the DHT
//! beside it, connected peers asked what they hold (`peer_sync`), the [`Policy`]'s
//! requests sent as wantlists, and the engine's verified deliveries turned into policy
//! calls. It yields each leaf the policy accepts, once, and the verdict at the end.
//!
//! It keeps nothing: what to do with a leaf (stream it, register it, store it, hold it in
//! memory) is the caller's, between two calls of [`Exchange::next`].

use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use libp2p::PeerId;
use neverust_content::{cid_string, Cid};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{broadcast, mpsc};

use super::peer_sync::{Learned, PeerSync, MAX_SYNC_PEERS};
use super::policy::{range_len, Failure, Policy};
use super::{DownloadError, DownloadProgress};
use crate::blockexc::{BlockAddress, Message, Presence, WantEntry, WantEvent, WantGuard, Wantlist};
use crate::swarm::ConnectionEvent;
use crate::{Engine, Network};

/// One verified leaf of a tree: its index, block CID and bytes, and its Merkle proof
/// (encoded, as the store keeps it) against the tree root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedLeaf {
    pub index: u64,
    pub cid: Cid,
    pub data: Bytes,
    pub proof: Bytes,
}

/// A running exchange for the leaves of one tree.
pub(super) struct Exchange {
    net: Network,
    engine: Arc<Engine>,
    manifest_cid: Cid,
    tree: Cid,
    cid_text: String,
    policy: Policy<PeerId>,
    sync: PeerSync,
    events: mpsc::UnboundedReceiver<WantEvent>,
    _want: WantGuard,
    connections: broadcast::Receiver<ConnectionEvent>,
    found_tx: mpsc::UnboundedSender<Vec<PeerId>>,
    found_rx: mpsc::UnboundedReceiver<Vec<PeerId>>,
    progress: Arc<DownloadProgress>,
    wantlist_gauge: Gauge,
    reported_in_flight: i64,
    latency: Histogram,
}

impl Exchange {
    /// Registers for the tree's deliveries, awaits the first provider lookup of
    /// `manifest_cid` (nothing can start without a provider) and asks the connected peers
    /// what they hold; leaves `range` of the tree's `nleaves` are wanted.
    pub async fn start(
        net: &Network,
        manifest_cid: Cid,
        tree: Cid,
        range: Range<u64>,
        nleaves: u64,
        progress: Arc<DownloadProgress>,
    ) -> Exchange {
        progress
            .blocks_total
            .store(range_len(&range), Ordering::Relaxed);
        let engine = net.engine().clone();
        let (want, events) = engine.want(tree);
        // Subscribed before the first sync, so a peer that connects meanwhile is not missed.
        let connections = net.subscribe();

        // Lookups run beside the download, never in its way: the first one is awaited,
        // later ones report through a channel.
        let (found_tx, found_rx) = mpsc::unbounded_channel::<Vec<PeerId>>();
        let initial = match net.take_recent_providers(&manifest_cid) {
            Some(p) => p,
            None => net.lookup_providers(manifest_cid).await,
        };
        let mut policy = Policy::for_range(range, nleaves, Instant::now());
        policy.add_providers(initial, Instant::now());
        // Peers that hold part of the dataset, besides the DHT's providers (which hold it
        // all): `sync` asks them again every so often, since they are downloading too.
        let mut sync = PeerSync::new(net.clone(), tree, net.inner.reconcile_peers);
        let missing = policy.missing();
        for p in net
            .connected_peers()
            .await
            .into_iter()
            .take(MAX_SYNC_PEERS)
            .filter(|p| !policy.is_provider(p))
        {
            sync.sync(p, &missing);
        }
        Exchange {
            net: net.clone(),
            engine,
            manifest_cid,
            tree,
            cid_text: cid_string(&manifest_cid),
            policy,
            sync,
            events,
            _want: want,
            connections,
            found_tx,
            found_rx,
            progress,
            wantlist_gauge: net.metrics().wantlist_blocks.clone(),
            reported_in_flight: 0,
            latency: net.metrics().block_fetch_latency.clone(),
        }
    }

    /// The next leaf the policy accepts; `Ok(None)` once the policy is done (or the engine
    /// went away: [`Exchange::done_count`] tells), an error when it gives up.
    pub async fn next(&mut self) -> Result<Option<FetchedLeaf>, DownloadError> {
        loop {
            let now = Instant::now();
            while let Ok(found) = self.found_rx.try_recv() {
                self.policy.lookup_done(found, now);
            }
            if self.policy.start_lookup(now) {
                let (net, tx, cid) = (self.net.clone(), self.found_tx.clone(), self.manifest_cid);
                tokio::spawn(async move {
                    let _ = tx.send(net.lookup_providers(cid).await);
                });
            }
            let policy = &self.policy;
            self.sync.round(now, || policy.missing());
            for (peer, indices) in self.policy.requests(now) {
                let tree = self.tree;
                let entries = indices
                    .into_iter()
                    .map(|index| WantEntry::block(BlockAddress::Leaf { tree, index }))
                    .collect();
                send_wants(&self.engine, peer, entries);
            }
            let in_flight = self.policy.in_flight() as i64;
            self.wantlist_gauge
                .inc_by(in_flight - self.reported_in_flight);
            self.reported_in_flight = in_flight;
            if let Some(verdict) = self.policy.verdict(now, self.sync.busy(now)) {
                return verdict
                    .map(|()| None)
                    .map_err(|f| failure(f, &self.cid_text));
            }

            let event = tokio::select! {
                ev = self.events.recv() => ev,
                found = self.found_rx.recv() => {
                    self.policy.lookup_done(found.unwrap_or_default(), Instant::now());
                    continue;
                }
                learned = self.sync.rx.recv() => {
                    let Some(learned) = learned else { continue };
                    self.sync.ended(&learned, &self.policy.missing());
                    if let Learned::Holds(peer, has) = learned {
                        self.holds(peer, &has);
                    }
                    continue;
                }
                conn = self.connections.recv() => {
                    // A peer (re)connected, after a partition healed say: what does it hold?
                    if let Ok(ConnectionEvent::Connected(peer)) = conn {
                        if !self.policy.is_provider(&peer) {
                            self.sync.sync(peer, &self.policy.missing());
                        }
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(self.policy.wake(now).into()) => continue,
            };
            let Some(event) = event else { return Ok(None) };
            if let Some(leaf) = self.on_event(event) {
                return Ok(Some(leaf));
            }
        }
    }

    /// Blocks accepted so far.
    pub fn done_count(&self) -> u64 {
        self.policy.done_count()
    }

    /// The error of an exchange that ended short of blocks without a verdict (the engine
    /// or the caller's own sink went away).
    pub fn stalled(&self) -> DownloadError {
        DownloadError::Stalled {
            cid: self.cid_text.clone(),
            missing: Vec::new(),
            waited: self.policy.since_progress(Instant::now()),
        }
    }

    fn on_event(&mut self, event: WantEvent) -> Option<FetchedLeaf> {
        let now = Instant::now();
        match event {
            WantEvent::Block {
                peer,
                address: BlockAddress::Leaf { index, .. },
                cid,
                data,
                proof,
                nleaves,
            } => {
                // The engine checked the proof against the root; the policy checks the
                // leaf count is this dataset's.
                let accepted = self.policy.on_block(&peer, index, nleaves, now)?;
                for c in accepted.cancels {
                    let cancel = WantEntry::cancel(BlockAddress::Leaf {
                        tree: self.tree,
                        index: c.index,
                    });
                    send_wants(&self.engine, c.peer, vec![cancel]);
                }
                if let Some(waited) = accepted.waited {
                    self.latency.observe(waited.as_secs_f64());
                }
                self.progress
                    .blocks_done
                    .store(self.policy.done_count(), Ordering::Relaxed);
                return Some(FetchedLeaf {
                    index,
                    cid,
                    data,
                    proof: proof.unwrap_or_default(),
                });
            }
            WantEvent::Presence {
                peer,
                address: BlockAddress::Leaf { index, .. },
                presence: Presence::DontHave,
            } => self.policy.on_dont_have(&peer, index, now),
            WantEvent::Invalid {
                peer,
                address: BlockAddress::Leaf { index, .. },
            } => self.policy.on_invalid(&peer, index, now),
            WantEvent::Presence {
                peer,
                address: BlockAddress::Leaf { index, .. },
                presence: Presence::Have,
            } => self.holds(peer, &[index]),
            WantEvent::Holds { peer, indices } => self.holds(peer, &indices),
            WantEvent::PeerGone(peer) => {
                self.sync.forget(&peer);
                self.policy.peer_gone(&peer);
            }
            _ => {}
        }
        None
    }

    /// `peer` holds `has` of the missing blocks: a provider of those, asked again later.
    fn holds(&mut self, peer: PeerId, has: &[u64]) {
        if self.policy.add_holder(peer, has, Instant::now()) {
            self.sync.watch(peer);
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.wantlist_gauge.dec_by(self.reported_in_flight);
    }
}

fn failure(f: Failure, cid: &str) -> DownloadError {
    let cid = cid.to_string();
    match f {
        Failure::NoProviders => DownloadError::NoProviders { cid },
        Failure::Stalled { missing, waited } => DownloadError::Stalled {
            cid,
            missing,
            waited,
        },
    }
}

impl Network {
    async fn lookup_providers(&self, manifest_cid: Cid) -> Vec<PeerId> {
        self.find_providers(&manifest_cid).await.unwrap_or_default()
    }
}

fn send_wants(engine: &Arc<Engine>, peer: PeerId, entries: Vec<WantEntry>) {
    let msg = Message {
        wantlist: Wantlist {
            entries,
            full: false,
        },
        ..Message::default()
    };
    let engine = engine.clone();
    tokio::spawn(async move { engine.send(peer, msg).await });
}
