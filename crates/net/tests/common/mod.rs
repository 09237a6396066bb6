//! What the network tests share: an honest node in-process, and a bare libp2p peer that
//! writes whatever bytes it likes.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, Swarm};
use neverust_net::metrics::ReasonLabels;
use neverust_net::{NetConfig, NetMetrics, Network};
use neverust_store::{MemoryStore, StoreConfig};
use tokio::sync::mpsc;

pub fn memory_store() -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new(StoreConfig {
        quota_max_bytes: 1 << 30,
        block_ttl: Duration::from_secs(3600),
    }))
}

pub async fn node_with(config: NetConfig, store: Arc<MemoryStore>) -> Network {
    Network::start(
        libp2p::identity::Keypair::generate_secp256k1(),
        config,
        store,
        NetMetrics::new("altruistic"),
    )
    .await
    .unwrap()
}

pub async fn honest_node() -> (Network, Arc<MemoryStore>) {
    let store = memory_store();
    let net = node_with(NetConfig::loopback("neverust-test"), store.clone()).await;
    (net, store)
}

/// A node as [`honest_node`], which learns who holds what by reconciliation or, without
/// it, by want-haves.
pub async fn node_reconciling(reconcile: bool) -> (Network, Arc<MemoryStore>) {
    let store = memory_store();
    let config = NetConfig {
        reconcile,
        ..NetConfig::loopback("neverust-test")
    };
    (node_with(config, store.clone()).await, store)
}

/// A bare peer: just the stream behaviour, so it can write raw frames. Reports when its
/// connection to the node closes.
pub struct Liar {
    pub peer_id: PeerId,
    pub control: libp2p_stream::Control,
    pub closed: mpsc::UnboundedReceiver<PeerId>,
}

/// A libp2p host with only the stream behaviour: whatever protocol a test speaks on it.
pub fn bare_swarm() -> Swarm<libp2p_stream::Behaviour> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

pub async fn liar(target: Multiaddr) -> Liar {
    let mut swarm = bare_swarm();
    let control = swarm.behaviour().new_control();
    let peer_id = *swarm.local_peer_id();
    swarm.dial(target).unwrap();
    let (tx, closed) = mpsc::unbounded_channel();
    let (up_tx, mut up) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    let _ = up_tx.send(peer_id);
                }
                SwarmEvent::ConnectionClosed { peer_id, .. } => {
                    let _ = tx.send(peer_id);
                }
                _ => {}
            }
        }
    });
    up.recv().await.unwrap();
    Liar {
        peer_id,
        control,
        closed,
    }
}

pub fn offences(net: &Network, reason: &'static str) -> u64 {
    net.metrics()
        .misbehaviour
        .get_or_create(&ReasonLabels { reason })
        .get()
}

/// A dataset of `blocks` pseudo-random blocks, its leaves and manifest.
pub struct Dataset {
    pub blocks: Vec<bytes::Bytes>,
    pub leaves: Vec<neverust_store::LeafRef>,
    pub manifest: neverust_content::Manifest,
    pub manifest_bytes: bytes::Bytes,
}

impl Dataset {
    pub fn new(blocks: usize, seed: u8) -> Dataset {
        use neverust_content::{block_cid, sha256, Manifest, MerkleTree, BLOCK_SIZE};
        let blocks: Vec<bytes::Bytes> = (0..blocks)
            .map(|i| {
                let mut b = vec![seed; BLOCK_SIZE];
                b[..8].copy_from_slice(&(i as u64).to_le_bytes());
                bytes::Bytes::from(b)
            })
            .collect();
        let tree = MerkleTree::new(blocks.iter().map(|b| sha256(b)).collect()).unwrap();
        let leaves = blocks
            .iter()
            .enumerate()
            .map(|(i, b)| neverust_store::LeafRef {
                cid: block_cid(b),
                proof: tree.proof(i).unwrap().encode().into(),
            })
            .collect();
        let size = (blocks.len() * BLOCK_SIZE) as u64;
        let manifest = Manifest::new_dataset(tree.root_cid(), size, None, None);
        let manifest_bytes = bytes::Bytes::from(manifest.encode());
        Dataset {
            blocks,
            leaves,
            manifest,
            manifest_bytes,
        }
    }

    /// Stores it whole, as an upload would.
    pub fn store_in(&self, store: &dyn neverust_store::BlockStore) {
        let mut up = store.begin_upload().unwrap();
        for (b, l) in self.blocks.iter().zip(&self.leaves) {
            up.put_block(&l.cid, b.clone()).unwrap();
        }
        up.commit(
            &self.manifest.tree_cid,
            self.leaves.clone(),
            &self.manifest.cid(),
            self.manifest_bytes.clone(),
        )
        .unwrap();
    }
}

/// Waits until `node` counts `peer` as connected (the other side may know first).
pub async fn connected(node: &Network, peer: PeerId) {
    for _ in 0..100 {
        let peers = node.peers().await.unwrap();
        if peers.iter().any(|p| p.peer_id == peer && p.connected) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{peer} never connected");
}
