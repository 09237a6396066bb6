//! Where the visualizer learns which nodes exist, and one poll of all of them.
//!
//! Two sources name the nodes: a native cluster's `cluster.json` (re-read every poll, so
//! a node restarted under a new pid, or a cluster that grew, is picked up), or a
//! Prometheus server's `/api/v1/targets` (Compose, Kubernetes: the addresses it scrapes,
//! with the `role`, `mode` and `node` labels the generated configs put on each target).
//! Either way the nodes themselves are then asked for `/debug/info` and `/metrics`, and
//! marketplace nodes for the slots they hold and the requests they made: the connections
//! exist only in `/debug/info`, the slots only in the market routes, and asking the nodes
//! directly gives a fresh reading every poll rather than Prometheus's last scrape (5 s
//! apart in Compose).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;

use super::market::NodeMarket;
use super::snapshot::{Builder, DebugInfo, NodeMetrics, NodeReport, Snapshot, Target};
use crate::client::NodeClient;
use crate::topology::cluster_file::{ClusterFile, Implementation};

/// A node that has not answered within this long counts as down for this poll: the
/// page must keep its 2 s rhythm even when a node hangs.
const NODE_LIMIT: Duration = Duration::from_millis(1500);
/// Nodes asked at once: a 200-node cluster is polled in a few rounds, not 400 sockets.
const CONCURRENT_NODES: usize = 64;

#[derive(Debug, Clone)]
pub enum Source {
    ClusterFile(PathBuf),
    /// The Prometheus server's base URL, e.g. `http://prometheus:9090`.
    Prometheus(String),
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::ClusterFile(p) => p.display().to_string(),
            Source::Prometheus(url) => format!("Prometheus at {url}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{reason}")]
    ClusterFile { reason: String },
    #[error("{url}: {reason}")]
    Prometheus { url: String, reason: String },
}

/// Polls a source's nodes and turns each round into a [`Snapshot`].
pub struct Poller {
    source: Source,
    interval: Duration,
    http: reqwest::Client,
    clients: HashMap<String, NodeClient>,
    /// The last list the source gave: polled while the source cannot be read (a
    /// cluster.json being replaced, a Prometheus restarting), so its nodes turn grey
    /// only if they stop answering themselves.
    last_targets: Vec<Target>,
    builder: Builder,
    clock: Instant,
}

impl Poller {
    pub fn new(source: Source, interval: Duration) -> Poller {
        Poller {
            source,
            interval,
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(5))
                .build()
                .expect("building an HTTP client"),
            clients: HashMap::new(),
            last_targets: Vec::new(),
            builder: Builder::new(),
            clock: Instant::now(),
        }
    }

    pub async fn targets(&self) -> Result<Vec<Target>, SourceError> {
        match &self.source {
            Source::ClusterFile(path) => {
                let file = ClusterFile::read(path).map_err(|e| SourceError::ClusterFile {
                    reason: crate::error_chain(&e),
                })?;
                Ok(targets_from_cluster_file(&file))
            }
            Source::Prometheus(url) => {
                let fail = |reason: String| SourceError::Prometheus {
                    url: url.clone(),
                    reason,
                };
                let endpoint = format!("{}/api/v1/targets?state=active", url.trim_end_matches('/'));
                let r = self
                    .http
                    .get(&endpoint)
                    .send()
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                if !r.status().is_success() {
                    return Err(fail(format!("/api/v1/targets answered {}", r.status())));
                }
                let v: serde_json::Value = r.json().await.map_err(|e| fail(e.to_string()))?;
                targets_from_prometheus(&v).map_err(fail)
            }
        }
    }

    /// Asks every node once and returns the resulting snapshot.
    pub async fn poll(&mut self) -> Snapshot {
        let started = Instant::now();
        let (targets, source_error) = match self.targets().await {
            Ok(t) => (t, None),
            Err(e) => (self.last_targets.clone(), Some(e.to_string())),
        };
        self.last_targets = targets.clone();
        for t in &targets {
            self.clients
                .entry(t.api_url.clone())
                .or_insert_with(|| match &t.metrics_url {
                    Some(m) => NodeClient::new(t.api_url.clone()).metrics_at(m.clone()),
                    None => NodeClient::new(t.api_url.clone()),
                });
        }
        self.clients
            .retain(|url, _| targets.iter().any(|t| &t.api_url == url));
        let clients = &self.clients;
        let reports: Vec<NodeReport> = futures::stream::iter(targets)
            .map(|t| {
                let client = clients[&t.api_url].clone();
                async move { poll_node(&client, t).await }
            })
            .buffered(CONCURRENT_NODES)
            .collect()
            .await;
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut snapshot = self.builder.build(
            reports,
            self.clock.elapsed().as_secs_f64(),
            unix_ms,
            &self.source.describe(),
            source_error,
            self.interval.as_secs_f64(),
        );
        snapshot.poll_seconds = started.elapsed().as_secs_f64();
        snapshot
    }
}

async fn poll_node(client: &NodeClient, target: Target) -> NodeReport {
    let ask = async {
        tokio::join!(
            client.debug_info(),
            client.metrics(),
            market(client, &target)
        )
    };
    let (info, metrics, market, error) = match tokio::time::timeout(NODE_LIMIT, ask).await {
        Ok((Ok(info), Ok(text), market)) => (
            Some(DebugInfo::from_answer(&info)),
            Some(NodeMetrics::from_samples(
                &crate::metrics::parse(&text),
                target.implementation,
            )),
            market,
            None,
        ),
        Ok((Err(e), _, _)) | Ok((_, Err(e), _)) => (None, None, None, Some(e.to_string())),
        Err(_) => (
            None,
            None,
            None,
            Some(format!("no answer within {NODE_LIMIT:?}")),
        ),
    };
    NodeReport {
        target,
        info,
        metrics,
        market,
        error,
    }
}

/// The slots a marketplace node holds and the requests it made; None from a node that is
/// not one (by the source's word: a node of unknown mode is asked) or did not answer them.
/// Archivist nodes keep theirs on a chain and are not asked.
async fn market(client: &NodeClient, target: &Target) -> Option<NodeMarket> {
    let trades = target.implementation == Implementation::Neverust
        && target.mode.as_deref().is_none_or(|m| m == "marketplace");
    if !trades {
        return None;
    }
    let (slots, purchases) = tokio::join!(client.held_slots(), client.purchase_ids());
    Some(NodeMarket {
        slots: slots.ok()?,
        purchases: purchases.ok()?,
    })
}

pub fn targets_from_cluster_file(file: &ClusterFile) -> Vec<Target> {
    file.nodes
        .iter()
        .map(|n| Target {
            key: format!("{}:{}", n.host, n.api_port),
            api_url: n.api_url.clone(),
            index: Some(n.index),
            role: Some(n.role.clone()),
            mode: Some(n.mode.clone()),
            metrics_url: Some(n.metrics_url()),
            implementation: n.implementation,
        })
        .collect()
}

/// The scraped nodes among Prometheus's active targets. When some targets carry a `role`
/// label (as the generated Compose and Kubernetes configs put on every node), only those
/// are nodes; otherwise every target but Prometheus's own is taken for one.
pub fn targets_from_prometheus(v: &serde_json::Value) -> Result<Vec<Target>, String> {
    let active = v["data"]["activeTargets"]
        .as_array()
        .ok_or("no data.activeTargets in /api/v1/targets")?;
    let label = |t: &serde_json::Value, name: &str| t["labels"][name].as_str().map(str::to_string);
    let labelled = active.iter().any(|t| label(t, "role").is_some());
    let mut out: Vec<Target> = active
        .iter()
        .filter(|t| {
            if labelled {
                label(t, "role").is_some()
            } else {
                label(t, "job").as_deref() != Some("prometheus")
            }
        })
        .filter_map(|t| {
            // The node serves /metrics beside its API: the scrape URL's origin is the API.
            let scrape = t["scrapeUrl"].as_str()?;
            let rest = scrape.split_once("://").map_or(scrape, |(_, r)| r);
            let authority = rest.split('/').next()?;
            let scheme = scrape.split_once("://").map_or("http", |(s, _)| s);
            Some(Target {
                key: authority.to_string(),
                api_url: format!("{scheme}://{authority}"),
                index: label(t, "node").and_then(|n| n.parse().ok()),
                role: label(t, "role"),
                mode: label(t, "mode"),
                metrics_url: None,
                implementation: Default::default(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.index.cmp(&b.index).then_with(|| a.key.cmp(&b.key)));
    out.dedup_by(|a, b| a.key == b.key);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_targets_with_role_labels() {
        let v = serde_json::json!({"status": "success", "data": {"activeTargets": [
            {"labels": {"job": "prometheus", "instance": "localhost:9090"},
             "scrapeUrl": "http://localhost:9090/metrics", "health": "up"},
            {"labels": {"job": "neverust", "role": "node", "mode": "marketplace", "node": "3"},
             "scrapeUrl": "http://172.25.1.3:8080/metrics", "health": "down"},
            {"labels": {"job": "neverust", "role": "bootstrap", "mode": "altruistic", "node": "0"},
             "scrapeUrl": "http://bootstrap:8080/metrics", "health": "up"}
        ]}});
        let t = targets_from_prometheus(&v).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].api_url, "http://bootstrap:8080");
        assert_eq!(t[0].role.as_deref(), Some("bootstrap"));
        assert_eq!(t[0].index, Some(0));
        assert_eq!(t[1].key, "172.25.1.3:8080");
        assert_eq!(t[1].mode.as_deref(), Some("marketplace"));
    }

    #[test]
    fn prometheus_targets_without_labels_skip_prometheus_itself() {
        let v = serde_json::json!({"data": {"activeTargets": [
            {"labels": {"job": "prometheus"}, "scrapeUrl": "http://localhost:9090/metrics"},
            {"labels": {"job": "nodes"}, "scrapeUrl": "http://10.0.0.2:8080/metrics"}
        ]}});
        let t = targets_from_prometheus(&v).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].role, None);
        assert!(targets_from_prometheus(&serde_json::json!({"status": "error"})).is_err());
    }
}
