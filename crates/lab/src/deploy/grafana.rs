//! Grafana's provisioning (the Prometheus datasource, the dashboard provider) and the
//! dashboards, from `deploy/grafana` in the repository: the one copy of them.
//!
//! Compose mounts that folder from the checkout; Kubernetes has no checkout to mount, so the
//! same files are embedded here and shipped as ConfigMaps.

/// Where the Grafana image reads provisioning files.
pub const PROVISIONING_DIR: &str = "/etc/grafana/provisioning";
/// Where `deploy/grafana/provisioning/dashboards/neverust.yml` tells Grafana to load
/// dashboards from.
pub const DASHBOARDS_DIR: &str = "/var/lib/grafana/dashboards";
/// The seed's login (admin/neverust): a lab's dashboards, not a production Grafana.
pub const ADMIN_PASSWORD: &str = "neverust";

/// The repository's folder of these files, relative to its root.
pub const REPO_DIR: &str = "deploy/grafana";

/// `provisioning/datasources/prometheus.yml`: the datasource at http://prometheus:9090.
pub const DATASOURCE: (&str, &str) = (
    "prometheus.yml",
    include_str!("../../../../deploy/grafana/provisioning/datasources/prometheus.yml"),
);

/// `provisioning/dashboards/neverust.yml`: loads every dashboard in [`DASHBOARDS_DIR`].
pub const DASHBOARD_PROVIDER: (&str, &str) = (
    "neverust.yml",
    include_str!("../../../../deploy/grafana/provisioning/dashboards/neverust.yml"),
);

/// `dashboards/*.json`.
pub const DASHBOARDS: [(&str, &str); 2] = [
    (
        "cluster-overview.json",
        include_str!("../../../../deploy/grafana/dashboards/cluster-overview.json"),
    ),
    (
        "node-detail.json",
        include_str!("../../../../deploy/grafana/dashboards/node-detail.json"),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn repo() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
    }

    /// A dashboard added to the folder but not here would be missing on Kubernetes only.
    #[test]
    fn every_dashboard_in_the_repository_is_embedded() {
        let mut on_disk: Vec<String> = std::fs::read_dir(repo().join(REPO_DIR).join("dashboards"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<&str> = DASHBOARDS.iter().map(|d| d.0).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
        for (name, json) in DASHBOARDS {
            serde_json::from_str::<serde_json::Value>(json)
                .unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
        }
    }

    #[test]
    fn the_provider_loads_from_where_the_dashboards_are_mounted() {
        let provider: serde_yaml_ng::Value = serde_yaml_ng::from_str(DASHBOARD_PROVIDER.1).unwrap();
        assert_eq!(
            provider["providers"][0]["options"]["path"].as_str(),
            Some(DASHBOARDS_DIR)
        );
        let ds: serde_yaml_ng::Value = serde_yaml_ng::from_str(DATASOURCE.1).unwrap();
        assert_eq!(
            ds["datasources"][0]["url"].as_str(),
            Some(
                format!(
                    "http://prometheus:{}",
                    crate::topology::ports::PROMETHEUS_PORT
                )
                .as_str()
            )
        );
    }
}
