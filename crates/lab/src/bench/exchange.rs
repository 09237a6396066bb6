//! `exchange`: a file uploaded on node X and fetched through node Y, for random pairs: time
//! to first byte, per-file and per-block latency (from the downloaders' own histograms);
//! then many pairs at once for the cluster's aggregate block rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use neverust_node::metrics::names::BLOCK_FETCH_LATENCY_SECONDS as LATENCY;

use super::payload::Stored;
use super::stats::{bucket_delta, histogram, mib_s, quantiles, ratio};
use super::{short_error, upload_new, BenchError, Ctx};
use crate::client::NodeClient;
use crate::results::{Aggregate, ExchangeResult};

const LIMIT: Duration = Duration::from_secs(120);
const BLOCK: u64 = 64 * 1024;

pub async fn run(ctx: &mut Ctx) -> Result<ExchangeResult, BenchError> {
    let mut out = ExchangeResult {
        file_bytes: ctx.profile.exchange_file,
        pairs: ctx.profile.exchange_pairs,
        ..Default::default()
    };
    let before = latency_buckets(ctx.cluster.clients()).await;
    let bar = ctx.ui.bar(out.pairs as u64, "exchange");
    for _ in 0..out.pairs {
        let (x, y) = ctx.pair();
        bar.set_message(format!("node {x} -> node {y}"));
        match transfer(ctx.cluster.clients(), (x, y), ctx.seed(), out.file_bytes).await {
            Ok((fetched_ok, ttfb, total)) => {
                ctx.checks.uploads_acknowledged += 1;
                out.ttfb_ms.push(ttfb.as_secs_f64() * 1000.0);
                out.file_ms.push(total.as_secs_f64() * 1000.0);
                if fetched_ok {
                    out.verified += 1;
                    ctx.checks.downloads_verified += 1;
                } else {
                    ctx.checks.errors += 1;
                    out.errors
                        .push("a download did not match its upload".into());
                }
            }
            Err(e) => {
                ctx.checks.errors += 1;
                out.errors.push(short_error(&e));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let after = latency_buckets(ctx.cluster.clients()).await;
    out.block_latency = histogram(&bucket_delta(&before, &after));
    out.ttfb = quantiles(&out.ttfb_ms);
    out.file = quantiles(&out.file_ms);
    ctx.ui.say(format!(
        "exchange {} pairs: ttfb p50 {:.1} ms, file p50 {:.1} ms, block p50 {:.2} ms p99 {:.2} ms",
        out.pairs, out.ttfb.p50, out.file.p50, out.block_latency.p50_ms, out.block_latency.p99_ms
    ));
    out.aggregate = aggregate(ctx, &mut out.errors).await;
    Ok(out)
}

/// Upload on node `x`, download through node `y`: (matched, ttfb, total).
async fn transfer(
    clients: &[NodeClient],
    (x, y): (usize, usize),
    seed: u64,
    len: u64,
) -> Result<(bool, Duration, Duration), BenchError> {
    let (stored, _) = upload_new(&clients[x], x, seed, len, LIMIT).await?;
    let f = clients[y]
        .get_network(&stored.cid, LIMIT)
        .await
        .map_err(|source| BenchError::Download {
            node: y,
            cid: stored.cid.clone(),
            source,
        })?;
    Ok((f.sha256 == stored.sha256, f.ttfb, f.total))
}

/// Per-block fetch latency buckets summed over every node.
pub async fn latency_buckets(clients: &[NodeClient]) -> Vec<(f64, f64)> {
    let scrapes = futures::future::join_all(clients.iter().map(|c| c.metrics())).await;
    let mut sum: Vec<(f64, f64)> = Vec::new();
    for text in scrapes.into_iter().flatten() {
        for (le, c) in crate::metrics::buckets(&crate::metrics::parse(&text), LATENCY) {
            match sum.iter_mut().find(|(l, _)| *l == le) {
                Some((_, s)) => *s += c,
                None => sum.push((le, c)),
            }
        }
    }
    sum.sort_by(|a, b| a.0.total_cmp(&b.0));
    sum
}

/// Files spread over the cluster, then fetched through other nodes many at once.
async fn aggregate(ctx: &mut Ctx, errors: &mut Vec<String>) -> Aggregate {
    let p = ctx.profile.clone();
    let bar = ctx.ui.bar(p.aggregate_downloads as u64, "uploading");
    let mut jobs = Vec::new();
    for _ in 0..p.aggregate_downloads {
        let (x, y) = ctx.pair();
        jobs.push((x, y, ctx.seed()));
    }
    let clients: Arc<Vec<NodeClient>> = Arc::new(ctx.cluster.clients().to_vec());
    let uploads = futures::stream::iter(jobs.iter().map(|&(x, y, seed)| {
        let clients = clients.clone();
        let bar = bar.clone();
        async move {
            let r = upload_new(&clients[x], x, seed, p.aggregate_file, LIMIT).await;
            bar.inc(1);
            r.map(|(s, _)| (s, y))
        }
    }))
    .buffer_unordered(8)
    .collect::<Vec<_>>()
    .await;
    bar.finish_and_clear();
    let mut planned: Vec<(Stored, usize)> = Vec::new();
    for u in uploads {
        match u {
            Ok(p) => {
                ctx.checks.uploads_acknowledged += 1;
                planned.push(p);
            }
            Err(e) => {
                ctx.checks.errors += 1;
                errors.push(short_error(&e));
            }
        }
    }
    let bar = ctx.ui.bar(planned.len() as u64, "swapping");
    let pids: Vec<u32> = ctx.cluster.entries().iter().map(|e| e.pid).collect();
    let cpu_before = crate::sampler::cpu_seconds(&pids);
    let start = Instant::now();
    let downloads = futures::stream::iter(planned.iter().map(|(stored, y)| {
        let client = clients[*y].clone();
        let bar = bar.clone();
        async move {
            let r = client.get_network(&stored.cid, LIMIT).await;
            bar.inc(1);
            r.map(|f| {
                let ms = f.total.as_secs_f64() * 1e3;
                (f.sha256 == stored.sha256 && f.bytes == stored.bytes, ms)
            })
        }
    }))
    .buffer_unordered(p.aggregate_concurrency)
    .collect::<Vec<_>>()
    .await;
    let seconds = start.elapsed().as_secs_f64();
    let cpu = cpu_before
        .zip(crate::sampler::cpu_seconds(&pids))
        .map(|(a, b)| b - a);
    bar.finish_and_clear();
    let mut ok = 0;
    let mut download_ms = Vec::new();
    for d in downloads {
        match d {
            Ok((true, ms)) => {
                ok += 1;
                download_ms.push(ms);
            }
            Ok((false, _)) => {
                ctx.checks.errors += 1;
                errors.push("an aggregate download did not match its upload".into());
            }
            Err(e) => {
                ctx.checks.errors += 1;
                errors.push(short_error(&e));
            }
        }
    }
    ctx.checks.downloads_verified += ok;
    let blocks = ok as u64 * p.aggregate_file.div_ceil(BLOCK);
    let mib = mib_s(ok as u64 * p.aggregate_file, seconds);
    let a = Aggregate {
        concurrent: p.aggregate_concurrency,
        downloads: ok,
        blocks,
        seconds,
        blocks_per_s: blocks as f64 / seconds.max(1e-9),
        mib_s: mib,
        ratio_to_loopback_tcp: ratio(mib, ctx.baseline.loopback_tcp_mib_s),
        node_cpu_us_per_block: cpu.filter(|_| blocks > 0).map(|s| s * 1e6 / blocks as f64),
        download_ms,
    };
    let q = quantiles(&a.download_ms);
    let cpu = a
        .node_cpu_us_per_block
        .map(|us| format!("; node CPU {us:.0} µs per block"))
        .unwrap_or_default();
    ctx.ui.say(format!(
        "exchange aggregate: {} downloads, {} at once: {:.0} blocks/s, {:.0} MiB/s ({:.0} % of loopback TCP); a download p50 {:.0} ms, slowest {:.0} ms{cpu}",
        a.downloads,
        a.concurrent,
        a.blocks_per_s,
        a.mib_s,
        a.ratio_to_loopback_tcp * 100.0,
        q.p50,
        q.max
    ));
    a
}
