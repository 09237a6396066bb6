//! A peer that lies: a real node (in-process `Network` on loopback) against a hand-driven
//! libp2p peer that writes whatever bytes it likes on a blockexc stream.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{honest_node, liar, offences};
use futures::AsyncWriteExt;
use neverust_content::{block_cid, MerkleTree};
use neverust_net::blockexc::codec::frame;
use neverust_net::blockexc::{BlockAddress, BlockDelivery, Message, PROTOCOL};
use neverust_net::WantEvent;
use neverust_store::BlockStore;
use tokio::sync::mpsc;

fn delivery_frame(d: BlockDelivery) -> Vec<u8> {
    frame(
        &Message {
            payload: vec![d],
            ..Message::default()
        }
        .encode(),
    )
}

async fn next_event(rx: &mut mpsc::UnboundedReceiver<WantEvent>) -> WantEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event in time")
        .expect("engine alive")
}

#[tokio::test]
async fn lies_are_refused_counted_and_the_liar_is_disconnected() {
    let (node, store) = honest_node().await;
    let addr = node.listen_addrs()[0].clone();
    let mut bad = liar(addr.clone()).await;

    let block = Bytes::from(vec![7u8; 65536]);
    let cid = block_cid(&block);
    let other = Bytes::from(vec![8u8; 65536]);
    let tree = MerkleTree::new(vec![
        neverust_content::sha256(&block),
        neverust_content::sha256(&other),
    ])
    .unwrap();
    let (_want_block, mut block_events) = node.engine().want(cid);
    let (_want_tree, mut tree_events) = node.engine().want(tree.root_cid());

    let mut stream = bad
        .control
        .open_stream(node.local_peer_id(), PROTOCOL)
        .await
        .unwrap();
    // 1. bytes that do not hash to the CID they claim
    stream
        .write_all(&delivery_frame(BlockDelivery {
            cid,
            data: other.clone(),
            address: BlockAddress::Cid(cid),
            proof: None,
        }))
        .await
        .unwrap();
    assert!(matches!(
        next_event(&mut block_events).await,
        WantEvent::Invalid { .. }
    ));
    // 2. a true block under a proof for another index
    stream
        .write_all(&delivery_frame(BlockDelivery {
            cid,
            data: block.clone(),
            address: BlockAddress::Leaf {
                tree: tree.root_cid(),
                index: 0,
            },
            proof: Some(tree.proof(1).unwrap().encode().into()),
        }))
        .await
        .unwrap();
    assert!(matches!(
        next_event(&mut tree_events).await,
        WantEvent::Invalid { .. }
    ));
    assert_eq!(offences(&node, "bad_hash"), 1);
    assert_eq!(offences(&node, "bad_proof"), 1);
    // 3. garbage that is not protobuf: the third offence disconnects the liar
    stream.write_all(&frame(&[0xff; 40])).await.unwrap();
    stream.flush().await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), bad.closed.recv())
        .await
        .expect("the liar is disconnected");
    assert_eq!(closed, Some(node.local_peer_id()));
    assert_eq!(offences(&node, "malformed"), 1);
    assert_eq!(node.metrics().peers_disconnected_for_misbehaviour.get(), 1);
    assert!(
        !store.has_block(&cid).unwrap(),
        "nothing a liar sent is stored"
    );

    // Another peer's honest delivery still goes through.
    let good = liar(addr).await;
    let mut control = good.control.clone();
    let mut s = control
        .open_stream(node.local_peer_id(), PROTOCOL)
        .await
        .unwrap();
    s.write_all(&delivery_frame(BlockDelivery {
        cid,
        data: block.clone(),
        address: BlockAddress::Leaf {
            tree: tree.root_cid(),
            index: 0,
        },
        proof: Some(tree.proof(0).unwrap().encode().into()),
    }))
    .await
    .unwrap();
    loop {
        match next_event(&mut tree_events).await {
            WantEvent::Block { data, .. } => break assert_eq!(data, block),
            // The liar's departure is announced to every waiting download.
            WantEvent::PeerGone(_) => continue,
            other => panic!("expected the block, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_oversized_message_is_refused_before_it_is_read() {
    let (node, _) = honest_node().await;
    let bad = liar(node.listen_addrs()[0].clone()).await;
    let mut control = bad.control.clone();
    let mut stream = control
        .open_stream(node.local_peer_id(), PROTOCOL)
        .await
        .unwrap();
    // A length prefix of 200 MiB followed by a little data: the node must not wait for (or
    // allocate) the rest.
    let mut prefix = unsigned_varint::encode::usize_buffer();
    let prefix = unsigned_varint::encode::usize(200 << 20, &mut prefix).to_vec();
    stream.write_all(&prefix).await.unwrap();
    stream.write_all(&[0u8; 1024]).await.unwrap();
    stream.flush().await.unwrap();
    for _ in 0..100 {
        if offences(&node, "oversize") == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the oversized message was not refused");
}
