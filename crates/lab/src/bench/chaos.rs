//! `chaos`: a stress workload during which 20 % of the nodes (never the bootstrap) are
//! killed with SIGKILL and restarted; afterwards every acknowledged upload must still be
//! readable from its original node and through another node. Then the partition.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;

use super::payload::Stored;
use super::stress::{operations, Op};
use super::{BenchError, Ctx};
use crate::client::NodeClient;
use crate::results::{ChaosResult, Event, OpSample};
use crate::topology::cluster_file::NodeEntry;

const VERIFY_LIMIT: Duration = Duration::from_secs(60);
const RESTART_LIMIT: Duration = Duration::from_secs(30);
const CONCURRENCY: usize = 16;

pub async fn run(
    ctx: &mut Ctx,
    live: &Arc<Mutex<Vec<NodeEntry>>>,
) -> Result<ChaosResult, BenchError> {
    let n = ctx.cluster.len();
    let mut out = ChaosResult::default();
    if n >= 3 {
        faults(ctx, live, &mut out).await?;
    } else {
        out.events
            .push(event(ctx, "skipped", "kill/restart needs 3 nodes or more"));
    }
    match super::netns::unavailable() {
        None => out.partition = Some(super::partition::run(ctx).await?),
        Some(why) => {
            ctx.ui.say(format!("chaos: partition skipped: {why}"));
            out.partition_skipped = Some(why)
        }
    }
    if let Some(p) = &out.partition {
        ctx.checks.acknowledged_lost += p.lost;
    }
    Ok(out)
}

fn event(ctx: &Ctx, kind: &str, detail: impl Into<String>) -> Event {
    Event {
        t_s: ctx.t(),
        kind: kind.into(),
        detail: detail.into(),
    }
}

async fn faults(
    ctx: &mut Ctx,
    live: &Arc<Mutex<Vec<NodeEntry>>>,
    out: &mut ChaosResult,
) -> Result<(), BenchError> {
    let n = ctx.cluster.len();
    // The bootstrap is spared: it is how restarted nodes find the cluster again.
    let kills = (((n - 1) as f64 * 0.2).ceil() as usize).clamp(1, n - 1);
    let mut victims: Vec<usize> = Vec::new();
    while victims.len() < kills {
        let v = 1 + ctx.pick(n - 1);
        if !victims.contains(&v) {
            victims.push(v);
        }
    }
    victims.sort();
    out.killed = victims.clone();

    let ops = ctx.profile.chaos_ops;
    let plan = ctx.plan(ops, ctx.cluster.len());
    let bar = ctx.ui.bar(ops as u64, "chaos");
    let workload = tokio::spawn(operations(
        Arc::new(ctx.cluster.clients().to_vec()),
        plan,
        ctx.profile.chaos_file,
        CONCURRENCY,
        ctx.t0,
        bar.clone(),
    ));
    // Faults a quarter of the way through, so transfers are in flight when nodes die.
    while bar.position() < (ops as u64) / 4 && !workload.is_finished() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fault_from = ctx.t();
    for &v in &victims {
        ctx.cluster.kill9(v).await?;
        out.events
            .push(event(ctx, "kill", format!("node {v} (kill -9)")));
    }
    ctx.ui
        .say(format!("chaos: killed nodes {victims:?} with SIGKILL"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    for &v in &victims {
        let took = ctx.cluster.restart(v, RESTART_LIMIT).await?;
        out.restart_seconds.push(took.as_secs_f64());
        out.events.push(event(
            ctx,
            "restart",
            format!("node {v} back after {:.2} s", took.as_secs_f64()),
        ));
    }
    *live.lock().expect("live list") = ctx.cluster.entries();
    let fault_to = ctx.t();
    ctx.ui
        .say(format!("chaos: restarted {} nodes", victims.len()));
    let done: Vec<Op> = workload.await.map_err(|source| BenchError::Task {
        what: "the workload during the faults",
        source,
    })?;
    bar.finish_and_clear();

    let mut acked: Vec<Stored> = Vec::new();
    for op in &done {
        let overlaps = op.started_s <= fault_to && op.ended_s >= fault_from;
        let mut record = |kind: &str, ok: bool, ms: f64| {
            out.ops.push(OpSample {
                t_s: op.started_s,
                kind: kind.into(),
                ok,
                ms,
            });
            if !ok {
                if overlaps {
                    out.failed_during_faults += 1;
                } else {
                    ctx.checks.errors += 1;
                }
            }
        };
        match &op.upload {
            Ok((stored, took)) => {
                record("upload", true, took.as_secs_f64() * 1000.0);
                acked.push(stored.clone());
            }
            Err(_) => record("upload", false, (op.ended_s - op.started_s) * 1000.0),
        }
        match &op.download {
            Some(Ok((ok, took))) => record("download", *ok, took.as_secs_f64() * 1000.0),
            Some(Err(_)) => record("download", false, (op.ended_s - op.started_s) * 1000.0),
            None => {}
        }
    }
    out.acknowledged = acked.len();
    ctx.checks.uploads_acknowledged += acked.len();
    ctx.ui.say(format!(
        "chaos: checking {} acknowledged uploads on their nodes and through others",
        acked.len()
    ));
    let clients = Arc::new(ctx.cluster.clients().to_vec());
    let readers: Vec<usize> = acked
        .iter()
        .map(|s| (s.origin + 1 + ctx.pick(n - 1)) % n)
        .collect();
    let bar = ctx.ui.bar(acked.len() as u64, "verifying");
    let checks = futures::stream::iter(acked.iter().zip(readers).map(|(s, reader)| {
        let clients = clients.clone();
        let bar = bar.clone();
        async move {
            let r = verify(&clients, s, reader).await;
            bar.inc(1);
            r
        }
    }))
    .buffer_unordered(8)
    .collect::<Vec<(bool, bool, Vec<String>)>>()
    .await;
    bar.finish_and_clear();
    out.retrievable_origin = checks.iter().filter(|c| c.0).count();
    out.retrievable_network = checks.iter().filter(|c| c.1).count();
    out.lost = checks.iter().filter(|c| !(c.0 && c.1)).count();
    out.lost_details = checks.iter().flat_map(|c| c.2.clone()).take(20).collect();
    for why in &out.lost_details {
        ctx.ui.say(format!("chaos: not retrievable: {why}"));
    }
    ctx.checks.downloads_verified += out.retrievable_network;
    ctx.checks.acknowledged_lost += out.lost;
    let killed: HashSet<usize> = victims.into_iter().collect();
    ctx.ui.say(format!(
        "chaos: {} acknowledged, {} readable on their node, {} through another, {} lost; {} operations failed while nodes {:?} were down",
        out.acknowledged,
        out.retrievable_origin,
        out.retrievable_network,
        out.lost,
        out.failed_during_faults,
        killed
    ));
    Ok(())
}

/// Whether `s` is readable from its original node, and through `reader`; the reasons when
/// it is not.
async fn verify(clients: &[NodeClient], s: &Stored, reader: usize) -> (bool, bool, Vec<String>) {
    let mut why = Vec::new();
    let mut check =
        |r: Result<crate::client::Fetched, crate::client::ClientError>, path: &str| match r {
            Ok(f) if f.sha256 == s.sha256 => true,
            Ok(_) => {
                why.push(format!("{} {path}: different bytes", s.cid));
                false
            }
            Err(e) => {
                why.push(format!("{} {path}: {}", s.cid, super::short_error(&e)));
                false
            }
        };
    let origin = check(
        clients[s.origin].get_local(&s.cid, VERIFY_LIMIT).await,
        &format!("on its node {}", s.origin),
    );
    let network = check(
        clients[reader].get_network(&s.cid, VERIFY_LIMIT).await,
        &format!("through node {reader}"),
    );
    (origin, network, why)
}
