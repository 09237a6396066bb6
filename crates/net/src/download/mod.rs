//! Downloading a dataset from the network: providers from the DHT, blocks requested by
//! (treeCid, index) as the [`scheduler`] decides, each block verified by the engine, kept
//! by a store upload that commits only when every block is in, and optionally streamed in
//! order to a reader while it runs.
//!
//! This module is the I/O shell around the scheduler: it turns engine events into
//! scheduler calls and scheduler decisions into wantlist messages.

mod peer_sync;
pub mod scheduler;

use std::collections::{BTreeMap, HashMap, HashSet};
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
use peer_sync::{Learned, PeerSync, MAX_SYNC_PEERS};
use scheduler::{Outcome, Scheduler, SchedulerConfig};

/// How long a download may go without a single new block before it gives up.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How often providers are looked up again while a download is short of them.
const RELOOKUP_INTERVAL: Duration = Duration::from_secs(3);

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
        let store_err = |source| DownloadError::Store {
            cid: cid_text.clone(),
            source,
        };

        let mut sched = Scheduler::new(total, SchedulerConfig::default());
        let mut leaves: Vec<Option<LeafRef>> = vec![None; total as usize];
        let mut asked_at: HashMap<u64, Instant> = HashMap::new();
        let mut reorder: BTreeMap<u64, Bytes> = BTreeMap::new();
        let mut next_out: u64 = 0;
        let mut sink = sink;
        let mut providers: HashSet<PeerId> = HashSet::new();
        let mut last_progress = Instant::now();
        let mut reported_in_flight: i64 = 0;
        let wantlist_gauge = self.metrics().wantlist_blocks.clone();
        let latency = self.metrics().block_fetch_latency.clone();

        // Lookups run beside the download, never in its way: the first one is awaited
        // (nothing can start without a provider), later ones report through a channel.
        let (found_tx, mut found_rx) = mpsc::unbounded_channel::<Vec<PeerId>>();
        let mut lookup_running = false;
        let initial = match self.take_recent_providers(&manifest_cid) {
            Some(p) => p,
            None => self.lookup_providers(manifest_cid).await,
        };
        for p in initial {
            if providers.insert(p) {
                sched.add_provider(p, Instant::now());
            }
        }
        let mut last_lookup = Some(Instant::now());
        // Peers that hold part of the dataset, besides the DHT's providers (which hold it
        // all): `sync` asks them again every so often, since they are downloading too.
        let mut sync = PeerSync::new(self.clone(), tree, self.inner.reconcile_peers);
        {
            let missing = sched.missing();
            for p in self
                .connected_peers()
                .await
                .into_iter()
                .take(MAX_SYNC_PEERS)
            {
                if !providers.contains(&p) {
                    sync.sync(p, &missing);
                }
            }
        }

        let result = loop {
            let now = Instant::now();
            while let Ok(found) = found_rx.try_recv() {
                lookup_running = false;
                for p in found {
                    if providers.insert(p) {
                        sched.add_provider(p, now);
                    }
                }
            }
            let short_of_providers =
                providers.len() < 2 || matches!(sched.outcome(), Outcome::Stalled { .. });
            if short_of_providers
                && !lookup_running
                && last_lookup.is_none_or(|t| now - t >= RELOOKUP_INTERVAL)
            {
                last_lookup = Some(now);
                lookup_running = true;
                let (net, tx) = (self.clone(), found_tx.clone());
                tokio::spawn(async move {
                    let _ = tx.send(net.lookup_providers(manifest_cid).await);
                });
            }

            sync.round(now, || sched.missing());

            if providers.is_empty() && sched.done_count() == 0 && !sync.busy(now) {
                break Err(DownloadError::NoProviders {
                    cid: cid_text.clone(),
                });
            }
            let requests = sched.poll(Instant::now());
            let mut per_peer: HashMap<PeerId, Vec<WantEntry>> = HashMap::new();
            for r in requests {
                asked_at.entry(r.index).or_insert_with(Instant::now);
                per_peer
                    .entry(r.peer)
                    .or_default()
                    .push(WantEntry::block(BlockAddress::Leaf {
                        tree,
                        index: r.index,
                    }));
            }
            for (peer, entries) in per_peer {
                send_wants(&engine, peer, entries);
            }
            let in_flight = sched.in_flight() as i64;
            wantlist_gauge.inc_by(in_flight - reported_in_flight);
            reported_in_flight = in_flight;

            match sched.outcome() {
                Outcome::Done => break Ok(()),
                Outcome::Stalled { missing } if last_progress.elapsed() >= STALL_TIMEOUT => {
                    break Err(if providers.is_empty() {
                        DownloadError::NoProviders {
                            cid: cid_text.clone(),
                        }
                    } else {
                        DownloadError::Stalled {
                            cid: cid_text.clone(),
                            missing,
                            waited: last_progress.elapsed(),
                        }
                    });
                }
                _ => {}
            }

            let wake = sched
                .next_deadline()
                .unwrap_or(now + RELOOKUP_INTERVAL)
                .min(now + RELOOKUP_INTERVAL);
            let event = tokio::select! {
                ev = events.recv() => ev,
                found = found_rx.recv() => {
                    lookup_running = false;
                    for p in found.unwrap_or_default() {
                        if providers.insert(p) {
                            sched.add_provider(p, Instant::now());
                        }
                    }
                    continue;
                }
                learned = sync.rx.recv() => {
                    let Some(learned) = learned else { continue };
                    sync.ended(&learned, &sched.missing());
                    if let Learned::Holds(peer, has) = learned {
                        add_holder(&mut sched, &mut providers, &mut sync, peer, &has);
                    }
                    continue;
                }
                conn = connections.recv() => {
                    // A peer (re)connected, after a partition healed say: what does it hold?
                    if let Ok(ConnectionEvent::Connected(peer)) = conn {
                        if !providers.contains(&peer) {
                            sync.sync(peer, &sched.missing());
                        }
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(wake.into()) => continue,
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
                    if index >= total || leaves[index as usize].is_some() {
                        continue;
                    }
                    // The engine checked the proof against the root; the leaf count must
                    // also be this dataset's, or the block belongs to another shape of tree.
                    if nleaves != Some(total) {
                        sched.on_invalid(&peer, index, now);
                        continue;
                    }
                    let proof = proof.unwrap_or_default();
                    for c in sched.on_block(&peer, index, now) {
                        send_wants(
                            &engine,
                            c.peer,
                            vec![WantEntry::cancel(BlockAddress::Leaf {
                                tree,
                                index: c.index,
                            })],
                        );
                    }
                    if let Some(t) = asked_at.remove(&index) {
                        latency.observe(now.duration_since(t).as_secs_f64());
                    }
                    partial.insert(
                        index,
                        LeafRef {
                            cid,
                            proof: proof.clone(),
                        },
                    );
                    leaves[index as usize] = Some(LeafRef { cid, proof });
                    last_progress = now;
                    progress
                        .blocks_done
                        .store(sched.done_count(), Ordering::Relaxed);
                    if sink.is_some() {
                        reorder.insert(index, data.clone());
                    }
                    if writer.send(WriteOp::Put(cid, data)).await.is_err() {
                        break Ok(()); // the writer failed; its error is collected below
                    }
                    if let Some(s) = &sink {
                        // The last block waits for the commit: a reader holding every byte
                        // can rely on the dataset being stored here.
                        while next_out + 1 < total {
                            let Some(bytes) = reorder.remove(&next_out) else {
                                break;
                            };
                            let bytes = trim_last(bytes, next_out, &manifest);
                            next_out += 1;
                            if s.send(bytes).await.is_err() {
                                sink = None;
                                break;
                            }
                        }
                        if sink.is_none() {
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
                } => sched.on_dont_have(&peer, index, now),
                WantEvent::Invalid {
                    peer,
                    address: BlockAddress::Leaf { index, .. },
                } => sched.on_invalid(&peer, index, now),
                WantEvent::Presence {
                    peer,
                    address: BlockAddress::Leaf { index, .. },
                    presence: Presence::Have,
                } => add_holder(&mut sched, &mut providers, &mut sync, peer, &[index]),
                WantEvent::Holds { peer, indices } => {
                    add_holder(&mut sched, &mut providers, &mut sync, peer, &indices)
                }
                WantEvent::PeerGone(peer) => {
                    sync.forget(&peer);
                    if providers.remove(&peer) {
                        sched.remove_provider(&peer);
                    }
                }
                _ => {}
            }
        };
        wantlist_gauge.dec_by(reported_in_flight);

        let finished = result.is_ok() && sched.outcome() == Outcome::Done;
        if finished {
            let leaves: Vec<LeafRef> = leaves.into_iter().map(|l| l.expect("done")).collect();
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
        written.map_err(store_err)?;
        if !finished {
            // The writer stopped early only on a store error, reported just above.
            return Err(DownloadError::Stalled {
                cid: cid_string(&manifest_cid),
                missing: Vec::new(),
                waited: last_progress.elapsed(),
            });
        }
        // Taken, so the reader's response ends with its last byte, not after the announcement.
        if let Some(s) = sink.take() {
            for (index, bytes) in std::mem::take(&mut reorder) {
                let _ = s.send(trim_last(bytes, index, &manifest)).await;
            }
        }
        self.provide_dataset(&manifest_cid, &manifest.tree_cid)
            .await;
        Ok(())
    }
}

/// `peer` holds `has` (sorted) of the missing blocks: a provider of those from now on.
fn add_holder(
    sched: &mut Scheduler<PeerId>,
    providers: &mut HashSet<PeerId>,
    sync: &mut PeerSync,
    peer: PeerId,
    has: &[u64],
) {
    if has.is_empty() {
        return;
    }
    if sched.is_provider(&peer) {
        for &index in has {
            sched.on_have(&peer, index);
        }
    } else {
        sched.add_partial_provider(peer, has, Instant::now());
    }
    providers.insert(peer);
    sync.watch(peer);
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

fn trim_last(bytes: Bytes, index: u64, manifest: &Manifest) -> Bytes {
    let start = index * u64::from(manifest.block_size);
    let keep = manifest
        .dataset_size
        .saturating_sub(start)
        .min(bytes.len() as u64);
    bytes.slice(..keep as usize)
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
