//! Fetching one slot of a dataset (a range of its leaves) from a node that holds it all,
//! as a storage-marketplace host does: the leaves asked for, verified, and nothing kept.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{connected, honest_node, node_reconciling, Dataset};
use neverust_content::{block_cid, digest_of, MerkleProof};
use neverust_net::{DownloadError, DownloadProgress};
use neverust_store::BlockStore;

/// A provider holds a 12-block dataset; a second node fetches leaves 4..8 of it.
async fn fetch_a_slot(reconcile: bool) {
    let data = Dataset::new(12, 5);
    let (provider, provider_store) = honest_node().await;
    data.store_in(provider_store.as_ref());
    let manifest_cid = data.manifest.cid();
    provider
        .provide_dataset(&manifest_cid, &data.manifest.tree_cid)
        .await;
    let (host, store) = node_reconciling(reconcile).await;
    let peer = host
        .dial(Some(provider.local_peer_id()), provider.listen_addrs())
        .await
        .unwrap();
    connected(&host, peer).await;

    let progress = Arc::new(DownloadProgress::default());
    let leaves = tokio::time::timeout(
        Duration::from_secs(60),
        host.fetch_range(manifest_cid, &data.manifest, 4..8, progress.clone()),
    )
    .await
    .expect("the fetch ends")
    .expect("the fetch succeeds");

    let indices: Vec<u64> = leaves.iter().map(|l| l.index).collect();
    assert_eq!(indices, vec![4, 5, 6, 7]);
    let root = digest_of(&data.manifest.tree_cid).unwrap();
    for leaf in &leaves {
        let i = leaf.index as usize;
        assert_eq!(leaf.data, data.blocks[i]);
        assert_eq!(leaf.cid, block_cid(&leaf.data));
        let proof = MerkleProof::decode(&leaf.proof).unwrap();
        assert_eq!((proof.index, proof.nleaves), (leaf.index, 12));
        assert!(proof.verify(&digest_of(&leaf.cid).unwrap(), &root));
    }
    let (_, account) = host
        .engine()
        .ledgers()
        .into_iter()
        .find(|(p, _)| *p == peer)
        .unwrap();
    assert_eq!(account.blocks_received, 4, "only the range was asked for");
    assert_eq!(progress.blocks_total.load(Ordering::Relaxed), 4);
    assert_eq!(progress.blocks_done.load(Ordering::Relaxed), 4);
    // Nothing kept: no block, no leaf of the tree, no manifest.
    for l in &data.leaves {
        assert!(!store.has_block(&l.cid).unwrap());
    }
    assert!(store
        .get_leaf(&data.manifest.tree_cid, 4)
        .unwrap()
        .is_none());
    assert!(store.list_manifests().unwrap().is_empty());
}

#[tokio::test]
async fn a_slot_is_fetched_verified_in_order_and_not_stored() {
    fetch_a_slot(true).await;
}

#[tokio::test]
async fn without_reconciliation_a_slot_is_fetched_the_same() {
    fetch_a_slot(false).await;
}

#[tokio::test]
async fn a_range_past_the_datasets_blocks_or_empty_is_refused() {
    let data = Dataset::new(12, 6);
    let (node, _) = honest_node().await;
    for range in [10..13, 12..13, 5..5] {
        let got = node
            .fetch_range(
                data.manifest.cid(),
                &data.manifest,
                range.clone(),
                Arc::new(DownloadProgress::default()),
            )
            .await;
        match got {
            Err(DownloadError::BadRange {
                range: refused,
                blocks: 12,
                ..
            }) => assert_eq!(refused, range),
            other => panic!("{range:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_range_nobody_holds_fails_as_a_download_does() {
    let data = Dataset::new(12, 7);
    let (node, store) = honest_node().await;
    let got = tokio::time::timeout(
        Duration::from_secs(30),
        node.fetch_range(
            data.manifest.cid(),
            &data.manifest,
            0..4,
            Arc::new(DownloadProgress::default()),
        ),
    )
    .await
    .expect("the fetch ends");
    assert!(
        matches!(got, Err(DownloadError::NoProviders { .. })),
        "{got:?}"
    );
    assert!(store.list_manifests().unwrap().is_empty());
}
