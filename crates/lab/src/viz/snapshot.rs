//! One frame of the visualizer: the cluster as its nodes describe themselves in one poll.
//!
//! Everything here comes from what nodes report (`/debug/info`, `/metrics`); nothing is
//! inferred. An edge is a live libp2p connection that one of its two ends lists as `seen`;
//! a rate is the difference between two readings of a node's own counter. Where a figure
//! needs two readings and there is only one yet, it is absent, not zero.
//!
//! The builder is plain state fed reports and a clock, without I/O, so the rules (edges,
//! rates, counter resets, how long a dead node stays grey) are tested without sockets.

use std::collections::{BTreeSet, HashMap};

use neverust_node::api::answers;
use neverust_node::metrics::names;
use serde::{Deserialize, Serialize};

use super::market::{self, NodeMarket, VizRequest};
use crate::client::HeldSlot;
use crate::metrics::{self, Sample};
use crate::topology::cluster_file::Implementation;

/// How long a node that stopped answering stays on the page (grey) before it is removed.
pub const GONE_AFTER_SECONDS: f64 = 6.0;

/// A node to poll, as the source (cluster.json, Prometheus) names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Stable across restarts: the node's API address.
    pub key: String,
    /// `http://HOST:PORT`
    pub api_url: String,
    pub index: Option<usize>,
    /// bootstrap, altruistic or marketplace, when the source says.
    pub role: Option<String>,
    pub mode: Option<String>,
    /// Where its metrics are, when not beside its API (an Archivist node's metrics server).
    pub metrics_url: Option<String>,
    pub implementation: Implementation,
}

/// What one node said in one poll; `info` and `metrics` are None when it did not answer.
#[derive(Debug, Clone)]
pub struct NodeReport {
    pub target: Target,
    pub info: Option<DebugInfo>,
    pub metrics: Option<NodeMetrics>,
    /// Only from a marketplace node that answered its market routes.
    pub market: Option<NodeMarket>,
    pub error: Option<String>,
}

/// The parts of `/debug/info` the page draws.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DebugInfo {
    pub peer_id: String,
    pub mode: Option<String>,
    /// Peers with a live connection right now (`table.nodes[].seen`).
    pub connected: Vec<String>,
    pub ledgers: Vec<Ledger>,
    /// The node's tiers, fastest first (`tiers`), when it runs on a tiered store.
    pub tiers: Vec<VizTier>,
}

/// One tier of a node as its `/debug/info` reports it; `hit_ratio` is its own counters'
/// (reads since the node started), absent while nothing has looked in the tier.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct VizTier {
    /// Kind and position, as the tier's metrics label it (`memory0`, `ssd1`).
    pub tier: String,
    /// memory, nvme, ssd or hdd.
    pub kind: String,
    /// Its reads are slowed down to a device's speed (`--tier ...:latency=...`).
    pub emulated: bool,
    pub blocks: u64,
    pub bytes: u64,
    pub capacity_bytes: u64,
    pub hits: u64,
    pub misses: u64,
    pub hit_ratio: Option<f64>,
}

impl VizTier {
    fn from_answer(position: usize, t: &answers::Tier) -> VizTier {
        let (hits, misses) = (t.hits, t.misses);
        VizTier {
            tier: format!("{}{position}", t.tier),
            kind: t.tier.clone(),
            emulated: t.emulated,
            blocks: t.blocks,
            bytes: t.bytes,
            capacity_bytes: t.capacity_bytes,
            hits,
            misses,
            hit_ratio: (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64),
        }
    }
}

/// Cumulative bytes exchanged with one peer, as this node counts them.
#[derive(Debug, Clone, PartialEq)]
pub struct Ledger {
    pub peer: String,
    pub bytes: u64,
}

impl DebugInfo {
    /// What the page draws of a node's answer; an Archivist node has no ledgers, mode or
    /// tiers to show.
    pub fn from_answer(info: &answers::DebugInfo) -> DebugInfo {
        let connected = info
            .table
            .nodes
            .iter()
            .filter(|n| n.seen)
            .map(|n| n.peer_id.clone())
            .collect();
        let ledgers = info
            .marketplace
            .iter()
            .flat_map(|m| &m.ledgers)
            .map(|l| Ledger {
                peer: l.peer_id.clone(),
                bytes: l.bytes_sent + l.bytes_received,
            })
            .collect();
        // Positions count every entry, as the node numbers its tiers' metric labels.
        let tiers = info
            .tiers
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, t)| VizTier::from_answer(i, t))
            .collect();
        DebugInfo {
            peer_id: info.id.clone(),
            mode: info.mode.clone(),
            connected,
            ledgers,
            tiers,
        }
    }
}

/// The node's own figures from `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeMetrics {
    pub blocks: f64,
    pub bytes: f64,
    pub peers: f64,
    pub sent_bytes: f64,
    pub received_bytes: f64,
    pub rss_bytes: f64,
    pub cpu_seconds: f64,
    pub mode: Option<String>,
}

impl NodeMetrics {
    /// The figures of a node's metrics page; an Archivist node names only its store's.
    pub fn from_samples(s: &[Sample], implementation: Implementation) -> NodeMetrics {
        let (blocks, bytes) = implementation.store_metrics();
        NodeMetrics {
            blocks: metrics::sum(s, blocks),
            bytes: metrics::sum(s, bytes),
            peers: metrics::sum(s, names::PEERS_CONNECTED),
            sent_bytes: metrics::sum(s, names::BYTES_SENT_TOTAL),
            received_bytes: metrics::sum(s, names::BYTES_RECEIVED_TOTAL),
            rss_bytes: metrics::sum(s, names::PROCESS_RESIDENT_MEMORY_BYTES),
            cpu_seconds: metrics::sum(s, names::PROCESS_CPU_SECONDS),
            mode: s
                .iter()
                .find(|x| x.name == names::NODE_INFO)
                .and_then(|x| x.labels.iter().find(|(k, _)| k == "mode"))
                .map(|(_, v)| v.clone()),
        }
    }
}

/// What the page receives every poll.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Snapshot {
    /// Increases by one per poll.
    pub seq: u64,
    /// Wall-clock time the poll ended, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// Where the node list comes from (a cluster.json path, a Prometheus URL).
    pub source: String,
    /// Why the node list could not be read this time (the last list is polled meanwhile).
    pub source_error: Option<String>,
    pub interval_seconds: f64,
    /// How long asking every node took this time.
    pub poll_seconds: f64,
    pub stats: Stats,
    pub nodes: Vec<VizNode>,
    pub edges: Vec<Edge>,
    /// Storage requests the answering nodes hold slots of, with their hosts and client.
    pub requests: Vec<VizRequest>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Stats {
    /// Nodes that answered this poll.
    pub active_nodes: usize,
    pub total_blocks: f64,
    pub total_bytes: f64,
    /// Sum over the nodes of their `bytes_sent` counter's rate: every byte moved between
    /// two nodes counted once. None until two polls have been made.
    pub transfer_bytes_per_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct VizNode {
    /// The peer id, or the API address of a node that never answered.
    pub id: String,
    pub index: Option<usize>,
    /// bootstrap, altruistic, marketplace, or unknown (a colour the page does not guess).
    pub role: String,
    pub mode: String,
    pub up: bool,
    pub api_url: String,
    pub peer_id: String,
    /// The figures of the last poll the node answered (kept while it is grey).
    pub blocks: f64,
    pub bytes: f64,
    pub peers: f64,
    pub rss_bytes: f64,
    pub cpu_percent: Option<f64>,
    pub sent_bytes_per_s: Option<f64>,
    pub received_bytes_per_s: Option<f64>,
    /// The node's tiers (empty on a single store), as of its last answer.
    pub tiers: Vec<VizTier>,
    /// Slots of storage requests this node holds (a marketplace host), and the requests it
    /// made (a client); empty while it does not answer, as nothing it holds can be seen.
    pub slots: Vec<HeldSlot>,
    pub purchases: Vec<String>,
    pub error: Option<String>,
}

/// One live connection; `source` < `target` (by id).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Edge {
    pub source: String,
    pub target: String,
    /// Bytes per second both ways over the last interval, from the ledgers of its ends.
    pub bytes_per_s: Option<f64>,
}

/// A node's counters at its last answer, to turn the next ones into rates.
#[derive(Debug, Clone)]
struct Reading {
    at: f64,
    sent: f64,
    received: f64,
    cpu: f64,
    ledgers: HashMap<String, u64>,
}

#[derive(Debug, Clone)]
struct Known {
    /// When the node last answered (or was first listed, if it never has).
    last_up: f64,
    node: VizNode,
    reading: Option<Reading>,
}

/// Turns successive polls into snapshots; remembers what rates and grey nodes need.
#[derive(Debug, Default)]
pub struct Builder {
    seq: u64,
    known: HashMap<String, Known>,
    /// Keys in the order first seen, so nodes keep their place in the list.
    order: Vec<String>,
}

impl Builder {
    pub fn new() -> Builder {
        Builder::default()
    }

    /// The snapshot of one poll. `now` is a monotonic clock in seconds; targets that were
    /// listed before and are missing now count as not answering.
    pub fn build(
        &mut self,
        reports: Vec<NodeReport>,
        now: f64,
        unix_ms: u64,
        source: &str,
        source_error: Option<String>,
        interval_seconds: f64,
    ) -> Snapshot {
        self.seq += 1;
        let mut answered: HashMap<String, (f64, HashMap<String, f64>)> = HashMap::new();
        let mut seen_now = BTreeSet::new();
        let mut connections: Vec<(String, String)> = Vec::new();
        for r in reports {
            let key = r.target.key.clone();
            seen_now.insert(key.clone());
            if !self.known.contains_key(&key) {
                self.order.push(key.clone());
            }
            let known = self.known.entry(key.clone()).or_insert_with(|| Known {
                last_up: now,
                node: VizNode {
                    id: key.clone(),
                    ..VizNode::default()
                },
                reading: None,
            });
            let node = &mut known.node;
            node.index = r.target.index.or(node.index);
            node.api_url = r.target.api_url.clone();
            node.error = r.error.clone();
            let (Some(info), Some(m)) = (r.info, r.metrics) else {
                node.up = false;
                node.sent_bytes_per_s = None;
                node.received_bytes_per_s = None;
                node.cpu_percent = None;
                node.slots.clear();
                node.purchases.clear();
                // A restarted node's counters start again: no rate across the gap.
                known.reading = None;
                fill_role(node, &r.target, None, None);
                continue;
            };
            known.last_up = now;
            node.up = true;
            if !info.peer_id.is_empty() {
                node.peer_id = info.peer_id.clone();
                node.id = info.peer_id.clone();
            }
            fill_role(node, &r.target, info.mode.as_deref(), m.mode.as_deref());
            node.blocks = m.blocks;
            node.bytes = m.bytes;
            node.peers = m.peers;
            node.rss_bytes = m.rss_bytes;
            node.tiers = info.tiers.clone();
            let NodeMarket { slots, purchases } = r.market.unwrap_or_default();
            (node.slots, node.purchases) = (slots, purchases);
            let ledgers: HashMap<String, u64> = info
                .ledgers
                .iter()
                .map(|l| (l.peer.clone(), l.bytes))
                .collect();
            let prev = known.reading.take();
            let dt = prev.as_ref().map(|p| now - p.at).filter(|dt| *dt > 0.0);
            let rate = |cur: f64, old: Option<f64>| match (old, dt) {
                (Some(old), Some(dt)) if cur >= old => Some((cur - old) / dt),
                // Lower than before: the node restarted between two polls, and only one
                // reading of the new counter exists: no rate yet, rather than a made-up 0.
                _ => None,
            };
            node.sent_bytes_per_s = rate(m.sent_bytes, prev.as_ref().map(|p| p.sent));
            node.received_bytes_per_s = rate(m.received_bytes, prev.as_ref().map(|p| p.received));
            node.cpu_percent = rate(m.cpu_seconds, prev.as_ref().map(|p| p.cpu)).map(|r| r * 100.0);
            if let (Some(prev), Some(dt)) = (&prev, dt) {
                let rates = ledgers
                    .iter()
                    .filter_map(|(peer, &bytes)| {
                        let old = prev.ledgers.get(peer).copied().unwrap_or(0);
                        // A ledger that went down was reset (a restart): no rate yet.
                        (bytes >= old).then(|| (peer.clone(), (bytes - old) as f64 / dt))
                    })
                    .collect();
                answered.insert(node.id.clone(), (dt, rates));
            } else {
                answered.insert(node.id.clone(), (0.0, HashMap::new()));
            }
            for peer in &info.connected {
                connections.push((node.id.clone(), peer.clone()));
            }
            known.reading = Some(Reading {
                at: now,
                sent: m.sent_bytes,
                received: m.received_bytes,
                cpu: m.cpu_seconds,
                ledgers,
            });
        }
        for (key, known) in &mut self.known {
            if !seen_now.contains(key) {
                known.node.up = false;
                known.node.slots.clear();
                known.node.purchases.clear();
                known.reading = None;
            }
        }
        // Gone for good: removed from the page (and forgotten, so a node that comes back
        // later starts afresh).
        self.known
            .retain(|_, k| k.node.up || now - k.last_up <= GONE_AFTER_SECONDS);
        self.order.retain(|k| self.known.contains_key(k));

        let nodes: Vec<VizNode> = self
            .order
            .iter()
            .map(|k| self.known[k].node.clone())
            .collect();
        let ids: BTreeSet<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
        let mut pairs: BTreeSet<(String, String)> = BTreeSet::new();
        for (a, b) in connections {
            // A peer that is not a node of this cluster (a client, a node of another
            // cluster) has no circle to join.
            if a != b && ids.contains(b.as_str()) {
                pairs.insert(if a < b { (a, b) } else { (b, a) });
            }
        }
        let edge_rate = |from: &str, to: &str| -> Option<f64> {
            let (dt, rates) = answered.get(from)?;
            (*dt > 0.0).then(|| rates.get(to).copied().unwrap_or(0.0))
        };
        let edges = pairs
            .into_iter()
            .map(|(a, b)| {
                // Both ends count the same bytes (one's sent is the other's received):
                // the larger reading, not the sum, so nothing is counted twice.
                let rate = match (edge_rate(&a, &b), edge_rate(&b, &a)) {
                    (Some(x), Some(y)) => Some(x.max(y)),
                    (x, y) => x.or(y),
                };
                Edge {
                    source: a,
                    target: b,
                    bytes_per_s: rate,
                }
            })
            .collect();
        let up: Vec<&VizNode> = nodes.iter().filter(|n| n.up).collect();
        let rates: Vec<f64> = up.iter().filter_map(|n| n.sent_bytes_per_s).collect();
        let stats = Stats {
            active_nodes: up.len(),
            // Folded from +0.0: an empty f64 sum is -0.0, which a page would print as "-0".
            total_blocks: up.iter().fold(0.0, |t, n| t + n.blocks),
            total_bytes: up.iter().fold(0.0, |t, n| t + n.bytes),
            transfer_bytes_per_s: (!rates.is_empty()).then(|| rates.iter().fold(0.0, |t, r| t + r)),
        };
        Snapshot {
            seq: self.seq,
            unix_ms,
            source: source.to_string(),
            source_error,
            interval_seconds,
            poll_seconds: 0.0,
            stats,
            requests: market::requests(&nodes),
            nodes,
            edges,
        }
    }
}

/// The bootstrap is marked by the source (cluster.json's role, a Prometheus target label);
/// a node's mode is what it says itself, else what the source says.
fn fill_role(
    node: &mut VizNode,
    target: &Target,
    info_mode: Option<&str>,
    metric_mode: Option<&str>,
) {
    let mode = info_mode
        .or(metric_mode)
        .map(str::to_string)
        .or_else(|| target.mode.clone())
        .or_else(|| (!node.mode.is_empty()).then(|| node.mode.clone()))
        .unwrap_or_else(|| "unknown".into());
    node.role = match target.role.as_deref() {
        Some("bootstrap") => "bootstrap".into(),
        _ if mode == "altruistic" || mode == "marketplace" => mode.clone(),
        _ => "unknown".into(),
    };
    node.mode = mode;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(i: usize) -> Target {
        Target {
            key: format!("127.0.0.1:{}", 9000 + i),
            api_url: format!("http://127.0.0.1:{}", 9000 + i),
            index: Some(i),
            role: Some(if i == 0 { "bootstrap" } else { "node" }.into()),
            mode: None,
            metrics_url: None,
            implementation: Implementation::Neverust,
        }
    }

    fn up(i: usize, connected: &[usize], ledger: &[(usize, u64)], sent: f64) -> NodeReport {
        NodeReport {
            target: target(i),
            info: Some(DebugInfo {
                peer_id: format!("peer{i}"),
                mode: Some(if i == 3 { "marketplace" } else { "altruistic" }.into()),
                connected: connected.iter().map(|p| format!("peer{p}")).collect(),
                ledgers: ledger
                    .iter()
                    .map(|(p, b)| Ledger {
                        peer: format!("peer{p}"),
                        bytes: *b,
                    })
                    .collect(),
                tiers: Vec::new(),
            }),
            metrics: Some(NodeMetrics {
                blocks: 10.0 * i as f64,
                bytes: 1000.0 * i as f64,
                sent_bytes: sent,
                ..Default::default()
            }),
            market: None,
            error: None,
        }
    }

    fn down(i: usize) -> NodeReport {
        NodeReport {
            target: target(i),
            info: None,
            metrics: None,
            market: None,
            error: Some("connection refused".into()),
        }
    }

    fn build(b: &mut Builder, reports: Vec<NodeReport>, now: f64) -> Snapshot {
        b.build(reports, now, 0, "test", None, 2.0)
    }

    #[test]
    fn edges_are_the_connections_nodes_report() {
        let mut b = Builder::new();
        // 0-1 reported by both ends, 0-2 by one end only, 1-7 names a peer that is no node
        // here, and a connection to itself is nonsense.
        let s = build(
            &mut b,
            vec![
                up(0, &[1, 2], &[], 0.0),
                up(1, &[0, 7, 1], &[], 0.0),
                up(2, &[], &[], 0.0),
            ],
            0.0,
        );
        let pairs: Vec<(&str, &str)> = s
            .edges
            .iter()
            .map(|e| (e.source.as_str(), e.target.as_str()))
            .collect();
        assert_eq!(pairs, vec![("peer0", "peer1"), ("peer0", "peer2")]);
        assert!(
            s.edges.iter().all(|e| e.bytes_per_s.is_none()),
            "one poll: no rate yet"
        );
        assert_eq!(s.nodes[0].role, "bootstrap");
        assert_eq!(s.nodes[1].role, "altruistic");
        assert_eq!(s.stats.active_nodes, 3);
        assert_eq!(s.stats.total_blocks, 30.0);
        assert_eq!(s.stats.total_bytes, 3000.0);
        assert_eq!(s.stats.transfer_bytes_per_s, None);
    }

    #[test]
    fn rates_come_from_counter_differences() {
        let mut b = Builder::new();
        build(
            &mut b,
            vec![up(0, &[3], &[(3, 100)], 50.0), up(3, &[0], &[(3, 0)], 0.0)],
            10.0,
        );
        let s = build(
            &mut b,
            vec![up(0, &[3], &[(3, 4100)], 2050.0), up(3, &[0], &[], 1000.0)],
            12.0,
        );
        assert_eq!(s.nodes[0].sent_bytes_per_s, Some(1000.0));
        assert_eq!(s.nodes[1].sent_bytes_per_s, Some(500.0));
        assert_eq!(s.nodes[1].role, "marketplace");
        assert_eq!(s.stats.transfer_bytes_per_s, Some(1500.0));
        // Node 0 counted 4000 bytes with node 3 in 2 s; node 3 reports no ledger.
        assert_eq!(s.edges[0].bytes_per_s, Some(2000.0));
        // A counter lower than before (a restart) gives no rate, neither negative nor 0.
        let s = build(
            &mut b,
            vec![up(0, &[], &[], 10.0), up(3, &[], &[], 0.0)],
            14.0,
        );
        assert_eq!(s.nodes[0].sent_bytes_per_s, None);
        assert!(s.edges.is_empty());
    }

    #[test]
    fn a_dead_node_turns_grey_then_disappears() {
        let mut b = Builder::new();
        build(
            &mut b,
            vec![up(0, &[1], &[], 0.0), up(1, &[0], &[], 0.0)],
            0.0,
        );
        let s = build(&mut b, vec![up(0, &[1], &[], 0.0), down(1)], 2.0);
        let grey = &s.nodes[1];
        assert!(!grey.up);
        assert_eq!(grey.id, "peer1", "keeps its place and identity");
        assert_eq!(grey.blocks, 10.0, "keeps its last figures");
        assert_eq!(grey.error.as_deref(), Some("connection refused"));
        assert_eq!(s.edges.len(), 1, "node 0 still reports the connection");
        assert_eq!(s.stats.active_nodes, 1);
        assert_eq!(s.stats.total_blocks, 0.0, "totals count the live nodes");
        let s = build(&mut b, vec![up(0, &[], &[], 0.0), down(1)], 6.0);
        assert_eq!(s.nodes.len(), 2);
        let s = build(&mut b, vec![up(0, &[], &[], 0.0), down(1)], 8.5);
        assert_eq!(s.nodes.len(), 1);
        // Back again (restarted): it appears, with no rate across its absence.
        let s = build(
            &mut b,
            vec![up(0, &[], &[], 0.0), up(1, &[], &[], 5.0)],
            10.0,
        );
        assert_eq!(s.nodes.len(), 2);
        assert!(s.nodes[1].up);
        assert_eq!(s.nodes[1].sent_bytes_per_s, None);
        // A target no longer listed counts as not answering.
        let s = build(&mut b, vec![up(0, &[], &[], 0.0)], 12.0);
        assert!(!s.nodes[1].up);
        assert_eq!(s.seq, 6);
    }

    #[test]
    fn slots_are_what_answering_hosts_list() {
        let with_market = |mut r: NodeReport, slots: &[u64], purchases: &[&str]| {
            r.market = Some(NodeMarket {
                slots: slots
                    .iter()
                    .map(|&i| HeldSlot {
                        request: "0xa".into(),
                        slot_index: i,
                    })
                    .collect(),
                purchases: purchases.iter().map(|p| p.to_string()).collect(),
            });
            r
        };
        let mut b = Builder::new();
        let s = build(
            &mut b,
            vec![
                with_market(up(1, &[], &[], 0.0), &[], &["0xa"]),
                with_market(up(2, &[], &[], 0.0), &[0], &[]),
                with_market(up(3, &[], &[], 0.0), &[1], &[]),
            ],
            0.0,
        );
        assert_eq!(s.nodes[1].slots.len(), 1);
        assert_eq!(s.requests.len(), 1);
        assert_eq!(s.requests[0].client.as_deref(), Some("peer1"));
        assert_eq!(s.requests[0].hosts.len(), 2);
        // A host that stops answering takes its slot off the page; one that answers
        // without its market routes lists none.
        let s = build(
            &mut b,
            vec![
                with_market(up(1, &[], &[], 0.0), &[], &["0xa"]),
                down(2),
                up(3, &[], &[], 0.0),
            ],
            2.0,
        );
        assert!(s.nodes[1].slots.is_empty() && s.nodes[2].slots.is_empty());
        assert!(s.requests.is_empty());
    }

    #[test]
    fn a_node_that_never_answered_is_grey_under_its_address() {
        let mut b = Builder::new();
        let s = build(&mut b, vec![down(2)], 0.0);
        assert_eq!(s.nodes[0].id, "127.0.0.1:9002");
        assert_eq!(s.nodes[0].role, "unknown");
        assert!(!s.nodes[0].up);
        assert!(
            s.stats.total_bytes.is_sign_positive(),
            "no \"-0\" on the page"
        );
    }

    /// A `/debug/info` answer: the fields every node serves, then `extra`'s.
    fn answer(extra: serde_json::Value) -> answers::DebugInfo {
        let table_node = |peer: &str, seen: bool| {
            serde_json::json!({"nodeId": peer, "peerId": peer, "record": "",
                "address": "/ip4/127.0.0.1/tcp/8070", "seen": seen})
        };
        let mut v = serde_json::json!({
            "id": "P0", "addrs": [], "repo": "", "spr": "", "announceAddresses": [],
            "table": {"localNode": table_node("P0", false), "nodes": []}
        });
        for (k, x) in extra.as_object().unwrap() {
            if k != "seen" {
                v[k] = x.clone();
            }
        }
        if let Some(peers) = extra.get("seen") {
            v["table"]["nodes"] = peers
                .as_array()
                .unwrap()
                .iter()
                .map(|p| table_node(p[0].as_str().unwrap(), p[1].as_bool().unwrap()))
                .collect();
        }
        answers::decode(&v.to_string()).unwrap()
    }

    #[test]
    fn debug_info_json() {
        let v = answer(serde_json::json!({
            "id": "16Uiu2A", "mode": "marketplace",
            "seen": [["P1", true], ["P2", false]],
            "marketplace": {"pricePerByte": 1, "creditLimit": null, "ledgers": [
                {"peerId": "P1", "bytesSent": 5, "bytesReceived": 7, "blocksSent": 1,
                 "blocksReceived": 0, "refused": 0}
            ]}
        }));
        let info = DebugInfo::from_answer(&v);
        assert_eq!(info.peer_id, "16Uiu2A");
        assert_eq!(info.mode.as_deref(), Some("marketplace"));
        assert_eq!(info.connected, vec!["P1"]);
        assert_eq!(
            info.ledgers,
            vec![Ledger {
                peer: "P1".into(),
                bytes: 12
            }]
        );
        assert!(info.tiers.is_empty(), "a single store reports no tiers");
        // An Archivist node: no mode, ledgers or tiers.
        let info = DebugInfo::from_answer(&answer(serde_json::json!({"seen": [["P1", true]]})));
        assert_eq!(
            (info.mode, info.ledgers, info.tiers),
            (None, vec![], vec![])
        );
        assert_eq!(info.connected, vec!["P1"]);
    }

    #[test]
    fn tiers_are_shown_as_the_node_reports_them() {
        // As a tiered node's /debug/info has them.
        let v = answer(serde_json::json!({"id": "P0", "store": "tiered", "tiers": [
            {"tier": "memory", "dir": null, "emulated": false, "blocks": 4, "bytes": 262144,
             "capacityBytes": 1048576, "hits": 30, "misses": 10, "promotions": 4, "demotions": 0},
            {"tier": "ssd", "dir": "/t/ssd", "emulated": false, "blocks": 16, "bytes": 1048576,
             "capacityBytes": 1048576, "hits": 0, "misses": 0, "promotions": 0, "demotions": 2},
            {"tier": "hdd", "dir": "/t/hdd", "emulated": true, "blocks": 30, "bytes": 1966080,
             "capacityBytes": 67108864, "hits": 10, "misses": 0, "promotions": 0, "demotions": 0}
        ]}));
        let info = DebugInfo::from_answer(&v);
        let labels: Vec<(&str, bool)> = info
            .tiers
            .iter()
            .map(|t| (t.tier.as_str(), t.emulated))
            .collect();
        assert_eq!(
            labels,
            vec![("memory0", false), ("ssd1", false), ("hdd2", true)]
        );
        assert_eq!(info.tiers[0].hit_ratio, Some(0.75));
        assert_eq!(info.tiers[1].hit_ratio, None, "never read: no ratio, not 0");
        assert_eq!(info.tiers[2].hit_ratio, Some(1.0));
        assert_eq!(
            (info.tiers[2].bytes, info.tiers[2].capacity_bytes),
            (1966080, 67108864)
        );

        // Into the snapshot, and kept (with the node's other figures) while it is grey.
        let mut b = Builder::new();
        let mut report = up(1, &[], &[], 0.0);
        report.info.as_mut().unwrap().tiers = info.tiers.clone();
        let s = build(&mut b, vec![report], 0.0);
        assert_eq!(s.nodes[0].tiers, info.tiers);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["nodes"][0]["tiers"][2]["tier"], "hdd2");
        assert_eq!(json["nodes"][0]["tiers"][2]["emulated"], true);
        let s = build(&mut b, vec![down(1)], 2.0);
        assert_eq!(s.nodes[0].tiers.len(), 3);
        // A node on a single store has none.
        let s = build(&mut b, vec![up(2, &[], &[], 0.0)], 4.0);
        assert!(s.nodes[1].tiers.is_empty());
    }

    #[test]
    fn metrics_text() {
        let text = "neverust_block_count 3\nneverust_block_bytes 196608\n\
            neverust_bytes_sent_total{mode=\"altruistic\"} 10\n\
            neverust_node_info{mode=\"altruistic\",peer_id=\"X\",version=\"0.1.0\"} 1\n";
        let m = NodeMetrics::from_samples(&metrics::parse(text), Implementation::Neverust);
        assert_eq!(m.blocks, 3.0);
        assert_eq!(m.bytes, 196608.0);
        assert_eq!(m.sent_bytes, 10.0);
        assert_eq!(m.mode.as_deref(), Some("altruistic"));
    }
}
