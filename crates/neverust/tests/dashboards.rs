//! `neverust cluster --prometheus` with the real Debian Prometheus, and every PromQL
//! expression of the Grafana dashboards evaluated through that Prometheus's HTTP API after
//! real traffic: an expression that errors, or finds no series, or only NaN, fails. The
//! nodes are tiered (memory, SSD, emulated HDD), so the tier panels are evaluated too, and
//! all but the bootstrap trade storage: a purchase on three hosts, proven every period,
//! feeds the marketplace panels.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{eventually, Terminated};
use neverust_node::metrics::names;
use serde_json::Value;

const BASE_PORT: &str = "23700";
const BOOTSTRAP_API_PORT: &str = "23799";
/// The node the drill-down dashboard is evaluated for: the one that downloads, and a host.
const DRILL_NODE: &str = "2";

fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/dashboards")
}

struct Prom {
    http: reqwest::Client,
    url: String,
}

impl Prom {
    async fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let r = self
            .http
            .get(format!("{}/api/v1/{path}", self.url))
            .query(params)
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }

    async fn query(&self, expr: &str) -> Value {
        self.api("query", &[("query", expr)]).await
    }

    /// The values of an instant query's series (NaN included).
    async fn values(&self, expr: &str) -> Vec<f64> {
        series_values(&self.query(expr).await)
    }
}

fn series_values(answer: &Value) -> Vec<f64> {
    answer["data"]["result"]
        .as_array()
        .map(|series| {
            series
                .iter()
                .map(|s| s["value"][1].as_str().unwrap().parse().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// Every target expression of a dashboard, with its panel's title.
fn expressions(dashboard: &Value) -> Vec<(String, String)> {
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap().to_string();
            p["targets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |t| (title.clone(), t["expr"].as_str().unwrap().to_string()))
        })
        .collect()
}

/// What Grafana would substitute: a rate window of four 5 s scrapes and more, and the node.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$node", DRILL_NODE)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_answers_from_a_real_prometheus() {
    common::tool("prometheus");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let prom_port = common::free_port().to_string();
    // Tiered nodes, so the tier panels have data: a memory tier of four blocks, an SSD tier
    // of sixteen that the upload overflows (the rest lands on the HDD tier), and an HDD
    // tier emulated at 1 ms a read. Reading the dataset twice on the downloading node then
    // misses the small memory tier and reads the HDD blocks twice, which promotes them.
    let tiers = tmp.path().join("tiers");
    let tier_flags = [
        "memory:256KiB".to_string(),
        format!("ssd:{}:1MiB", tiers.join("ssd").display()),
        format!("hdd:{}:64MiB:latency=1ms", tiers.join("hdd").display()),
    ];
    let launcher = Terminated(
        Command::new(common::binary())
            .args(["cluster", "--nodes", "5", "--marketplace-every", "1"])
            .args([
                "--base-port",
                BASE_PORT,
                "--bootstrap-api-port",
                BOOTSTRAP_API_PORT,
            ])
            .args(["--node-log-level", "warn", "--no-viz", "--prometheus"])
            .args(["--prometheus-port", &prom_port])
            .args(tier_flags.iter().flat_map(|t| ["--node-tier", t.as_str()]))
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let file = dir.join("cluster.json");
    let read_cluster =
        || -> Option<Value> { serde_json::from_str(&std::fs::read_to_string(&file).ok()?).ok() };
    let cluster = eventually(
        "cluster.json naming Prometheus",
        Duration::from_secs(60),
        || {
            let c = read_cluster();
            async move { c.filter(|c| c["prometheus"].is_string()) }
        },
    )
    .await;
    let prom = Prom {
        http: reqwest::Client::new(),
        url: cluster["prometheus"].as_str().unwrap().to_string(),
    };
    assert_eq!(prom.url, format!("http://127.0.0.1:{prom_port}"));
    let api: Vec<String> = cluster["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["api_url"].as_str().unwrap().to_string())
        .collect();

    // Every node is a target, labelled as the dashboards expect, and scraped once before
    // the traffic (so the rates below have a sample from before it).
    eventually("every node scraped", Duration::from_secs(30), || {
        let p = &prom;
        async move { (p.values("sum(up{job=\"neverust\"})").await == vec![5.0]).then_some(()) }
    })
    .await;
    let targets = prom.api("targets", &[]).await;
    let mut labels: Vec<(String, String, String)> = targets["data"]["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let l = &t["labels"];
            let s = |k: &str| l[k].as_str().unwrap().to_string();
            (s("node"), s("role"), s("mode"))
        })
        .collect();
    labels.sort();
    let own = |n: &str, r: &str, m: &str| (n.to_string(), r.to_string(), m.to_string());
    assert_eq!(
        labels,
        vec![
            own("0", "bootstrap", "altruistic"),
            own("1", "node", "marketplace"),
            own("2", "node", "marketplace"),
            own("3", "node", "marketplace"),
            own("4", "node", "marketplace"),
        ]
    );

    // Traffic: an upload on node 1, a download of it through the network on node 2, and two
    // client errors (a malformed CID, an unknown one) for the error panels.
    let http = reqwest::Client::new();
    let payload = common::data(3_000_000, 7);
    let cid = common::upload_to(&http, &api[1], payload.clone()).await;
    let back = common::download_through(&http, &api[2], &cid).await;
    assert_eq!(back.len(), payload.len());
    for path in [
        "data/notacid",
        "data/zDvZRwzm52k4rMZGskTDVHYG5hQHA7wPURHkFyVC9rUbsWYx1ukA",
    ] {
        let r = http
            .get(format!("{}/api/archivist/v1/{path}", api[2]))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{path}: {}", r.status());
    }
    // Node 2's own copy, read twice from its tiers.
    for _ in 0..2 {
        let r = http
            .get(format!("{}/api/archivist/v1/data/{cid}", api[2]))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "local read: {}", r.status());
        assert_eq!(r.bytes().await.unwrap().len(), payload.len());
    }
    // Node 1 buys storage for it on the other three; the bootstrap keeps the ledger and
    // validates their proofs.
    common::market::buy(&http, &api[1], &[&api[2], &api[3], &api[4]], &cid).await;
    let tier_hits = common::metric_sum(
        &common::metrics_of(&http, &api[2]).await,
        names::TIER_HITS_TOTAL,
    );
    assert!(tier_hits > 0.0, "node 2's tiers served no read");
    // The error counters are born with the errors, so their rate needs two scrapes of them.
    eventually("the traffic in Prometheus", Duration::from_secs(30), || {
        let p = &prom;
        async move {
            let received = p.values("neverust_blocks_received_total{node=\"2\"}").await;
            let errors = p
                .values(
                    "count_over_time(neverust_api_requests_total{node=\"2\",status=\"400\"}[1m])",
                )
                .await;
            let hits = p.values("sum(neverust_tier_hits_total{node=\"2\"})").await;
            // Proof counters are born with the first proof: rates need two scrapes of them.
            let scraped = |selector: &'static str| async move {
                let expr = format!(
                    "count_over_time({}{selector}[1m])",
                    names::MARKET_PROOFS_TOTAL
                );
                p.values(&expr).await.iter().any(|v| *v >= 2.0)
            };
            // The metric's `role` is `exported_role` beside the target's own `role`.
            let proofs = scraped("{exported_role=\"validator\"}").await
                && scraped("{node=\"2\",exported_role=\"host\"}").await;
            (received.iter().any(|v| *v > 0.0)
                && errors.iter().any(|v| *v >= 2.0)
                && hits.iter().any(|v| *v >= tier_hits)
                && proofs)
                .then_some(())
        }
    })
    .await;

    // What Prometheus holds is what the nodes say.
    let mut bytes_on_nodes = 0.0;
    for base in &api {
        let text = common::metrics_of(&http, base).await;
        bytes_on_nodes += common::metric_sum(&text, names::BLOCK_BYTES);
    }
    assert!(bytes_on_nodes >= 2.0 * payload.len() as f64);
    assert_eq!(
        prom.values("sum(neverust_block_bytes)").await,
        vec![bytes_on_nodes]
    );

    // The drill-down's node variable lists every node.
    let values = prom
        .api("label/node/values", &[("match[]", "neverust_node_info")])
        .await;
    assert_eq!(values["data"], serde_json::json!(["0", "1", "2", "3", "4"]));

    // The market's gauges say what the nodes' APIs said: one purchase started, three slots
    // proven, and every other state present at zero.
    let state = |metric: &str, state: &str| format!("sum({metric}{{state=\"{state}\"}})");
    assert_eq!(
        prom.values(&state(names::MARKET_PURCHASES, "started"))
            .await,
        vec![1.0]
    );
    assert_eq!(
        prom.values(&state(names::MARKET_SALES, "SaleProving"))
            .await,
        vec![3.0]
    );
    assert_eq!(
        prom.values(&state(names::MARKET_PURCHASES, "failed")).await,
        vec![0.0]
    );
    // Every market series is on the overview.
    let overview = std::fs::read_to_string(dashboards_dir().join("cluster-overview.json")).unwrap();
    for name in [
        names::MARKET_PURCHASES,
        names::MARKET_SALES,
        names::MARKET_PROOFS_TOTAL,
        names::MARKET_SLOTS_FILLED_TOTAL,
        names::MARKET_SLOTS_REPAIRED_TOTAL,
        names::MARKET_SLOTS_REBUILT_TOTAL,
    ] {
        assert!(
            overview.contains(name),
            "the overview has no panel of {name}"
        );
    }

    let mut failures = Vec::new();
    let mut checked = 0;
    for name in ["cluster-overview.json", "node-detail.json"] {
        let text = std::fs::read_to_string(dashboards_dir().join(name)).unwrap();
        let dashboard: Value = serde_json::from_str(&text).unwrap();
        let exprs = expressions(&dashboard);
        assert!(exprs.len() >= 20, "{name} has only {} queries", exprs.len());
        for (title, expr) in exprs {
            checked += 1;
            let expr = substitute(&expr);
            let r = prom.query(&expr).await;
            if r["status"] != "success" {
                failures.push(format!("{name} / {title}: {expr}: {}", r["error"]));
                continue;
            }
            let values = series_values(&r);
            if values.is_empty() {
                failures.push(format!("{name} / {title}: {expr}: no series"));
            } else if values.iter().all(|v| v.is_nan()) {
                failures.push(format!("{name} / {title}: {expr}: only NaN"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} dashboard queries failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Stopping the cluster stops its Prometheus.
    drop(launcher);
    let down = reqwest::Client::new()
        .get(format!("{}/-/ready", prom.url))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(
        down.is_err(),
        "Prometheus still answers after the cluster stopped"
    );
    assert!(!dir.join("prometheus/data").exists());
}

#[test]
fn without_the_prometheus_binary_the_flag_says_how_to_install_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let out = Command::new(common::binary())
        .args(["cluster", "--nodes", "2", "--no-viz", "--prometheus"])
        .args([
            "--base-port",
            BASE_PORT,
            "--bootstrap-api-port",
            BOOTSTRAP_API_PORT,
        ])
        .arg("--dir")
        .arg(&dir)
        .env("PATH", tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--prometheus") && err.contains("apt-get install prometheus"),
        "{err}"
    );
    assert!(
        !dir.join("cluster.json").exists(),
        "nodes started before the refusal"
    );
}
