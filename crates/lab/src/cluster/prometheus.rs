//! A real Prometheus beside a native cluster (`neverust cluster --prometheus`).
//!
//! Prometheus finds the nodes through file-based service discovery: the launcher rewrites
//! `prometheus-targets.json` every time it rewrites `cluster.json`, and Prometheus re-reads
//! it on change. So the scrape list always follows the cluster (restarted nodes, any N)
//! without a Prometheus restart, and nothing in the config names a node.
//!
//! Each target carries the labels the dashboards and the visualizer group by: `node` (the
//! index), `role` (`bootstrap` or `node`) and `mode` (`altruistic` or `marketplace`). The
//! Compose and Kubernetes configs put the same labels on their targets.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::topology::cluster_file::{ClusterFile, NodeEntry};
use crate::topology::prometheus::{
    config as whole, job, Config, FileSd, Labels, ScrapeConfig, StaticConfig,
};
pub use crate::topology::prometheus::{JOB, SCRAPE_INTERVAL};
use crate::topology::Member;

use super::error::{io_at, IoAt};

pub const TARGETS_FILE: &str = "prometheus-targets.json";
pub const DEFAULT_PORT: u16 = crate::topology::ports::PROMETHEUS_PORT;

fn member(n: &NodeEntry) -> Member {
    Member {
        index: n.index,
        mode: if n.mode == "marketplace" {
            "marketplace"
        } else {
            "altruistic"
        },
    }
}

/// The file-SD document for a cluster: one target group per node.
pub fn targets(file: &ClusterFile) -> Vec<StaticConfig> {
    file.nodes
        .iter()
        .map(|n| StaticConfig {
            targets: vec![n.metrics_target()],
            labels: Labels::of(&member(n)),
        })
        .collect()
}

/// Written like `cluster.json` (temp file + rename): Prometheus watches the file and must
/// never read half of it.
pub fn write_targets(file: &ClusterFile, dir: &Path) -> std::io::Result<()> {
    let path = dir.join(TARGETS_FILE);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&targets(file))?)?;
    std::fs::rename(tmp, path)
}

/// The targets, with their labels, are in `targets_file` (see [`write_targets`]).
pub fn file_sd_config(targets_file: &Path) -> Config {
    whole(ScrapeConfig {
        file_sd_configs: vec![FileSd {
            files: vec![targets_file.display().to_string()],
            refresh_interval: SCRAPE_INTERVAL,
        }],
        ..job()
    })
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrometheusError {
    #[error("--prometheus needs the `prometheus` binary, which is not on PATH: install it with `apt-get install prometheus` (Debian's package; scripts/setup.sh does it)")]
    NotInstalled,
    #[error(
        "--prometheus-port {port} is in use (another Prometheus?); free it or pick another port"
    )]
    PortInUse { port: u16 },
    #[error("writing Prometheus's configuration")]
    Config(#[from] serde_yaml_ng::Error),
    #[error("starting {}", binary.display())]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("waiting for Prometheus")]
    Wait(#[source] std::io::Error),
    #[error("Prometheus exited ({status}) before it was ready; see {}", log.display())]
    Exited {
        status: std::process::ExitStatus,
        log: PathBuf,
    },
    #[error("Prometheus was not ready within {limit:?}; see {}", log.display())]
    NotReady { limit: Duration, log: PathBuf },
    #[error(transparent)]
    Io(#[from] IoAt),
}

/// The whole Prometheus configuration; the targets come from `targets_file`.
pub fn config(targets_file: &Path) -> Result<String, PrometheusError> {
    Ok(format!(
        "# Written by `neverust cluster --prometheus`; the node list is in {}.\n{}",
        targets_file.display(),
        serde_yaml_ng::to_string(&file_sd_config(targets_file))?
    ))
}

/// Where the `prometheus` binary is, or an error that says how to get it.
pub fn find_binary() -> Result<PathBuf, PrometheusError> {
    crate::on_path("prometheus").ok_or(PrometheusError::NotInstalled)
}

/// A Prometheus process scraping the cluster in `dir`.
pub struct Prometheus {
    child: tokio::process::Child,
    pub url: String,
    pub data_dir: PathBuf,
}

impl Prometheus {
    /// Checks what can be checked before any node starts: the binary and the port.
    pub fn preflight(port: u16) -> Result<PathBuf, PrometheusError> {
        let binary = find_binary()?;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            return Err(PrometheusError::PortInUse { port });
        }
        Ok(binary)
    }

    /// Starts Prometheus on 127.0.0.1:`port` with its config, data and log under
    /// `dir/prometheus/`, and waits until it answers `/-/ready`.
    pub async fn start(
        binary: &Path,
        dir: &Path,
        port: u16,
    ) -> Result<Prometheus, PrometheusError> {
        let home = dir.join("prometheus");
        let data_dir = home.join("data");
        std::fs::create_dir_all(&data_dir).map_err(io_at("creating", &data_dir))?;
        let config_path = home.join("prometheus.yml");
        std::fs::write(&config_path, config(&dir.join(TARGETS_FILE))?)
            .map_err(io_at("writing", &config_path))?;
        let log_path = home.join("prometheus.log");
        let log = std::fs::File::create(&log_path).map_err(io_at("creating", &log_path))?;
        let mut cmd = tokio::process::Command::new(binary);
        cmd.arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", data_dir.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=2d")
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io_at("opening", &log_path))?)
            .stderr(log)
            // Like the nodes: Ctrl-C reaches the launcher, which stops everything in order.
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|source| PrometheusError::Spawn {
            binary: binary.to_path_buf(),
            source,
        })?;
        let mut prom = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            data_dir,
        };
        prom.wait_ready(Duration::from_secs(30)).await?;
        Ok(prom)
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<(), PrometheusError> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + limit;
        let log = self.data_dir.with_file_name("prometheus.log");
        loop {
            if let Some(status) = self.child.try_wait().map_err(PrometheusError::Wait)? {
                return Err(PrometheusError::Exited { status, log });
            }
            let ready = http
                .get(format!("{}/-/ready", self.url))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(PrometheusError::NotReady { limit, log });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Exit status if it has died.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM (Prometheus flushes its head block), SIGKILL after 10 s.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = super::signal(pid, Signal::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: usize, mode: &str, api_port: u16) -> NodeEntry {
        NodeEntry {
            index,
            role: if index == 0 { "bootstrap" } else { mode }.into(),
            mode: mode.into(),
            pid: 1,
            peer_id: String::new(),
            host: "127.0.0.1".into(),
            api_port,
            listen_port: 1,
            disc_port: 2,
            api_url: format!("http://127.0.0.1:{api_port}"),
            data_dir: PathBuf::new(),
            log_file: PathBuf::new(),
            netns: None,
            implementation: Default::default(),
        }
    }

    #[test]
    fn one_labelled_target_per_node() {
        let file = ClusterFile {
            version: 1,
            launcher_pid: 1,
            started_at: String::new(),
            restart: false,
            ready_seconds: 0.0,
            prometheus: None,
            nodes: vec![
                entry(0, "altruistic", 9080),
                entry(1, "altruistic", 20002),
                entry(3, "marketplace", 20011),
            ],
        };
        let dir = tempfile::tempdir().unwrap();
        write_targets(&file, dir.path()).unwrap();
        let back: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(TARGETS_FILE)).unwrap()).unwrap();
        let groups = back.as_array().unwrap();
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0]["targets"][0], "127.0.0.1:9080");
        assert_eq!(groups[0]["labels"]["role"], "bootstrap");
        assert_eq!(groups[1]["labels"]["role"], "node");
        assert_eq!(groups[2]["labels"]["node"], "3");
        assert_eq!(groups[2]["labels"]["mode"], "marketplace");
    }

    #[test]
    fn config_points_at_the_targets_file() {
        let c = config(Path::new("/x/prometheus-targets.json")).unwrap();
        let back: serde_yaml_ng::Value = serde_yaml_ng::from_str(&c).unwrap();
        let job = &back["scrape_configs"][0];
        assert_eq!(job["job_name"].as_str(), Some(JOB));
        assert_eq!(
            job["file_sd_configs"][0]["files"][0].as_str(),
            Some("/x/prometheus-targets.json")
        );
        assert_eq!(back["global"]["scrape_interval"].as_str(), Some("5s"));
    }
}
