//! `cluster.json`: what a running cluster is made of, for `bench`, the visualizer,
//! Prometheus file-based discovery and `neverust cluster status`.
//!
//! Written atomically (temp file + rename) every time a node's pid changes, so a reader
//! never sees half a file.

use std::path::{Path, PathBuf};

use neverust_node::metrics::names;
use serde::{Deserialize, Serialize};

pub const FILE_NAME: &str = "cluster.json";

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ClusterFile {
    pub version: u32,
    /// The process that launched (and supervises) the nodes.
    pub launcher_pid: u32,
    pub started_at: String,
    /// Whether the launcher restarts nodes that die (`--restart`).
    pub restart: bool,
    /// From the first spawn until every node was ready.
    #[serde(default)]
    pub ready_seconds: f64,
    /// The Prometheus scraping the cluster (`--prometheus`), e.g. `http://127.0.0.1:9090`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<String>,
    pub nodes: Vec<NodeEntry>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct NodeEntry {
    pub index: usize,
    /// bootstrap, altruistic or marketplace.
    pub role: String,
    /// altruistic or marketplace: the node's `--mode`.
    pub mode: String,
    pub pid: u32,
    pub peer_id: String,
    /// Address the node's API is reached at from the launcher.
    pub host: String,
    pub api_port: u16,
    pub listen_port: u16,
    pub disc_port: u16,
    pub api_url: String,
    pub data_dir: PathBuf,
    pub log_file: PathBuf,
    /// Network namespace the node runs in, when a scenario placed it in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// Which node software runs: Neverust, or an Archivist node in a mixed cluster.
    #[serde(default)]
    pub implementation: Implementation,
}

impl NodeEntry {
    /// Where the node serves Prometheus metrics: beside its API for Neverust, on the TCP side
    /// of its discovery port for Archivist (whose metrics server is separate; its discovery
    /// port is UDP, so the number is free on TCP).
    pub fn metrics_url(&self) -> String {
        match self.implementation {
            Implementation::Neverust => format!("{}/metrics", self.api_url),
            Implementation::Archivist => format!("http://{}:{}/metrics", self.host, self.disc_port),
        }
    }

    /// `host:port` of the metrics endpoint, as a Prometheus target.
    pub fn metrics_target(&self) -> String {
        match self.implementation {
            Implementation::Neverust => format!("{}:{}", self.host, self.api_port),
            Implementation::Archivist => format!("{}:{}", self.host, self.disc_port),
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Implementation {
    #[default]
    Neverust,
    Archivist,
}

impl Implementation {
    /// The gauges of the blocks a node stores and their bytes, as this software names them.
    pub fn store_metrics(self) -> (&'static str, &'static str) {
        match self {
            Implementation::Neverust => (names::BLOCK_COUNT, names::BLOCK_BYTES),
            Implementation::Archivist => (
                "archivist_repostore_blocks",
                "archivist_repostore_bytes_used",
            ),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Implementation::Neverust => "neverust",
            Implementation::Archivist => "archivist",
        }
    }
}

impl ClusterFile {
    pub fn read(path: &Path) -> anyhow::Result<ClusterFile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a cluster file: {e}", path.display()))
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(tmp, path)
    }
}

/// A process that is still running from an earlier launch in the same directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Stale {
    pub pid: u32,
    pub what: String,
}

/// Processes whose command line names one of `dir`'s node directories or its Prometheus
/// directory: what a launcher that crashed (or is still running) left. Found by scanning
/// /proc, not by trusting pids in an old `cluster.json`, which the kernel may have given to
/// someone else since.
pub fn find_stale(dir: &Path) -> Vec<Stale> {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return Vec::new();
    };
    let needles = [
        dir.join("node-").to_string_lossy().into_owned(),
        dir.join("prometheus/").to_string_lossy().into_owned(),
    ];
    processes()
        .filter(|(_, args)| {
            args.iter()
                .any(|a| needles.iter().any(|n| a.contains(n.as_str())))
        })
        .map(|(pid, args)| Stale {
            pid,
            what: args.join(" "),
        })
        .collect()
}

/// The file a launcher holds locked for as long as it runs, with its pid inside. The
/// kernel drops the lock when the launcher exits, however it exits (kill -9 included), so a
/// held lock is a launcher alive, where a pid in `cluster.json` may by now be anyone's.
pub const LOCK_FILE: &str = "launcher.lock";

/// This process's hold on a cluster directory, released when dropped.
#[derive(Debug)]
pub struct LauncherLock {
    _file: std::fs::File,
}

/// Why a directory's launcher lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("a launcher (pid {pid}) already runs a cluster in {dir}")]
    Held { pid: u32, dir: PathBuf },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Takes `dir`'s launcher lock for this process and writes its pid into it.
pub fn lock_launcher(dir: &Path) -> Result<LauncherLock, LockError> {
    use std::io::Write;
    let path = dir.join(LOCK_FILE);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    if try_lock(&file).map_err(io)? {
        file.set_len(0).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        return Ok(LauncherLock { _file: file });
    }
    Err(LockError::Held {
        pid: holder(&path).unwrap_or(0),
        dir: dir.to_path_buf(),
    })
}

/// The launcher running a cluster in `dir`, if one does: whoever holds its lock.
pub fn find_launcher(dir: &Path) -> Option<u32> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::File::open(&path).ok()?;
    // Taking the lock means nobody held it; it is let go again at once with the file.
    if try_lock(&file).ok()? {
        return None;
    }
    holder(&path)
}

/// Takes an exclusive lock without waiting: `false` when another process holds it.
fn try_lock(file: &std::fs::File) -> std::io::Result<bool> {
    use rustix::fs::{flock, FlockOperation};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn holder(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Every other running process with its command line.
fn processes() -> impl Iterator<Item = (u32, Vec<String>)> {
    let me = std::process::id();
    procfs::process::all_processes()
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(move |p| {
            let pid = u32::try_from(p.pid()).ok()?;
            if pid == me {
                return None;
            }
            let args = p.cmdline().ok()?;
            is_running(pid).then_some((pid, args))
        })
}

/// Alive and not a zombie.
pub fn is_running(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    procfs::process::Process::new(pid)
        .and_then(|p| p.stat())
        .is_ok_and(|stat| stat.state != 'Z' && stat.state != 'X')
}

pub fn default_path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_atomic_write() {
        let dir = tempfile::tempdir().unwrap();
        let file = ClusterFile {
            version: 1,
            launcher_pid: 42,
            started_at: "2026-01-01T00:00:00Z".into(),
            restart: false,
            ready_seconds: 0.4,
            prometheus: None,
            nodes: vec![NodeEntry {
                index: 0,
                role: "bootstrap".into(),
                mode: "altruistic".into(),
                pid: 7,
                peer_id: "16Uiu2".into(),
                host: "127.0.0.1".into(),
                api_port: 9080,
                listen_port: 20000,
                disc_port: 20001,
                api_url: "http://127.0.0.1:9080".into(),
                data_dir: dir.path().join("node-0/data"),
                log_file: dir.path().join("node-0/node.log"),
                netns: None,
                implementation: Implementation::Neverust,
            }],
        };
        let path = default_path(dir.path());
        file.write(&path).unwrap();
        let back = ClusterFile::read(&path).unwrap();
        assert_eq!(back.nodes, file.nodes);
        assert!(!path.with_extension("json.tmp").exists());
        assert!(ClusterFile::read(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string()
            .contains("missing.json"));
    }

    #[test]
    fn a_running_process_naming_a_node_dir_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let node_dir = dir.path().join("node-3");
        std::fs::create_dir_all(&node_dir).unwrap();
        let canonical = std::fs::canonicalize(&node_dir).unwrap();
        // `sh -c CMD NAME`: NAME becomes $0, so it shows in /proc/PID/cmdline. A
        // second command keeps the shell from exec'ing `sleep` (which would drop NAME).
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg("sleep 30; true")
            .arg(&canonical)
            .spawn()
            .unwrap();
        // Until the fork has exec'd, its cmdline is still this test binary's.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut stale = find_stale(dir.path());
        while !stale.iter().any(|s| s.pid == child.id()) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
            stale = find_stale(dir.path());
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // The shell's fork for `sleep` carries the same command line until it execs: it may
        // be listed too, and rightly (it names the directory).
        assert!(stale.iter().any(|s| s.pid == child.id()), "{stale:?}");
        assert!(stale.iter().all(|s| s.what.contains("node-3")), "{stale:?}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !find_stale(dir.path()).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(find_stale(dir.path()).is_empty());
        assert!(is_running(std::process::id()));
    }

    #[test]
    fn a_launcher_holds_its_dir_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        assert_eq!(find_launcher(dir.path()), None);
        let lock = lock_launcher(dir.path()).unwrap();
        let me = std::process::id();
        assert_eq!(find_launcher(dir.path()), Some(me));
        assert_eq!(find_launcher(other.path()), None);
        match lock_launcher(dir.path()) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, me),
            other => panic!("a second launcher took a held directory: {other:?}"),
        }
        drop(lock);
        assert_eq!(
            find_launcher(dir.path()),
            None,
            "the lock went with its holder"
        );
        let again = lock_launcher(dir.path());
        assert!(again.is_ok(), "{again:?}");
    }
}
