//! How one node's process is started: Neverust's flags or Archivist's, inside its network
//! namespace if it has one, its output appended to its log, in a process group of its own.

use std::process::Stdio;

use tokio::process::Command;

use super::error::io_at;
use super::{archivist, node_tier, worker_threads, Cluster, ClusterError};
use crate::topology::cluster_file::Implementation;

impl Cluster {
    pub(super) fn spawn(&mut self, index: usize) -> Result<(), ClusterError> {
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
            .args(["--worker-threads", &worker_threads(spec.nodes).to_string()])
            .args(["--proof-period", &seconds(spec.proof_period)])
            .args(["--proof-timeout", &seconds(spec.proof_timeout)]);
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
}

/// A duration as `neverust start` reads one (whole seconds: the market counts in them).
fn seconds(d: std::time::Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}
