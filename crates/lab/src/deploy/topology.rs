//! A deployed cluster's shape: how many nodes, each with its mode by the lab's one rule
//! (`topology::mode_of`, node 0 the bootstrap), and the same resources and tiers for all. Compose, Kubernetes and their Prometheus configs all read this, so they
//! agree on every node; addresses and names are each target's own business.

use super::tiers::DeployTier;
use super::DeployError;
use crate::topology::{mode_of, Member};

#[derive(Debug, Clone)]
pub struct Topology {
    /// Nodes, the bootstrap included (as `neverust cluster --nodes` counts them).
    pub nodes: usize,
    /// Node i ≥ 1 is a marketplace node when `i % marketplace_every == 0`; 0: none.
    pub marketplace_every: usize,
    pub resources: Resources,
    /// Every node's tiers (`--node-tier`); empty: the plain store under the data directory.
    pub tiers: Vec<DeployTier>,
}

impl Topology {
    pub fn new(
        nodes: usize,
        marketplace_every: usize,
        resources: Resources,
    ) -> Result<Topology, DeployError> {
        if nodes < 2 {
            return Err(DeployError::TooFewNodes { nodes });
        }
        Ok(Topology {
            nodes,
            marketplace_every,
            resources,
            tiers: Vec::new(),
        })
    }

    /// Every node on these tiers (`--node-tier`, see [`super::tiers::parse`]). A memory
    /// tier must leave the node room within its `--memory` limit.
    pub fn with_tiers(mut self, specs: &[String]) -> Result<Topology, DeployError> {
        let tiers = super::tiers::parse(specs)?;
        let limit = self.resources.memory_mib << 20;
        if let Some(m) = tiers
            .iter()
            .find(|t| t.dir.is_none() && t.capacity >= limit)
        {
            return Err(DeployError::Tier {
                why: format!(
                    "{}: the memory tier would fill the node's whole --memory limit ({} MiB)",
                    m.spec, self.resources.memory_mib
                ),
            });
        }
        self.tiers = tiers;
        Ok(self)
    }

    /// The persistent tiers, each on a volume of its own.
    pub fn persistent_tiers(&self) -> impl Iterator<Item = &DeployTier> + '_ {
        self.tiers.iter().filter(|t| t.dir.is_some())
    }

    pub fn member(&self, index: usize) -> Member {
        Member {
            index,
            mode: mode_of(index, self.marketplace_every),
        }
    }

    /// Every node, the bootstrap first.
    pub fn members(&self) -> impl Iterator<Item = Member> + '_ {
        (0..self.nodes).map(|i| self.member(i))
    }

    /// Indices of the marketplace nodes, for targets that must list them (Kubernetes: one
    /// pod template for every node, so the choice is made from the pod's ordinal).
    pub fn marketplace_indices(&self) -> Vec<usize> {
        self.members()
            .filter(|m| m.mode == "marketplace")
            .map(|m| m.index)
            .collect()
    }
}

/// What one node may use: its limit, and a quarter of it reserved (requested). The seed's
/// Compose file capped nodes the same way; a quarter lets a 50-node cluster be scheduled on
/// one machine while a busy node can still burst to its limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resources {
    pub cpu_millis: u32,
    pub memory_mib: u64,
}

impl Default for Resources {
    fn default() -> Resources {
        Resources {
            cpu_millis: 1000,
            memory_mib: 512,
        }
    }
}

impl Resources {
    /// From `--cpus` (cores, fractions allowed) and `--memory` (bytes).
    pub fn new(cpus: f64, memory_bytes: u64) -> Result<Resources, DeployError> {
        if !(cpus > 0.0 && cpus <= 1024.0) {
            return Err(DeployError::Cpus { cpus });
        }
        let memory_mib = memory_bytes / (1024 * 1024);
        if memory_mib < 64 {
            return Err(DeployError::Memory {
                bytes: memory_bytes,
            });
        }
        Ok(Resources {
            cpu_millis: ((cpus * 1000.0).round() as u32).max(1),
            memory_mib,
        })
    }

    pub fn reserved(&self) -> Resources {
        Resources {
            cpu_millis: (self.cpu_millis / 4).max(1),
            memory_mib: (self.memory_mib / 4).max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_first_and_every_third_node_marketplace() {
        let t = Topology::new(10, 3, Resources::default()).unwrap();
        let members: Vec<Member> = t.members().collect();
        assert_eq!(members.len(), 10);
        assert!(members[0].is_bootstrap() && members[0].mode == "altruistic");
        assert_eq!(t.marketplace_indices(), vec![3, 6, 9]);
        assert!(members[1..].iter().all(|m| m.role() == "node"));
        let none = Topology::new(10, 0, Resources::default()).unwrap();
        assert!(none.marketplace_indices().is_empty());
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(matches!(
            Topology::new(1, 3, Resources::default()),
            Err(DeployError::TooFewNodes { nodes: 1 })
        ));
        assert!(Resources::new(0.0, 1 << 30).is_err());
        assert!(Resources::new(f64::NAN, 1 << 30).is_err());
        assert!(Resources::new(0.5, 1 << 20).is_err());
        let r = Resources::new(0.5, 256 << 20).unwrap();
        assert_eq!((r.cpu_millis, r.memory_mib), (500, 256));
        assert_eq!(r.reserved().cpu_millis, 125);
    }
}
