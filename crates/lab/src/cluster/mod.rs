//! A native cluster: N `neverust start` child processes on this machine, node 0 the
//! bootstrap, each with its own data dir, log file and ports.
//!
//! The launcher owns the children: it starts them, waits until every one is healthy and has
//! joined, kills (`kill -9`) and restarts them for chaos, supervises them, and stops them
//! gracefully (SIGTERM, then SIGKILL after a grace period). A cluster can also be attached
//! from its `cluster.json` (a running `neverust cluster`): then its nodes are reached and
//! signalled by pid, and restarts are left to that launcher's `--restart`.

pub mod archivist;
pub mod error;
pub mod ports;
pub mod processes;
pub mod prometheus;
pub mod remote;
pub mod solo;
pub mod supervise;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::client::NodeClient;
use crate::topology::cluster_file::{self, ClusterFile, Implementation, NodeEntry};
use crate::topology::mode_of;
use crate::ui::Ui;
use archivist::ArchivistNodes;
use error::io_at;
pub use error::{ClusterError, SignalError};

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
}

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

    fn placement(&self, index: usize) -> Placement {
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

/// What a node says about itself while the cluster comes up.
#[derive(Debug, Clone, Default)]
pub struct NodeStatus {
    pub healthy: bool,
    pub peer_id: String,
    /// Peers with an open connection; `None` from a node that does not say (Archivist).
    pub connected: Option<usize>,
    pub known: usize,
    pub blocks: f64,
    pub bytes: f64,
    /// Why the node's answers could not be read, though it is up.
    pub error: Option<String>,
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

    /// Starts every node and waits until all have joined: the bootstrap first (the others
    /// fetch its record as they start, and would back off for seconds if it were not there
    /// yet), then the rest. Archivist nodes join Archivist's DHT through the bootstrap's
    /// record (our nodes take part in it), and find content there, as in a real network.
    async fn start_all(&mut self, bar: &indicatif::ProgressBar) -> Result<(), ClusterError> {
        self.spawn(0)?;
        self.wait_until(&[0], |_, s| s.healthy, Duration::from_secs(30))
            .await
            .map_err(|e| ClusterError::BootstrapUnhealthy {
                source: Box::new(e),
            })?;
        let archivists = self.indices_of(Implementation::Archivist);
        if !archivists.is_empty() {
            let spr = self.clients[0]
                .spr()
                .await
                .map_err(|source| ClusterError::BootstrapRecord { source })?;
            if !neverust_node::identity::names_udp(&spr) {
                return Err(ClusterError::NoArchivistDht);
            }
            self.bootstrap_dht_record = Some(spr);
        }
        for i in 1..self.nodes.len() {
            self.spawn(i)?;
        }
        bar.set_message("waiting for every node to join");
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        let want = self.nodes.len() - 1 - archivists.len();
        let kinds: Vec<Implementation> =
            self.nodes.iter().map(|n| n.entry.implementation).collect();
        self.wait_until(
            &all,
            move |i, s| {
                s.healthy
                    && match (i, kinds[i]) {
                        (0, _) => s.connected.is_some_and(|c| c >= want),
                        (_, Implementation::Archivist) => true,
                        _ => s.connected.is_some_and(|c| c >= 1),
                    }
            },
            self.spec.ready_timeout,
        )
        .await?;
        Ok(())
    }

    /// The indices of the nodes that run `kind`.
    pub fn indices_of(&self, kind: Implementation) -> Vec<usize> {
        self.nodes
            .iter()
            .filter(|n| n.entry.implementation == kind)
            .map(|n| n.entry.index)
            .collect()
    }

    fn spawn(&mut self, index: usize) -> Result<(), ClusterError> {
        let spec = &self.spec;
        let node = &self.nodes[index];
        let e = &node.entry;
        let binary = match (&spec.archivist, e.implementation) {
            (Some(a), Implementation::Archivist) => a.binary.clone(),
            _ => spec.binary.clone(),
        };
        let mut cmd = match &node.placement.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&binary);
                c
            }
            None => Command::new(&binary),
        };
        match e.implementation {
            Implementation::Neverust => self.neverust_args(index, &mut cmd),
            Implementation::Archivist => {
                archivist::prepare_data_dir(e).map_err(io_at("preparing", &e.data_dir))?;
                cmd.args(archivist::args(
                    e,
                    node.placement.bind,
                    &spec.log_level,
                    self.bootstrap_dht_record.as_deref(),
                ));
            }
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&e.log_file)
            .map_err(io_at("opening", &e.log_file))?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io_at("opening", &e.log_file))?)
            .stderr(log)
            // Own process group: a Ctrl-C in the terminal reaches the launcher only, which
            // then stops the nodes in order instead of all of them racing.
            .process_group(0)
            .kill_on_drop(false);
        let child = cmd.spawn().map_err(|source| ClusterError::Spawn {
            index,
            binary: binary.clone(),
            source,
        })?;
        let node = &mut self.nodes[index];
        node.entry.pid = child.id().unwrap_or(0);
        node.child = Some(child);
        Ok(())
    }

    fn neverust_args(&self, index: usize, cmd: &mut Command) {
        let spec = &self.spec;
        let bootstrap = &self.nodes[0].entry;
        let node = &self.nodes[index];
        let e = &node.entry;
        cmd.arg("start")
            .args(["--mode", &e.mode])
            .args(["--listen-ip", &node.placement.bind.to_string()])
            .args(["--api-bindaddr", &node.placement.bind.to_string()])
            .args(["--listen-port", &e.listen_port.to_string()])
            .args(["--disc-port", &e.disc_port.to_string()])
            .args(["--api-port", &e.api_port.to_string()])
            .arg("--data-dir")
            .arg(&e.data_dir)
            .args(["--log-level", &spec.log_level])
            .args(["--worker-threads", &worker_threads(spec.nodes).to_string()]);
        if index > 0 {
            let host = node
                .placement
                .bootstrap_host
                .clone()
                .unwrap_or_else(|| bootstrap.host.clone());
            cmd.args([
                "--bootstrap-node",
                &format!("{host}:{}", bootstrap.api_port),
            ]);
        }
        cmd.args(&spec.extra_args);
        for tier in &spec.node_tiers {
            cmd.arg("--tier").arg(node_tier(tier, index));
        }
    }

    /// Polls the given nodes until `ready(index, status)` holds for all of them.
    async fn wait_until(
        &self,
        indices: &[usize],
        ready: impl Fn(usize, &NodeStatus) -> bool,
        limit: Duration,
    ) -> Result<(), ClusterError> {
        let deadline = Instant::now() + limit;
        let mut pending: Vec<usize> = indices.to_vec();
        loop {
            let polls = pending
                .iter()
                .map(|&i| async move { (i, self.status(i).await) });
            let last: Vec<(usize, NodeStatus)> = futures::future::join_all(polls).await;
            pending = last
                .iter()
                .filter(|(i, s)| !ready(*i, s))
                .map(|(i, _)| *i)
                .collect();
            if pending.is_empty() {
                return Ok(());
            }
            for &i in &pending {
                if let Some(pid) = self.exited(i) {
                    return Err(ClusterError::Exited {
                        index: i,
                        pid,
                        log: self.nodes[i].entry.log_file.clone(),
                    });
                }
            }
            if Instant::now() > deadline {
                let detail: Vec<String> = last
                    .iter()
                    .filter(|(i, _)| pending.contains(i))
                    .take(5)
                    .map(|(i, s)| {
                        let connected = s.connected.map_or("?".to_string(), |c| c.to_string());
                        let error = s
                            .error
                            .as_deref()
                            .map_or(String::new(), |e| format!(" ({e})"));
                        format!(
                            "node {i}: healthy={} connected={connected}{error}",
                            s.healthy
                        )
                    })
                    .collect();
                return Err(ClusterError::NotReady {
                    count: pending.len(),
                    detail: detail.join("; "),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn exited(&self, index: usize) -> Option<u32> {
        let pid = self.nodes[index].entry.pid;
        (!processes::is_running(pid)).then_some(pid)
    }

    /// Health, peers and stored bytes of one node, as it reports them.
    pub async fn status(&self, index: usize) -> NodeStatus {
        let client = &self.clients[index];
        let mut s = NodeStatus {
            healthy: client.healthy().await,
            ..Default::default()
        };
        if !s.healthy {
            return s;
        }
        match client.debug_info().await {
            Ok(info) => {
                s.peer_id = info.id;
                s.connected = info.connected_peers.map(|c| c as usize);
                s.known = info.table.nodes.len();
            }
            Err(e) => s.error = Some(e.to_string()),
        }
        if let Ok(text) = client.metrics().await {
            let m = crate::metrics::parse(&text);
            let (blocks, bytes) = self.nodes[index].entry.implementation.store_metrics();
            s.blocks = crate::metrics::sum(&m, blocks);
            s.bytes = crate::metrics::sum(&m, bytes);
        }
        s
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
