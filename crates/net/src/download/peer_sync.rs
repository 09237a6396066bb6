//! Which peers beside the DHT's providers hold blocks a download lacks: other downloads of
//! the same dataset in progress (a swarm), and holders a partition hid until it healed.
//!
//! With reconciliation, one `/neverust/reconcile/1.0.0` session per peer tells exactly
//! which missing blocks it holds, whatever the dataset's size; the peer's own download
//! hears what it lacks from us in the same session. Peers that do not speak it (Archivist
//! nodes), and every peer when the node runs without reconciliation, get blockexc's plain
//! way instead: a want-have for every missing block, answered by a presence each.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use neverust_content::Cid;
use tokio::sync::mpsc;

use crate::blockexc::Message;
use crate::reconcile::ReconcileError;
use crate::Network;

/// How often peers known to hold part of the dataset are asked again: they are
/// downloading too, and hold more each time.
pub(super) const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// How many connected peers a download asks when it starts.
pub(super) const MAX_SYNC_PEERS: usize = 32;
/// How long presences to want-haves may take to come before nobody counts as a holder.
const PRESENCE_WAIT: Duration = Duration::from_secs(2);
/// Want-have entries per blockexc message.
const WANTS_PER_MESSAGE: usize = 4096;

pub(super) enum Learned {
    /// The peer holds these missing blocks (sorted).
    Holds(PeerId, Vec<u64>),
    /// It holds none of them but is downloading the dataset too.
    Downloading(PeerId),
    /// The peer does not speak reconciliation: it gets want-haves.
    Unsupported(PeerId),
    Failed(PeerId),
}

pub(super) struct PeerSync {
    net: Network,
    tree: Cid,
    reconcile: bool,
    tx: mpsc::UnboundedSender<Learned>,
    pub rx: mpsc::UnboundedReceiver<Learned>,
    running: HashSet<PeerId>,
    plain: HashSet<PeerId>,
    /// Asked again every [`SYNC_INTERVAL`]: peers that hold some of the dataset or are
    /// fetching it (reconciliation tells), and without reconciliation every peer asked.
    watched: HashSet<PeerId>,
    last_round: Instant,
    /// When want-haves last went out: their presences are still to come until a while after.
    asked_plainly: Option<Instant>,
}

impl PeerSync {
    pub fn new(net: Network, tree: Cid, reconcile: bool) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        PeerSync {
            net,
            tree,
            reconcile,
            tx,
            rx,
            running: HashSet::new(),
            plain: HashSet::new(),
            watched: HashSet::new(),
            last_round: Instant::now(),
            asked_plainly: None,
        }
    }

    /// Asks `peer` which of `missing` it holds, unless a session with it is running.
    pub fn sync(&mut self, peer: PeerId, missing: &[u64]) {
        self.sync_at(peer, missing, Instant::now())
    }

    fn sync_at(&mut self, peer: PeerId, missing: &[u64], now: Instant) {
        if missing.is_empty() {
            return;
        }
        if !self.reconcile || self.plain.contains(&peer) {
            // Without reconciliation nothing tells who is fetching the dataset too, so
            // every peer asked is asked again. A peer that does not speak it (an Archivist
            // node) is asked again only once it holds something: a want-have per missing
            // block every second would be a heavy price for a peer that never will.
            if !self.reconcile {
                self.watched.insert(peer);
            }
            self.want_have(peer, missing, now);
            return;
        }
        if !self.running.insert(peer) {
            return;
        }
        let (net, tx, tree) = (self.net.clone(), self.tx.clone(), self.tree);
        tokio::spawn(async move {
            let learned = match net.reconcile(peer, tree).await {
                Ok(r) if r.peer_has.is_empty() && r.peer_downloading => Learned::Downloading(peer),
                Ok(r) => Learned::Holds(peer, r.peer_has),
                Err(ReconcileError::Unsupported) => Learned::Unsupported(peer),
                Err(_) => Learned::Failed(peer),
            };
            let _ = tx.send(learned);
        });
    }

    /// Records a session's end; a peer without the protocol gets want-haves from now on.
    pub fn ended(&mut self, learned: &Learned, missing: &[u64]) {
        let (Learned::Holds(peer, _)
        | Learned::Downloading(peer)
        | Learned::Unsupported(peer)
        | Learned::Failed(peer)) = learned;
        self.running.remove(peer);
        match learned {
            Learned::Holds(peer, has) if !has.is_empty() => self.watch(*peer),
            Learned::Downloading(peer) => self.watch(*peer),
            Learned::Unsupported(peer) => {
                self.plain.insert(*peer);
                self.sync(*peer, missing);
            }
            _ => {}
        }
    }

    /// Asks `peer` again every round from now on.
    pub fn watch(&mut self, peer: PeerId) {
        self.watched.insert(peer);
    }

    /// Stops asking `peer` (it left).
    pub fn forget(&mut self, peer: &PeerId) {
        self.watched.remove(peer);
        self.plain.remove(peer);
    }

    /// Sessions still running, or presences still to come: they may yet name holders.
    pub fn busy(&self, now: Instant) -> bool {
        !self.running.is_empty()
            || self
                .asked_plainly
                .is_some_and(|t| now.duration_since(t) < PRESENCE_WAIT)
    }

    /// Once per [`SYNC_INTERVAL`], asks the watched peers again.
    pub fn round(&mut self, now: Instant, missing: impl FnOnce() -> Vec<u64>) {
        if self.watched.is_empty() || now.duration_since(self.last_round) < SYNC_INTERVAL {
            return;
        }
        self.last_round = now;
        let missing = missing();
        let watched: Vec<PeerId> = self.watched.iter().copied().collect();
        for peer in watched {
            self.sync_at(peer, &missing, now);
        }
    }

    fn want_have(&mut self, peer: PeerId, missing: &[u64], now: Instant) {
        self.asked_plainly = Some(now);
        for chunk in missing.chunks(WANTS_PER_MESSAGE) {
            let msg = Message::want_haves(self.tree, chunk);
            let engine = self.net.engine().clone();
            tokio::spawn(async move { engine.send(peer, msg).await });
        }
    }
}
