//! What a native cluster is to be: how many nodes, where each runs, which binary and
//! flags, which nodes run Archivist or marketplace mode. Plain data and rules, no
//! processes: `Cluster::launch` reads it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::archivist::ArchivistNodes;
use super::ports;
use crate::topology::cluster_file::Implementation;
use crate::topology::mode_of;

/// Where a node runs and how it is reached.
#[derive(Debug, Clone)]
pub struct Placement {
    /// Network namespace to run in (`ip netns exec`), None for the launcher's own.
    pub netns: Option<String>,
    /// Address the node binds its listeners to.
    pub bind: IpAddr,
    /// Address the launcher reaches the node's API at.
    pub host: String,
    /// Address this node reaches the bootstrap's API at (None: the bootstrap's `host`).
    pub bootstrap_host: Option<String>,
}

impl Placement {
    pub fn loopback() -> Placement {
        Placement {
            netns: None,
            bind: IpAddr::from([127, 0, 0, 1]),
            host: "127.0.0.1".into(),
            bootstrap_host: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub nodes: usize,
    /// Holds `node-<i>/{data,node.log}` and `cluster.json`.
    pub dir: PathBuf,
    pub base_port: u16,
    /// Node 0's API port (the seed's 9080); None puts it in the port scheme.
    pub bootstrap_api_port: Option<u16>,
    /// Node i (i ≥ 1) is a marketplace node when `i % marketplace_every == 0`; 0: none.
    pub marketplace_every: usize,
    /// The `neverust` binary the nodes run.
    pub binary: PathBuf,
    pub log_level: String,
    /// More flags for every node's `start`.
    pub extra_args: Vec<String>,
    /// `--tier` specs for every Neverust node; a persistent tier's directory gets the
    /// node's own subdirectory (see [`node_tier`]).
    pub node_tiers: Vec<String>,
    /// Per node placement; missing entries are loopback.
    pub placements: Vec<Placement>,
    /// Restart nodes that die on their own (recorded in `cluster.json` for attached benches).
    pub restart: bool,
    /// Give up waiting for the cluster to be ready after this long.
    pub ready_timeout: Duration,
    /// Nodes that run Archivist instead of Neverust (a mixed cluster).
    pub archivist: Option<ArchivistNodes>,
    /// Every Neverust node's `--proof-period` and `--proof-timeout`. The node's defaults
    /// (a minute each) would leave a dead host unnoticed for minutes; the lab's are short,
    /// so `bench marketplace` sees a lost slot repaired within seconds. A machine that cannot
    /// prove within the timeout (debug builds, many nodes per core) needs a longer one.
    pub proof_period: Duration,
    pub proof_timeout: Duration,
}

/// The lab's proof period and timeout (see [`ClusterSpec::proof_period`]).
pub const PROOF_PERIOD: Duration = Duration::from_secs(2);
pub const PROOF_TIMEOUT: Duration = Duration::from_secs(4);

impl ClusterSpec {
    pub fn new(nodes: usize, dir: PathBuf) -> ClusterSpec {
        ClusterSpec {
            nodes,
            dir,
            base_port: ports::DEFAULT_BASE_PORT,
            bootstrap_api_port: Some(ports::BOOTSTRAP_API_PORT),
            marketplace_every: 3,
            binary: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("neverust")),
            log_level: "info".into(),
            extra_args: Vec::new(),
            node_tiers: Vec::new(),
            placements: Vec::new(),
            restart: false,
            ready_timeout: Duration::from_secs(120),
            archivist: None,
            proof_period: PROOF_PERIOD,
            proof_timeout: PROOF_TIMEOUT,
        }
    }

    pub fn role(&self, index: usize) -> &'static str {
        if index == 0 {
            "bootstrap"
        } else {
            self.mode(index)
        }
    }

    /// An Archivist node serves as an altruistic one: its marketplace needs a chain.
    pub fn mode(&self, index: usize) -> &'static str {
        match self.implementation(index) {
            Implementation::Archivist => "altruistic",
            Implementation::Neverust => mode_of(index, self.marketplace_every),
        }
    }

    pub fn implementation(&self, index: usize) -> Implementation {
        match &self.archivist {
            Some(a) if a.runs(index) => Implementation::Archivist,
            _ => Implementation::Neverust,
        }
    }

    pub(super) fn placement(&self, index: usize) -> Placement {
        self.placements
            .get(index)
            .cloned()
            .unwrap_or_else(Placement::loopback)
    }
}

/// Node `index`'s own `--tier` from a cluster-wide spec: `{node}` in it becomes the index;
/// a persistent tier's directory without it gets `/node-<index>` appended, so no two nodes
/// share a tier directory.
pub fn node_tier(spec: &str, index: usize) -> String {
    if spec.contains("{node}") {
        return spec.replace("{node}", &index.to_string());
    }
    let mut parts: Vec<String> = spec.split(':').map(String::from).collect();
    if parts.len() >= 3 && parts[0] != "memory" {
        parts[1] = format!("{}/node-{index}", parts[1].trim_end_matches('/'));
    }
    parts.join(":")
}

/// Tokio worker threads for each of `nodes` nodes sharing this machine: its cores divided
/// among them, at least one. Fifty nodes with a thread per core each spend their CPU waking
/// one another's idle threads (about a tenth of it in the 50-node exchange).
pub fn worker_threads(nodes: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / nodes.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::worker_threads;

    #[test]
    fn each_node_gets_its_own_tier_directory() {
        use super::node_tier;
        assert_eq!(node_tier("memory:64MiB", 3), "memory:64MiB");
        assert_eq!(
            node_tier("ssd:/mnt/ssd:1GiB", 3),
            "ssd:/mnt/ssd/node-3:1GiB"
        );
        assert_eq!(
            node_tier("hdd:/mnt/hdd/:1GiB:latency=8ms,bw=150MB/s", 12),
            "hdd:/mnt/hdd/node-12:1GiB:latency=8ms,bw=150MB/s"
        );
        assert_eq!(node_tier("nvme:/n/{node}/x:1GiB", 7), "nvme:/n/7/x:1GiB");
    }

    #[test]
    fn nodes_share_the_cores_and_each_gets_at_least_one_thread() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(worker_threads(1), cores);
        assert_eq!(worker_threads(cores * 50), 1);
        assert_eq!(worker_threads(0), cores);
    }
}
