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

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterFileError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a cluster file", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl ClusterFile {
    pub fn read(path: &Path) -> Result<ClusterFile, ClusterFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClusterFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ClusterFileError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(tmp, path)
    }
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
}
