//! The ports that belong to the lab's services, the same in every kind of cluster: a
//! native cluster's port scheme must step around them, and Compose publishes them.

/// The bootstrap's API, the seed's 9080 (inside a container every node uses 8080).
pub const BOOTSTRAP_API_PORT: u16 = 9080;
pub const PROMETHEUS_PORT: u16 = 9090;
pub const GRAFANA_PORT: u16 = 3000;
pub const VIZ_PORT: u16 = 8888;
