//! `scale`: the same small workload on clusters of growing size (10, 25, 50 nodes by
//! default), each started for the purpose beside the main one: how readiness, latency,
//! throughput, memory and CPU change with N.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::stats::{mib_s, quantiles};
use super::stress::operations;
use super::{BenchError, Ctx};
use crate::cluster::{Cluster, ClusterSpec};
use crate::results::{ScalePoint, ScaleResult};
use crate::sampler::Sampler;

pub async fn run(ctx: &mut Ctx, sizes: Option<Vec<usize>>) -> Result<ScaleResult, BenchError> {
    let sizes = sizes.unwrap_or_else(|| ctx.profile.scale_nodes.clone());
    let mut out = ScaleResult::default();
    let base = super::free_base_port(ctx);
    for &n in &sizes {
        let dir = ctx.work_dir.join(format!("scale-{n}"));
        let mut spec = ctx
            .spec
            .clone()
            .unwrap_or_else(|| ClusterSpec::new(n, dir.clone()));
        spec.nodes = n;
        spec.dir = dir.clone();
        spec.base_port = base;
        spec.bootstrap_api_port = None;
        spec.placements.clear();
        spec.restart = false;
        ctx.ui.say(format!("scale: starting {n} nodes"));
        let mut cluster =
            Cluster::launch(spec, &ctx.ui)
                .await
                .map_err(|source| BenchError::Launch {
                    what: format!("a cluster of {n} nodes for scale"),
                    source,
                })?;
        let point = measure(ctx, &cluster, n).await;
        cluster.stop(&ctx.ui).await;
        let _ = std::fs::remove_dir_all(&dir);
        ctx.ui.say(format!(
            "scale {n:>3} nodes: ready {:.2} s, download p50 {:.1} ms, {:.0} blocks/s, idle RSS {:.1} MiB, idle CPU {:.2} %",
            point.ready_seconds,
            point.download.p50,
            point.blocks_per_s,
            point.idle.rss_mean_bytes / 1048576.0,
            point.idle.cpu_mean_percent
        ));
        out.points.push(point);
    }
    Ok(out)
}

async fn measure(ctx: &mut Ctx, cluster: &Cluster, n: usize) -> ScalePoint {
    let sampler = Sampler::new(ctx.t0);
    let nodes: Vec<(usize, u32, String)> = cluster
        .entries()
        .iter()
        .map(|e| (e.index, e.pid, e.role.clone()))
        .collect();
    let task = {
        let nodes = nodes.clone();
        sampler.spawn(Duration::from_millis(250), move || nodes.clone())
    };
    let pids: Vec<u32> = nodes.iter().map(|n| n.1).collect();
    crate::sampler::settle(&pids, super::SETTLED_PERCENT, super::SETTLE_LIMIT).await;
    let idle_from = ctx.t();
    tokio::time::sleep(ctx.profile.idle_window).await;
    let idle = sampler.summary(idle_from, ctx.t());

    let file = ctx.profile.exchange_file;
    let downloads = ctx.profile.scale_downloads;
    let plan = ctx.plan(downloads, n);
    let bar = ctx.ui.bar(downloads as u64, format!("scale {n}"));
    let loaded_from = ctx.t();
    let start = Instant::now();
    let ops = operations(
        Arc::new(cluster.clients().to_vec()),
        plan,
        file,
        downloads,
        ctx.t0,
        bar.clone(),
    )
    .await;
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    // Let one more sample land inside the loaded window.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let loaded = sampler.summary(loaded_from, ctx.t());
    drop(task);
    let mut download_ms = Vec::new();
    let mut errors = 0;
    for op in ops {
        match op.download {
            Some(Ok((true, took))) => {
                ctx.checks.downloads_verified += 1;
                download_ms.push(took.as_secs_f64() * 1000.0)
            }
            _ => errors += 1,
        }
        if op.upload.is_ok() {
            ctx.checks.uploads_acknowledged += 1;
        }
    }
    ctx.checks.errors += errors;
    let ok = download_ms.len() as u64;
    ScalePoint {
        nodes: n,
        ready_seconds: cluster.ready_seconds,
        download: quantiles(&download_ms),
        blocks_per_s: (ok * file.div_ceil(64 * 1024)) as f64 / seconds.max(1e-9),
        mib_s: mib_s(ok * file, seconds),
        idle,
        loaded,
        errors,
    }
}
