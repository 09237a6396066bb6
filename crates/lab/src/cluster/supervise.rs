//! `neverust cluster` in the foreground: launch, print the endpoints, watch the nodes until
//! Ctrl-C or SIGTERM, then stop them; and `cluster status` / `cluster stop` for a cluster
//! running elsewhere.

use std::path::Path;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use super::error::{io_at, IoAt};
use super::processes;
use super::prometheus::{Prometheus, PrometheusError};
use super::ClusterError;
use super::{Cluster, ClusterSpec};
use crate::topology::cluster_file::{self, ClusterFile, NodeEntry};
use crate::ui::Ui;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Prometheus(#[from] PrometheusError),
    /// The visualizer's own message leads (it names the port), so it is a field rather than
    /// a source, which `{:#}` would print after the advice.
    #[error("{cause}; choose another --viz-port, or --no-viz")]
    VizPort { cause: crate::viz::VizError },
    #[error("listening for SIGTERM and SIGINT")]
    Signals(#[source] std::io::Error),
    #[error(transparent)]
    Io(#[from] IoAt),
}

pub struct ServeOptions {
    pub keep_data: bool,
    /// Run a Prometheus on this port that scrapes every node.
    pub prometheus_port: Option<u16>,
    /// Serve the live visualizer there (None: `--no-viz`).
    pub viz: Option<std::net::SocketAddr>,
}

/// Runs the cluster until a signal. Nodes that die are reported, and restarted when the
/// spec says so.
pub async fn serve(spec: ClusterSpec, opts: ServeOptions, ui: &Ui) -> Result<(), ServeError> {
    let restart = spec.restart;
    // Everything that can refuse the launch is checked before a node starts.
    let prometheus_binary = match opts.prometheus_port {
        Some(port) => Some((Prometheus::preflight(port)?, port)),
        None => None,
    };
    // The visualizer's port is taken before any node starts: a busy one fails the launch
    // at once, naming the port and the way out, rather than a warning lost among the
    // progress bars that leaves the user looking for a page that never comes.
    let viz_listener = match opts.viz {
        Some(addr) => Some(
            crate::viz::bind(addr)
                .await
                .map_err(|cause| ServeError::VizPort { cause })?,
        ),
        None => None,
    };
    let mut cluster = Cluster::launch(spec, ui).await?;
    print_table(&cluster.entries());
    let mut prometheus = None;
    if let Some((binary, port)) = prometheus_binary {
        match Prometheus::start(&binary, cluster.dir(), port).await {
            Ok(p) => {
                cluster
                    .set_prometheus(Some(p.url.clone()))
                    .map_err(io_at("writing", cluster.file_path()))?;
                ui.say(format!(
                    "Prometheus: {} (scraping every node every {}; targets from {})",
                    p.url,
                    super::prometheus::SCRAPE_INTERVAL,
                    cluster
                        .dir()
                        .join(super::prometheus::TARGETS_FILE)
                        .display()
                ));
                prometheus = Some(p);
            }
            Err(e) => {
                cluster.stop(ui).await;
                cluster.remove_data();
                return Err(e.into());
            }
        }
    }
    // It re-reads cluster.json every poll, so restarted nodes (new pids) are followed.
    let viz = viz_listener.map(|l| {
        let source = crate::viz::Source::ClusterFile(cluster.file_path().to_path_buf());
        crate::viz::Viz::start(l, source, crate::viz::INTERVAL)
    });
    if let Some(viz) = &viz {
        ui.say(format!("visualizer: {}", viz.url()));
    }
    ui.say(format!(
        "cluster ready: {} nodes in {:.1} s; {} written. Ctrl-C stops it.",
        cluster.len(),
        cluster.ready_seconds,
        cluster.file_path().display()
    ));
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Signals)?;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => {}
        }
        if let Some(status) = prometheus.as_mut().and_then(|p| p.exited()) {
            ui.say(format!(
                "Prometheus died ({status}); the nodes keep running. Log: {}",
                cluster.dir().join("prometheus/prometheus.log").display()
            ));
            prometheus = None;
            cluster
                .set_prometheus(None)
                .map_err(io_at("writing", cluster.file_path()))?;
        }
        for (index, pid, how) in cluster.reap() {
            let log = cluster.entry(index).log_file.display().to_string();
            if restart {
                ui.say(format!(
                    "node {index} (pid {pid}) died ({how}); restarting it. Log: {log}"
                ));
                match cluster.restart(index, Duration::from_secs(30)).await {
                    Ok(took) => ui.say(format!(
                        "node {index} is back (pid {}) after {:.1} s",
                        cluster.entry(index).pid,
                        took.as_secs_f64()
                    )),
                    Err(e) => ui.say(format!(
                        "node {index} could not be restarted: {}",
                        crate::error_chain(&e)
                    )),
                }
            } else {
                ui.say(format!(
                    "node {index} (pid {pid}) died ({how}); not restarting (no --restart). Log: {log}"
                ));
            }
        }
    }
    ui.say("stopping the cluster...");
    let prometheus_data = prometheus.as_ref().map(|p| p.data_dir.clone());
    if let Some(p) = prometheus {
        p.stop().await;
    }
    cluster.stop(ui).await;
    if !opts.keep_data {
        cluster.remove_data();
        if let Some(d) = prometheus_data {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    ui.say(format!(
        "stopped. Logs are in {}{}",
        cluster.dir().display(),
        if opts.keep_data {
            ", and the nodes' data is kept for the next launch"
        } else {
            ""
        }
    ));
    Ok(())
}

pub fn print_table(nodes: &[NodeEntry]) {
    println!(
        "{:>5}  {:<11}  {:>7}  {:<27}  {:>5}  {:<14}",
        "node", "role", "pid", "API", "p2p", "peer id"
    );
    for n in nodes {
        println!(
            "{:>5}  {:<11}  {:>7}  {:<27}  {:>5}  {:<14}",
            n.index,
            n.role,
            n.pid,
            n.api_url,
            n.listen_port,
            short(&n.peer_id)
        );
    }
}

fn short(peer: &str) -> String {
    if peer.len() > 14 {
        format!("…{}", &peer[peer.len() - 12..])
    } else {
        peer.to_string()
    }
}

/// `neverust cluster status`: what every node of a running cluster says about itself.
pub async fn status(path: &Path) -> Result<bool, ClusterError> {
    let cluster = Cluster::attach(path)?;
    let file = ClusterFile::read(path)?;
    if !processes::is_running(file.launcher_pid) {
        println!(
            "warning: the launcher (pid {}) is not running; its nodes may be stale",
            file.launcher_pid
        );
    }
    let polls = (0..cluster.len()).map(|i| cluster.status(i));
    let statuses = futures::future::join_all(polls).await;
    println!(
        "{:>5}  {:<11}  {:>7}  {:<27}  {:<7}  {:>5}  {:>8}  {:>10}",
        "node", "role", "pid", "API", "health", "peers", "blocks", "bytes"
    );
    let mut all_up = true;
    for (n, s) in cluster.entries().iter().zip(&statuses) {
        all_up &= s.healthy;
        println!(
            "{:>5}  {:<11}  {:>7}  {:<27}  {:<7}  {:>5}  {:>8}  {:>10}",
            n.index,
            n.role,
            n.pid,
            n.api_url,
            if s.healthy { "up" } else { "DOWN" },
            s.connected.map_or("-".to_string(), |c| c.to_string()),
            s.blocks,
            s.bytes
        );
        if let Some(e) = &s.error {
            println!("       {e}");
        }
    }
    let up = statuses.iter().filter(|s| s.healthy).count();
    println!("{up}/{} nodes up", statuses.len());
    if let Some(url) = &file.prometheus {
        println!("Prometheus: {url}");
    }
    Ok(all_up)
}

/// `neverust cluster stop`: stops the launcher of `dir` if it runs (it stops its nodes),
/// then any node process left in `dir`.
pub async fn stop(dir: &Path) -> usize {
    // The launcher is found by its lock, not by the pid in cluster.json: that pid may
    // belong to another program by now, and the file may be gone while its launcher runs
    // on (with --restart it would bring back the nodes stopped below).
    let launchers: Vec<u32> = processes::find_launcher(dir).into_iter().collect();
    for &pid in &launchers {
        let _ = super::signal(pid, nix::sys::signal::Signal::SIGTERM);
    }
    // A launcher stops its nodes (and Prometheus) itself, SIGKILLing them after 10 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while launchers.iter().any(|&pid| processes::is_running(pid))
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stopped = launchers.len() + super::stop_stale(dir).await.len();
    let _ = std::fs::remove_file(cluster_file::default_path(dir));
    stopped
}
