//! The blockexc engine: answers peers' wantlists from the local store, checks every block a
//! peer sends before anyone sees it, and routes what arrives to the downloads waiting for it.
//!
//! Streams follow Archivist's model: to talk to a peer we open one stream and keep writing
//! length-prefixed messages to it; whatever a peer opens to us is read until it ends. One
//! writer task per peer owns our outbound stream (and reads it too, since an Archivist peer
//! may answer there). The engine decides nothing about scheduling: downloads do that.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::io::BufReader;
use futures::{AsyncReadExt, FutureExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use neverust_content::{digest_of, verify_block, Cid, MerkleProof};
use neverust_store::BlockStore;
use tokio::sync::{broadcast, mpsc};

use super::codec::{read_message, write_message};
use super::message::{
    BlockAddress, BlockDelivery, BlockPresence, Message, Presence, WantEntry, WantType, WireError,
};
use crate::ledger::{Account, LedgerPolicy, Ledgers};
use crate::metrics::{KindLabels, LedgerLabels, NetMetrics, ReasonLabels};
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

    /// Queues a message for `peer`, opening our stream to it if needed. Waits when the
    /// peer's queue is full, which is how a slow peer slows down whoever feeds it.
    pub async fn send(self: &Arc<Self>, peer: PeerId, msg: Message) {
        let mut msg = msg;
        // A second try covers a writer that died between lookup and send.
        for _ in 0..2 {
            let tx = {
                let mut senders = self.senders.lock().expect("senders lock");
                match senders.get(&peer) {
                    Some(tx) if !tx.is_closed() => tx.clone(),
                    _ => {
                        let (tx, rx) = mpsc::channel(PEER_QUEUE);
                        senders.insert(peer, tx.clone());
                        tokio::spawn(self.clone().write_loop(peer, rx, tx.clone()));
                        tx
                    }
                }
            };
            match tx.send(msg).await {
                Ok(()) => return,
                Err(mpsc::error::SendError(back)) => msg = back,
            }
        }
    }

    async fn write_loop(
        self: Arc<Self>,
        peer: PeerId,
        mut rx: mpsc::Receiver<Message>,
        me: mpsc::Sender<Message>,
    ) {
        // A message whose write failed. Two connections to one peer can exist (both dialled
        // at once) and one can close under a stream while the other stays up: the message
        // is written again on a new stream, or the peer would never get it (a delivery
        // lost that way leaves the asker waiting out its whole timeout).
        let mut unsent: Option<Message> = None;
        for _ in 0..2 {
            let Some(stream) = self.open_stream(peer).await else {
                break;
            };
            let (read, mut write) = stream.split();
            tokio::spawn(self.clone().read_loop(peer, Box::new(read)));
            loop {
                let msg = match unsent.take() {
                    Some(m) => m,
                    None => match rx.recv().await {
                        Some(m) => m,
                        None => {
                            self.drop_sender(peer, &me);
                            return;
                        }
                    },
                };
                match write_message(&mut write, &msg).await {
                    Ok(n) => {
                        let kind = if !msg.payload.is_empty() {
                            "blocks"
                        } else if !msg.presences.is_empty() {
                            "presences"
                        } else {
                            "wantlist"
                        };
                        self.metrics
                            .blockexc_bytes_sent
                            .get_or_create(&KindLabels { kind })
                            .inc_by(n as u64);
                    }
                    Err(e) => {
                        tracing::debug!(%peer, "blockexc write failed: {e}");
                        unsent = Some(msg);
                        break;
                    }
                }
            }
        }
        // What was written (and queued behind it) is lost with the stream: whoever waits on
        // this peer must hear it, or it waits for its timeout.
        self.drop_sender(peer, &me);
        self.broadcast(WantEvent::PeerGone(peer));
    }

    async fn open_stream(&self, peer: PeerId) -> Option<libp2p::Stream> {
        let mut control = self.control.lock().expect("control lock").clone();
        match tokio::time::timeout(OPEN_STREAM_TIMEOUT, control.open_stream(peer, PROTOCOL)).await {
            Ok(Ok(s)) => Some(s),
            Ok(Err(e)) => {
                tracing::debug!(%peer, "cannot open a blockexc stream: {e}");
                None
            }
            Err(_) => {
                tracing::debug!(%peer, "opening a blockexc stream timed out");
                None
            }
        }
    }

    fn drop_sender(&self, peer: PeerId, me: &mpsc::Sender<Message>) {
        let mut senders = self.senders.lock().expect("senders lock");
        if senders.get(&peer).is_some_and(|tx| tx.same_channel(me)) {
            senders.remove(&peer);
        }
    }

    /// Boxed: reading leads to serving, serving to opening a stream, and that to reading
    /// again, a cycle the compiler can only prove `Send` through a named type.
    fn read_loop(
        self: Arc<Self>,
        peer: PeerId,
        stream: Box<dyn futures::AsyncRead + Send + Unpin>,
    ) -> BoxFuture<'static, ()> {
        async move {
            self.read_messages(peer, stream).await;
            // Answers the peer would have sent on this stream will not come: whoever waits
            // on it asks again (the peer answers on a new stream) instead of timing out.
            self.broadcast(WantEvent::PeerGone(peer));
        }
        .boxed()
    }

    async fn read_messages(
        self: &Arc<Self>,
        peer: PeerId,
        stream: Box<dyn futures::AsyncRead + Send + Unpin>,
    ) {
        let mut r = BufReader::with_capacity(256 * 1024, stream);
        loop {
            match read_message(&mut r).await {
                Ok(Some(msg)) => self.handle(peer, msg).await,
                Ok(None) => return,
                // The frame was read whole, so the stream is still in step: go on reading.
                Err(
                    e
                    @ (WireError::Protobuf(_) | WireError::BadCid { .. } | WireError::BadPrice(_)),
                ) => {
                    tracing::debug!(%peer, "{e}");
                    self.offence(peer, "malformed");
                }
                Err(e @ WireError::TooLarge { .. }) => {
                    tracing::debug!(%peer, "{e}");
                    self.offence(peer, "oversize");
                    return;
                }
                Err(e) => {
                    tracing::debug!(%peer, "blockexc read ended: {e}");
                    return;
                }
            }
        }
    }

    async fn handle(self: &Arc<Self>, peer: PeerId, msg: Message) {
        for p in msg.presences {
            let key = *key_of(&p.address);
            self.route(
                key,
                WantEvent::Presence {
                    peer,
                    address: p.address,
                    presence: p.presence,
                },
            );
        }
        let accepted: u64 = msg
            .payload
            .into_iter()
            .map(|d| self.on_delivery(peer, d))
            .sum();
        if accepted > 0 {
            // Ledger series are labelled by peer id, whose text form costs an encoding:
            // once per message, not once per block.
            let account = self.ledgers.lock().expect("ledgers lock").account(&peer);
            self.export_account(peer, account);
        }
        if !msg.wantlist.entries.is_empty() {
            // Served beside the reader, never inside it: a reader that waits to send stops
            // reading, and when two peers serve each other at once, each waits on the
            // other's reader, for good (the 50-node stress scenario found it).
            let me = self.clone();
            let entries = msg.wantlist.entries;
            tokio::spawn(async move { me.serve(peer, entries).await });
        }
    }

    /// Checks a delivery and hands it to whoever waits for it; returns the bytes accepted.
    fn on_delivery(&self, peer: PeerId, d: BlockDelivery) -> u64 {
        let key = *key_of(&d.address);
        if !self.is_wanted(&key) {
            self.metrics.unwanted_blocks.inc();
            return 0;
        }
        match check_delivery(&d) {
            Ok(nleaves) => {
                let len = d.data.len() as u64;
                let labels = self.metrics.mode_labels();
                self.metrics.blocks_received.get_or_create(&labels).inc();
                self.metrics
                    .bytes_received
                    .get_or_create(&labels)
                    .inc_by(len);
                self.ledgers
                    .lock()
                    .expect("ledgers lock")
                    .on_received(&peer, len);
                self.route(
                    key,
                    WantEvent::Block {
                        peer,
                        address: d.address,
                        cid: d.cid,
                        data: d.data,
                        proof: d.proof,
                        nleaves,
                    },
                );
                len
            }
            Err(e) => {
                tracing::debug!(%peer, address = %d.address, "refused a delivery: {e}");
                self.offence(peer, e.reason());
                self.route(
                    key,
                    WantEvent::Invalid {
                        peer,
                        address: d.address,
                    },
                );
                0
            }
        }
    }

    async fn serve(self: &Arc<Self>, peer: PeerId, entries: Vec<WantEntry>) {
        let entries: Vec<WantEntry> = entries.into_iter().filter(|e| !e.cancel).collect();
        if entries.is_empty() {
            return;
        }
        self.metrics.peer_wants_served.inc_by(entries.len() as u64);
        let store = self.store.clone();
        let partial = self.partial.clone();
        let found = tokio::task::spawn_blocking(move || {
            entries
                .into_iter()
                .map(|e| {
                    let with_data = e.want == WantType::Block;
                    let got = lookup(store.as_ref(), &partial, &e.address, with_data);
                    (e, got)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();

        let mut presences = Vec::new();
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        for (entry, got) in found {
            match got {
                Some(Found {
                    cid,
                    data,
                    proof,
                    len,
                }) => {
                    let (allowed, price) = {
                        let mut l = self.ledgers.lock().expect("ledgers lock");
                        let allowed = entry.want == WantType::Have || l.try_serve(&peer, len);
                        (allowed, l.price_of(len))
                    };
                    if !allowed {
                        self.metrics.refused_for_credit.inc();
                        presences.push(BlockPresence {
                            address: entry.address,
                            presence: Presence::DontHave,
                            price,
                        });
                        continue;
                    }
                    match (entry.want, data) {
                        (WantType::Block, Some(data)) => {
                            batch_bytes += data.len();
                            batch.push(BlockDelivery {
                                cid,
                                data,
                                address: entry.address,
                                proof,
                            });
                        }
                        _ => presences.push(BlockPresence {
                            address: entry.address,
                            presence: Presence::Have,
                            price,
                        }),
                    }
                }
                None if entry.send_dont_have => presences.push(BlockPresence {
                    address: entry.address,
                    presence: Presence::DontHave,
                    price: Vec::new(),
                }),
                None => {}
            }
            if batch_bytes >= DELIVERY_BATCH_BYTES {
                self.deliver(peer, std::mem::take(&mut batch)).await;
                batch_bytes = 0;
            }
        }
        if !presences.is_empty() {
            self.send(
                peer,
                Message {
                    presences,
                    ..Message::default()
                },
            )
            .await;
        }
        if !batch.is_empty() {
            self.deliver(peer, batch).await;
        }
    }

    async fn deliver(self: &Arc<Self>, peer: PeerId, payload: Vec<BlockDelivery>) {
        let bytes: u64 = payload.iter().map(|d| d.data.len() as u64).sum();
        let count = payload.len() as u64;
        let account = {
            let mut l = self.ledgers.lock().expect("ledgers lock");
            for d in &payload {
                l.on_sent(&peer, d.data.len() as u64);
            }
            l.account(&peer)
        };
        self.export_account(peer, account);
        self.metrics
            .blocks_sent
            .get_or_create(&self.metrics.mode_labels())
            .inc_by(count);
        self.metrics
            .bytes_sent
            .get_or_create(&self.metrics.mode_labels())
            .inc_by(bytes);
        self.send(
            peer,
            Message {
                payload,
                ..Message::default()
            },
        )
        .await;
    }

    fn export_account(&self, peer: PeerId, a: Account) {
        let clamp = |v: u64| v.min(i64::MAX as u64) as i64;
        for (direction, v) in [("sent", a.bytes_sent), ("received", a.bytes_received)] {
            self.metrics
                .ledger_bytes
                .get_or_create(&LedgerLabels {
                    peer: peer.to_string(),
                    direction,
                })
                .set(clamp(v));
        }
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

struct Found {
    cid: Cid,
    data: Option<Bytes>,
    proof: Option<Bytes>,
    len: u64,
}

/// Looks a wanted address up in the store, then among the downloads in progress; a store
/// error reads as "don't have".
fn lookup(
    store: &dyn BlockStore,
    partial: &PartialDatasets,
    address: &BlockAddress,
    with_data: bool,
) -> Option<Found> {
    let (cid, proof) = match address {
        BlockAddress::Leaf { tree, index } => {
            let leaf = match store.get_leaf(tree, *index).ok()? {
                Some(leaf) => leaf,
                None => partial.leaf(tree, *index)?,
            };
            (leaf.cid, Some(leaf.proof))
        }
        BlockAddress::Cid(cid) => (*cid, None),
    };
    let data = store.get_block(&cid).ok()??;
    Some(Found {
        cid,
        len: data.len() as u64,
        data: with_data.then_some(data),
        proof,
    })
}

/// Why a delivered block was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("the bytes do not hash to the block's CID")]
    BadHash,
    #[error("the Merkle proof does not lead to the tree root at the index asked for")]
    BadProof,
}

impl DeliveryError {
    /// Its `reason` label in `neverust_misbehaviour_total`.
    pub fn reason(self) -> &'static str {
        match self {
            DeliveryError::BadHash => "bad_hash",
            DeliveryError::BadProof => "bad_proof",
        }
    }
}

/// The receiver's checks: the bytes hash to the CID, and a dataset block's proof leads from
/// that CID to the tree root at the index asked for. Returns the proof's leaf count.
pub fn check_delivery(d: &BlockDelivery) -> Result<Option<u64>, DeliveryError> {
    use DeliveryError::{BadHash, BadProof};
    verify_block(&d.cid, &d.data).map_err(|_| BadHash)?;
    match &d.address {
        BlockAddress::Cid(cid) if *cid == d.cid => Ok(None),
        BlockAddress::Cid(_) => Err(BadHash),
        BlockAddress::Leaf { tree, index } => {
            let proof = d.proof.as_ref().ok_or(BadProof)?;
            let proof = MerkleProof::decode(proof).map_err(|_| BadProof)?;
            let leaf = digest_of(&d.cid).map_err(|_| BadHash)?;
            let root = digest_of(tree).map_err(|_| BadProof)?;
            if proof.index == *index && proof.verify(&leaf, &root) {
                Ok(Some(proof.nleaves))
            } else {
                Err(BadProof)
            }
        }
    }
}
