//! Nodes as a network: real processes on 127.0.0.1 finding each other through the
//! bootstrap node and the DHT, and trading verified blocks over libp2p.

mod common;

use std::time::Duration;

use common::{data, eventually, TestNode};
use neverust_node::metrics::names;
use sha2::{Digest, Sha256};

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn start_joined(dir: &std::path::Path, bootstrap: &TestNode, extra: &[&str]) -> TestNode {
    let b = bootstrap.api_host_port();
    let mut args = vec!["--bootstrap-node", b.as_str()];
    args.extend_from_slice(extra);
    TestNode::start(dir, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_is_found_through_the_dht_two_hops_away() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = TestNode::start(dirs[0].path(), &[]);
    let b = start_joined(dirs[1].path(), &a, &[]);
    b.wait_connected(&a.peer_id).await;
    let c = start_joined(dirs[2].path(), &b, &[]);
    c.wait_connected(&b.peer_id).await;

    let payload = data(3 * 1024 * 1024 + 12345, 7);
    let cid = a.upload_ok(payload.clone()).await;
    // C was told only about B; the only way it learns that A holds the data is a provider
    // lookup in the DHT (wantlists are never broadcast to connected peers).
    let lookups_before = c.metric(names::DHT_PROVIDER_LOOKUPS_TOTAL).await;
    let (status, body) = c.stream_network(&cid).await;
    assert_eq!(status, 200);
    assert_eq!(body.len(), payload.len());
    assert_eq!(sha(&body), sha(&payload));
    assert!(c.metric(names::DHT_PROVIDER_LOOKUPS_TOTAL).await > lookups_before);
    assert!(c.metric(names::BLOCKS_RECEIVED_TOTAL).await >= 49.0);
    assert!(a.metric(names::BLOCKS_SENT_TOTAL).await >= 49.0);

    // The fetched dataset is now C's own: listed, served locally, and announced.
    let (status, local) = c.download(&cid).await;
    assert_eq!(status, 200);
    assert_eq!(sha(&local), sha(&payload));
    let listed: neverust_node::api::answers::DataList = c.get("/data").await;
    assert!(listed.content.iter().any(|d| d.cid == cid));
    // Its announcement goes out through the queue (started once the walk ahead of it ends).
    let announced =
        || async { (c.metric(names::DHT_ANNOUNCEMENTS_TOTAL).await >= 1.0).then_some(()) };
    let limit = std::time::Duration::from_secs(20);
    eventually("C to announce the dataset it fetched", limit, announced).await;
    assert_eq!(c.metric(names::DHT_ANNOUNCEMENTS_WAITING).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_nodes_trade_datasets_between_random_pairs() {
    let dirs: Vec<_> = (0..10).map(|_| tempfile::tempdir().unwrap()).collect();
    let boot = TestNode::start(dirs[0].path(), &[]);
    let mut nodes = vec![];
    for (i, d) in dirs.iter().enumerate().skip(1) {
        let mode = if i % 3 == 0 {
            "marketplace"
        } else {
            "altruistic"
        };
        nodes.push(start_joined(d.path(), &boot, &["--mode", mode]));
    }
    for n in &nodes {
        n.wait_connected(&boot.peer_id).await;
    }
    let mut nodes: Vec<TestNode> = std::iter::once(boot).chain(nodes).collect();
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut next = |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let mut datasets = vec![];
    for k in 0..8u64 {
        let up = next(nodes.len());
        let mut down = next(nodes.len());
        if down == up {
            down = (down + 1) % nodes.len();
        }
        let payload = data((k as usize + 1) * 300_000 + 17, 100 + k);
        let cid = nodes[up].upload_ok(payload.clone()).await;
        datasets.push((cid, sha(&payload), payload.len(), down));
    }
    for (cid, digest, len, down) in &datasets {
        let (status, body) = nodes[*down].stream_network(cid).await;
        assert_eq!(status, 200, "download of {cid} on node {down}");
        assert_eq!(body.len(), *len);
        assert_eq!(&sha(&body), digest, "bytes of {cid} on node {down}");
    }
    nodes.clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_survives_a_provider_killed_midway() {
    let dirs: Vec<_> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let boot = TestNode::start(dirs[0].path(), &[]);
    let mut providers: Vec<TestNode> = (1..4)
        .map(|i| start_joined(dirs[i].path(), &boot, &[]))
        .collect();
    let payload = data(48 * 1024 * 1024, 3);
    let mut cid = String::new();
    for p in &providers {
        p.wait_connected(&boot.peer_id).await;
        cid = p.upload_ok(payload.clone()).await;
    }
    let downloader = start_joined(dirs[4].path(), &boot, &[]);
    downloader.wait_connected(&boot.peer_id).await;

    let url = downloader.url(&format!("/data/{cid}/network/stream"));
    let mut resp = downloader.http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = Vec::with_capacity(payload.len());
    let victim = providers.remove(0);
    let mut victim = Some(victim);
    while let Some(chunk) = resp.chunk().await.expect("the stream is not cut") {
        body.extend_from_slice(&chunk);
        if body.len() > payload.len() / 8 {
            if let Some(v) = victim.take() {
                assert!(
                    v.metric(names::BLOCKS_SENT_TOTAL).await > 0.0,
                    "the victim was serving"
                );
                v.kill9();
            }
        }
    }
    assert!(victim.is_none(), "the provider was killed mid-download");
    assert_eq!(body.len(), payload.len());
    assert_eq!(sha(&body), sha(&payload));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_keeps_its_peer_id_and_rejoins() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let boot = TestNode::start(dirs[0].path(), &[]);
    let b = start_joined(dirs[1].path(), &boot, &[]);
    b.wait_connected(&boot.peer_id).await;
    let payload = data(700_000, 11);
    let cid = b.upload_ok(payload.clone()).await;
    let id = b.peer_id.clone();
    assert!(b.terminate().success());

    let b = start_joined(dirs[1].path(), &boot, &[]);
    assert_eq!(b.peer_id, id);
    b.wait_connected(&boot.peer_id).await;
    boot.wait_connected(&id).await;
    // Its data is announced again after the restart: a newcomer finds it through the DHT.
    let c = start_joined(dirs[2].path(), &boot, &[]);
    c.wait_connected(&boot.peer_id).await;
    let got = eventually(
        "the newcomer to find the dataset",
        Duration::from_secs(15),
        || async {
            let (status, body) = c.stream_network(&cid).await;
            (status == 200).then_some(body)
        },
    )
    .await;
    assert_eq!(sha(&got), sha(&payload));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_routes_refuse_bad_input_and_unknown_content() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestNode::start(dir.path(), &[]);
    let a = &a;
    let status = |path: String| async move {
        a.http
            .get(a.url(&path))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status("/data/not-a-cid/network/stream".into()).await, 400);
    assert_eq!(status("/data/not-a-cid/network/manifest".into()).await, 400);
    assert_eq!(status("/connect/not-a-peer".into()).await, 400);
    // A well-formed manifest CID that nobody provides.
    let other = tempfile::tempdir().unwrap();
    let b = TestNode::start(other.path(), &[]);
    let cid = b.upload_ok(data(1000, 1)).await;
    drop(b);
    assert_eq!(status(format!("/data/{cid}/network/manifest")).await, 404);
    let resp = a
        .http
        .post(a.url(&format!("/data/{cid}/network")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.text().await.unwrap().contains("manifest"));
}
