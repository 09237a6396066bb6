//! One `neverust start` process on free loopback ports, outside any cluster: for scenarios
//! that set node configurations side by side (`cache`). The node picks its own ports (0)
//! and is found through the `READY api=... peer_id=...` line it prints once its API
//! listens; its output goes to a log file beside its data.
//!
//! It joins no cluster (no bootstrap) and is not in any `cluster.json`: the scenario that
//! starts it stops it, and a process left behind by an error is killed when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use super::error::{io_at, IoAt};
use crate::client::NodeClient;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SoloError {
    #[error("starting {}", binary.display())]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the node (pid {pid}) exited before it was ready; see {}", log.display())]
    Exited { pid: u32, log: PathBuf },
    #[error("the node (pid {pid}) was not ready within {limit:?}; see {}", log.display())]
    NotReady {
        pid: u32,
        limit: Duration,
        log: PathBuf,
    },
    #[error("no api= in {line:?}")]
    NoApi { line: String },
    #[error(transparent)]
    Io(#[from] IoAt),
}

pub struct SoloNode {
    child: Child,
    pub pid: u32,
    pub client: NodeClient,
    pub log_file: PathBuf,
}

impl SoloNode {
    /// Starts `binary start` with its data in `dir/data` and `args` after the port and
    /// directory flags; waits at most `limit` for its READY line.
    pub async fn start(
        binary: &Path,
        dir: &Path,
        args: &[String],
        limit: Duration,
    ) -> Result<SoloNode, SoloError> {
        std::fs::create_dir_all(dir.join("data")).map_err(io_at("creating", dir))?;
        let log_file = dir.join("node.log");
        let log = std::fs::File::create(&log_file).map_err(io_at("creating", &log_file))?;
        let mut child = Command::new(binary)
            .arg("start")
            .args(["--listen-ip", "127.0.0.1", "--api-bindaddr", "127.0.0.1"])
            .args(["--api-port", "0", "--listen-port", "0", "--disc-port", "0"])
            .args(["--log-level", "warn"])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.try_clone().map_err(io_at("opening", &log_file))?)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| SoloError::Spawn {
                binary: binary.to_path_buf(),
                source,
            })?;
        let pid = child.id().unwrap_or(0);
        let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let ready = tokio::time::timeout(limit, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("READY ") {
                    return Some(line);
                }
            }
            None
        })
        .await;
        let ready = match ready {
            Ok(Some(line)) => line,
            Ok(None) => return Err(SoloError::Exited { pid, log: log_file }),
            Err(_) => {
                return Err(SoloError::NotReady {
                    pid,
                    limit,
                    log: log_file,
                })
            }
        };
        // Whatever else it prints goes to its log; a full pipe would block it.
        let mut log = tokio::fs::File::from_std(log);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = log.write_all(format!("{line}\n").as_bytes()).await;
            }
        });
        let api = ready
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("api="))
            .ok_or_else(|| SoloError::NoApi {
                line: ready.clone(),
            })?;
        Ok(SoloNode {
            child,
            pid,
            client: NodeClient::new(api),
            log_file,
        })
    }

    /// SIGTERM, then SIGKILL if it has not exited within 10 s.
    pub async fn stop(mut self) {
        let _ = super::signal(self.pid, Signal::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
