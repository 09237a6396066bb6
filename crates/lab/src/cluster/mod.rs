//! A native cluster: N `neverust start` child processes on this machine, node 0 the
//! bootstrap, each with its own data dir, log file and ports.
//!
//! The launcher owns the children: it starts them, waits until every one is healthy and has
//! joined, kills (`kill -9`) and restarts them for chaos, supervises them, and stops them
//! gracefully (SIGTERM, then SIGKILL after a grace period). A cluster can also be attached
//! from its `cluster.json` (a running `neverust cluster`): then its nodes are reached and
//! signalled by pid, and restarts are left to that launcher's `--restart`.
//!
//! This file holds the cluster and its lifecycle; what it is to be is in `spec`, how a
//! node's process starts in `spawn`, and when the cluster counts as up in `readiness`.

pub mod archivist;
pub mod error;
pub mod ports;
pub mod processes;
pub mod prometheus;
mod readiness;
pub mod remote;
pub mod solo;
mod spawn;
mod spec;
pub mod supervise;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::Child;

use crate::client::NodeClient;
use crate::topology::cluster_file::{self, ClusterFile, Implementation, NodeEntry};
use crate::ui::Ui;
use error::io_at;
pub use error::{ClusterError, SignalError};
pub use readiness::NodeStatus;
pub use spec::{node_tier, worker_threads, ClusterSpec, Placement};

struct NodeProc {
    entry: NodeEntry,
    placement: Placement,
    child: Option<Child>,
}

pub struct Cluster {
    spec: ClusterSpec,
    nodes: Vec<NodeProc>,
    clients: Vec<NodeClient>,
    file_path: PathBuf,
    started_at: String,
    ownership: Ownership,
    pub ready_seconds: f64,
    prometheus: Option<String>,
    /// The bootstrap's DHT record, which Archivist nodes bootstrap from.
    bootstrap_dht_record: Option<String>,
}

/// Whose the cluster's processes are.
enum Ownership {
    /// This process launched them, and holds the directory's launcher lock while it runs.
    Launched { _lock: processes::LauncherLock },
    /// Another launcher runs them (read from its `cluster.json`): pids only, no children.
    Attached,
}

impl Cluster {
    /// Starts every node (the bootstrap first), waits until all are ready, writes
    /// `cluster.json`. Refuses a directory in which nodes of an earlier launch still run.
    pub async fn launch(spec: ClusterSpec, ui: &Ui) -> Result<Cluster, ClusterError> {
        if spec.nodes < 2 {
            return Err(ClusterError::TooFewNodes { nodes: spec.nodes });
        }
        std::fs::create_dir_all(&spec.dir).map_err(io_at("creating", &spec.dir))?;
        let dir = std::fs::canonicalize(&spec.dir).map_err(io_at("resolving", &spec.dir))?;
        let lock = processes::lock_launcher(&dir)?;
        let stale = processes::find_stale(&dir);
        if !stale.is_empty() {
            let list: Vec<String> = stale
                .iter()
                .map(|s| format!("  pid {}: {}", s.pid, s.what))
                .collect();
            return Err(ClusterError::Stale {
                dir,
                list: list.join("\n"),
                given: spec.dir,
            });
        }
        let mut nodes = Vec::with_capacity(spec.nodes);
        for index in 0..spec.nodes {
            let p = ports::ports(spec.base_port, spec.bootstrap_api_port, index)?;
            let placement = spec.placement(index);
            let implementation = spec.implementation(index);
            if placement.netns.is_none() {
                ports::check_free(index, &p)?;
                if implementation == Implementation::Archivist {
                    ports::check_free_tcp(index, p.disc, "metrics")?;
                }
            }
            let node_dir = dir.join(format!("node-{index}"));
            let data_dir = node_dir.join("data");
            std::fs::create_dir_all(&data_dir).map_err(io_at("creating", &data_dir))?;
            nodes.push(NodeProc {
                entry: NodeEntry {
                    index,
                    role: spec.role(index).into(),
                    mode: spec.mode(index).into(),
                    pid: 0,
                    peer_id: String::new(),
                    host: placement.host.clone(),
                    api_port: p.api,
                    listen_port: p.listen,
                    disc_port: p.disc,
                    api_url: format!("http://{}:{}", placement.host, p.api),
                    data_dir: node_dir.join("data"),
                    log_file: node_dir.join("node.log"),
                    netns: placement.netns.clone(),
                    implementation,
                },
                placement,
                child: None,
            });
        }
        let clients = nodes.iter().map(|n| NodeClient::of(&n.entry)).collect();
        let mut cluster = Cluster {
            file_path: cluster_file::default_path(&dir),
            spec: ClusterSpec { dir, ..spec },
            nodes,
            clients,
            started_at: crate::now_rfc3339(),
            ownership: Ownership::Launched { _lock: lock },
            ready_seconds: 0.0,
            prometheus: None,
            bootstrap_dht_record: None,
        };
        let start = Instant::now();
        let bar = ui.bar(cluster.nodes.len() as u64, "starting");
        // Whatever fails on the way, no node is left running.
        if let Err(e) = cluster.start_all(&bar).await {
            cluster.stop(ui).await;
            return Err(ClusterError::NotUp {
                timeout: cluster.spec.ready_timeout,
                dir: cluster.spec.dir.clone(),
                source: Box::new(e),
            });
        }
        bar.finish_and_clear();
        cluster.ready_seconds = start.elapsed().as_secs_f64();
        for i in 0..cluster.nodes.len() {
            match cluster.clients[i].peer_id().await {
                Ok(id) => cluster.nodes[i].entry.peer_id = id,
                Err(e) => {
                    cluster.stop(ui).await;
                    return Err(ClusterError::NoPeerId {
                        index: i,
                        source: e,
                    });
                }
            }
        }
        cluster
            .write_file()
            .map_err(io_at("writing", &cluster.file_path))?;
        Ok(cluster)
    }

    /// A cluster another launcher runs, from its `cluster.json`.
    pub fn attach(path: &Path) -> Result<Cluster, ClusterError> {
        let file = ClusterFile::read(path)?;
        let nodes: Vec<NodeProc> = file
            .nodes
            .iter()
            .map(|e| NodeProc {
                entry: e.clone(),
                placement: Placement {
                    netns: e.netns.clone(),
                    bind: IpAddr::from([127, 0, 0, 1]),
                    host: e.host.clone(),
                    bootstrap_host: None,
                },
                child: None,
            })
            .collect();
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut spec = ClusterSpec::new(nodes.len(), dir);
        spec.restart = file.restart;
        Ok(Cluster {
            clients: nodes.iter().map(|n| NodeClient::of(&n.entry)).collect(),
            nodes,
            file_path: path.to_path_buf(),
            started_at: file.started_at,
            spec,
            ownership: Ownership::Attached,
            ready_seconds: file.ready_seconds,
            prometheus: file.prometheus,
            bootstrap_dht_record: None,
        })
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn dir(&self) -> &Path {
        &self.spec.dir
    }

    pub fn file_path(&self) -> &Path {
        &self.file_path
    }

    pub fn client(&self, index: usize) -> &NodeClient {
        &self.clients[index]
    }

    pub fn clients(&self) -> &[NodeClient] {
        &self.clients
    }

    pub fn entries(&self) -> Vec<NodeEntry> {
        self.nodes.iter().map(|n| n.entry.clone()).collect()
    }

    pub fn entry(&self, index: usize) -> &NodeEntry {
        &self.nodes[index].entry
    }

    pub fn file(&self) -> ClusterFile {
        ClusterFile {
            version: 1,
            launcher_pid: std::process::id(),
            started_at: self.started_at.clone(),
            restart: self.spec.restart,
            ready_seconds: self.ready_seconds,
            prometheus: self.prometheus.clone(),
            nodes: self.entries(),
        }
    }

    fn is_attached(&self) -> bool {
        matches!(self.ownership, Ownership::Attached)
    }

    /// `cluster.json` and, beside it, the Prometheus targets derived from it: the two are
    /// always written together, so discovery follows every pid change.
    pub fn write_file(&self) -> std::io::Result<()> {
        if self.is_attached() {
            return Ok(());
        }
        let file = self.file();
        prometheus::write_targets(&file, self.dir())?;
        file.write(&self.file_path)
    }

    /// Records the Prometheus scraping this cluster (in `cluster.json`, for the visualizer
    /// and `cluster status`).
    pub fn set_prometheus(&mut self, url: Option<String>) -> std::io::Result<()> {
        self.prometheus = url;
        self.write_file()
    }

    /// The indices of the nodes that run `kind`.
    pub fn indices_of(&self, kind: Implementation) -> Vec<usize> {
        self.nodes
            .iter()
            .filter(|n| n.entry.implementation == kind)
            .map(|n| n.entry.index)
            .collect()
    }

    /// `kill -9`: no chance to flush or say goodbye.
    pub async fn kill9(&mut self, index: usize) -> Result<(), ClusterError> {
        let pid = self.nodes[index].entry.pid;
        signal(pid, Signal::SIGKILL)?;
        if let Some(child) = self.nodes[index].child.as_mut() {
            let _ = child.wait().await;
        } else {
            let deadline = Instant::now() + Duration::from_secs(5);
            while processes::is_running(pid) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        self.nodes[index].child = None;
        Ok(())
    }

    /// Starts a stopped node again on its ports and data, and waits until it has rejoined.
    /// On an attached cluster, waits for its launcher (`--restart`) to do it.
    pub async fn restart(
        &mut self,
        index: usize,
        limit: Duration,
    ) -> Result<Duration, ClusterError> {
        let start = Instant::now();
        if self.is_attached() {
            if !self.spec.restart {
                return Err(ClusterError::NoRestart { index });
            }
            let old = self.nodes[index].entry.pid;
            loop {
                let file = ClusterFile::read(&self.file_path)?;
                if let Some(e) = file.nodes.get(index).filter(|e| e.pid != old) {
                    self.nodes[index].entry = e.clone();
                    break;
                }
                if start.elapsed() > limit {
                    return Err(ClusterError::NotRestarted { index, limit });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        } else {
            self.spawn(index)?;
            self.write_file()
                .map_err(io_at("writing", &self.file_path))?;
        }
        let archivist = self.nodes[index].entry.implementation == Implementation::Archivist;
        let ready = |_: usize, s: &NodeStatus| {
            s.healthy && (archivist || s.connected.is_some_and(|c| c >= 1))
        };
        self.wait_until(&[index], ready, limit.saturating_sub(start.elapsed()))
            .await?;
        Ok(start.elapsed())
    }

    /// Children that exited on their own since the last call: (index, pid, how).
    pub fn reap(&mut self) -> Vec<(usize, u32, String)> {
        let mut gone = Vec::new();
        for n in &mut self.nodes {
            let Some(child) = n.child.as_mut() else {
                continue;
            };
            if let Ok(Some(status)) = child.try_wait() {
                gone.push((n.entry.index, n.entry.pid, status.to_string()));
                n.child = None;
            }
        }
        gone
    }

    /// SIGTERM to every node, SIGKILL to those still running after 10 s.
    pub async fn stop(&mut self, ui: &Ui) {
        if self.is_attached() {
            return;
        }
        for n in &self.nodes {
            if n.child.is_some() {
                let _ = signal(n.entry.pid, Signal::SIGTERM);
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        for n in &mut self.nodes {
            let Some(child) = n.child.as_mut() else {
                continue;
            };
            if tokio::time::timeout_at(deadline, child.wait())
                .await
                .is_err()
            {
                ui.say(format!(
                    "node {} (pid {}) did not stop within 10 s: killing it",
                    n.entry.index, n.entry.pid
                ));
                let _ = child.kill().await;
            }
            n.child = None;
        }
        let _ = std::fs::remove_file(&self.file_path);
        let _ = std::fs::remove_file(self.dir().join(prometheus::TARGETS_FILE));
    }

    /// Removes the nodes' data directories (logs stay, for reading after the run).
    pub fn remove_data(&self) {
        for n in &self.nodes {
            let _ = std::fs::remove_dir_all(&n.entry.data_dir);
        }
    }
}

pub fn signal(pid: u32, sig: Signal) -> Result<(), SignalError> {
    if pid == 0 {
        return Err(SignalError::NoProcess);
    }
    kill(Pid::from_raw(pid as i32), sig).map_err(|source| SignalError::Send {
        signal: sig,
        pid,
        source,
    })
}

/// Stops the nodes of a cluster whose launcher is gone: every stale process in `dir`.
pub async fn stop_stale(dir: &Path) -> Vec<u32> {
    let stale = processes::find_stale(dir);
    for s in &stale {
        let _ = signal(s.pid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while stale.iter().any(|s| processes::is_running(s.pid)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for s in stale.iter().filter(|s| processes::is_running(s.pid)) {
        let _ = signal(s.pid, Signal::SIGKILL);
    }
    stale.iter().map(|s| s.pid).collect()
}
