//! `neverust`: one binary for the storage node and the lab around it.
//! Parses flags and calls the libraries; nothing else lives here.

mod cli;
mod lab_cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Start(args) => {
            let config = match args.into_config() {
                Ok(c) => c,
                Err(e) => return usage_error(e),
            };
            exit(runtime().block_on(neverust_node::run_until_signal(config)))
        }
        cli::Command::Cluster(args) => cluster(args),
    }
}

fn cluster(args: lab_cli::ClusterArgs) -> ExitCode {
    use lab_cli::ClusterAction;
    use neverust_lab::cluster::supervise;
    let rt = runtime();
    match args.action {
        Some(ClusterAction::Status { dir }) => {
            let path = neverust_lab::cluster::file::default_path(&dir);
            match rt.block_on(supervise::status(&path)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => exit(Err(e)),
            }
        }
        Some(ClusterAction::Stop { dir }) => exit(rt.block_on(async {
            let n = supervise::stop(&dir).await?;
            println!("stopped {n} process(es) of the cluster in {}", dir.display());
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
            };
            let ui = neverust_lab::ui::Ui::new();
            exit(rt.block_on(supervise::serve(spec, opts, &ui)))
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
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
