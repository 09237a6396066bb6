//! Command-line flags. Every flag of `start` has an environment variable (for containers);
//! values are validated here so a bad one is reported with the flag's name.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use neverust_node::config::{
    DEFAULT_CREDIT_LIMIT, DEFAULT_DHT_REPLICATION, DEFAULT_PRICE_PER_BYTE, DEFAULT_STORAGE_QUOTA,
};
use neverust_node::{Mode, NodeConfig, StoreKind};

#[derive(Parser, Debug)]
#[command(
    name = "neverust",
    version,
    about = "Archivist-compatible peer-to-peer storage node"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a storage node until SIGINT/SIGTERM.
    Start(StartArgs),
    /// Run a native N-node cluster on this machine until Ctrl-C (or: status, stop).
    Cluster(crate::lab_cli::ClusterArgs),
    /// Run benchmark scenarios on a cluster it starts (--nodes) or a running one
    /// (--cluster); writes results.json and report.html.
    Bench(Box<crate::lab_cli::BenchArgs>),
    /// Generate the Docker Compose cluster: docker-compose.yml (stdout) or, with --out DIR,
    /// docker-compose.yml and the prometheus.yml it mounts.
    Compose(crate::deploy_cli::ComposeArgs),
    /// Generate Kubernetes manifests for an N-node cluster with Prometheus, Grafana and the
    /// visualizer.
    K8s(crate::deploy_cli::K8sArgs),
    /// Exit 0 when the node on this machine answers /health (container healthchecks).
    Health(crate::deploy_cli::HealthArgs),
    /// Serve the live network visualizer (D3 force graph) of a running cluster.
    Viz(crate::viz_cli::VizArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ModeArg {
    Altruistic,
    Marketplace,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum StoreArg {
    Disk,
    Memory,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// How the node serves peers: for free, or against per-peer credit.
    #[arg(long, value_enum, default_value = "altruistic", env = "NEVERUST_MODE")]
    pub mode: ModeArg,
    /// TCP port for peer-to-peer connections (0 picks a free one).
    #[arg(long, default_value_t = 8070, env = "NEVERUST_LISTEN_PORT")]
    pub listen_port: u16,
    /// UDP port for discovery.
    #[arg(long, default_value_t = 8090, env = "NEVERUST_DISC_PORT")]
    pub disc_port: u16,
    /// TCP port of the REST API (0 picks a free one).
    #[arg(long, default_value_t = 8080, env = "NEVERUST_API_PORT")]
    pub api_port: u16,
    /// Address the peer-to-peer listener binds to.
    #[arg(long, default_value = "0.0.0.0", env = "NEVERUST_LISTEN_IP")]
    pub listen_ip: IpAddr,
    /// Address the REST API binds to (use 0.0.0.0 in containers).
    #[arg(long, default_value = "127.0.0.1", env = "NEVERUST_API_BINDADDR")]
    pub api_bindaddr: IpAddr,
    /// Directory holding everything the node keeps: database and node key.
    #[arg(long, default_value = "./data", env = "NEVERUST_DATA_DIR")]
    pub data_dir: PathBuf,
    /// TRACE, DEBUG, INFO, NOTICE, WARN, ERROR or FATAL.
    #[arg(long, default_value = "info", env = "NEVERUST_LOG_LEVEL", value_parser = parse_log_level)]
    pub log_level: String,
    /// The bootstrap node: its API address HOST:PORT (its signed peer record is fetched
    /// from there), or an SPR (spr:...), or a multiaddr ending in /p2p/<peer id>.
    #[arg(long, env = "BOOTSTRAP_NODE", value_parser = parse_bootstrap)]
    pub bootstrap_node: Option<String>,
    /// Marketplace mode: price per byte announced to peers in block presences.
    #[arg(long, env = "NEVERUST_PRICE_PER_BYTE", default_value_t = DEFAULT_PRICE_PER_BYTE)]
    pub price_per_byte: u64,
    /// Marketplace mode: bytes a peer may take beyond what it has given back (e.g. 256MiB).
    #[arg(long, env = "NEVERUST_CREDIT_LIMIT", value_parser = parse_size, default_value_t = DEFAULT_CREDIT_LIMIT)]
    pub credit_limit: u64,
    /// Peer connections without traffic close after this long, e.g. 1h, 90s.
    #[arg(long, env = "NEVERUST_IDLE_TIMEOUT", value_parser = parse_duration, default_value = "1h")]
    pub idle_timeout: Duration,
    /// How many peers closest to a CID keep this node's provider record for it (at least 1).
    #[arg(long, env = "NEVERUST_DHT_REPLICATION", default_value_t = DEFAULT_DHT_REPLICATION)]
    pub dht_replication: NonZeroUsize,
    /// Take part in Archivist's DHT on --disc-port (UDP): Archivist nodes then find this
    /// node's content, and it finds theirs. `false` leaves content routing to Kademlia.
    #[arg(long, env = "NEVERUST_ARCHIVIST_DHT", default_value_t = true, action = clap::ArgAction::Set)]
    pub archivist_dht: bool,
    /// Learn which peers hold which blocks of a dataset being downloaded by set
    /// reconciliation (`/neverust/reconcile/1.0.0`). `false` sends a want-have per missing
    /// block to each peer instead, as blockexc alone does (the baseline `bench reconcile`
    /// measures against).
    #[arg(long, env = "NEVERUST_RECONCILE", default_value_t = true, action = clap::ArgAction::Set)]
    pub reconcile: bool,
    /// Marketplace: each filled slot is challenged once per proof period with probability
    /// 1/proofProbability, e.g. 60s (Archivist's `period`).
    #[arg(long, env = "NEVERUST_PROOF_PERIOD", value_parser = parse_duration, default_value = "60s")]
    pub proof_period: Duration,
    /// Marketplace: how long a host has to answer a challenge before it counts as missed
    /// (Archivist's proof `timeout`). The ledger's keeper (the bootstrap node) decides it
    /// for every node that follows its ledger.
    #[arg(long, env = "NEVERUST_PROOF_TIMEOUT", value_parser = parse_duration, default_value = "60s")]
    pub proof_timeout: Duration,
    /// Marketplace: challenge filled slots and mark missed proofs (the bootstrap node, which
    /// keeps the market's ledger, always does).
    #[arg(long, env = "NEVERUST_VALIDATOR", default_value_t = false, action = clap::ArgAction::Set)]
    pub validator: bool,
    /// Storage quota, in bytes or with a unit (e.g. 20GiB, 512MB).
    #[arg(long, env = "NEVERUST_STORAGE_QUOTA", value_parser = parse_size, default_value_t = DEFAULT_STORAGE_QUOTA)]
    pub storage_quota: u64,
    /// How long stored blocks live, e.g. 30d, 12h, 3600 (seconds).
    #[arg(long, env = "NEVERUST_BLOCK_TTL", value_parser = parse_duration, default_value = "30d")]
    pub block_ttl: Duration,
    /// How often expired blocks are reclaimed, e.g. 10m.
    #[arg(long, env = "NEVERUST_MAINTENANCE_INTERVAL", value_parser = parse_duration, default_value = "10m")]
    pub block_maintenance_interval: Duration,
    /// Where blocks live: a database under --data-dir, or memory only.
    #[arg(long, value_enum, default_value = "disk", env = "NEVERUST_STORE")]
    pub store: StoreArg,
    /// A storage tier, fastest first, repeatable: memory:SIZE, or nvme|ssd|hdd:DIR:SIZE,
    /// optionally :latency=80us,bw=3GB/s to emulate a device's read speed (for the lab).
    /// E.g. --tier memory:2GiB --tier nvme:/mnt/nvme:100GiB --tier hdd:/mnt/hdd:10TiB.
    /// The memory tier is a cache; every block is on a persistent tier before it is
    /// acknowledged. Without --tier: one store under --data-dir.
    #[arg(long = "tier", value_name = "SPEC", env = "NEVERUST_TIERS", value_delimiter = ';', value_parser = parse_tier)]
    pub tiers: Vec<neverust_node::tiers::TierSpec>,
    /// Threads serving the node's network and API (default: one per core). A machine that
    /// runs many nodes gives each one: more only trade wakeups between them.
    #[arg(long, env = "NEVERUST_WORKER_THREADS")]
    pub worker_threads: Option<NonZeroUsize>,
}

impl StartArgs {
    pub fn into_config(self) -> Result<NodeConfig, String> {
        if self.block_ttl.is_zero() {
            return Err("--block-ttl must be longer than zero".into());
        }
        if self.block_maintenance_interval.is_zero() {
            return Err("--block-maintenance-interval must be longer than zero".into());
        }
        neverust_node::tiers::validate(&self.tiers).map_err(|e| format!("--tier: {e}"))?;
        if self.proof_period.as_secs() == 0 {
            return Err("--proof-period must be at least 1s".into());
        }
        if self.proof_timeout.as_secs() == 0 {
            return Err("--proof-timeout must be at least 1s".into());
        }
        if !self.tiers.is_empty() && matches!(self.store, StoreArg::Memory) {
            return Err("--tier cannot be combined with --store memory: tiers keep every block on a persistent tier".into());
        }
        Ok(NodeConfig {
            mode: match self.mode {
                ModeArg::Altruistic => Mode::Altruistic,
                ModeArg::Marketplace => Mode::Marketplace,
            },
            listen_ip: self.listen_ip,
            api_ip: self.api_bindaddr,
            listen_port: self.listen_port,
            disc_port: self.disc_port,
            api_port: self.api_port,
            data_dir: self.data_dir,
            log_level: self.log_level,
            bootstrap_node: self.bootstrap_node,
            price_per_byte: self.price_per_byte,
            credit_limit: self.credit_limit,
            idle_timeout: self.idle_timeout,
            dht_replication: self.dht_replication,
            archivist_dht: self.archivist_dht,
            reconcile: self.reconcile,
            storage_quota: self.storage_quota,
            block_ttl: self.block_ttl,
            maintenance_interval: self.block_maintenance_interval,
            store: match self.store {
                StoreArg::Disk => StoreKind::Disk,
                StoreArg::Memory => StoreKind::Memory,
            },
            tiers: self.tiers,
            market: neverust_node::market::MarketOptions {
                config: neverust_market::ledger::MarketConfig {
                    proof_timeout: self.proof_timeout.as_secs(),
                    ..Default::default()
                },
                proof_period: self.proof_period.as_secs(),
                validator: self.validator,
            },
        })
    }
}

fn parse_tier(s: &str) -> Result<neverust_node::tiers::TierSpec, String> {
    s.parse()
        .map_err(|e: neverust_node::tiers::TierSpecError| e.to_string())
}

fn parse_log_level(s: &str) -> Result<String, String> {
    neverust_node::logging::parse_level(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

fn parse_bootstrap(s: &str) -> Result<String, String> {
    neverust_node::bootstrap::BootstrapTarget::parse(s).map(|_| s.trim().to_string())
}

/// Bytes, or a number with a unit: B, KB/MB/GB/TB (powers of 1000), KiB/MiB/GiB/TiB or
/// K/M/G/T (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 1073741824, 512MiB, 20GB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000u64.pow(2),
        "gb" => 1000u64.pow(3),
        "tb" => 1000u64.pow(4),
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        other => return Err(format!("unknown size unit {other:?} in {s:?}")),
    };
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!(
            "{s:?} is out of range: the size must be at least 1 byte"
        ));
    }
    Ok(bytes as u64)
}

/// Seconds, or a duration with units as humantime reads them (30d, 12h, 10m, 1h30m).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.trim().parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration (e.g. 3600, 30d, 12h): {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("2KiB").unwrap(), 2048);
        assert_eq!(parse_size("1GB").unwrap(), 1_000_000_000);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("0").is_err());
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86400)
        );
        assert!(parse_duration("soon").is_err());
    }
}
