//! Prometheus scrape configs for deployed clusters: a static target per node for Compose,
//! pod discovery with relabeling for Kubernetes. Both put on every target the labels of
//! `topology::prometheus`, the same as the native cluster's file-based discovery.

use super::topology::Topology;
use crate::topology::prometheus::{
    config, job, Config, KubernetesSd, Labels, Namespaces, Relabel, ScrapeConfig, StaticConfig,
};
use crate::topology::Member;

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
