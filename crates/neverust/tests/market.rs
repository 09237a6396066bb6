//! The storage marketplace between real node processes: hosts publish availabilities, a
//! client's request is coded into slots that distinct hosts fill with proofs, a validator
//! challenges them, and a host killed with -9 has its slot repaired by another host. Bad
//! requests get Archivist's status codes and leave nothing behind.

mod common;

use std::path::Path;
use std::time::Duration;

use common::market::{availability, request};
use common::{data, eventually, eventually_ok, TestNode};
use neverust_lab::metrics;
use neverust_node::metrics::names;
use serde_json::{json, Value};

/// Short periods so a lost host is noticed within seconds.
const FAST: [&str; 4] = ["--proof-period", "2s", "--proof-timeout", "3s"];

fn keeper(dir: &Path) -> TestNode {
    TestNode::start(dir, &FAST)
}

fn marketplace(dir: &Path, keeper: &TestNode) -> TestNode {
    let b = keeper.api_host_port();
    let mut args = vec!["--mode", "marketplace", "--bootstrap-node", b.as_str()];
    args.extend(FAST);
    TestNode::start(dir, &args)
}

async fn post_json(node: &TestNode, path: &str, body: &Value) -> (u16, String) {
    common::market::post_json(&node.http, &node.base, path, body).await
}

async fn get(node: &TestNode, path: &str) -> (u16, String) {
    let resp = node.http.get(node.url(path)).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn held_slots(node: &TestNode) -> Vec<(String, u64)> {
    let (status, body) = get(node, "/sales/slots").await;
    assert_eq!(status, 200, "{body}");
    let slots: Vec<Value> = serde_json::from_str(&body).unwrap();
    slots
        .iter()
        .map(|s| {
            (
                s["request"]["id"].as_str().unwrap().to_string(),
                s["slotIndex"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Proofs the node counted with this outcome, in any role.
async fn proofs(node: &TestNode, outcome: &str) -> f64 {
    let samples = metrics::parse(&node.metrics_text().await);
    metrics::sum_where(&samples, names::MARKET_PROOFS_TOTAL, "outcome", outcome)
}

/// The non-zero series of a metric, as `{labels} value`.
async fn non_zero(node: &TestNode, name: &str) -> Vec<String> {
    metrics::parse(&node.metrics_text().await)
        .into_iter()
        .filter(|s| s.name == name && s.value != 0.0)
        .map(|s| format!("{:?} {}", s.labels, s.value))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_filled_by_distinct_hosts_proven_and_repaired_after_a_host_dies() {
    let dirs: Vec<_> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
    let keeper = keeper(dirs[0].path());
    let client = marketplace(dirs[1].path(), &keeper);
    let mut hosts: Vec<Option<TestNode>> = (2..6)
        .map(|i| Some(marketplace(dirs[i].path(), &keeper)))
        .collect();
    for h in hosts.iter().flatten() {
        let (status, body) = post_json(h, "/sales/availability", &availability(64 << 20)).await;
        assert_eq!(status, 201, "{body}");
        let created: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(created["freeSize"], 64 << 20);
    }
    let original = data(1 << 20, 7);
    let cid = client.upload_ok(original.clone()).await;

    // Hosts publish their terms through the ledger; until the client has heard of them it
    // refuses the request (422), keeping nothing.
    let id = eventually(
        "a host's availability to reach the client",
        Duration::from_secs(30),
        || async {
            let (status, body) = post_json(
                &client,
                &format!("/storage/request/{cid}"),
                &request(3, 1, 600),
            )
            .await;
            match status {
                200 => Some(body),
                422 => None,
                other => panic!("storage request: {other} {body}"),
            }
        },
    )
    .await;
    assert!(id.starts_with("0x") && id.len() == 66, "request id {id}");

    let purchase = eventually("the purchase to start", Duration::from_secs(90), || async {
        let (status, body) = get(&client, &format!("/storage/purchases/{id}")).await;
        assert_eq!(status, 200, "{body}");
        let p: Value = serde_json::from_str(&body).unwrap();
        (p["state"] == "started").then_some(p)
    })
    .await;
    assert_eq!(purchase["requestId"], id.as_str());
    assert_eq!(purchase["request"]["ask"]["slots"], 3);
    let (_, ids) = get(&client, "/storage/purchases").await;
    assert!(ids.contains(&id), "{ids}");

    // The client hears of a fill before the host has moved its sale on: wait for all three.
    let mut holders = eventually(
        "the hosts to prove their slots",
        Duration::from_secs(30),
        || async {
            let mut holders = Vec::new();
            for (i, h) in hosts.iter().enumerate() {
                for (request, slot) in held_slots(h.as_ref().unwrap()).await {
                    assert_eq!(request, id);
                    holders.push((i, slot));
                }
            }
            (holders.len() >= 3).then_some(holders)
        },
    )
    .await;
    holders.sort_by_key(|(_, slot)| *slot);
    assert_eq!(
        holders.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        vec![0, 1, 2],
        "every slot filled once: {holders:?}"
    );
    let mut distinct: Vec<usize> = holders.iter().map(|(h, _)| *h).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "one slot per host: {holders:?}");

    eventually(
        "the validator to verify a proof",
        Duration::from_secs(30),
        || async { (proofs(&keeper, "verified").await > 0.0).then_some(()) },
    )
    .await;

    // The client goes (and its copy of the coded dataset with it), then a host dies: its
    // missed proofs free the slot, and the spare host repairs it without them.
    let client_dir = client.data_dir.clone();
    client.kill9();
    let (dead, lost_slot) = holders[1];
    hosts[dead].take().unwrap().kill9();
    let spare = (0..hosts.len())
        .find(|i| !holders.iter().any(|(h, _)| h == i))
        .unwrap();
    let spare_node = hosts[spare].as_ref().unwrap();
    eventually_ok(
        "the spare host to repair the lost slot",
        Duration::from_secs(120),
        || async {
            if held_slots(spare_node)
                .await
                .contains(&(id.clone(), lost_slot))
            {
                return Ok(());
            }
            // What the spare's sales and the validator's proofs came to, for a failure.
            let spare = non_zero(spare_node, names::MARKET_SALES).await;
            let proofs = non_zero(&keeper, names::MARKET_PROOFS_TOTAL).await;
            Err(format!(
                "the spare's sales {spare:?}, the keeper's proofs {proofs:?}"
            ))
        },
    )
    .await;
    assert!(proofs(&keeper, "missed").await >= 1.0);
    assert_eq!(
        spare_node.metric(names::MARKET_SLOTS_REPAIRED_TOTAL).await,
        1.0
    );
    // Rebuilt from the two other slots, or fetched from a host that raced for the lost slot
    // at the start and kept its blocks: either way at most once.
    assert!(spare_node.metric(names::MARKET_SLOTS_REBUILT_TOTAL).await <= 1.0);

    // The client, killed and restarted, still knows its purchase (started: one lost host
    // is within tolerance) and its dataset.
    let client = marketplace(&client_dir, &keeper);
    let p = eventually(
        "the restarted client's purchase",
        Duration::from_secs(30),
        || async {
            let (status, body) = get(&client, &format!("/storage/purchases/{id}")).await;
            (status == 200).then(|| serde_json::from_str::<Value>(&body).unwrap())
        },
    )
    .await;
    assert_eq!(p["state"], "started", "{p}");
    let (status, bytes) = client.download(&cid).await;
    assert_eq!(status, 200);
    assert!(bytes == original, "the dataset survives the restart intact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_market_input_gets_archivists_status_codes_and_leaves_nothing() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let keeper = keeper(dirs[0].path());
    let b = keeper.api_host_port();
    let altruist = TestNode::start(dirs[1].path(), &["--bootstrap-node", b.as_str()]);
    let client = marketplace(dirs[2].path(), &keeper);
    let host = marketplace(dirs[3].path(), &keeper);

    let (status, body) = get(&altruist, "/sales/availability").await;
    assert_eq!((status, body.as_str()), (503, "Persistence is not enabled"));
    let (status, _) = post_json(
        &altruist,
        "/storage/request/zDvZRwzkzHvx",
        &request(3, 1, 600),
    )
    .await;
    assert_eq!(status, 503);

    // Availabilities: bad JSON 400, zero size 422, more than the quota 422, unknown 404.
    let resp = host
        .http
        .post(host.url("/sales/availability"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let (status, body) = post_json(&host, "/sales/availability", &availability(0)).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = post_json(&host, "/sales/availability", &availability(1 << 50)).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("quota"), "{body}");
    let unknown = format!("0x{}", "ab".repeat(32));
    let (status, _) = get(
        &host,
        &format!("/sales/availability/{unknown}/reservations"),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = get(&host, "/sales/availability/nothex/reservations").await;
    assert_eq!(status, 400);
    let (status, _) = get(&host, &format!("/sales/slots/{unknown}")).await;
    assert_eq!(status, 404);
    let (status, _) = get(&client, &format!("/storage/purchases/{unknown}")).await;
    assert_eq!(status, 404);
    // A small availability: one 64 KiB block's worth.
    let (status, body) = post_json(&host, "/sales/availability", &availability(1 << 16)).await;
    assert_eq!(status, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    let patch = host
        .http
        .patch(host.url(&format!(
            "/sales/availability/{}",
            created["id"].as_str().unwrap()
        )))
        .json(&json!({"totalSize": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 422);

    let cid = client.upload_ok(data(1 << 20, 3)).await;
    let unknown_cid = client.upload_ok(data(1000, 4)).await;
    let (status, _) = client
        .http
        .delete(client.url(&format!("/data/{unknown_cid}")))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 204);
    let before = client.get_json("/data").await;
    let before_space = client.space().await;

    let cases: Vec<(String, Value, u16, &str)> = vec![
        (unknown_cid.clone(), request(3, 1, 600), 404, "no dataset"),
        ("not-a-cid".into(), request(3, 1, 600), 400, ""),
        (cid.clone(), request(3, 3, 600), 422, "tolerance"),
        (cid.clone(), request(3, 4, 600), 422, "tolerance"),
        (cid.clone(), request(3, 1, 0), 422, "Expiry"),
        (
            cid.clone(),
            json!({"duration": 600}),
            400,
            "pricePerBytePerSecond",
        ),
    ];
    for (target, body, want, says) in cases {
        let (status, text) = post_json(&client, &format!("/storage/request/{target}"), &body).await;
        assert_eq!(status, want, "{body} → {text}");
        assert!(text.contains(says), "{body} → {text}");
    }
    // The host's availability reaches the client's copy of the ledger; a slot of this
    // request (16 blocks over K = 2: 8 blocks, 512 KiB) is larger than it.
    let text = eventually(
        "the host's terms to reach the client",
        Duration::from_secs(30),
        || async {
            let (status, text) = post_json(
                &client,
                &format!("/storage/request/{cid}"),
                &request(3, 1, 600),
            )
            .await;
            assert_eq!(status, 422, "{text}");
            (!text.contains("no host has published")).then_some(text)
        },
    )
    .await;
    assert!(text.contains("larger than any availability"), "{text}");

    assert_eq!(
        client.get_json("/data").await,
        before,
        "no coded dataset was left behind"
    );
    assert_eq!(
        client.space().await.quota_used_bytes,
        before_space.quota_used_bytes
    );
    let (_, ids) = get(&client, "/storage/purchases").await;
    assert_eq!(ids, "[]");
}
