//! The blockexc engine: answers peers' wantlists from the local store, checks every block a
//! peer sends before anyone sees it, and routes what arrives to the downloads waiting for it.
//!
//! Streams follow Archivist's model: to talk to a peer we open one stream and keep writing
//! length-prefixed messages to it; whatever a peer opens to us is read until it ends. One
//! writer task per peer owns our outbound stream (and reads it too, since an Archivist peer
//! may answer there). The engine decides nothing about scheduling: downloads do that.
//!
//! Layout: this module holds the engine, its registrations and routing, and the strikes
//! peers collect; `streams` the per-peer stream tasks; `serve` answering wantlists from
//! the store; `receive` the checks of what arrives.

mod receive;
mod serve;
mod streams;

pub use receive::{check_delivery, DeliveryError};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use libp2p::{PeerId, StreamProtocol};
use neverust_content::Cid;
use neverust_store::BlockStore;
use tokio::sync::{broadcast, mpsc};

use super::message::{BlockAddress, Message, Presence};
use crate::ledger::{Account, LedgerPolicy, Ledgers};
use crate::metrics::{NetMetrics, ReasonLabels};
use crate::reconcile::PartialDatasets;
use crate::swarm::{Command, ConnectionEvent};

pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/archivist/blockexc/1.0.0");
/// Offences a peer may commit before it is disconnected.
const MAX_STRIKES: u32 = 3;
/// Deliveries are batched into messages of about this size: large enough to amortise
/// framing and encryption, small enough that a requester sees blocks arrive steadily.
const DELIVERY_BATCH_BYTES: usize = 512 * 1024;
const OPEN_STREAM_TIMEOUT: Duration = Duration::from_secs(10);
const PEER_QUEUE: usize = 64;

/// What a waiting download hears about the addresses it registered for.
#[derive(Clone, Debug)]
pub enum WantEvent {
    /// A block whose bytes match its CID and, for leaves, whose proof leads to the tree root.
    Block {
        peer: PeerId,
        address: BlockAddress,
        cid: Cid,
        data: Bytes,
        proof: Option<Bytes>,
        /// The proof's leaf count (leaf addresses only), so the download can check it
        /// against its manifest without decoding the proof again.
        nleaves: Option<u64>,
    },
    Presence {
        peer: PeerId,
        address: BlockAddress,
        presence: Presence,
    },
    /// The peer sent something for this address that failed verification.
    Invalid { peer: PeerId, address: BlockAddress },
    /// The peer disconnected or could not be reached: nothing more will come from it.
    PeerGone(PeerId),
    /// A reconciliation session found that the peer holds these blocks of the tree, which
    /// this node lacks (sorted indices). Only a hint: each block is still verified.
    Holds { peer: PeerId, indices: Arc<[u64]> },
}

type Waiters = HashMap<Cid, Vec<(u64, mpsc::UnboundedSender<WantEvent>)>>;

pub struct Engine {
    store: Arc<dyn BlockStore>,
    partial: Arc<PartialDatasets>,
    control: Mutex<libp2p_stream::Control>,
    senders: Mutex<HashMap<PeerId, mpsc::Sender<Message>>>,
    waiters: Mutex<Waiters>,
    next_waiter: AtomicU64,
    ledgers: Mutex<Ledgers<PeerId>>,
    strikes: Mutex<HashMap<PeerId, u32>>,
    metrics: NetMetrics,
    commands: mpsc::Sender<Command>,
}

/// Keeps a download registered for a key; unregisters on drop.
pub struct WantGuard {
    engine: Arc<Engine>,
    key: Cid,
    id: u64,
}

impl Drop for WantGuard {
    fn drop(&mut self) {
        let mut waiters = self.engine.waiters.lock().expect("waiters lock");
        if let Some(list) = waiters.get_mut(&self.key) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                waiters.remove(&self.key);
            }
        }
    }
}

impl Engine {
    pub(crate) fn start(
        store: Arc<dyn BlockStore>,
        partial: Arc<PartialDatasets>,
        mut control: libp2p_stream::Control,
        policy: LedgerPolicy,
        metrics: NetMetrics,
        commands: mpsc::Sender<Command>,
        mut events: broadcast::Receiver<ConnectionEvent>,
    ) -> Arc<Engine> {
        let mut incoming = control
            .accept(PROTOCOL)
            .expect("blockexc is registered once per swarm");
        let engine = Arc::new(Engine {
            store,
            partial,
            control: Mutex::new(control),
            senders: Mutex::new(HashMap::new()),
            waiters: Mutex::new(HashMap::new()),
            next_waiter: AtomicU64::new(0),
            ledgers: Mutex::new(Ledgers::new(policy)),
            strikes: Mutex::new(HashMap::new()),
            metrics,
            commands,
        });
        let e = engine.clone();
        tokio::spawn(async move {
            while let Some((peer, stream)) = incoming.next().await {
                tokio::spawn(e.clone().read_loop(peer, Box::new(stream)));
            }
        });
        let e = Arc::downgrade(&engine);
        tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(ev) => ev,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let Some(engine) = e.upgrade() else { return };
                if let ConnectionEvent::Disconnected(peer) = event {
                    engine.senders.lock().expect("senders lock").remove(&peer);
                    engine.broadcast(WantEvent::PeerGone(peer));
                }
            }
        });
        engine
    }

    /// Registers interest in deliveries and presences for `key` (a tree CID for dataset
    /// blocks, or a block's own CID).
    pub fn want(self: &Arc<Self>, key: Cid) -> (WantGuard, mpsc::UnboundedReceiver<WantEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self.next_waiter.fetch_add(1, Ordering::Relaxed);
        self.waiters
            .lock()
            .expect("waiters lock")
            .entry(key)
            .or_default()
            .push((id, tx));
        (
            WantGuard {
                engine: self.clone(),
                key,
                id,
            },
            rx,
        )
    }

    pub fn ledgers(&self) -> Vec<(PeerId, Account)> {
        let l = self.ledgers.lock().expect("ledgers lock");
        let mut v: Vec<_> = l.accounts().map(|(p, a)| (*p, *a)).collect();
        v.sort_by_key(|(p, _)| *p);
        v
    }

    pub fn policy(&self) -> LedgerPolicy {
        self.ledgers.lock().expect("ledgers lock").policy().clone()
    }

    pub(crate) fn offence(&self, peer: PeerId, reason: &'static str) {
        self.metrics
            .misbehaviour
            .get_or_create(&ReasonLabels { reason })
            .inc();
        let strikes = {
            let mut s = self.strikes.lock().expect("strikes lock");
            let n = s.entry(peer).or_default();
            *n += 1;
            if *n >= MAX_STRIKES {
                s.remove(&peer);
                MAX_STRIKES
            } else {
                *n
            }
        };
        if strikes >= MAX_STRIKES {
            tracing::info!(%peer, "disconnecting a misbehaving peer ({reason})");
            self.metrics.peers_disconnected_for_misbehaviour.inc();
            let _ = self.commands.try_send(Command::Disconnect(peer));
        }
    }

    fn is_wanted(&self, key: &Cid) -> bool {
        self.waiters.lock().expect("waiters lock").contains_key(key)
    }

    pub(crate) fn route(&self, key: Cid, event: WantEvent) {
        let waiters = self.waiters.lock().expect("waiters lock");
        if let Some(list) = waiters.get(&key) {
            for (_, tx) in list {
                let _ = tx.send(event.clone());
            }
        }
    }

    fn broadcast(&self, event: WantEvent) {
        let waiters = self.waiters.lock().expect("waiters lock");
        for (_, tx) in waiters.values().flatten() {
            let _ = tx.send(event.clone());
        }
    }
}

fn key_of(address: &BlockAddress) -> &Cid {
    match address {
        BlockAddress::Leaf { tree, .. } => tree,
        BlockAddress::Cid(cid) => cid,
    }
}
