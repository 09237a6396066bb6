//! `/neverust/reconcile/1.0.0` between real nodes on loopback: sessions find the true
//! difference, peers without the protocol are told apart, a peer that streams symbols
//! forever is cut off and counted, and downloads find holders the DHT never named.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use common::{liar, memory_store, node_with, offences, Dataset};
use futures::io::BufReader;
use futures::{AsyncReadExt, StreamExt};
use neverust_content::Cid;
use neverust_net::download::DownloadProgress;
use neverust_net::reconcile::frame::{self, Accept, Body};
use neverust_net::reconcile::{Holdings, ReconcileError, PROTOCOL};
use neverust_net::{NetConfig, NetMetrics, Network, WantEvent};
use neverust_reconcile::{Batch, CodedSymbol};
use neverust_store::BlockStore;

/// Holdings given as sets, for sessions at sizes no test store holds.
struct Sets {
    sets: HashMap<Cid, Vec<u64>>,
    downloading: bool,
}

impl Holdings for Sets {
    fn held(&self, tree: &Cid) -> Vec<u64> {
        self.sets.get(tree).cloned().unwrap_or_default()
    }
    fn downloading(&self, _tree: &Cid) -> bool {
        self.downloading
    }
}

async fn node_holding(tree: Cid, set: Vec<u64>, downloading: bool) -> Network {
    let holdings = Sets {
        sets: HashMap::from([(tree, set)]),
        downloading,
    };
    Network::start_with_holdings(
        libp2p::identity::Keypair::generate_secp256k1(),
        NetConfig::loopback("neverust-test"),
        memory_store(),
        NetMetrics::new("altruistic"),
        Some(Arc::new(holdings)),
    )
    .await
    .unwrap()
}

fn a_tree() -> Cid {
    Dataset::new(2, 1).manifest.tree_cid
}

/// A pseudo-random subset of 0..n with about `keep` per mille of its items.
fn subset(n: u64, keep: u64, seed: u64) -> Vec<u64> {
    let mut x = seed | 1;
    (0..n)
        .filter(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % 1000 < keep
        })
        .collect()
}

#[tokio::test]
async fn a_session_finds_the_true_difference_and_tells_a_downloading_peer_what_it_lacks() {
    let tree = a_tree();
    let common_part = subset(20_000, 500, 7);
    let mut ours: Vec<u64> = common_part.clone();
    ours.extend((20_000..20_080).step_by(2));
    let mut theirs = common_part;
    theirs.extend((20_001..20_121).step_by(2));
    let a = node_holding(tree, ours.clone(), false).await;
    let b = node_holding(tree, theirs.clone(), true).await;
    let (_want, mut b_events) = b.engine().want(tree);
    a.dial(Some(b.local_peer_id()), b.listen_addrs())
        .await
        .unwrap();

    let r = a.reconcile(b.local_peer_id(), tree).await.unwrap();
    let (o, t): (BTreeSet<u64>, BTreeSet<u64>) = (
        ours.iter().copied().collect(),
        theirs.iter().copied().collect(),
    );
    assert_eq!(r.peer_has, t.difference(&o).copied().collect::<Vec<_>>());
    assert_eq!(r.peer_lacks, o.difference(&t).copied().collect::<Vec<_>>());
    assert_eq!(r.peer_len, theirs.len() as u64);
    assert!(!r.stats.by_runs, "sets of one size differ by coded symbols");
    let d = (r.peer_has.len() + r.peer_lacks.len()) as u64;
    assert!(
        r.stats.symbols < 3 * d + 200,
        "{} symbols for {d}",
        r.stats.symbols
    );
    assert!(
        r.stats.bytes_received < ours.len() as u64,
        "{} bytes received: under a byte per item of the set",
        r.stats.bytes_received
    );

    // The downloading side heard what it lacks.
    let heard = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(WantEvent::Holds { peer, indices }) = b_events.recv().await {
                break (peer, indices);
            }
        }
    })
    .await
    .expect("the responder's download hears what the initiator holds");
    assert_eq!(heard.0, a.local_peer_id());
    assert_eq!(&heard.1[..], &r.peer_lacks[..]);
}

#[tokio::test]
async fn a_whole_dataset_or_an_empty_side_travels_as_runs() {
    let tree = a_tree();
    let a = node_holding(tree, (0..5000).step_by(3).collect(), false).await;
    let b = node_holding(tree, (0..100_000).collect(), false).await;
    let c = node_holding(tree, vec![], false).await;
    for peer in [&b, &c] {
        a.dial(Some(peer.local_peer_id()), peer.listen_addrs())
            .await
            .unwrap();
    }
    let whole = a.reconcile(b.local_peer_id(), tree).await.unwrap();
    assert!(whole.stats.by_runs);
    assert_eq!(whole.peer_has.len(), 100_000 - 1667);
    assert!(whole.peer_lacks.is_empty());
    assert!(
        whole.stats.bytes_received < 64,
        "one run: {}",
        whole.stats.bytes_received
    );
    let empty = a.reconcile(c.local_peer_id(), tree).await.unwrap();
    assert!(empty.stats.by_runs && empty.peer_has.is_empty());
    assert_eq!(empty.peer_lacks.len(), 1667);
}

#[tokio::test]
async fn a_peer_without_the_protocol_is_told_apart() {
    let (node, _) = common::honest_node().await;
    let bare = liar(node.listen_addrs()[0].clone()).await;
    common::connected(&node, bare.peer_id).await;
    let got = node.reconcile(bare.peer_id, a_tree()).await;
    assert!(matches!(got, Err(ReconcileError::Unsupported)), "{got:?}");
}

#[tokio::test]
async fn a_peer_streaming_symbols_forever_is_cut_off_and_counted() {
    let (node, _) = common::honest_node().await;
    let mut bad = liar(node.listen_addrs()[0].clone()).await;
    let mut incoming = bad.control.accept(PROTOCOL).unwrap();
    // Answers every request with symbols that decode to nothing, and keeps sending more.
    tokio::spawn(async move {
        let (_, stream) = incoming.next().await.unwrap();
        let (read, mut write) = stream.split();
        let mut read = BufReader::new(read);
        let _open = frame::read(&mut read).await.unwrap();
        let set_len = 1000;
        frame::write(
            &mut write,
            Body::Accept(Accept {
                set_len,
                wants: false,
            }),
        )
        .await
        .unwrap();
        let mut first = 0u64;
        let mut x = 99u64;
        loop {
            let symbols = (0..512)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    CodedSymbol {
                        sum: x,
                        checksum: x.rotate_left(17),
                        count: 3,
                    }
                })
                .collect();
            let mut bytes = Vec::new();
            Batch {
                first_index: first,
                symbols,
            }
            .encode(set_len, &mut bytes);
            first += 512;
            if frame::write(&mut write, Body::Symbols(bytes))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let peer = bad.peer_id;
    common::connected(&node, peer).await;
    let before: u64 = ["reconcile_limit", "reconcile_inconsistent", "malformed"]
        .iter()
        .map(|r| offences(&node, r))
        .sum();
    let got = tokio::time::timeout(Duration::from_secs(30), node.reconcile(peer, a_tree()))
        .await
        .expect("the session is cut off, not left running");
    assert!(matches!(got, Err(ReconcileError::Session(_))), "{got:?}");
    let after: u64 = ["reconcile_limit", "reconcile_inconsistent", "malformed"]
        .iter()
        .map(|r| offences(&node, r))
        .sum();
    assert_eq!(after, before + 1, "the offence is counted once");
}

/// A peer holding the dataset that the DHT never named (it did not announce) is found by
/// asking the connected peers: by reconciliation, or by want-haves without it.
async fn download_from_an_unannounced_holder(reconcile: bool) -> Network {
    let data = Dataset::new(40, 9);
    let holder_store = memory_store();
    data.store_in(holder_store.as_ref());
    let holder = node_with(NetConfig::loopback("neverust-test"), holder_store).await;
    let (fetcher, store) = common::node_reconciling(reconcile).await;
    fetcher
        .dial(Some(holder.local_peer_id()), holder.listen_addrs())
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(60),
        fetcher.download_dataset(
            data.manifest.cid(),
            data.manifest.clone(),
            data.manifest_bytes.clone(),
            None,
            Arc::new(DownloadProgress::default()),
        ),
    )
    .await
    .expect("the download ends")
    .expect("the download succeeds");
    for (b, l) in data.blocks.iter().zip(&data.leaves) {
        assert_eq!(store.get_block(&l.cid).unwrap().as_ref(), Some(b));
    }
    fetcher
}

fn sessions(net: &Network, outcome: &'static str) -> u64 {
    net.metrics()
        .reconcile_sessions
        .get_or_create(&neverust_net::metrics::SessionLabels {
            role: "initiator",
            outcome,
        })
        .get()
}

#[tokio::test]
async fn a_download_finds_a_holder_the_dht_never_named_by_reconciliation() {
    let fetcher = download_from_an_unannounced_holder(true).await;
    assert!(sessions(&fetcher, "ok") >= 1);
}

#[tokio::test]
async fn without_reconciliation_the_same_download_works_by_want_haves() {
    let fetcher = download_from_an_unannounced_holder(false).await;
    assert_eq!(sessions(&fetcher, "ok"), 0);
}

/// The fetch of a block nobody has, on tokio's paused clock: the answer is "nobody" once
/// the grace has passed on the clock the fetch keeps, without waiting for it in real time.
#[tokio::test(start_paused = true)]
async fn a_block_nobody_has_is_refused_after_the_grace_on_a_paused_clock() {
    let (node, _) = common::honest_node().await;
    let cid = neverust_content::block_cid(b"nobody holds this");
    let (started, real) = (tokio::time::Instant::now(), std::time::Instant::now());
    let got = node.fetch_block(&cid, Duration::from_secs(60)).await;
    assert!(
        matches!(got, Err(neverust_net::NetError::NoProviders { .. })),
        "{got:?}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= neverust_net::NO_PROVIDER_GRACE && waited < Duration::from_secs(60),
        "{waited:?}"
    );
    assert!(
        real.elapsed() < neverust_net::NO_PROVIDER_GRACE,
        "{:?}",
        real.elapsed()
    );
}
