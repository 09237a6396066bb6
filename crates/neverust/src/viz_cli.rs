//! `neverust viz`: the live visualizer on its own, for a native cluster (its cluster.json)
//! or for one Prometheus scrapes (Compose, Kubernetes: `--prometheus URL --bind 0.0.0.0`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use neverust_lab::viz::{self, Source};

#[derive(Args, Debug)]
pub struct VizArgs {
    /// The cluster.json of a native cluster (`neverust cluster` writes it).
    #[arg(long, default_value = "neverust-cluster/cluster.json")]
    pub cluster: PathBuf,
    /// Learn the nodes from this Prometheus server's targets instead, e.g.
    /// http://prometheus:9090 (targets labelled role=bootstrap|node, mode, node).
    #[arg(long, conflicts_with = "cluster", value_parser = parse_http_url)]
    pub prometheus: Option<String>,
    /// Port of the page.
    #[arg(long, default_value_t = neverust_lab::topology::ports::VIZ_PORT)]
    pub port: u16,
    /// Address to serve on (0.0.0.0 in containers).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
}

fn parse_http_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or_else(|| format!("{s:?} is not an http:// or https:// URL"))?;
    if rest.trim_matches('/').is_empty() {
        return Err(format!("{s:?} names no host"));
    }
    Ok(s.trim_end_matches('/').to_string())
}

pub fn run(args: VizArgs) -> ExitCode {
    let source = match args.prometheus {
        Some(url) => Source::Prometheus(url),
        None => {
            if !args.cluster.is_file() {
                return crate::usage_error(format!(
                    "--cluster {}: no such file (start a cluster with `neverust cluster`, or name its cluster.json)",
                    args.cluster.display()
                ));
            }
            Source::ClusterFile(args.cluster)
        }
    };
    let addr = SocketAddr::new(args.bind, args.port);
    crate::exit(crate::runtime().block_on(async move {
        let listener = viz::bind(addr).await?;
        let viz = viz::Viz::start(listener, source.clone(), viz::INTERVAL);
        println!(
            "visualizer: {} (nodes from {}; Ctrl-C stops it)",
            viz.url(),
            source.describe()
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok(())
    }))
}
