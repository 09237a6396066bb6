//! When a cluster is up: the order nodes start in, what each says about itself, and the
//! polling that waits until every one has joined (or says why not).

use std::time::{Duration, Instant};

use super::{processes, Cluster, ClusterError};
use crate::topology::cluster_file::Implementation;

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
    /// Starts every node and waits until all have joined: the bootstrap first (the others
    /// fetch its record as they start, and would back off for seconds if it were not there
    /// yet), then the rest. Archivist nodes join Archivist's DHT through the bootstrap's
    /// record (our nodes take part in it), and find content there, as in a real network.
    pub(super) async fn start_all(
        &mut self,
        bar: &indicatif::ProgressBar,
    ) -> Result<(), ClusterError> {
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

    /// Polls the given nodes until `ready(index, status)` holds for all of them.
    pub(super) async fn wait_until(
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

    pub(super) fn exited(&self, index: usize) -> Option<u32> {
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
}
