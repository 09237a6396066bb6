//! End to end on real UDP sockets: five DHT services on 127.0.0.1 join through one bootstrap
//! node (handshakes, FINDNODE lookups), one announces a CID, and another that was never
//! bootstrapped to it finds it.

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::Multiaddr;
use neverust_disc::{Discovery, DiscoveryHandle, NodeId};

async fn start_node(tcp_port: u16) -> DiscoveryHandle {
    let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{tcp_port}").parse().unwrap();
    Discovery::start(
        Keypair::generate_secp256k1(),
        "127.0.0.1:0".parse().unwrap(),
        vec![addr],
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn five_nodes_find_a_provider_they_were_never_bootstrapped_to() {
    let mut nodes = Vec::new();
    for i in 0..5 {
        nodes.push(start_node(40_000 + i).await);
    }
    let boot = nodes[0].local_spr();
    for node in &nodes[1..] {
        let size = tokio::time::timeout(Duration::from_secs(20), node.bootstrap(&boot))
            .await
            .expect("bootstrap finishes")
            .expect("bootstrap works");
        assert!(size >= 1, "the bootstrap node is in the table");
    }
    // The bootstrap node answered lookups, so it completed handshakes and FINDNODEs.
    let closest = nodes[4]
        .closest_nodes(NodeId::for_content(b"anything"))
        .await
        .unwrap();
    assert!(
        closest.iter().any(|r| r.peer_id() == nodes[0].peer_id()),
        "node 4 reached the bootstrap node"
    );

    let cid = b"\x01\x55\x12\x20 a content id, binary form".to_vec();
    let told = nodes[1].add_provider(&cid).await.unwrap();
    assert!(told >= 1, "the announcement reached at least one node");

    let found = tokio::time::timeout(Duration::from_secs(20), nodes[4].find_providers(&cid))
        .await
        .expect("lookup finishes")
        .unwrap();
    let expected: Multiaddr = "/ip4/127.0.0.1/tcp/40001".parse().unwrap();
    assert_eq!(found, vec![(nodes[1].peer_id(), vec![expected])]);

    // Unknown content has no providers; the provider itself does not list itself.
    assert!(nodes[3]
        .find_providers(b"nothing")
        .await
        .unwrap()
        .is_empty());
    assert!(nodes[1].find_providers(&cid).await.unwrap().is_empty());
}

#[tokio::test]
async fn bootstrap_rejects_bad_records_and_times_out_on_silent_nodes() {
    let node = start_node(1).await;
    assert!(node.bootstrap("spr:AAAA").await.is_err());
    // A record whose UDP port nobody listens on: the lookup ends without answers.
    let silent_key = Keypair::generate_secp256k1();
    let silent =
        neverust_disc::Spr::sign(&silent_key, vec!["/ip4/127.0.0.1/udp/9".parse().unwrap()])
            .unwrap();
    let size = tokio::time::timeout(Duration::from_secs(10), node.bootstrap(&silent.to_text()))
        .await
        .expect("bootstrap ends")
        .unwrap();
    assert_eq!(
        size, 1,
        "a bootstrap node stays in the table even when silent"
    );
}
