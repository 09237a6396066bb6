//! The seed's Docker Compose layout for any N: the bootstrap at 172.25.0.10, nodes from
//! 172.25.1.1 on a 172.25.0.0/16 bridge, Prometheus, Grafana and the visualizer beside them.
//!
//! Node i ≥ 1 is at `172.25.{1 + (i-1)/254}.{1 + (i-1)%254}`: 172.25.1.1–172.25.1.254 for
//! the first 254 (the seed's range), then 172.25.2.1 and so on. 172.25.0.x is left to the
//! bootstrap and to what Docker gives out itself (the gateway, Prometheus, Grafana, the
//! visualizer get dynamic addresses from the bottom of the range).
//!
//! Every container uses the seed's ports on its own address; the host sees the bootstrap's
//! API on 9080, nodes 1–5 on 9081–9085, Prometheus on 9090, Grafana on 3000 and the
//! visualizer on 8888. Each node listens for peers on its own address only, so the
//! addresses it announces (and that the bootstrap's `/debug/info` lists) are reachable.

use std::net::Ipv4Addr;

use indexmap::IndexMap;
use serde::Serialize;

use super::topology::{Resources, Topology};
use super::{grafana, prometheus, DeployError};
use super::{API_PORT, DATA_DIR, DISC_PORT, LISTEN_PORT};
use crate::topology::ports::{BOOTSTRAP_API_PORT, GRAFANA_PORT, PROMETHEUS_PORT, VIZ_PORT};
use crate::topology::prometheus::Config;
use crate::topology::Member;

pub const NETWORK: &str = "neverust-net";
pub const SUBNET: &str = "172.25.0.0/16";
pub const BOOTSTRAP_ADDRESS: Ipv4Addr = Ipv4Addr::new(172, 25, 0, 10);
/// Host ports: the bootstrap's API, then nodes 1..=PUBLISHED_NODES on the next ones.
pub const BOOTSTRAP_HOST_PORT: u16 = BOOTSTRAP_API_PORT;
pub const PUBLISHED_NODES: usize = 5;
/// Addresses per third octet (.1–.254) and third octets for nodes (1–254).
const PER_OCTET: usize = 254;
pub const MAX_NODES: usize = 1 + PER_OCTET * PER_OCTET;

/// What `neverust compose` writes beside the compose file (the file mounts it).
pub const PROMETHEUS_FILE: &str = "prometheus.yml";
pub const COMPOSE_FILE: &str = "docker-compose.yml";

#[derive(Debug, Clone)]
pub struct ComposeOptions {
    pub topology: Topology,
    /// The repository's root as seen from the compose file's folder: the build context
    /// and where Grafana's files are mounted from (`..` for `benchmarks/`).
    pub repo: String,
    /// The image the Dockerfile's default target is built as, and every node runs.
    pub image: String,
    /// The image of its visualizer target, which the visualizer runs.
    pub viz_image: String,
}

/// Node `index`'s service (and host) name: `bootstrap`, `node1`, `node2`, ...
pub fn service_name(index: usize) -> String {
    if index == 0 {
        "bootstrap".into()
    } else {
        format!("node{index}")
    }
}

/// Node `index`'s address on the network (see the module doc for the scheme).
pub fn address(index: usize) -> Ipv4Addr {
    if index == 0 {
        return BOOTSTRAP_ADDRESS;
    }
    let k = index - 1;
    Ipv4Addr::new(
        172,
        25,
        (1 + k / PER_OCTET) as u8,
        (1 + k % PER_OCTET) as u8,
    )
}

/// The host port publishing node `index`'s API, if it is published.
pub fn host_port(index: usize) -> Option<u16> {
    (index <= PUBLISHED_NODES).then(|| BOOTSTRAP_HOST_PORT + index as u16)
}

#[derive(Serialize, Debug)]
pub struct ComposeFile {
    pub services: IndexMap<String, Service>,
    pub networks: IndexMap<String, Network>,
    pub volumes: IndexMap<String, Volume>,
}

#[derive(Serialize, Debug, Default)]
pub struct Service {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    pub image: String,
    /// `never` on services that run the image another service builds: there is nothing
    /// to pull, and a pull of a local tag would fail before the build made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<&'static str>,
    pub container_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub environment: IndexMap<&'static str, String>,
    pub networks: IndexMap<&'static str, Attachment>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub depends_on: IndexMap<String, Condition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Health>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
}

#[derive(Serialize, Debug)]
pub struct Build {
    pub context: String,
    pub dockerfile: &'static str,
    /// The Dockerfile's stage; none: its last (the node's image).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<&'static str>,
}

#[derive(Serialize, Debug, Default)]
pub struct Attachment {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
}

#[derive(Serialize, Debug)]
pub struct Condition {
    pub condition: &'static str,
}

#[derive(Serialize, Debug)]
#[serde(untagged)]
pub enum Health {
    Check(Healthcheck),
    /// For a container of our image that is not a node: the image's own check asks a
    /// node's `/health`, which is not there.
    Disabled {
        disable: bool,
    },
}

#[derive(Serialize, Debug)]
pub struct Healthcheck {
    pub test: Vec<&'static str>,
    pub interval: &'static str,
    pub timeout: &'static str,
    pub retries: u32,
    pub start_period: &'static str,
}

#[derive(Serialize, Debug)]
pub struct Deploy {
    pub resources: DeployResources,
}

#[derive(Serialize, Debug)]
pub struct DeployResources {
    pub limits: Limit,
    pub reservations: Limit,
}

#[derive(Serialize, Debug)]
pub struct Limit {
    pub cpus: String,
    pub memory: String,
}

impl Limit {
    fn of(r: Resources) -> Limit {
        Limit {
            cpus: format!("{}", r.cpu_millis as f64 / 1000.0),
            memory: format!("{}M", r.memory_mib),
        }
    }
}

#[derive(Serialize, Debug)]
pub struct Network {
    pub name: &'static str,
    pub driver: &'static str,
    pub ipam: Ipam,
}

#[derive(Serialize, Debug)]
pub struct Ipam {
    pub config: Vec<Subnet>,
}

#[derive(Serialize, Debug)]
pub struct Subnet {
    pub subnet: &'static str,
}

/// A named volume with Docker's defaults.
#[derive(Serialize, Debug, Default)]
pub struct Volume {}

fn volume_name(index: usize) -> String {
    format!("{}-data", service_name(index))
}

/// The named volume behind node `index`'s persistent tier `label` (e.g. `node3-tier-ssd1`).
pub fn tier_volume_name(index: usize, label: &str) -> String {
    format!("{}-tier-{label}", service_name(index))
}

fn on_network(address: Option<Ipv4Addr>) -> IndexMap<&'static str, Attachment> {
    IndexMap::from([(
        NETWORK,
        Attachment {
            ipv4_address: address.map(|a| a.to_string()),
        },
    )])
}

fn depends_on(service: &str, condition: &'static str) -> IndexMap<String, Condition> {
    IndexMap::from([(service.to_string(), Condition { condition })])
}

fn node_service(opts: &ComposeOptions, m: Member) -> Service {
    let name = service_name(m.index);
    let mut environment = IndexMap::from([
        // The API must be reachable from Prometheus, the visualizer and the host.
        ("NEVERUST_API_BINDADDR", "0.0.0.0".to_string()),
        ("NEVERUST_LISTEN_IP", address(m.index).to_string()),
    ]);
    if !m.is_bootstrap() {
        environment.insert("BOOTSTRAP_NODE", format!("{}:{API_PORT}", service_name(0)));
    }
    let t = &opts.topology;
    if !t.tiers.is_empty() {
        environment.insert("NEVERUST_TIERS", super::tiers::env_value(&t.tiers));
    }
    let mut volumes = vec![format!("{}:{DATA_DIR}", volume_name(m.index))];
    volumes.extend(t.persistent_tiers().map(|tier| {
        let dir = tier.dir.as_deref().expect("persistent");
        format!("{}:{dir}", tier_volume_name(m.index, &tier.label))
    }));
    let resources = opts.topology.resources;
    Service {
        build: m.is_bootstrap().then(|| Build {
            context: opts.repo.clone(),
            dockerfile: "Dockerfile",
            target: None,
        }),
        image: opts.image.clone(),
        pull_policy: (!m.is_bootstrap()).then_some("never"),
        container_name: format!("neverust-{name}"),
        hostname: Some(name.clone()),
        command: [
            "start",
            "--mode",
            m.mode,
            "--listen-port",
            &LISTEN_PORT.to_string(),
            "--disc-port",
            &DISC_PORT.to_string(),
            "--api-port",
            &API_PORT.to_string(),
            "--data-dir",
            DATA_DIR,
            "--log-level",
            // The seed's choice: a hundred nodes logging at info drown the bootstrap's.
            if m.is_bootstrap() { "info" } else { "warn" },
        ]
        .map(String::from)
        .to_vec(),
        environment,
        networks: on_network(Some(address(m.index))),
        ports: host_port(m.index)
            .map(|p| format!("{p}:{API_PORT}"))
            .into_iter()
            .collect(),
        volumes,
        depends_on: if m.is_bootstrap() {
            IndexMap::new()
        } else {
            // Nodes retry the bootstrap anyway; waiting for it spares 100 nodes a backoff.
            depends_on(&service_name(0), "service_healthy")
        },
        healthcheck: Some(Health::Check(Healthcheck {
            test: vec!["CMD", "neverust", "health"],
            interval: if m.is_bootstrap() { "5s" } else { "10s" },
            timeout: "3s",
            retries: 3,
            start_period: "10s",
        })),
        deploy: Some(Deploy {
            resources: DeployResources {
                limits: Limit::of(resources),
                reservations: Limit::of(resources.reserved()),
            },
        }),
    }
}

/// The compose file for `opts` (it mounts `./prometheus.yml`: see [`prometheus_config`]).
pub fn compose_file(opts: &ComposeOptions) -> Result<ComposeFile, DeployError> {
    let nodes = opts.topology.nodes;
    if nodes > MAX_NODES {
        return Err(DeployError::TooManyNodes {
            nodes,
            why: format!(
                "the Compose network has addresses for {MAX_NODES} nodes (172.25.1.1 to 172.25.254.254 and the bootstrap)"
            ),
        });
    }
    let mut services = IndexMap::new();
    let mut volumes = IndexMap::new();
    for m in opts.topology.members() {
        services.insert(service_name(m.index), node_service(opts, m));
        volumes.insert(volume_name(m.index), Volume {});
        for tier in opts.topology.persistent_tiers() {
            volumes.insert(tier_volume_name(m.index, &tier.label), Volume {});
        }
    }
    let repo = opts.repo.trim_end_matches('/');
    services.insert(
        "prometheus".into(),
        Service {
            image: super::PROMETHEUS_IMAGE.into(),
            container_name: "neverust-prometheus".into(),
            command: vec![
                "--config.file=/etc/prometheus/prometheus.yml".into(),
                "--storage.tsdb.path=/prometheus".into(),
                "--web.enable-lifecycle".into(),
            ],
            networks: on_network(None),
            ports: vec![format!("{PROMETHEUS_PORT}:{PROMETHEUS_PORT}")],
            volumes: vec![
                format!("./{PROMETHEUS_FILE}:/etc/prometheus/prometheus.yml:ro"),
                "prometheus-data:/prometheus".into(),
            ],
            ..Default::default()
        },
    );
    services.insert(
        "grafana".into(),
        Service {
            image: super::GRAFANA_IMAGE.into(),
            container_name: "neverust-grafana".into(),
            environment: IndexMap::from([
                ("GF_SECURITY_ADMIN_PASSWORD", grafana::ADMIN_PASSWORD.into()),
                ("GF_USERS_ALLOW_SIGN_UP", "false".into()),
            ]),
            networks: on_network(None),
            ports: vec![format!("{GRAFANA_PORT}:{GRAFANA_PORT}")],
            volumes: vec![
                "grafana-data:/var/lib/grafana".into(),
                format!(
                    "{repo}/{}/provisioning:{}:ro",
                    grafana::REPO_DIR,
                    grafana::PROVISIONING_DIR
                ),
                format!(
                    "{repo}/{}/dashboards:{}:ro",
                    grafana::REPO_DIR,
                    grafana::DASHBOARDS_DIR
                ),
            ],
            depends_on: depends_on("prometheus", "service_started"),
            ..Default::default()
        },
    );
    services.insert(
        "visualizer".into(),
        Service {
            build: Some(Build {
                context: opts.repo.clone(),
                dockerfile: "Dockerfile",
                target: Some(super::VIZ_TARGET),
            }),
            image: opts.viz_image.clone(),
            container_name: "neverust-visualizer".into(),
            command: viz_command(),
            networks: on_network(None),
            ports: vec![format!("{VIZ_PORT}:{VIZ_PORT}")],
            healthcheck: Some(Health::Disabled { disable: true }),
            depends_on: depends_on("prometheus", "service_started"),
            ..Default::default()
        },
    );
    volumes.insert("prometheus-data".into(), Volume {});
    volumes.insert("grafana-data".into(), Volume {});
    Ok(ComposeFile {
        services,
        networks: IndexMap::from([(
            NETWORK.to_string(),
            Network {
                // A fixed name (not prefixed with the project's) so that `docker run
                // --network neverust-net` can join it, e.g. to run a benchmark inside.
                name: NETWORK,
                driver: "bridge",
                ipam: Ipam {
                    config: vec![Subnet { subnet: SUBNET }],
                },
            },
        )]),
        volumes,
    })
}

/// `neverust viz` reading the cluster from Prometheus, as the Compose and Kubernetes
/// visualizer services run it.
pub fn viz_command() -> Vec<String> {
    [
        "viz",
        "--prometheus",
        &format!("http://prometheus:{PROMETHEUS_PORT}"),
        "--port",
        &VIZ_PORT.to_string(),
        "--bind",
        "0.0.0.0",
    ]
    .map(String::from)
    .to_vec()
}

/// The scrape config the compose file mounts: every node by its service name.
pub fn prometheus_config(topology: &Topology) -> Config {
    prometheus::static_config(topology, |m| {
        format!("{}:{API_PORT}", service_name(m.index))
    })
}

/// The files `neverust compose --out DIR` writes: (name, content).
pub fn files(
    opts: &ComposeOptions,
    command: &str,
) -> Result<Vec<(&'static str, String)>, DeployError> {
    let header = super::header(command);
    Ok(vec![
        (
            COMPOSE_FILE,
            header.clone() + &super::to_yaml(&compose_file(opts)?)?,
        ),
        (
            PROMETHEUS_FILE,
            header + &super::to_yaml(&prometheus_config(&opts.topology))?,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn opts(n: usize) -> ComposeOptions {
        ComposeOptions {
            topology: Topology::new(n, 3, Resources::default()).unwrap(),
            repo: "..".into(),
            image: "neverust:test".into(),
            viz_image: "neverust-viz:test".into(),
        }
    }

    #[test]
    fn addresses_are_unique_valid_and_start_where_the_seed_did() {
        assert_eq!(address(0), Ipv4Addr::new(172, 25, 0, 10));
        assert_eq!(address(1), Ipv4Addr::new(172, 25, 1, 1));
        assert_eq!(address(254), Ipv4Addr::new(172, 25, 1, 254));
        assert_eq!(address(255), Ipv4Addr::new(172, 25, 2, 1));
        let mut seen = HashSet::new();
        for i in 0..MAX_NODES {
            let a = address(i).octets();
            assert!(seen.insert(a), "address {:?} given twice", a);
            assert_eq!(&a[..2], &[172, 25]);
            // Neither a network nor a broadcast address of any /24 inside the /16.
            assert!(a[3] != 0 && a[3] != 255, "node {i} at {:?}", a);
            if i > 0 {
                assert!(a[2] >= 1, "node {i} in the bootstrap's 172.25.0.x");
            }
        }
    }

    #[test]
    fn too_many_nodes_for_the_network_is_refused() {
        assert!(compose_file(&opts(MAX_NODES)).is_ok());
        let err = compose_file(&opts(MAX_NODES + 1)).unwrap_err().to_string();
        assert!(err.contains("--nodes"), "{err}");
    }

    #[test]
    fn each_image_is_built_once_and_only_five_nodes_are_published() {
        let f = compose_file(&opts(8)).unwrap();
        let built: Vec<(&String, Option<&str>)> = f
            .services
            .iter()
            .filter_map(|(n, s)| s.build.as_ref().map(|b| (n, b.target)))
            .collect();
        assert_eq!(
            built,
            vec![
                (&"bootstrap".to_string(), None),
                (&"visualizer".to_string(), Some(crate::deploy::VIZ_TARGET))
            ]
        );
        let published: Vec<String> = f
            .services
            .values()
            .flat_map(|s| s.ports.iter().cloned())
            .collect();
        for p in [
            "9080:8080",
            "9081:8080",
            "9085:8080",
            "9090:9090",
            "3000:3000",
            "8888:8888",
        ] {
            assert!(
                published.contains(&p.to_string()),
                "{p} not in {published:?}"
            );
        }
        assert!(!published.iter().any(|p| p.starts_with("9086:")));
        assert_eq!(
            f.services["node3"].command[2], "marketplace",
            "{:?}",
            f.services["node3"].command
        );
        assert_eq!(f.services["node4"].command[2], "altruistic");
        assert_eq!(
            f.services["node2"].environment["BOOTSTRAP_NODE"],
            "bootstrap:8080"
        );
        assert!(!f.services["bootstrap"]
            .environment
            .contains_key("BOOTSTRAP_NODE"));
    }
}
