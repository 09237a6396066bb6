//! `stress`: the seed's stress test: many uploads and downloads at once (each operation
//! uploads a file to a random node, then fetches it through another), every byte verified.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::stats::quantiles;
use super::{short_error, upload_new, BenchError, Ctx};
use crate::client::NodeClient;
use crate::results::StressResult;

const LIMIT: Duration = Duration::from_secs(300);

/// One operation's outcome.
pub struct Op {
    pub upload: Result<(super::payload::Stored, Duration), String>,
    pub download: Option<Result<(bool, Duration), String>>,
    pub started_s: f64,
    pub ended_s: f64,
}

/// Runs the planned operations, `concurrency` at a time: each `(x, y, seed)` uploads a
/// payload to node `x`, then fetches it through node `y`.
pub async fn operations(
    clients: Arc<Vec<NodeClient>>,
    plan: Vec<(usize, usize, u64)>,
    file: u64,
    concurrency: usize,
    t0: Instant,
    bar: indicatif::ProgressBar,
) -> Vec<Op> {
    futures::stream::iter(plan.into_iter().map(|(x, y, seed)| {
        let clients = clients.clone();
        let bar = bar.clone();
        async move {
            let started_s = t0.elapsed().as_secs_f64();
            let upload = upload_new(&clients[x], x, seed, file, LIMIT)
                .await
                .map_err(|e| short_error(&e));
            let download = match &upload {
                Ok((stored, _)) => Some(
                    clients[y]
                        .get_network(&stored.cid, LIMIT)
                        .await
                        .map(|f| (f.sha256 == stored.sha256, f.total))
                        .map_err(|e| {
                            format!(
                                "download through node {y} of an upload to node {x}: {}",
                                short_error(&e)
                            )
                        }),
                ),
                Err(_) => None,
            };
            bar.inc(1);
            Op {
                upload,
                download,
                started_s,
                ended_s: t0.elapsed().as_secs_f64(),
            }
        }
    }))
    .buffer_unordered(concurrency.max(1))
    .collect()
    .await
}

pub async fn run(ctx: &mut Ctx) -> Result<StressResult, BenchError> {
    let ops = ctx.profile.stress_ops;
    let file = ctx.profile.stress_file;
    let plan = ctx.plan(ops, ctx.cluster.len());
    let clients = Arc::new(ctx.cluster.clients().to_vec());
    let bar = ctx.ui.bar(ops as u64, "stress");
    let start = Instant::now();
    let done = operations(clients, plan, file, ops, ctx.t0, bar.clone()).await;
    bar.finish_and_clear();
    let mut r = StressResult {
        operations: ops,
        concurrency: ops,
        file_bytes: file,
        seconds: start.elapsed().as_secs_f64(),
        ..Default::default()
    };
    for op in done {
        match op.upload {
            Ok((_, took)) => {
                r.uploads_ok += 1;
                r.upload_ms.push(took.as_secs_f64() * 1000.0);
            }
            Err(e) => r.errors.push(e),
        }
        match op.download {
            Some(Ok((true, took))) => {
                r.downloads_ok += 1;
                r.verified += 1;
                r.download_ms.push(took.as_secs_f64() * 1000.0);
            }
            Some(Ok((false, _))) => r.errors.push("a download did not match its upload".into()),
            Some(Err(e)) => r.errors.push(e),
            None => {}
        }
    }
    r.error_count = r.errors.len();
    r.errors.truncate(20);
    r.upload = quantiles(&r.upload_ms);
    r.download = quantiles(&r.download_ms);
    ctx.checks.uploads_acknowledged += r.uploads_ok;
    ctx.checks.downloads_verified += r.verified;
    ctx.checks.errors += r.error_count;
    ctx.ui.say(format!(
        "stress: {} operations at once in {:.1} s: {} uploads, {} downloads verified, {} errors",
        ops, r.seconds, r.uploads_ok, r.verified, r.error_count
    ));
    Ok(r)
}
