//! Why a bench run, or one of its scenarios, stopped. Each error names the scenario, node,
//! CID or path involved; the cause, when there is one, is its source, so that the binary's
//! `{:#}` (or [`crate::error_chain`]) prints `scenario throughput: download of CID through
//! node 2: URL: ...`, each step saying what it was doing.
//!
//! A failure a scenario counts and carries on from (one upload among many) is kept as text
//! in its results, through [`super::short_error`]; the others end the scenario.

use crate::client::ClientError;
use crate::cluster::error::IoAt;
use crate::cluster::remote::RemoteError;
use crate::cluster::solo::SoloError;
use crate::cluster::ClusterError;

use super::netns::NetnsError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// Refused before anything is created or asked of the cluster.
    #[error(
        "scenario {scenario} cannot run against the deployed cluster at {url}: {why}. Run it on a cluster of this machine (--nodes N, or --cluster cluster.json); against {url}, choose among upload, exchange, throughput, interop and stress"
    )]
    NeedsLocalNodes {
        scenario: &'static str,
        url: String,
        why: &'static str,
    },
    #[error("scenario {scenario}")]
    Scenario {
        scenario: &'static str,
        #[source]
        source: Box<BenchError>,
    },
    /// The run's own cluster (started, attached to, a node killed or restarted).
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// A cluster a scenario starts beside the main one.
    #[error("starting {what}")]
    Launch {
        /// `the partition's 4 nodes`, `a cluster of 10 nodes for scale`, ...
        what: String,
        #[source]
        source: ClusterError,
    },
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Io(#[from] IoAt),
    #[error("finding this program's own path, to start nodes with")]
    OwnBinary(#[source] std::io::Error),
    /// A node a scenario starts on its own (`cache`, `reconcile`'s swarm).
    #[error("starting {node}")]
    StartNode {
        /// `the tiered node`, `node 2` (of `reconcile`'s swarm), ...
        node: String,
        #[source]
        source: SoloError,
    },
    #[error("measuring the loopback TCP baseline")]
    Loopback(#[source] std::io::Error),
    /// Work handed to another task (a payload made, a workload run) that panicked or was
    /// cancelled.
    #[error("{what}")]
    Task {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("upload to node {node}")]
    Upload {
        node: usize,
        #[source]
        source: ClientError,
    },
    #[error("download of {cid} through node {node}")]
    Download {
        node: usize,
        cid: String,
        #[source]
        source: ClientError,
    },
    #[error("node {node} fetched different bytes for {cid}")]
    Mismatch { node: usize, cid: String },
    #[error("reading the metrics of {node}")]
    Metrics {
        /// `the tiered node`, `node 2` (of `reconcile`'s swarm), ...
        node: String,
        #[source]
        source: ClientError,
    },
    #[error("asking node {node} for /debug/info")]
    DebugInfo {
        node: usize,
        #[source]
        source: ClientError,
    },
    #[error("node {node} ({base}): /debug/info lists no `addrs`")]
    NoAddrs { node: usize, base: String },
    #[error("connecting node {node} to node {peer}")]
    Connect {
        node: usize,
        peer: usize,
        #[source]
        source: ClientError,
    },
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("before the split, group B could not read group A's data: the namespaces are not one network")]
    NotOneNetwork,
    /// A reader of its own kind must not be the uploader.
    #[error("interop needs at least 2 nodes of each kind, the cluster has {neverust} Neverust and {archivist} Archivist nodes (--nodes, --archivist-every)")]
    TooFewOfAKind { neverust: usize, archivist: usize },
    /// `first` is the first upload's failure, as the scenario recorded it.
    #[error("cache: no file could be uploaded to both nodes: {first}")]
    NoCacheFiles { first: String },
}

impl BenchError {
    /// A failure of scenario `scenario`, as the run reports it.
    pub fn in_scenario(self, scenario: &'static str) -> BenchError {
        BenchError::Scenario {
            scenario,
            source: Box::new(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The user reads the chain: the scenario, what it was doing with which node and CID,
    /// then why the node refused.
    #[test]
    fn the_chain_names_scenario_node_and_cid() {
        let e = BenchError::Download {
            node: 2,
            cid: "zDvTest".into(),
            source: ClientError::Status {
                url: "http://127.0.0.1:8082/api/archivist/v1/data/zDvTest/network/stream".into(),
                status: 404,
                body: "not found".into(),
            },
        }
        .in_scenario("throughput");
        assert_eq!(
            crate::error_chain(&e),
            "scenario throughput: download of zDvTest through node 2: \
             http://127.0.0.1:8082/api/archivist/v1/data/zDvTest/network/stream: HTTP 404: not found"
        );
    }

    /// A cluster's own error reads as it always did: the variant adds no step of its own.
    #[test]
    fn cluster_errors_pass_through() {
        let e = BenchError::from(ClusterError::NoRestart { index: 3 }).in_scenario("chaos");
        assert_eq!(
            crate::error_chain(&e),
            "scenario chaos: this cluster was started without --restart: the bench cannot restart node 3"
        );
    }
}
