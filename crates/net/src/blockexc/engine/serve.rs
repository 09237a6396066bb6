//! Answering peers' wantlists from the local store (and the downloads in progress), within
//! the ledger's policy, deliveries batched by size.

use std::sync::Arc;

use bytes::Bytes;
use libp2p::PeerId;
use neverust_content::Cid;
use neverust_store::BlockStore;

use super::{Engine, DELIVERY_BATCH_BYTES};
use crate::blockexc::message::{
    BlockAddress, BlockDelivery, BlockPresence, Message, Presence, WantEntry, WantType,
};
use crate::ledger::Account;
use crate::metrics::LedgerLabels;
use crate::reconcile::PartialDatasets;

impl Engine {
    pub(super) async fn serve(self: &Arc<Self>, peer: PeerId, entries: Vec<WantEntry>) {
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

    pub(super) fn export_account(&self, peer: PeerId, a: Account) {
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
