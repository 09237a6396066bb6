//! Why a cluster, or one of its processes, could not be started, reached or stopped. Each
//! error names the node, pid or path involved; the cause, when there is one, is its source,
//! so that `{:#}` (or [`crate::error_chain`]) prints the same line the user always saw.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::ports::PortError;
use super::processes::LockError;
use crate::client::ClientError;
use crate::topology::cluster_file::ClusterFileError;

/// A file or directory operation that failed, and on which path.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}", path.display())]
pub struct IoAt {
    /// `creating`, `opening`, ...: what was being done to `path`.
    pub what: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// `map_err(io_at("creating", &dir))`: an io error with what was done and where.
pub fn io_at(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> IoAt {
    let path = path.to_path_buf();
    move |source| IoAt { what, path, source }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    #[error("no process to signal")]
    NoProcess,
    #[error("sending {signal} to pid {pid}")]
    Send {
        signal: Signal,
        pid: u32,
        #[source]
        source: nix::Error,
    },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    #[error("--nodes must be at least 2 (a bootstrap and one node), got {nodes}")]
    TooFewNodes { nodes: usize },
    #[error(
        "nodes of an earlier cluster in {} are still running:\n{list}\nstop them first (`neverust cluster stop --dir {}`), or use another --dir",
        dir.display(),
        given.display()
    )]
    Stale {
        dir: PathBuf,
        /// One line per process.
        list: String,
        /// The directory as the user named it.
        given: PathBuf,
    },
    #[error(
        "the cluster did not come up (ready timeout {timeout:?}); node logs are in {}",
        dir.display()
    )]
    NotUp {
        timeout: Duration,
        dir: PathBuf,
        #[source]
        source: Box<ClusterError>,
    },
    #[error("node {index} came up but did not say its peer id")]
    NoPeerId {
        index: usize,
        #[source]
        source: ClientError,
    },
    #[error("the bootstrap node did not become healthy")]
    BootstrapUnhealthy {
        #[source]
        source: Box<ClusterError>,
    },
    #[error("the bootstrap node did not give its DHT record")]
    BootstrapRecord {
        #[source]
        source: ClientError,
    },
    #[error("the bootstrap node does not take part in Archivist's DHT (its record names no UDP port: was NEVERUST_ARCHIVIST_DHT=false set?), so the Archivist nodes could not join the network")]
    NoArchivistDht,
    #[error("starting node {index} ({})", binary.display())]
    Spawn {
        index: usize,
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("node {index} (pid {pid}) exited while starting; see {}", log.display())]
    Exited {
        index: usize,
        pid: u32,
        log: PathBuf,
    },
    #[error("{count} node(s) not ready: {detail}")]
    NotReady { count: usize, detail: String },
    #[error("this cluster was started without --restart: the bench cannot restart node {index}")]
    NoRestart { index: usize },
    #[error("node {index} was not restarted by its launcher within {limit:?}")]
    NotRestarted { index: usize, limit: Duration },
    #[error(transparent)]
    Io(#[from] IoAt),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Ports(#[from] PortError),
    #[error(transparent)]
    File(#[from] ClusterFileError),
    #[error(transparent)]
    Signal(#[from] SignalError),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message the user reads is the chain, each step saying what it was doing, as the
    /// launcher printed it before these were enums.
    #[test]
    fn the_chain_reads_outside_in() {
        let e = ClusterError::NotUp {
            timeout: Duration::from_secs(2),
            dir: PathBuf::from("/c"),
            source: Box::new(ClusterError::Io(io_at(
                "opening",
                Path::new("/c/node-1/node.log"),
            )(std::io::Error::from(
                std::io::ErrorKind::PermissionDenied,
            )))),
        };
        assert_eq!(
            crate::error_chain(&e),
            "the cluster did not come up (ready timeout 2s); node logs are in /c: \
             opening /c/node-1/node.log: permission denied"
        );
    }
}
