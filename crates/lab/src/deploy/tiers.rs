//! `--node-tier` for deployed nodes: the same specs as `neverust cluster --node-tier` (and
//! `neverust start --tier`), given to every node as `NEVERUST_TIERS`.
//!
//! A persistent tier's directory is a path inside the node's container, and every node has
//! its own volume mounted there (Compose: a named volume per node per tier; Kubernetes: a
//! claim template per tier), so no per-node subdirectory is needed and `{node}` is refused:
//! a Kubernetes pod template is the same for every pod and could not vary the mount. This
//! module only checks and names the tiers; the generators mount them.

use neverust_node::tiers::{validate, TierSpec};

use super::DeployError;

/// One tier of every deployed node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployTier {
    /// The spec as given, passed on unchanged in `NEVERUST_TIERS`.
    pub spec: String,
    /// Kind and position, as the node labels the tier's metrics (`memory0`, `ssd1`): the
    /// name of its volume, so a volume reads as the series it feeds.
    pub label: String,
    /// The container path of a persistent tier; `None` for memory.
    pub dir: Option<String>,
    pub capacity: u64,
}

fn refuse(why: String) -> DeployError {
    DeployError::Tier { why }
}

/// Parses and checks the `--node-tier` list as a node would, plus what containers need:
/// absolute directories, no `{node}`, no `;` (it separates specs in `NEVERUST_TIERS`).
pub fn parse(specs: &[String]) -> Result<Vec<DeployTier>, DeployError> {
    let mut parsed = Vec::with_capacity(specs.len());
    for text in specs {
        if text.contains("{node}") || text.contains(';') {
            return Err(refuse(format!(
                "{text}: a deployed node has its own volume at the tier's directory, so the directory is the same for every node: drop {{node}} (and ';')"
            )));
        }
        let spec: TierSpec = text.parse().map_err(|e| refuse(format!("{e}")))?;
        if let Some(dir) = spec.dir.as_ref().filter(|d| !d.is_absolute()) {
            return Err(refuse(format!(
                "{text}: the directory must be an absolute path inside the container (e.g. /tiers/ssd), not {}",
                dir.display()
            )));
        }
        parsed.push(spec);
    }
    validate(&parsed).map_err(|e| refuse(e.to_string()))?;
    Ok(parsed
        .into_iter()
        .zip(specs)
        .enumerate()
        .map(|(i, (s, text))| DeployTier {
            spec: text.clone(),
            label: format!("{}{i}", s.kind.name()),
            dir: s.dir.map(|d| d.display().to_string()),
            capacity: s.capacity,
        })
        .collect())
}

/// `NEVERUST_TIERS` for these tiers (`;` between specs, as `neverust start` reads it).
pub fn env_value(tiers: &[DeployTier]) -> String {
    tiers
        .iter()
        .map(|t| t.spec.as_str())
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tiers_are_labelled_as_their_metrics() {
        let t = parse(&specs(&[
            "memory:64MiB",
            "ssd:/tiers/ssd:1GiB",
            "hdd:/tiers/hdd:10GiB:latency=8ms,bw=150MB/s",
        ]))
        .unwrap();
        let labels: Vec<&str> = t.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["memory0", "ssd1", "hdd2"]);
        assert_eq!(t[0].dir, None);
        assert_eq!(t[2].dir.as_deref(), Some("/tiers/hdd"));
        assert_eq!(t[1].capacity, 1 << 30);
        assert_eq!(
            env_value(&t),
            "memory:64MiB;ssd:/tiers/ssd:1GiB;hdd:/tiers/hdd:10GiB:latency=8ms,bw=150MB/s"
        );
    }

    #[test]
    fn what_a_container_cannot_use_is_refused() {
        for (bad, why) in [
            ("ssd:tiers/ssd:1GiB", "absolute path"),
            ("ssd:/tiers/{node}:1GiB", "drop {node}"),
            ("tape:/t:1GiB", "unknown kind"),
            ("memory:1GiB", "no tier keeps blocks durably"),
        ] {
            let err = parse(&specs(&[bad])).unwrap_err().to_string();
            assert!(err.starts_with("--node-tier"), "{err}");
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
