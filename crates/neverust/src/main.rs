//! `neverust`: one binary for the storage node and the lab around it.
//! Parses flags and calls the libraries; nothing else lives here.

mod cli;
mod deploy_cli;
mod lab_cli;
mod viz_cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Start(args) => {
            let threads = args.worker_threads;
            let config = match args.into_config() {
                Ok(c) => c,
                Err(e) => return usage_error(e),
            };
            exit(
                runtime_with(threads)
                    .block_on(neverust_node::run_until_signal(config))
                    .map_err(anyhow::Error::from),
            )
        }
        cli::Command::Cluster(args) => cluster(args),
        cli::Command::Bench(args) => bench(*args),
        cli::Command::Compose(args) => match args.options() {
            Ok(opts) => exit(deploy_cli::compose(&args, opts)),
            Err(e) => usage_error(e),
        },
        cli::Command::K8s(args) => match args.options() {
            Ok(opts) => exit(deploy_cli::k8s(&args, opts)),
            Err(e) => usage_error(e),
        },
        cli::Command::Health(args) => match runtime().block_on(deploy_cli::health(&args)) {
            true => ExitCode::SUCCESS,
            false => ExitCode::FAILURE,
        },
        cli::Command::Viz(args) => viz_cli::run(args),
    }
}

fn bench(args: lab_cli::BenchArgs) -> ExitCode {
    use neverust_lab::bench::{self, BenchOptions, Target};
    let target = match &args.cluster {
        Some(arg) => Target::running(arg),
        None => match args.launch.spec() {
            Ok(s) => Target::Launch(Box::new(s)),
            Err(e) => return usage_error(e),
        },
    };
    let opts = BenchOptions {
        scenarios: args.scenarios(),
        profile: args.profile.clone(),
        seed: args.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        }),
        report_dir: args.report.clone(),
        scale_nodes: args.scale_nodes.clone(),
        cache_skew: args.cache_skew,
    };
    let ui = neverust_lab::ui::Ui::new();
    exit(runtime().block_on(async {
        let (results, report) = bench::run(opts, target, &ui).await?;
        let c = &results.checks;
        println!(
            "{} uploads acknowledged, {} verified on upload, {} downloads verified, {} acknowledged lost, {} errors",
            c.uploads_acknowledged, c.uploads_verified, c.downloads_verified, c.acknowledged_lost, c.errors
        );
        println!("report: {}", report.display());
        if c.acknowledged_lost > 0 {
            anyhow::bail!("{} acknowledged uploads were lost", c.acknowledged_lost);
        }
        Ok(())
    }))
}

fn cluster(args: lab_cli::ClusterArgs) -> ExitCode {
    use lab_cli::ClusterAction;
    use neverust_lab::cluster::supervise;
    let rt = runtime();
    match args.action {
        Some(ClusterAction::Status { dir }) => {
            let path = neverust_lab::topology::cluster_file::default_path(&dir);
            match rt.block_on(supervise::status(&path)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => exit(Err(e.into())),
            }
        }
        Some(ClusterAction::Stop { dir }) => exit(rt.block_on(async {
            let n = supervise::stop(&dir).await;
            println!(
                "stopped {n} process(es) of the cluster in {}",
                dir.display()
            );
            Ok(())
        })),
        None => {
            let mut spec = match args.launch.spec() {
                Ok(s) => s,
                Err(e) => return usage_error(e),
            };
            spec.restart = args.restart;
            let opts = supervise::ServeOptions {
                keep_data: args.keep_data,
                prometheus_port: args.prometheus.then_some(args.prometheus_port),
                viz: args.viz_addr(),
            };
            let ui = neverust_lab::ui::Ui::new();
            exit(
                rt.block_on(supervise::serve(spec, opts, &ui))
                    .map_err(Into::into),
            )
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    runtime_with(None)
}

/// A runtime with `threads` workers, or one per core.
fn runtime_with(threads: Option<std::num::NonZeroUsize>) -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n.get());
    }
    builder
        .enable_all()
        .build()
        .expect("building the tokio runtime")
}

fn usage_error(e: String) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

fn exit(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
