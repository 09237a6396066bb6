//! The visualizer's server against real clusters: what it sends the page must be what the
//! nodes report themselves (node count, connections, totals, the slots marketplace hosts
//! hold of a storage request), from a cluster.json and from a real Prometheus scraping the
//! nodes; a node killed turns grey, then disappears; bad
//! flags and a busy port are named. The page itself is tested in Chromium by
//! scripts/viz-browser-test.py.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{eventually, eventually_blocking, eventually_ok, Terminated};
use neverust_node::api::answers::{self, DebugInfo};
use neverust_node::metrics::names;
use serde_json::Value;

const BASE_PORT: u16 = 24100;
const BOOTSTRAP_API: u16 = 24199;

fn neverust() -> Command {
    Command::new(common::binary())
}

async fn get_json(http: &reqwest::Client, url: &str) -> Option<Value> {
    let r = http.get(url).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// The cluster as the nodes describe themselves: (connections, blocks, bytes).
#[derive(Debug, PartialEq)]
struct Truth {
    edges: BTreeSet<(String, String)>,
    blocks: f64,
    bytes: f64,
}

async fn truth(http: &reqwest::Client, apis: &[String]) -> Truth {
    let mut ids = Vec::new();
    let mut seen = Vec::new();
    let (mut blocks, mut bytes) = (0.0, 0.0);
    for api in apis {
        let url = format!("{api}/api/archivist/v1/debug/info");
        let text = http.get(&url).send().await.unwrap().text().await.unwrap();
        let info: DebugInfo =
            answers::decode(&text).unwrap_or_else(|e| panic!("{url}: {e} in {text}"));
        for n in info.table.nodes.into_iter().filter(|n| n.seen) {
            seen.push((info.id.clone(), n.peer_id));
        }
        ids.push(info.id);
        let text = common::metrics_of(http, api).await;
        blocks += common::metric_sum(&text, names::BLOCK_COUNT);
        bytes += common::metric_sum(&text, names::BLOCK_BYTES);
    }
    let edges = seen
        .into_iter()
        .filter(|(_, b)| ids.contains(b))
        .map(|(a, b)| if a < b { (a, b) } else { (b, a) })
        .collect();
    Truth {
        edges,
        blocks,
        bytes,
    }
}

fn snapshot_edges(s: &Value) -> BTreeSet<(String, String)> {
    s["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["source"].as_str().unwrap().to_string(),
                e["target"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A snapshot made between two identical readings of the nodes must equal them: the
/// cluster may change while it is read (a connection opens), so it is read until it
/// holds still, and then any difference is the visualizer's.
async fn assert_snapshot_matches(http: &reqwest::Client, viz: &str, apis: &[String]) -> Value {
    let seq = |s: &Option<Value>| s.as_ref().map_or(0, |s| s["seq"].as_u64().unwrap());
    let (snap, after) = eventually_ok(
        "the cluster to hold still for a snapshot",
        Duration::from_secs(40),
        || async {
            let before = truth(http, apis).await;
            // Poll c+1 may have begun while `before` was read; c+2 began after it.
            let c = seq(&get_json(http, &format!("{viz}snapshot.json")).await);
            let snap = eventually(
                "the visualizer's next polls",
                Duration::from_secs(20),
                || async {
                    get_json(http, &format!("{viz}snapshot.json"))
                        .await
                        .filter(|s| s["seq"].as_u64().unwrap() >= c + 2)
                },
            )
            .await;
            let after = truth(http, apis).await;
            if before != after {
                return Err("the nodes changed while the snapshot was taken".to_string());
            }
            // Until a new source has listed every node and each answered.
            let nodes = snap["nodes"].as_array().unwrap();
            if nodes.len() != apis.len() || nodes.iter().any(|n| n["up"] != true) {
                return Err(format!("not every node is up in the snapshot: {snap}"));
            }
            Ok((snap, after))
        },
    )
    .await;
    assert_eq!(snap["stats"]["active_nodes"], apis.len());
    assert_eq!(snapshot_edges(&snap), after.edges, "edges: {snap}");
    assert_eq!(
        snap["stats"]["total_blocks"].as_f64().unwrap(),
        after.blocks
    );
    assert_eq!(snap["stats"]["total_bytes"].as_f64().unwrap(), after.bytes);
    snap
}

/// The slots a node lists in `/sales/slots`, as (request id, slot index); none on a node
/// that does not trade (the bootstrap answers 503).
async fn held_slots(http: &reqwest::Client, api: &str) -> Vec<(String, u64)> {
    let url = format!("{api}/api/archivist/v1/sales/slots");
    let r = http.get(&url).send().await.unwrap();
    if r.status() == 503 {
        return Vec::new();
    }
    let slots: Vec<Value> = r.json().await.unwrap();
    let mut held: Vec<(String, u64)> = slots
        .iter()
        .map(|s| {
            let id = s["request"]["id"].as_str().unwrap().to_string();
            (id, s["slotIndex"].as_u64().unwrap())
        })
        .collect();
    held.sort();
    held
}

/// Every host's slots in the snapshot are the ones it lists itself, and the request is
/// drawn with its client (node 1) and a host per slot.
async fn assert_slots_match(http: &reqwest::Client, viz: &str, apis: &[String], request: &str) {
    let (snap, truth) = eventually_ok(
        "the snapshot's slots to be the nodes' own",
        Duration::from_secs(20),
        || async {
            let mut truth = Vec::new();
            for api in apis {
                truth.push(held_slots(http, api).await);
            }
            let snap = get_json(http, &format!("{viz}snapshot.json"))
                .await
                .unwrap();
            let drawn: Vec<Vec<(String, u64)>> = snap["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| {
                    let mut held: Vec<(String, u64)> = n["slots"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| {
                            let id = s["request"].as_str().unwrap().to_string();
                            (id, s["slot_index"].as_u64().unwrap())
                        })
                        .collect();
                    held.sort();
                    held
                })
                .collect();
            let hosted: usize = truth.iter().map(Vec::len).sum();
            if drawn != truth || hosted != 3 {
                return Err(format!("drawn {drawn:?}, the nodes' {truth:?}"));
            }
            Ok((snap, truth))
        },
    )
    .await;
    let nodes = snap["nodes"].as_array().unwrap();
    assert!(truth[0].is_empty() && truth[1].is_empty(), "{truth:?}");
    let requests = snap["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1, "{snap}");
    let r = &requests[0];
    assert_eq!(r["id"], request);
    assert_eq!(r["client"], nodes[1]["id"], "node 1 made it: {r}");
    let hosts: Vec<(&str, u64)> = r["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["node"].as_str().unwrap(),
                h["slot_index"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(hosts.iter().map(|h| h.1).collect::<Vec<_>>(), [0, 1, 2]);
    let mut by: Vec<&str> = hosts.iter().map(|h| h.0).collect();
    by.sort();
    let mut expected: Vec<&str> = nodes[2..]
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    expected.sort();
    assert_eq!(by, expected, "one slot on each other marketplace node");
}

fn wait_cluster(path: &Path, limit: Duration) -> Value {
    eventually_blocking(&format!("Prometheus in {}", path.display()), limit, || {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .filter(|c| c["prometheus"].is_string())
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_match_what_five_nodes_report() {
    common::tool("prometheus");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let viz_port = common::free_port();
    let launcher = Terminated(
        neverust()
            .args([
                "cluster",
                "--nodes",
                "5",
                "--marketplace-every",
                "1",
                "--base-port",
                &BASE_PORT.to_string(),
            ])
            .args(["--bootstrap-api-port", &BOOTSTRAP_API.to_string()])
            .args([
                "--viz-port",
                &viz_port.to_string(),
                "--node-log-level",
                "warn",
                "--prometheus",
                "--prometheus-port",
                &common::free_port().to_string(),
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Written once the nodes are ready, and again once their Prometheus is.
    let cluster = wait_cluster(&dir.join("cluster.json"), Duration::from_secs(60));
    let apis: Vec<String> = cluster["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["api_url"].as_str().unwrap().to_string())
        .collect();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let viz = format!("http://127.0.0.1:{viz_port}/");

    // Data on two nodes, so totals and ledgers are not all zero.
    let data = common::data(3 << 20, 11);
    let cid = common::upload_to(&http, &apis[1], data.clone()).await;
    let back = common::download_through(&http, &apis[3], &cid).await;
    assert_eq!(back.len(), data.len());
    // Node 1 buys storage for it on the three other marketplace nodes.
    let request = common::market::buy(&http, &apis[1], &[&apis[2], &apis[3], &apis[4]], &cid).await;

    let snap = assert_snapshot_matches(&http, &viz, &apis).await;
    assert!(snap["stats"]["total_blocks"].as_f64().unwrap() > 0.0);
    assert!(
        snap["edges"].as_array().unwrap().len() >= 4,
        "everyone meets the bootstrap"
    );
    let roles: Vec<&str> = snap["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "bootstrap",
            "marketplace",
            "marketplace",
            "marketplace",
            "marketplace"
        ]
    );
    assert_slots_match(&http, &viz, &apis, &request).await;
    let page = http.get(&viz).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("d3.min.js"));

    // The same cluster seen through the real Prometheus that scrapes it (started by the
    // launcher, its targets labelled as the Compose and Kubernetes configs label theirs).
    {
        let prometheus = cluster["prometheus"].as_str().unwrap();
        let prom_viz_port = common::free_port();
        let _prom_viz = Terminated(
            neverust()
                .args(["viz", "--prometheus", prometheus])
                .args(["--port", &prom_viz_port.to_string()])
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let prom_viz = format!("http://127.0.0.1:{prom_viz_port}/");
        let from_prometheus = assert_snapshot_matches(&http, &prom_viz, &apis).await;
        let describe = |s: &Value| -> Vec<(String, String)> {
            s["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| {
                    (
                        n["id"].as_str().unwrap().into(),
                        n["role"].as_str().unwrap().into(),
                    )
                })
                .collect()
        };
        assert_eq!(describe(&from_prometheus), describe(&snap));
        assert!(from_prometheus["source"]
            .as_str()
            .unwrap()
            .contains("Prometheus"));
    }

    // A node killed turns grey, then leaves the page; the rest stay.
    let victim = cluster["nodes"][4]["pid"].as_u64().unwrap();
    let victim_id = cluster["nodes"][4]["peer_id"].as_str().unwrap().to_string();
    Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status()
        .unwrap();
    let node_state = |s: &Value| {
        s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == victim_id.as_str())
            .map(|n| n["up"] == true)
    };
    let went_grey = std::cell::Cell::new(false);
    eventually_ok(
        "the dead node to leave the picture",
        Duration::from_secs(20),
        || async {
            let s = get_json(&http, &format!("{viz}snapshot.json"))
                .await
                .unwrap();
            match node_state(&s) {
                Some(false) => went_grey.set(true),
                Some(true) => {}
                None => {
                    assert_eq!(s["nodes"].as_array().unwrap().len(), 4);
                    assert_eq!(s["stats"]["active_nodes"], 4);
                    return Ok(());
                }
            }
            Err(format!("the dead node stayed: {s}"))
        },
    )
    .await;
    assert!(
        went_grey.get(),
        "the dead node vanished without turning grey first"
    );
    drop(launcher);
}

#[test]
fn bad_viz_flags_and_a_busy_port_are_named() {
    assert!(
        common::usage_error(&["viz", "--prometheus", "prometheus:9090"]).contains("--prometheus")
    );
    let err = common::usage_error(&["viz", "--cluster", "/nonexistent/cluster.json"]);
    assert!(
        err.contains("--cluster") && err.contains("/nonexistent"),
        "{err}"
    );

    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("cluster.json");
    std::fs::write(&file, "{}").unwrap();
    let out = neverust()
        .args(["viz", "--port", &port, "--cluster"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("port {port}")) && err.contains("in use"),
        "{err}"
    );
    // The cluster refuses before starting any node.
    let out = neverust()
        .args([
            "cluster",
            "--nodes",
            "2",
            "--base-port",
            "24200",
            "--bootstrap-api-port",
            "24299",
        ])
        .args(["--viz-port", &port, "--dir"])
        .arg(tmp.path().join("c"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("port {port}")) && err.contains("--no-viz"),
        "{err}"
    );
    assert!(
        !tmp.path().join("c/node-0/node.log").exists(),
        "no node was started"
    );
}
