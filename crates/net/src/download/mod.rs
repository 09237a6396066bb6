//! Downloading a dataset from the network: providers from the DHT, blocks requested by
//! (treeCid, index) as the [`scheduler`] decides, each block verified by the engine, kept
//! by a store upload that commits only when every block is in, and optionally streamed in
//! order to a reader while it runs.
//!
//! This module is the I/O shell: the decisions are the [`policy`]'s (and its
//! [`scheduler`]'s), the order a reader gets bytes in is [`in_order`]'s, and who holds
//! which blocks besides the DHT's providers is asked by `peer_sync`. It turns engine events
//! into policy calls and the policy's answers into wantlist messages.

mod in_order;
mod peer_sync;
pub mod policy;
pub mod scheduler;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libp2p::PeerId;
use neverust_content::{cid_string, Cid, Manifest};
use neverust_store::{LeafRef, StoreError};
use tokio::sync::mpsc;

use crate::blockexc::{BlockAddress, Message, Presence, WantEntry, WantEvent, Wantlist};
use crate::swarm::ConnectionEvent;
use crate::Network;
use in_order::InOrder;
use peer_sync::{Learned, PeerSync, MAX_SYNC_PEERS};
use policy::{Failure, Policy};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    #[error("no peer provides dataset {cid}")]
    NoProviders { cid: String },
    #[error("download of {cid} stalled: no provider delivered blocks {missing:?} for {waited:?}")]
    Stalled {
        cid: String,
        missing: Vec<u64>,
        waited: Duration,
    },
    #[error("cannot store the downloaded dataset {cid}: {source}")]
    Store { cid: String, source: StoreError },
    #[error("the reader of {cid} went away")]
    ReaderGone { cid: String },
}

/// Progress of a running download, shared with whoever started it.
#[derive(Debug, Default)]
pub struct DownloadProgress {
    pub blocks_done: AtomicU64,
    pub blocks_total: AtomicU64,
}

enum WriteOp {
    Put(Cid, Bytes),
    Commit {
        tree: Cid,
        leaves: Vec<LeafRef>,
        manifest_cid: Cid,
        manifest: Bytes,
    },
}

impl Network {
    /// Fetches every block of the dataset, stores it durably (one commit at the end) and
    /// announces it. With `sink`, the dataset's bytes are also sent there in order as soon
    /// as they are contiguous (the last block trimmed to the dataset size).
    pub async fn download_dataset(
        &self,
        manifest_cid: Cid,
        manifest: Manifest,
        manifest_bytes: Bytes,
        sink: Option<mpsc::Sender<Bytes>>,
        progress: Arc<DownloadProgress>,
    ) -> Result<(), DownloadError> {
        let tree = manifest.tree_cid;
        let total = manifest.blocks_count();
        let cid_text = cid_string(&manifest_cid);
        progress.blocks_total.store(total, Ordering::Relaxed);
        let engine = self.engine().clone();
        let (_guard, mut events) = engine.want(tree);
        // Subscribed before the first sync, so a peer that connects meanwhile is not missed.
        let mut connections = self.subscribe();
        let partial = self.partial().register(tree);

        let (writer, write_rx) = mpsc::channel::<WriteOp>(64);
        let store = self.store().clone();
        let writing = tokio::task::spawn_blocking(move || write_upload(store.as_ref(), write_rx));

        let mut reader = sink.map(|s| {
            let order = InOrder::new(total, u64::from(manifest.block_size), manifest.dataset_size);
            (s, order)
        });
        let mut reported_in_flight: i64 = 0;
        let wantlist_gauge = self.metrics().wantlist_blocks.clone();
        let latency = self.metrics().block_fetch_latency.clone();

        // Lookups run beside the download, never in its way: the first one is awaited
        // (nothing can start without a provider), later ones report through a channel.
        let (found_tx, mut found_rx) = mpsc::unbounded_channel::<Vec<PeerId>>();
        let initial = match self.take_recent_providers(&manifest_cid) {
            Some(p) => p,
            None => self.lookup_providers(manifest_cid).await,
        };
        let mut policy = Policy::new(total, Instant::now());
        policy.add_providers(initial, Instant::now());
        // Peers that hold part of the dataset, besides the DHT's providers (which hold it
        // all): `sync` asks them again every so often, since they are downloading too.
        let mut sync = PeerSync::new(self.clone(), tree, self.inner.reconcile_peers);
        let missing = policy.missing();
        for p in self
            .connected_peers()
            .await
            .into_iter()
            .take(MAX_SYNC_PEERS)
            .filter(|p| !policy.is_provider(p))
        {
            sync.sync(p, &missing);
        }

        let result = loop {
            let now = Instant::now();
            while let Ok(found) = found_rx.try_recv() {
                policy.lookup_done(found, now);
            }
            if policy.start_lookup(now) {
                let (net, tx) = (self.clone(), found_tx.clone());
                tokio::spawn(async move {
                    let _ = tx.send(net.lookup_providers(manifest_cid).await);
                });
            }
            sync.round(now, || policy.missing());
            for (peer, indices) in policy.requests(now) {
                let entries = indices
                    .into_iter()
                    .map(|index| WantEntry::block(BlockAddress::Leaf { tree, index }))
                    .collect();
                send_wants(&engine, peer, entries);
            }
            let in_flight = policy.in_flight() as i64;
            wantlist_gauge.inc_by(in_flight - reported_in_flight);
            reported_in_flight = in_flight;
            if let Some(verdict) = policy.verdict(now, sync.busy(now)) {
                break verdict.map_err(|f| failure(f, &cid_text));
            }

            let event = tokio::select! {
                ev = events.recv() => ev,
                found = found_rx.recv() => {
                    policy.lookup_done(found.unwrap_or_default(), Instant::now());
                    continue;
                }
                learned = sync.rx.recv() => {
                    let Some(learned) = learned else { continue };
                    sync.ended(&learned, &policy.missing());
                    if let Learned::Holds(peer, has) = learned {
                        holds(&mut policy, &mut sync, peer, &has);
                    }
                    continue;
                }
                conn = connections.recv() => {
                    // A peer (re)connected, after a partition healed say: what does it hold?
                    if let Ok(ConnectionEvent::Connected(peer)) = conn {
                        if !policy.is_provider(&peer) {
                            sync.sync(peer, &policy.missing());
                        }
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(policy.wake(now).into()) => continue,
            };
            let Some(event) = event else { break Ok(()) };
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
                    let Some(accepted) = policy.on_block(&peer, index, nleaves, now) else {
                        continue;
                    };
                    for c in accepted.cancels {
                        let cancel = WantEntry::cancel(BlockAddress::Leaf {
                            tree,
                            index: c.index,
                        });
                        send_wants(&engine, c.peer, vec![cancel]);
                    }
                    if let Some(waited) = accepted.waited {
                        latency.observe(waited.as_secs_f64());
                    }
                    // Kept once, in the registry that also serves it to peers; the
                    // commit takes the dataset's leaves from there.
                    let proof = proof.unwrap_or_default();
                    partial.insert(index, LeafRef { cid, proof });
                    progress
                        .blocks_done
                        .store(policy.done_count(), Ordering::Relaxed);
                    let ready = reader
                        .as_mut()
                        .map(|(_, order)| order.push(index, data.clone()));
                    if writer.send(WriteOp::Put(cid, data)).await.is_err() {
                        break Ok(()); // the writer failed; its error is collected below
                    }
                    if let (Some((s, _)), Some(ready)) = (&reader, ready) {
                        if !send_all(s, ready).await {
                            break Err(DownloadError::ReaderGone {
                                cid: cid_text.clone(),
                            });
                        }
                    }
                }
                WantEvent::Presence {
                    peer,
                    address: BlockAddress::Leaf { index, .. },
                    presence: Presence::DontHave,
                } => policy.on_dont_have(&peer, index, now),
                WantEvent::Invalid {
                    peer,
                    address: BlockAddress::Leaf { index, .. },
                } => policy.on_invalid(&peer, index, now),
                WantEvent::Presence {
                    peer,
                    address: BlockAddress::Leaf { index, .. },
                    presence: Presence::Have,
                } => holds(&mut policy, &mut sync, peer, &[index]),
                WantEvent::Holds { peer, indices } => holds(&mut policy, &mut sync, peer, &indices),
                WantEvent::PeerGone(peer) => {
                    sync.forget(&peer);
                    policy.peer_gone(&peer);
                }
                _ => {}
            }
        };
        wantlist_gauge.dec_by(reported_in_flight);

        let leaves = (result.is_ok() && policy.done_count() == total)
            .then(|| partial.leaves(total))
            .flatten();
        let finished = leaves.is_some();
        if let Some(leaves) = leaves {
            let commit = WriteOp::Commit {
                tree,
                leaves,
                manifest_cid,
                manifest: manifest_bytes,
            };
            let _ = writer.send(commit).await;
        }
        drop(writer);
        let written = writing.await.expect("the upload writer does not panic");
        result?;
        written.map_err(|source| DownloadError::Store {
            cid: cid_text.clone(),
            source,
        })?;
        if !finished {
            // The writer stopped early only on a store error, reported just above.
            return Err(DownloadError::Stalled {
                cid: cid_text,
                missing: Vec::new(),
                waited: policy.since_progress(Instant::now()),
            });
        }
        // Sent before the announcement, so the reader's response ends with its last byte.
        if let Some((s, order)) = reader.take() {
            send_all(&s, order.rest()).await;
        }
        self.provide_dataset(&manifest_cid, &manifest.tree_cid)
            .await;
        Ok(())
    }
}

/// `peer` holds `has` of the missing blocks: a provider of those, asked again later.
fn holds(policy: &mut Policy<PeerId>, sync: &mut PeerSync, peer: PeerId, has: &[u64]) {
    if policy.add_holder(peer, has, Instant::now()) {
        sync.watch(peer);
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

/// False when the reader went away.
async fn send_all(sink: &mpsc::Sender<Bytes>, chunks: Vec<Bytes>) -> bool {
    for c in chunks {
        if sink.send(c).await.is_err() {
            return false;
        }
    }
    true
}

impl Network {
    async fn lookup_providers(&self, manifest_cid: Cid) -> Vec<PeerId> {
        self.find_providers(&manifest_cid).await.unwrap_or_default()
    }
}

fn send_wants(engine: &Arc<crate::Engine>, peer: PeerId, entries: Vec<WantEntry>) {
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

/// Runs on a blocking thread: every verified block goes into one store upload, which only
/// a `Commit` makes durable; a closed channel without it aborts the upload.
fn write_upload(
    store: &dyn neverust_store::BlockStore,
    mut ops: mpsc::Receiver<WriteOp>,
) -> Result<(), StoreError> {
    let mut upload = store.begin_upload()?;
    while let Some(op) = ops.blocking_recv() {
        match op {
            WriteOp::Put(cid, data) => upload.put_block(&cid, data)?,
            WriteOp::Commit {
                tree,
                leaves,
                manifest_cid,
                manifest,
            } => return upload.commit(&tree, leaves, &manifest_cid, manifest),
        }
    }
    upload.abort()
}
