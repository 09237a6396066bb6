//! The words every kind of lab cluster shares, whether it runs as native processes
//! (`cluster`), under Compose or Kubernetes (`deploy`), or is only watched (`viz`): who is
//! the bootstrap and who runs in marketplace mode, the ports that belong to the lab's
//! services, the labels and job Prometheus scrapes nodes under, and `cluster.json`, the
//! description of a running cluster.
//!
//! It holds definitions only, no processes, files or sockets beyond reading and writing
//! `cluster.json`. Its reason to exist is the direction of imports: `cluster`, `deploy`
//! and `viz` each depend on this module rather than on one another, so a rule decided here
//! (the mode of node i, say) holds for all of them by construction.

pub mod cluster_file;
pub mod ports;
pub mod prometheus;

/// The `--mode` of node `index` in any cluster of the lab, native, Compose or Kubernetes:
/// marketplace when `index % marketplace_every == 0` (0: never). The bootstrap (index 0) is
/// altruistic: it is everyone's first peer and must not ration them.
pub fn mode_of(index: usize, marketplace_every: usize) -> &'static str {
    if index > 0 && marketplace_every > 0 && index.is_multiple_of(marketplace_every) {
        "marketplace"
    } else {
        "altruistic"
    }
}

/// One node of a cluster, as its metrics are labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub index: usize,
    /// `altruistic` or `marketplace`: the node's `--mode`.
    pub mode: &'static str,
}

impl Member {
    pub fn is_bootstrap(&self) -> bool {
        self.index == 0
    }

    /// `bootstrap` or `node`: the `role` label of the node's metrics.
    pub fn role(&self) -> &'static str {
        if self.is_bootstrap() {
            "bootstrap"
        } else {
            "node"
        }
    }
}
