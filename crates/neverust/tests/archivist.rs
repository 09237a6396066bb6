//! Neverust beside a real Archivist node: the same content gives the same CIDs, and each
//! fetches what the other holds, byte for byte, in both directions.
//!
//! Runs only with `ARCHIVIST_BIN=/path/to/archivist` (CI has no Archivist binary: these
//! tests print SKIPPED and pass there; the independent models in the other tests are what
//! CI checks).

mod common;

use common::archivist::{binary, ArchivistNode};
use common::{data, download_through, TestNode};
use sha2::{Digest, Sha256};

const BLOCK: usize = 64 * 1024;
const MIB: usize = 1024 * 1024;

async fn post(api: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(format!("{api}/data"))
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The TCP address a Neverust node listens on, from its `/debug/info`.
async fn listen_addr(node: &TestNode) -> String {
    node.debug_info()
        .await
        .addrs
        .into_iter()
        .find(|a| a.contains("/tcp/"))
        .expect("a TCP listen address")
}

/// A fresh Archivist node and a fresh Neverust node, not connected; None (the test said
/// SKIPPED) without `ARCHIVIST_BIN`.
async fn side_by_side(test: &str) -> Option<(tempfile::TempDir, ArchivistNode, TestNode)> {
    let bin = binary(test)?;
    let dir = tempfile::tempdir().unwrap();
    let archivist = ArchivistNode::start(&bin, dir.path()).await;
    let node = TestNode::start(&dir.path().join("neverust"), &[]);
    Some((dir, archivist, node))
}

#[tokio::test]
async fn the_same_upload_gives_the_same_manifest_cid() {
    let Some((_dir, archivist, node)) =
        side_by_side("the_same_upload_gives_the_same_manifest_cid").await
    else {
        return;
    };
    let ours = node.url("");
    let cases: &[(usize, &[(&str, &str)])] = &[
        (1, &[("Content-Type", "application/octet-stream")]),
        (BLOCK, &[("Content-Type", "application/octet-stream")]),
        (1_000_000, &[("Content-Type", "application/octet-stream")]),
        (1_000_000, &[("Content-Type", "Text/Plain")]),
        (
            1_000_000,
            &[
                ("Content-Type", "text/plain"),
                ("Content-Disposition", "attachment; filename=\"hello.txt\""),
            ],
        ),
        (
            3 * BLOCK + 5,
            &[
                ("Content-Type", "image/png"),
                ("Content-Disposition", "attachment; filename=\"dir/a.b:c\""),
            ],
        ),
    ];
    for (i, (len, headers)) in cases.iter().enumerate() {
        let body = data(*len, i as u64);
        let theirs = post(&archivist.api(), body.clone(), headers).await;
        let mine = post(&ours, body, headers).await;
        assert_eq!(theirs.0, 200, "Archivist refused case {i}: {}", theirs.1);
        assert_eq!(mine, theirs, "case {i}: {len} bytes with {headers:?}");
        let cid = &mine.1;
        let manifest = |api: String| async move {
            reqwest::get(format!("{api}/data/{cid}/network/manifest"))
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        };
        assert_eq!(
            manifest(ours.clone()).await["manifest"],
            manifest(archivist.api()).await["manifest"],
            "case {i}: the manifests' JSON"
        );
    }
}

/// Neverust joins through Archivist's API (`--bootstrap-node HOST:PORT`) and fetches what
/// only the Archivist node holds.
#[tokio::test]
async fn neverust_fetches_from_archivist() {
    let Some(bin) = binary("neverust_fetches_from_archivist") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let archivist = ArchivistNode::start(&bin, dir.path()).await;
    let boot = archivist.base.trim_start_matches("http://").to_string();
    let node = TestNode::start(&dir.path().join("neverust"), &["--bootstrap-node", &boot]);
    node.wait_connected(&archivist.peer_id).await;
    for (i, len) in [BLOCK, MIB, 100 * MIB].into_iter().enumerate() {
        let body = data(len, 100 + i as u64);
        let (status, cid) = post(
            &archivist.api(),
            body.clone(),
            &[("Content-Type", "application/octet-stream")],
        )
        .await;
        assert_eq!(status, 200, "{cid}");
        let got = download_through(&node.http, &node.base, &cid).await;
        assert_eq!(got.len(), len);
        assert_eq!(Sha256::digest(&got), Sha256::digest(&body), "{len} bytes");
    }
}

/// Archivist connects to Neverust (`/connect/{peerId}?addrs=...`) and fetches what only the
/// Neverust node holds.
#[tokio::test]
async fn archivist_fetches_from_neverust() {
    let Some((_dir, archivist, node)) = side_by_side("archivist_fetches_from_neverust").await
    else {
        return;
    };
    let addr = listen_addr(&node).await;
    let http = reqwest::Client::new();
    let r = http
        .get(format!(
            "{}/connect/{}?addrs={addr}",
            archivist.api(),
            node.peer_id
        ))
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert!(
        status.is_success(),
        "connect: {status} {}",
        r.text().await.unwrap()
    );
    node.wait_connected(&archivist.peer_id).await;
    for (i, len) in [BLOCK, MIB, 100 * MIB].into_iter().enumerate() {
        let body = data(len, 200 + i as u64);
        let cid = node.upload_ok(body.clone()).await;
        let got = download_through(&http, &archivist.base, &cid).await;
        assert_eq!(got.len(), len);
        assert_eq!(Sha256::digest(&got), Sha256::digest(&body), "{len} bytes");
    }
}

/// The text of a node's `/spr`.
async fn spr_of(api: &str) -> String {
    reqwest::Client::new()
        .get(format!("{api}/spr"))
        .header("Accept", "text/plain")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .trim()
        .to_string()
}

/// Reads `cid` through the node at `base` until it answers 200 (an announcement in the DHT
/// takes a moment to land), at most `tries` times.
async fn fetch_when_found(base: &str, cid: &str, tries: usize) -> bytes::Bytes {
    let http = reqwest::Client::new();
    for _ in 0..tries {
        let r = http
            .get(format!("{base}/api/archivist/v1/data/{cid}/network/stream"))
            .timeout(std::time::Duration::from_secs(60))
            .send()
            .await;
        if let Ok(r) = r {
            if r.status().is_success() {
                return r.bytes().await.unwrap();
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    panic!("{cid} was never found through {base}");
}

/// Archivist finds what a Neverust node holds through Archivist's DHT alone: the two were
/// never told to connect; the Archivist node joined the DHT from Neverust's record.
#[tokio::test]
async fn archivist_finds_neverust_content_through_the_dht() {
    let Some(bin) = binary("archivist_finds_neverust_content_through_the_dht") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(&dir.path().join("neverust"), &[]);
    let spr = spr_of(&node.url("")).await;
    let archivist =
        ArchivistNode::start_with(&bin, dir.path(), &[format!("--bootstrap-node={spr}")]).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let body = data(MIB + 7, 300);
    let cid = node.upload_ok(body.clone()).await;
    assert!(
        !node.connected_peers().await.contains(&archivist.peer_id),
        "no libp2p connection before the fetch"
    );
    let got = fetch_when_found(&archivist.base, &cid, 30).await;
    assert_eq!(Sha256::digest(&got), Sha256::digest(&body));
}

/// Neverust finds what an Archivist node holds through Archivist's DHT alone: started with
/// the Archivist node's record as its bootstrap, it has no libp2p connection to it until
/// the DHT names it as a provider.
#[tokio::test]
async fn neverust_finds_archivist_content_through_the_dht() {
    let Some(bin) = binary("neverust_finds_archivist_content_through_the_dht") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let archivist = ArchivistNode::start(&bin, dir.path()).await;
    let spr = spr_of(&archivist.api()).await;
    let node = TestNode::start(&dir.path().join("neverust"), &["--bootstrap-node", &spr]);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(
        node.connected_peers().await.is_empty(),
        "a bare DHT record dials nobody"
    );
    let body = data(MIB + 9, 301);
    let (status, cid) = post(
        &archivist.api(),
        body.clone(),
        &[("Content-Type", "application/octet-stream")],
    )
    .await;
    assert_eq!(status, 200, "{cid}");
    let got = fetch_when_found(&node.base, &cid, 30).await;
    assert_eq!(Sha256::digest(&got), Sha256::digest(&body));
}
