//! The storage marketplace from a test's side, through nodes' REST APIs (`http://HOST:PORT`):
//! the bodies Archivist's routes take, polling until the market has moved, and a whole
//! purchase (hosts offer, a client asks, every slot filled).

use std::time::Duration;

use super::eventually;

use serde_json::{json, Value};

/// `POST /sales/availability`'s body: `total_size` bytes for an hour, at any price.
pub fn availability(total_size: u64) -> Value {
    json!({
        "totalSize": total_size,
        "duration": 3600,
        "minPricePerBytePerSecond": "1",
        "totalCollateral": "1000000000000",
    })
}

/// `POST /storage/request/{cid}`'s body: `nodes` slots, `tolerance` of which may be lost,
/// each proven every period.
pub fn request(nodes: u64, tolerance: u64, duration: u64) -> Value {
    json!({
        "duration": duration,
        "pricePerBytePerSecond": "1",
        "proofProbability": "1",
        "collateralPerByte": "1",
        "nodes": nodes,
        "tolerance": tolerance,
        "expiry": 120,
    })
}

/// POSTs `body` to `path` under the API at `api`: the status and the answer's text.
pub async fn post_json(
    http: &reqwest::Client,
    api: &str,
    path: &str,
    body: &Value,
) -> (u16, String) {
    let resp = http
        .post(format!("{api}/api/archivist/v1{path}"))
        .json(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Every host offers storage, then `client` asks for `cid` (which it holds) to be kept on
/// as many hosts, one slot lost tolerated; returns the request id once every slot is filled
/// (the purchase `started`).
pub async fn buy(http: &reqwest::Client, client: &str, hosts: &[&str], cid: &str) -> String {
    for h in hosts {
        let (status, body) =
            post_json(http, h, "/sales/availability", &availability(16 << 20)).await;
        assert_eq!(status, 201, "{h}: {body}");
    }
    let ask = request(hosts.len() as u64, 1, 600);
    // Refused (422) until a host's terms have reached the client's copy of the ledger.
    let id = eventually(
        "the hosts' terms to reach the client",
        Duration::from_secs(30),
        || async {
            match post_json(http, client, &format!("/storage/request/{cid}"), &ask).await {
                (200, id) => Some(id),
                (422, _) => None,
                (status, body) => panic!("storage request: {status} {body}"),
            }
        },
    )
    .await;
    eventually("the purchase to start", Duration::from_secs(90), || async {
        let r = http
            .get(format!("{client}/api/archivist/v1/storage/purchases/{id}"))
            .send()
            .await
            .unwrap();
        let p: Value = r.json().await.unwrap();
        (p["state"] == "started").then_some(())
    })
    .await;
    id
}
