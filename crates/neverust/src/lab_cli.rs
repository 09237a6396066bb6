//! Flags of the lab's subcommands: `cluster` (and `cluster status|stop`) and `bench`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use neverust_lab::bench::{Profile, Scenario};
use neverust_lab::cluster::archivist::ArchivistNodes;
use neverust_lab::cluster::{ports, ClusterSpec};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub action: Option<ClusterAction>,
    #[command(flatten)]
    pub launch: LaunchArgs,
    /// Keep the nodes' data directories when the cluster stops (a later launch on the same
    /// --dir reuses them).
    #[arg(long)]
    pub keep_data: bool,
    /// Restart nodes that die (they keep their ports, data and peer id).
    #[arg(long)]
    pub restart: bool,
    /// Also run a Prometheus (Debian's `prometheus`) that scrapes every node every 5 s,
    /// finding them through file-based discovery from cluster.json.
    #[arg(long)]
    pub prometheus: bool,
    /// Port of that Prometheus's web UI and API (on 127.0.0.1).
    #[arg(long, default_value_t = neverust_lab::cluster::prometheus::DEFAULT_PORT, requires = "prometheus")]
    pub prometheus_port: u16,
    /// Do not serve the live visualizer.
    #[arg(long)]
    pub no_viz: bool,
    /// Port of the live visualizer (on 127.0.0.1).
    #[arg(long, default_value_t = neverust_lab::topology::ports::VIZ_PORT, conflicts_with = "no_viz")]
    pub viz_port: u16,
}

impl ClusterArgs {
    /// Where the visualizer serves, unless --no-viz.
    pub fn viz_addr(&self) -> Option<std::net::SocketAddr> {
        (!self.no_viz).then(|| std::net::SocketAddr::from(([127, 0, 0, 1], self.viz_port)))
    }
}

#[derive(Subcommand, Debug)]
pub enum ClusterAction {
    /// Health, peers, blocks and bytes of each node of a running cluster.
    Status {
        /// The cluster's directory (holding cluster.json).
        #[arg(long, default_value = "neverust-cluster")]
        dir: PathBuf,
    },
    /// Stop a cluster running from another terminal, or the nodes a crashed launcher left.
    Stop {
        #[arg(long, default_value = "neverust-cluster")]
        dir: PathBuf,
    },
}

/// How a native cluster is laid out (shared by `cluster` and `bench --nodes`).
#[derive(Args, Debug, Clone)]
pub struct LaunchArgs {
    /// Number of nodes, the bootstrap included (at least 2).
    #[arg(long, default_value_t = 50, value_parser = parse_nodes)]
    pub nodes: usize,
    /// Directory for cluster.json and each node's data dir and log.
    #[arg(long, default_value = "neverust-cluster")]
    pub dir: PathBuf,
    /// Node i (i ≥ 1) runs in marketplace mode when i % N == 0 (0: no marketplace nodes).
    #[arg(long, default_value_t = 3)]
    pub marketplace_every: usize,
    /// First port of the scheme: node i uses base+3i (p2p), +1 (discovery), +2 (API).
    #[arg(long, default_value_t = ports::DEFAULT_BASE_PORT)]
    pub base_port: u16,
    /// API port of the bootstrap node.
    #[arg(long, default_value_t = ports::BOOTSTRAP_API_PORT)]
    pub bootstrap_api_port: u16,
    /// Log level of the nodes.
    #[arg(long, default_value = "info")]
    pub node_log_level: String,
    /// Where nodes keep blocks: disk (default) or memory.
    #[arg(long, default_value = "disk", value_parser = ["disk", "memory"])]
    pub node_store: String,
    /// A storage tier for every node (repeatable, fastest first), as `neverust start
    /// --tier`; each node keeps a persistent tier under DIR/node-<i> (or where `{node}` in
    /// DIR puts it). E.g. --node-tier memory:64MiB --node-tier ssd:/mnt/ssd:1GiB.
    #[arg(long = "node-tier", value_name = "SPEC")]
    pub node_tiers: Vec<String>,
    /// Every Neverust node's --proof-period: short, so `bench marketplace` sees a dead host's
    /// slot freed and repaired within seconds rather than minutes.
    #[arg(long, value_parser = crate::cli::parse_duration, default_value = "2s")]
    pub node_proof_period: Duration,
    /// Every Neverust node's --proof-timeout: how long a host has to answer a challenge. A
    /// machine too loaded to prove within it sees live hosts' proofs missed.
    #[arg(long, value_parser = crate::cli::parse_duration, default_value = "4s")]
    pub node_proof_timeout: Duration,
    /// An Archivist node binary: some nodes run it instead of Neverust (a mixed cluster,
    /// whose figures the bench reports side by side).
    #[arg(long, value_name = "PATH")]
    pub archivist_bin: Option<PathBuf>,
    /// With --archivist-bin: node i (i ≥ 1) runs Archivist when i % K == 0.
    #[arg(
        long,
        value_name = "K",
        default_value_t = 2,
        requires = "archivist_bin"
    )]
    pub archivist_every: usize,
}

pub fn parse_nodes(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of nodes"))?;
    if n < 2 {
        return Err("a cluster needs at least 2 nodes (a bootstrap and one more)".into());
    }
    Ok(n)
}

impl LaunchArgs {
    pub fn spec(&self) -> Result<ClusterSpec, String> {
        if ports::RESERVED.contains(&self.bootstrap_api_port) {
            return Err(format!(
                "--bootstrap-api-port {} is reserved for Prometheus, Grafana or the visualizer",
                self.bootstrap_api_port
            ));
        }
        for i in 0..self.nodes {
            ports::ports(self.base_port, Some(self.bootstrap_api_port), i).map_err(|e| {
                format!(
                    "--base-port {} with --nodes {}: {e}",
                    self.base_port, self.nodes
                )
            })?;
        }
        neverust_node::logging::parse_level(&self.node_log_level)
            .map_err(|e| format!("--node-log-level: {e}"))?;
        let mut spec = ClusterSpec::new(self.nodes, self.dir.clone());
        spec.base_port = self.base_port;
        spec.bootstrap_api_port = Some(self.bootstrap_api_port);
        spec.marketplace_every = self.marketplace_every;
        spec.log_level = self.node_log_level.clone();
        spec.extra_args = vec!["--store".into(), self.node_store.clone()];
        for (flag, d) in [
            ("--node-proof-period", self.node_proof_period),
            ("--node-proof-timeout", self.node_proof_timeout),
        ] {
            if d.as_secs() == 0 {
                return Err(format!("{flag} must be at least 1s"));
            }
        }
        spec.proof_period = self.node_proof_period;
        spec.proof_timeout = self.node_proof_timeout;
        if !self.node_tiers.is_empty() {
            let example: Result<Vec<neverust_node::tiers::TierSpec>, String> = self
                .node_tiers
                .iter()
                .map(|t| {
                    neverust_lab::cluster::node_tier(t, 1)
                        .parse()
                        .map_err(|e: neverust_node::tiers::TierSpecError| e.to_string())
                })
                .collect();
            neverust_node::tiers::validate(&example.map_err(|e| format!("--node-tier: {e}"))?)
                .map_err(|e| format!("--node-tier: {e}"))?;
            if self.node_store == "memory" {
                return Err("--node-tier cannot be combined with --node-store memory".into());
            }
            spec.node_tiers = self.node_tiers.clone();
        }
        if let Some(binary) = &self.archivist_bin {
            spec.archivist = Some(archivist_nodes(binary, self.archivist_every)?);
        }
        Ok(spec)
    }
}

fn archivist_nodes(binary: &Path, every: usize) -> Result<ArchivistNodes, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(binary)
        .map_err(|e| format!("--archivist-bin {}: {e}", binary.display()))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!(
            "--archivist-bin {}: not an executable file",
            binary.display()
        ));
    }
    if every == 0 {
        return Err("--archivist-every must be at least 1".into());
    }
    Ok(ArchivistNodes {
        binary: std::fs::canonicalize(binary).unwrap_or_else(|_| binary.to_path_buf()),
        every,
    })
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// all, or one or more of upload, exchange, throughput, interop, cache, reconcile,
    /// stress, scale, chaos, marketplace (comma-separated).
    #[arg(required = true, value_parser = parse_scenarios)]
    pub scenarios: Vec<String>,
    /// Run against a running cluster instead of starting one: its cluster.json, or the
    /// bootstrap's API URL (http://HOST:PORT) of a Compose or Kubernetes cluster, whose
    /// nodes are found through the bootstrap (chaos and scale need a cluster of this
    /// machine).
    #[arg(long, conflicts_with = "nodes")]
    pub cluster: Option<String>,
    #[command(flatten)]
    pub launch: LaunchArgs,
    /// How much work: smoke (seconds, for tests), quick (a few minutes) or full.
    #[arg(long, default_value = "quick", value_parser = parse_profile)]
    pub profile: Profile,
    /// Cluster sizes for `scale`, e.g. 10,25,50 (default: the profile's).
    #[arg(long, value_delimiter = ',')]
    pub scale_nodes: Option<Vec<usize>>,
    /// Zipf exponent of `cache`'s reads (> 0; 1.0: the most read file is read twice as
    /// often as the second, ten times as often as the tenth).
    #[arg(long, value_name = "S", default_value_t = neverust_lab::bench::DEFAULT_CACHE_SKEW, value_parser = parse_skew, allow_negative_numbers = true)]
    pub cache_skew: f64,
    /// Seed of the random choices and payloads: the same seed replays the same run (on a
    /// fresh cluster: a node that holds a dataset from an earlier run serves it locally).
    /// Default: a new seed each run, recorded in results.json.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where results.json and report.html go.
    #[arg(long, default_value = "neverust-report")]
    pub report: PathBuf,
}

fn parse_scenarios(s: &str) -> Result<String, String> {
    Scenario::parse_list(s).map(|_| s.to_string())
}

fn parse_skew(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!(
            "--cache-skew takes a Zipf exponent above 0 (e.g. 1.0), not {s:?}"
        )),
    }
}

fn parse_profile(s: &str) -> Result<Profile, String> {
    Profile::named(s)
}

impl BenchArgs {
    /// In the order of `all`, each once.
    pub fn scenarios(&self) -> Vec<Scenario> {
        let mut list: Vec<Scenario> = self
            .scenarios
            .iter()
            .flat_map(|s| Scenario::parse_list(s).unwrap_or_default())
            .collect();
        list.sort();
        list.dedup();
        list
    }
}
