//! Flags of the deployment generators (`compose`, `k8s`), and `health`: the check that
//! container healthchecks run (the runtime image has no curl).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use neverust_lab::deploy::compose::{self, ComposeOptions};
use neverust_lab::deploy::k8s::{self, K8sOptions};
use neverust_lab::deploy::topology::{Resources, Topology};
use neverust_lab::deploy::{self, DEFAULT_IMAGE};
use neverust_lab::topology::ports;

use crate::cli::parse_size;
use crate::lab_cli::parse_nodes;

/// The cluster every generator lays out.
#[derive(Args, Debug)]
pub struct TopologyArgs {
    /// Number of nodes, the bootstrap included (at least 2), as `neverust cluster` counts.
    #[arg(long, default_value_t = 50, value_parser = parse_nodes)]
    pub nodes: usize,
    /// Node i (i ≥ 1) runs in marketplace mode when i % N == 0 (0: no marketplace nodes).
    #[arg(long, default_value_t = 3)]
    pub marketplace_every: usize,
    /// CPU limit of each node, in cores (a quarter of it is reserved).
    #[arg(long, default_value_t = 1.0)]
    pub cpus: f64,
    /// Memory limit of each node, e.g. 512MiB, 1GiB (a quarter of it is reserved).
    #[arg(long, default_value = "512MiB", value_parser = parse_size)]
    pub memory: u64,
    /// The neverust image the nodes run (Compose builds it under this name; Kubernetes
    /// pulls it, so push it where the cluster can).
    #[arg(long, default_value = DEFAULT_IMAGE)]
    pub image: String,
    /// The image the visualizer runs: the Dockerfile's `visualizer` target, the one with
    /// the page (default: --image's name with `-viz`, e.g. neverust-viz:local).
    #[arg(long)]
    pub viz_image: Option<String>,
    /// A storage tier for every node (repeatable, fastest first), as `neverust cluster
    /// --node-tier`; DIR is a path inside the node's container, backed by a volume of its
    /// own per node (Compose: a named volume; Kubernetes: a claim of the tier's size and a
    /// quarter). E.g. --node-tier memory:64MiB --node-tier ssd:/tiers/ssd:1GiB.
    #[arg(long = "node-tier", value_name = "SPEC")]
    pub node_tiers: Vec<String>,
}

impl TopologyArgs {
    fn viz_image(&self) -> String {
        self.viz_image
            .clone()
            .unwrap_or_else(|| deploy::viz_image(&self.image))
    }

    fn topology(&self) -> Result<Topology, String> {
        let resources = Resources::new(self.cpus, self.memory).map_err(|e| e.to_string())?;
        Topology::new(self.nodes, self.marketplace_every, resources)
            .and_then(|t| t.with_tiers(&self.node_tiers))
            .map_err(|e| e.to_string())
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComposeDoc {
    /// docker-compose.yml
    Compose,
    /// prometheus.yml, which the compose file mounts from its own folder
    Prometheus,
}

#[derive(Args, Debug)]
pub struct ComposeArgs {
    #[command(flatten)]
    pub topology: TopologyArgs,
    /// Write docker-compose.yml and prometheus.yml into DIR (instead of printing one).
    #[arg(long, value_name = "DIR", conflicts_with = "print")]
    pub out: Option<PathBuf>,
    /// Which file to print on stdout when there is no --out.
    #[arg(long, value_enum, default_value = "compose")]
    pub print: ComposeDoc,
    /// The repository's root as seen from the compose file's folder: the build context and
    /// where Grafana's provisioning and dashboards are mounted from.
    #[arg(long, default_value = "..")]
    pub repo: String,
}

impl ComposeArgs {
    pub fn options(&self) -> Result<ComposeOptions, String> {
        let opts = ComposeOptions {
            topology: self.topology.topology()?,
            repo: self.repo.clone(),
            image: self.topology.image.clone(),
            viz_image: self.topology.viz_image(),
        };
        // Refused here, with the flag named, rather than after the files are opened.
        compose::compose_file(&opts).map_err(|e| e.to_string())?;
        Ok(opts)
    }
}

#[derive(Args, Debug)]
pub struct K8sArgs {
    #[command(flatten)]
    pub topology: TopologyArgs,
    /// Write the manifests to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The namespace everything goes in (created by the manifests).
    #[arg(long, default_value = "neverust")]
    pub namespace: String,
    /// Size of each node's persistent volume.
    #[arg(long, default_value = "1Gi")]
    pub storage: String,
    /// Storage class of the nodes' volumes (default: the cluster's default class).
    #[arg(long)]
    pub storage_class: Option<String>,
}

impl K8sArgs {
    pub fn options(&self) -> Result<K8sOptions, String> {
        let opts = K8sOptions {
            topology: self.topology.topology()?,
            namespace: self.namespace.clone(),
            image: self.topology.image.clone(),
            viz_image: self.topology.viz_image(),
            storage: self.storage.clone(),
            storage_class: self.storage_class.clone(),
        };
        k8s::manifests(&opts).map_err(|e| e.to_string())?;
        Ok(opts)
    }
}

#[derive(Args, Debug)]
pub struct HealthArgs {
    /// The node's API port (the same variable `start` reads).
    #[arg(long, default_value_t = 8080, env = "NEVERUST_API_PORT")]
    pub api_port: u16,
    /// Where the node's API is reached.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
}

/// This invocation, for the generated files' first line.
fn invocation() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("neverust {}", args.join(" "))
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

pub fn compose(args: &ComposeArgs, opts: ComposeOptions) -> anyhow::Result<()> {
    let files = compose::files(&opts, &invocation())?;
    let Some(dir) = &args.out else {
        let wanted = match args.print {
            ComposeDoc::Compose => compose::COMPOSE_FILE,
            ComposeDoc::Prometheus => compose::PROMETHEUS_FILE,
        };
        let (_, text) = files
            .iter()
            .find(|(name, _)| *name == wanted)
            .expect("generated");
        print!("{text}");
        if args.print == ComposeDoc::Compose {
            eprintln!(
                "note: the compose file mounts ./{} from its own folder: write it with `--print prometheus`, or use --out DIR for both",
                compose::PROMETHEUS_FILE
            );
        }
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, text) in &files {
        write(&dir.join(name), text)?;
    }
    let t = &opts.topology;
    println!(
        "wrote {} and {} in {}: {} nodes (bootstrap + node1..node{}, {} marketplace), Prometheus, Grafana, visualizer",
        compose::COMPOSE_FILE,
        compose::PROMETHEUS_FILE,
        dir.display(),
        t.nodes,
        t.nodes - 1,
        t.marketplace_indices().len()
    );
    println!(
        "next: cd {} && docker compose build && docker compose up -d",
        dir.display()
    );
    println!(
        "then: Grafana http://localhost:{} (admin/{}), Prometheus http://localhost:{}, visualizer http://localhost:{}, bootstrap API http://localhost:{}",
        ports::GRAFANA_PORT,
        deploy::grafana::ADMIN_PASSWORD,
        ports::PROMETHEUS_PORT,
        ports::VIZ_PORT,
        compose::BOOTSTRAP_HOST_PORT
    );
    Ok(())
}

pub fn k8s(args: &K8sArgs, opts: K8sOptions) -> anyhow::Result<()> {
    let text = k8s::render(&opts, &invocation())?;
    match &args.out {
        Some(path) => {
            write(path, &text)?;
            eprintln!(
                "wrote {}: apply it with `kubectl apply -f {}`",
                path.display(),
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// Whether the node answers `/health`.
pub async fn health(args: &HealthArgs) -> bool {
    neverust_lab::client::NodeClient::new(format!("http://{}:{}", args.host, args.api_port))
        .healthy()
        .await
}
