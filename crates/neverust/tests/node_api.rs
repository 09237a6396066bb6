//! The storage node end to end: a real `neverust start` process, spoken to over HTTP.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::{data, eventually, TestNode};
use neverust_node::api::answers::{DataList, DebugInfo, PeerIdAnswer, Space, SprAnswer};
use sha2::{Digest, Sha256};

const BLOCK: usize = 64 * 1024;

#[tokio::test]
async fn upload_then_download_returns_identical_bytes_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), &[]);
    for (i, len) in [1usize, BLOCK - 1, BLOCK, BLOCK + 1, 5 * BLOCK + 123]
        .into_iter()
        .enumerate()
    {
        let payload = data(len, i as u64);
        let cid = node.upload_ok(payload.clone()).await;
        assert!(
            cid.starts_with('z'),
            "manifest CIDs print as base58btc: {cid}"
        );
        let resp = node
            .http
            .get(node.url(&format!("/data/{cid}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-disposition"],
            "attachment; filename=\"test.bin\""
        );
        assert_eq!(resp.headers()["content-type"], "application/octet-stream");
        assert_eq!(resp.headers()["content-length"], len.to_string().as_str());
        let body = resp.bytes().await.unwrap();
        assert_eq!(Sha256::digest(&body), Sha256::digest(&payload), "len {len}");
    }
    let list: DataList = node.get("/data").await;
    assert_eq!(list.content.len(), 5);
    assert!(list
        .content
        .iter()
        .all(|item| item.manifest.filename.as_deref() == Some("test.bin")
            && item.manifest.block_size == BLOCK as u64
            && !item.manifest.protected));
}

/// The MIME type and file name are part of the manifest, so of its CID: kept as Archivist
/// keeps them (the type as sent, an absent one `null`), and different headers give
/// different CIDs for the same bytes.
#[tokio::test]
async fn upload_headers_go_into_the_manifest_as_archivist_puts_them() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), &[]);
    let payload = data(1000, 3);
    let post = |headers: &'static [(&'static str, &'static str)]| {
        let mut req = node.http.post(node.url("/data")).body(payload.clone());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.text().await.unwrap()
        }
    };
    let bare = post(&[]).await;
    let typed = post(&[("Content-Type", "Application/Octet-Stream")]).await;
    let named = post(&[
        ("Content-Type", "text/plain"),
        ("Content-Disposition", "attachment; filename=\"hello.txt\""),
    ])
    .await;
    assert_eq!(
        post(&[("Content-Type", "application/x-www-form-urlencoded")]).await,
        bare,
        "curl's default type is no type"
    );
    assert!(bare != typed && typed != named && bare != named);
    let manifest = |cid: String| {
        let node = &node;
        async move {
            node.get_json(&format!("/data/{cid}/network/manifest"))
                .await
        }
    };
    let m = manifest(bare).await;
    assert!(
        m["manifest"]["filename"].is_null() && m["manifest"]["mimetype"].is_null(),
        "{m}"
    );
    let m = manifest(typed).await;
    assert!(m["manifest"]["filename"].is_null(), "{m}");
    assert_eq!(m["manifest"]["mimetype"], "Application/Octet-Stream");
    let m = manifest(named).await;
    assert_eq!(m["manifest"]["filename"], "hello.txt");
    assert_eq!(m["manifest"]["mimetype"], "text/plain");
}

#[tokio::test]
async fn same_content_same_cid_and_blocks_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), &[]);
    let payload = data(3 * BLOCK, 7);
    let first = node.upload_ok(payload.clone()).await;
    let used_once = node.space().await.quota_used_bytes;
    let second = node.upload_ok(payload).await;
    assert_eq!(first, second);
    let space = node.space().await;
    assert_eq!(space.quota_used_bytes, used_once);
    // 3 data blocks and 1 manifest.
    assert_eq!(space.total_blocks, 4);
}

#[tokio::test]
async fn bad_cids_are_400_and_unknown_cids_404() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), &[]);
    let (status, body) = node.download("not-a-cid").await;
    assert_eq!(status, 400);
    assert!(!body.is_empty(), "a 400 carries a message");
    // A well-formed manifest CID that this node never stored.
    let cid = node.upload_ok(data(10, 1)).await;
    let resp = node
        .http
        .delete(node.url(&format!("/data/{cid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, _) = node.download(&cid).await;
    assert_eq!(status, 404);
    let resp = node
        .http
        .get(node.url(&format!("/data/{cid}/network/manifest")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn delete_frees_space_but_keeps_blocks_shared_with_other_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), &[]);
    let a = data(4 * BLOCK, 11);
    let mut b = a[..2 * BLOCK].to_vec();
    b.extend(data(2 * BLOCK, 12));
    let cid_a = node.upload_ok(a).await;
    let cid_b = node.upload_ok(b.clone()).await;
    let resp = node
        .http
        .delete(node.url(&format!("/data/{cid_a}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, body) = node.download(&cid_b).await;
    assert_eq!(status, 200);
    assert_eq!(body, b);
    // b's 4 blocks + its manifest remain.
    assert_eq!(node.space().await.total_blocks, 5);
}

#[tokio::test]
async fn over_quota_is_refused_with_the_quota_in_the_message_and_nothing_stored() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), &["--storage-quota", "1MiB"]);
    let before = node.space().await;
    // With a Content-Length: refused before the body is read.
    let resp = node.upload(data(2 << 20, 3)).await;
    assert_eq!(resp.status(), 422);
    let msg = resp.text().await.unwrap();
    assert!(msg.contains("1048576"), "message names the quota: {msg}");
    // Chunked (no length): refused when the quota runs out mid-stream.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..32).map(|i| Ok(data(BLOCK, 100 + i))).collect();
    let resp = node
        .http
        .post(node.url("/data"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await;
    if let Ok(resp) = resp {
        assert_eq!(resp.status(), 422);
        assert!(resp.text().await.unwrap().contains("1048576"));
    }
    let after = wait_for_space(&node, &before).await;
    assert_eq!(after, before, "a refused upload leaves nothing behind");
    // What fits still goes in.
    node.upload_ok(data(BLOCK, 4)).await;
}

async fn wait_for_space(node: &TestNode, expected: &Space) -> Space {
    let what = format!("the space to be {expected:?}");
    eventually(&what, Duration::from_secs(10), || async {
        let now = node.space().await;
        (&now == expected).then_some(now)
    })
    .await
}

/// Sends part of a large upload, a few blocks at a time, until the node counts some of it
/// against the quota (how much it buffers first is the store's business), and returns the
/// still-open connection.
async fn start_upload_until_stored(node: &TestNode, used_before: u64, seed: u64) -> TcpStream {
    const DECLARED: usize = 2000;
    let addr = node.base.trim_start_matches("http://").to_string();
    let mut conn = TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "POST /api/archivist/v1/data HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        DECLARED * BLOCK
    )
    .unwrap();
    let body = data(DECLARED * BLOCK, seed);
    // Never the whole body: the upload must still be unfinished when we stop.
    for piece in body.chunks(32 * BLOCK).take(DECLARED / 32 - 1) {
        conn.write_all(piece).unwrap();
        conn.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        if node.space().await.quota_used_bytes != used_before {
            return conn;
        }
    }
    let stored = || async { (node.space().await.quota_used_bytes != used_before).then_some(()) };
    eventually(
        "the node to store a block of the upload",
        Duration::from_secs(30),
        stored,
    )
    .await;
    conn
}

#[tokio::test]
async fn a_client_that_disconnects_mid_upload_leaves_no_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), &[]);
    let before = node.space().await;
    // The node holds some of its blocks (counted against the quota) before we vanish.
    let conn = start_upload_until_stored(&node, before.quota_used_bytes, 9).await;
    drop(conn);
    let after = wait_for_space(&node, &before).await;
    assert_eq!(after, before);
}

#[tokio::test]
async fn kill_9_after_an_acknowledged_upload_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), &[]);
    let peer_id = node.peer_id.clone();
    let payloads: Vec<Vec<u8>> = (0..3)
        .map(|i| data(3 * BLOCK + 1000 + i * 1000, 50 + i as u64))
        .collect();
    let mut cids = Vec::new();
    for p in &payloads {
        cids.push(node.upload_ok(p.clone()).await);
    }
    // A fourth upload is cut off by the kill mid-stream, after the node has written (but not
    // committed) some of its blocks: it must not survive half-stored.
    let used_before = node.space().await.quota_used_bytes;
    let conn = start_upload_until_stored(&node, used_before, 99).await;
    node.kill9();
    drop(conn);

    let node = TestNode::start(dir.path(), &[]);
    assert_eq!(node.peer_id, peer_id, "the node key lives in the data dir");
    for (cid, p) in cids.iter().zip(&payloads) {
        let (status, body) = node.download(cid).await;
        assert_eq!(status, 200);
        assert_eq!(&body, p);
    }
    // Only the three datasets remain: 4 blocks + a manifest each.
    let space = node.space().await;
    assert_eq!(space.total_blocks, 15, "{space:?}");
    // 12 data blocks plus three manifests of a few hundred bytes each.
    let used = space.quota_used_bytes;
    assert!(
        (12 * BLOCK as u64..12 * BLOCK as u64 + 3 * 1024).contains(&used),
        "quota used {used}"
    );
}

#[tokio::test]
async fn sigterm_stops_the_node_cleanly_and_restart_serves_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), &[]);
    let payload = data(2 * BLOCK + 5, 77);
    let cid = node.upload_ok(payload.clone()).await;
    let status = node.terminate();
    assert!(status.success(), "graceful stop exits 0: {status}");
    let node = TestNode::start(dir.path(), &[]);
    assert_eq!(node.download(&cid).await, (200, payload));
}

#[tokio::test]
async fn metrics_and_node_identity_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), &["--mode", "marketplace"]);
    node.upload_ok(data(BLOCK, 5)).await;
    let metrics = node.metrics_text().await;
    for needle in [
        "neverust_block_count 2",
        "neverust_block_bytes ",
        "neverust_uptime_seconds ",
        "mode=\"marketplace\"",
        "neverust_api_requests_total{method=\"POST\",route=\"/api/archivist/v1/data\",status=\"200\"} 1",
        "neverust_store_op_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(needle), "missing {needle:?}:\n{metrics}");
    }
    let id: PeerIdAnswer = node.get("/peerid").await;
    assert_eq!(id.id, node.peer_id);
    let text = node
        .http
        .get(node.url("/peerid"))
        .header("Accept", "text/plain")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, node.peer_id);
    let spr: SprAnswer = node.get("/spr").await;
    assert!(spr.spr.starts_with("spr:"));
    let info: DebugInfo = node.debug_info().await;
    assert_eq!(info.id, node.peer_id);
    assert_eq!(info.mode.as_deref(), Some("marketplace"));
    let resp = node
        .http
        .post(node.url("/debug/chronicles/loglevel?level=LOUD"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = node
        .http
        .post(node.url("/debug/chronicles/loglevel?level=DEBUG"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let health = node
        .http
        .get(format!("{}/health", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[test]
fn bad_flags_exit_non_zero_naming_the_flag() {
    for (args, flag) in [
        (&["start", "--mode", "greedy"][..], "--mode"),
        (
            &["start", "--storage-quota", "12parsecs"][..],
            "--storage-quota",
        ),
        (&["start", "--block-ttl", "soon"][..], "--block-ttl"),
        (&["start", "--api-port", "99999"][..], "--api-port"),
        (
            &["start", "--bootstrap-node", "nohost"][..],
            "--bootstrap-node",
        ),
        (&["start", "--log-level", "LOUD"][..], "--log-level"),
        (
            &["start", "--dht-replication", "0"][..],
            "--dht-replication",
        ),
        (&["start", "--worker-threads", "0"][..], "--worker-threads"),
    ] {
        let out = Command::new(common::binary()).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(flag),
            "{args:?}: stderr does not name {flag}: {stderr}"
        );
    }
}
