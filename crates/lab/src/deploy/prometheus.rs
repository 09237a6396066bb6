//! Prometheus scrape configs: a static target per node for Compose, pod discovery with
//! relabeling for Kubernetes, and file-based discovery for the native cluster.
//!
//! Either way every series carries the labels the dashboards and the visualizer group by,
//! the same as the native cluster's: `node` (the index), `role` (`bootstrap` or `node`) and
//! `mode` (`altruistic` or `marketplace`). Every node is scraped every 5 s, as in the seed.

use std::path::Path;

use serde::Serialize;

use super::topology::{Member, Topology};

pub const JOB: &str = "neverust";
/// The seed's interval; the dashboards' rate windows assume it.
pub const SCRAPE_INTERVAL: &str = "5s";
/// Below the interval, so a slow node never has two scrapes in flight.
pub const SCRAPE_TIMEOUT: &str = "4s";

#[derive(Serialize, Debug)]
pub struct Config {
    pub global: Global,
    pub scrape_configs: Vec<ScrapeConfig>,
}

#[derive(Serialize, Debug)]
pub struct Global {
    pub scrape_interval: &'static str,
    pub evaluation_interval: &'static str,
}

#[derive(Serialize, Debug)]
pub struct ScrapeConfig {
    pub job_name: &'static str,
    pub metrics_path: &'static str,
    pub scrape_timeout: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub static_configs: Vec<StaticConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kubernetes_sd_configs: Vec<KubernetesSd>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub file_sd_configs: Vec<FileSd>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub relabel_configs: Vec<Relabel>,
}

#[derive(Serialize, Debug)]
pub struct StaticConfig {
    pub targets: Vec<String>,
    pub labels: Labels,
}

/// The labels every node's series carry.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct Labels {
    pub node: String,
    pub role: &'static str,
    pub mode: &'static str,
}

impl Labels {
    pub fn of(member: &Member) -> Labels {
        Labels {
            node: member.index.to_string(),
            role: member.role(),
            mode: member.mode,
        }
    }
}

/// A file of `StaticConfig`s (as JSON) that Prometheus re-reads when it changes.
#[derive(Serialize, Debug)]
pub struct FileSd {
    pub files: Vec<String>,
    pub refresh_interval: &'static str,
}

#[derive(Serialize, Debug)]
pub struct KubernetesSd {
    pub role: &'static str,
    pub namespaces: Namespaces,
}

#[derive(Serialize, Debug)]
pub struct Namespaces {
    pub names: Vec<String>,
}

/// One relabeling step; Prometheus anchors `regex` at both ends.
#[derive(Serialize, Debug, Default)]
pub struct Relabel {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_labels: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_label: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
}

fn config(scrape: ScrapeConfig) -> Config {
    Config {
        global: Global {
            scrape_interval: SCRAPE_INTERVAL,
            evaluation_interval: SCRAPE_INTERVAL,
        },
        scrape_configs: vec![scrape],
    }
}

fn job() -> ScrapeConfig {
    ScrapeConfig {
        job_name: JOB,
        metrics_path: "/metrics",
        scrape_timeout: SCRAPE_TIMEOUT,
        static_configs: Vec::new(),
        kubernetes_sd_configs: Vec::new(),
        file_sd_configs: Vec::new(),
        relabel_configs: Vec::new(),
    }
}

/// The targets, with their labels, are in `targets_file` (see `cluster::prometheus`).
pub fn file_sd_config(targets_file: &Path) -> Config {
    config(ScrapeConfig {
        file_sd_configs: vec![FileSd {
            files: vec![targets_file.display().to_string()],
            refresh_interval: SCRAPE_INTERVAL,
        }],
        ..job()
    })
}

/// One target per node, at the address `address` gives it (`host:port`).
pub fn static_config(topology: &Topology, address: impl Fn(&Member) -> String) -> Config {
    config(ScrapeConfig {
        static_configs: topology
            .members()
            .map(|m| StaticConfig {
                targets: vec![address(&m)],
                labels: Labels::of(&m),
            })
            .collect(),
        ..job()
    })
}

/// Pods of `namespace` that ask to be scraped (`prometheus.io/scrape: "true"`), on their
/// port named `port_name`. Pod `<statefulset>-<i>` is node i: the labels are derived from
/// the pod's name, and the marketplace nodes are listed from the topology (a relabeling
/// cannot compute `i % k`).
pub fn kubernetes_config(
    topology: &Topology,
    namespace: &str,
    statefulset: &str,
    port_name: &str,
) -> Config {
    let set = |target: &'static str, value: &str| Relabel {
        target_label: Some(target),
        replacement: Some(value.to_string()),
        ..Default::default()
    };
    let mut relabel = vec![
        Relabel {
            source_labels: vec!["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
            regex: Some("true".into()),
            action: Some("keep"),
            ..Default::default()
        },
        // A pod is discovered once per declared port; only the API serves /metrics.
        Relabel {
            source_labels: vec!["__meta_kubernetes_pod_container_port_name"],
            regex: Some(port_name.into()),
            action: Some("keep"),
            ..Default::default()
        },
        Relabel {
            source_labels: vec!["__meta_kubernetes_pod_annotation_prometheus_io_path"],
            regex: Some("(.+)".into()),
            target_label: Some("__metrics_path__"),
            ..Default::default()
        },
        // The pod's name, not its IP (which changes when the pod is rescheduled).
        Relabel {
            source_labels: vec!["__meta_kubernetes_pod_name"],
            target_label: Some("instance"),
            ..Default::default()
        },
        Relabel {
            source_labels: vec!["__meta_kubernetes_pod_name"],
            regex: Some(format!("{statefulset}-(\\d+)")),
            target_label: Some("node"),
            replacement: Some("$1".into()),
            ..Default::default()
        },
        set("role", "node"),
        Relabel {
            source_labels: vec!["node"],
            regex: Some("0".into()),
            ..set("role", "bootstrap")
        },
        set("mode", "altruistic"),
    ];
    let marketplace = topology.marketplace_indices();
    if !marketplace.is_empty() {
        relabel.push(Relabel {
            source_labels: vec!["node"],
            regex: Some(alternatives(&marketplace)),
            ..set("mode", "marketplace")
        });
    }
    config(ScrapeConfig {
        kubernetes_sd_configs: vec![KubernetesSd {
            role: "pod",
            namespaces: Namespaces {
                names: vec![namespace.to_string()],
            },
        }],
        relabel_configs: relabel,
        ..job()
    })
}

/// `3|6|9`: matches exactly these numbers once anchored.
pub fn alternatives(indices: &[usize]) -> String {
    indices
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join("|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::topology::Resources;

    fn topo(n: usize) -> Topology {
        Topology::new(n, 3, Resources::default()).unwrap()
    }

    #[test]
    fn a_labelled_target_per_node() {
        let c = static_config(&topo(7), |m| format!("n{}:8080", m.index));
        let targets = &c.scrape_configs[0].static_configs;
        assert_eq!(targets.len(), 7);
        assert_eq!(targets[0].targets, vec!["n0:8080"]);
        assert_eq!(
            targets[0].labels,
            Labels {
                node: "0".into(),
                role: "bootstrap",
                mode: "altruistic"
            }
        );
        assert_eq!(targets[6].labels.mode, "marketplace");
        assert_eq!(targets[5].labels.mode, "altruistic");
        // Label values are strings: "0" must not come back as a number.
        let yaml = crate::deploy::to_yaml(&c).unwrap();
        let back: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(
            back["scrape_configs"][0]["static_configs"][0]["labels"]["node"].as_str(),
            Some("0")
        );
        assert_eq!(back["global"]["scrape_interval"].as_str(), Some("5s"));
    }

    /// The relabeling regexes, run as Prometheus runs them (anchored, RE2 syntax), give
    /// every pod the labels the lab's rule gives its node.
    #[test]
    fn kubernetes_relabeling_names_every_pod_as_its_node() {
        let n = 200;
        let c = kubernetes_config(&topo(n), "lab", "neverust", "api");
        let rules = &c.scrape_configs[0].relabel_configs;
        let anchored = |r: &Relabel| {
            regex::Regex::new(&format!("^(?:{})$", r.regex.as_deref().unwrap_or("(.*)"))).unwrap()
        };
        let node_rule = rules
            .iter()
            .find(|r| r.target_label == Some("node"))
            .unwrap();
        let mode_rule = rules
            .iter()
            .find(|r| r.replacement.as_deref() == Some("marketplace"))
            .unwrap();
        let role_rule = rules
            .iter()
            .find(|r| r.replacement.as_deref() == Some("bootstrap"))
            .unwrap();
        for i in 0..n {
            let pod = format!("neverust-{i}");
            let caps = anchored(node_rule)
                .captures(&pod)
                .expect("pod name matches");
            let node = caps.get(1).unwrap().as_str();
            assert_eq!(node, i.to_string());
            assert_eq!(
                anchored(mode_rule).is_match(node),
                i > 0 && i.is_multiple_of(3),
                "mode of node {i}"
            );
            assert_eq!(anchored(role_rule).is_match(node), i == 0);
        }
        assert!(!anchored(mode_rule).is_match("30x"));
        assert!(!anchored(node_rule).is_match("prometheus-5d9f"));
        assert_eq!(
            c.scrape_configs[0].kubernetes_sd_configs[0]
                .namespaces
                .names,
            vec!["lab"]
        );
    }
}
