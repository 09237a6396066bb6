//! The swarm part of `reconcile`: real node processes, one holding a dataset and several
//! fetching it at once, all connected to each other, once with reconciliation and once
//! with want-haves only. Besides the time until every copy is in and checked, it reads
//! from every node's metrics what it wrote to learn who holds what (wantlists, presences,
//! reconciliation sessions) and who served the blocks.

use std::time::{Duration, Instant};

use neverust_node::metrics::names::{
    BLOCKEXC_MESSAGE_BYTES_SENT_TOTAL as BLOCKEXC_BYTES, BLOCKS_SENT_TOTAL as BLOCKS_SENT,
    RECONCILE_BYTES_TOTAL as RECONCILE_BYTES,
};

use super::super::{short_error, upload_new, BenchError, Ctx};
use crate::client::NodeClient;
use crate::cluster::solo::SoloNode;
use crate::metrics;
use crate::results::{ReconcileSwarm, SwarmRun};

const READY_LIMIT: Duration = Duration::from_secs(30);
const DOWNLOAD_LIMIT: Duration = Duration::from_secs(300);

pub async fn run(ctx: &mut Ctx) -> Result<ReconcileSwarm, BenchError> {
    let downloaders = ctx.profile.reconcile_swarm_downloaders.max(1);
    let bytes = ctx.profile.reconcile_swarm_bytes;
    let mut out = ReconcileSwarm {
        downloaders,
        dataset_bytes: bytes,
        runs: Vec::new(),
    };
    for (method, flag) in [("reconciliation", "true"), ("want-have", "false")] {
        ctx.ui.say(format!(
            "reconcile: swarm of {downloaders} fetching {} MiB at once, by {method}",
            bytes >> 20
        ));
        out.runs
            .push(one(ctx, method, flag, downloaders, bytes).await?);
    }
    Ok(out)
}

async fn one(
    ctx: &mut Ctx,
    method: &str,
    flag: &str,
    downloaders: usize,
    bytes: u64,
) -> Result<SwarmRun, BenchError> {
    let binary = super::super::node_binary(ctx)?;
    let dir = ctx.work_dir.join(format!("reconcile-swarm-{flag}"));
    let args = vec![
        "--reconcile".to_string(),
        flag.to_string(),
        "--store".to_string(),
        "memory".to_string(),
    ];
    let mut nodes = Vec::new();
    for i in 0..=downloaders {
        match SoloNode::start(&binary, &dir.join(format!("n{i}")), &args, READY_LIMIT).await {
            Ok(n) => nodes.push(n),
            Err(source) => {
                stop(nodes).await;
                return Err(BenchError::StartNode {
                    node: format!("node {i}"),
                    source,
                });
            }
        }
    }
    let result = measure(ctx, method, &nodes, bytes).await;
    stop(nodes).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn stop(nodes: Vec<SoloNode>) {
    futures::future::join_all(nodes.into_iter().map(SoloNode::stop)).await;
}

async fn measure(
    ctx: &mut Ctx,
    method: &str,
    nodes: &[SoloNode],
    bytes: u64,
) -> Result<SwarmRun, BenchError> {
    let clients: Vec<&NodeClient> = nodes.iter().map(|n| &n.client).collect();
    // Every node connected to every other, as in a small cluster.
    let mut ids = Vec::new();
    for (node, c) in clients.iter().enumerate() {
        let info = c
            .debug_info()
            .await
            .map_err(|source| BenchError::DebugInfo { node, source })?;
        let addr = info
            .addrs
            .into_iter()
            .next()
            .ok_or_else(|| BenchError::NoAddrs {
                node,
                base: c.base.clone(),
            })?;
        ids.push((info.id, addr));
    }
    for (node, c) in clients.iter().enumerate() {
        for (peer, (id, addr)) in ids.iter().enumerate().skip(node + 1) {
            c.connect(id, addr)
                .await
                .map_err(|source| BenchError::Connect { node, peer, source })?;
        }
    }
    let (stored, _) = upload_new(clients[0], 0, ctx.seed(), bytes, DOWNLOAD_LIMIT).await?;
    let before = scrape(&clients).await?;
    let bar = ctx
        .ui
        .bar((clients.len() - 1) as u64, format!("swarm ({method})"));
    let started = Instant::now();
    let fetches = clients[1..].iter().map(|c| {
        let (cid, bar) = (stored.cid.clone(), bar.clone());
        async move {
            let r = c.get_network(&cid, DOWNLOAD_LIMIT).await;
            bar.inc(1);
            r
        }
    });
    let fetched = futures::future::join_all(fetches).await;
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let mut verified = 0;
    let mut errors = Vec::new();
    for f in fetched {
        match f {
            Ok(f) if f.sha256 == stored.sha256 && f.bytes == stored.bytes => verified += 1,
            Ok(_) => errors.push("a copy differs from what was uploaded".to_string()),
            Err(e) => errors.push(short_error(&e)),
        }
    }
    ctx.checks.downloads_verified += verified;
    ctx.checks.errors += errors.len();
    let after = scrape(&clients).await?;
    let delta = |name: &str, key: &str, value: &str, range: std::ops::Range<usize>| -> f64 {
        range
            .map(|i| {
                metrics::sum_where(&after[i], name, key, value)
                    - metrics::sum_where(&before[i], name, key, value)
            })
            .sum()
    };
    let all = 0..clients.len();
    let blocks = |range: std::ops::Range<usize>| -> f64 {
        range
            .map(|i| metrics::sum(&after[i], BLOCKS_SENT) - metrics::sum(&before[i], BLOCKS_SENT))
            .sum()
    };
    let run = SwarmRun {
        method: method.to_string(),
        seconds,
        verified,
        wantlist_bytes: delta(BLOCKEXC_BYTES, "kind", "wantlist", all.clone()) as u64,
        presence_bytes: delta(BLOCKEXC_BYTES, "kind", "presences", all.clone()) as u64,
        reconcile_bytes: delta(RECONCILE_BYTES, "direction", "sent", all) as u64,
        blocks_from_seed: blocks(0..1) as u64,
        blocks_from_peers: blocks(1..clients.len()) as u64,
        errors,
    };
    ctx.ui.say(format!(
        "reconcile: swarm by {method}: {verified}/{} copies in {seconds:.2} s; control bytes: wantlists {}, presences {}, reconciliation {}; blocks served by the seed {}, by other downloaders {}",
        clients.len() - 1,
        run.wantlist_bytes,
        run.presence_bytes,
        run.reconcile_bytes,
        run.blocks_from_seed,
        run.blocks_from_peers
    ));
    Ok(run)
}

async fn scrape(clients: &[&NodeClient]) -> Result<Vec<Vec<metrics::Sample>>, BenchError> {
    let mut out = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let text = c.metrics().await.map_err(|source| BenchError::Metrics {
            node: format!("node {i}"),
            source,
        })?;
        out.push(metrics::parse(&text));
    }
    Ok(out)
}
