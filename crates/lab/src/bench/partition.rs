//! The partition half of `chaos`: two groups of nodes in two network namespaces joined by
//! one veth link. Data is stored on both sides, the link is cut, transfers are tried
//! within and across the split, the link is restored, and the time until a transfer across
//! succeeds again is the heal time. Every upload acknowledged on either side, before or
//! during the split, must be readable from the other side afterwards.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::netns::NetnsPair;
use super::payload::Stored;
use super::{upload_new, BenchError, Ctx};
use crate::client::NodeClient;
use crate::cluster::{Cluster, ClusterSpec, Placement};
use crate::results::{Event, OpSample, PartitionResult};

const UPLOAD_LIMIT: Duration = Duration::from_secs(30);
/// How long a transfer may take before it counts as failed while split.
const SPLIT_LIMIT: Duration = Duration::from_secs(3);
const HEAL_LIMIT: Duration = Duration::from_secs(90);
const VERIFY_LIMIT: Duration = Duration::from_secs(30);

struct Run<'a> {
    ctx: &'a Ctx,
    clients: Vec<NodeClient>,
    k: usize,
    out: PartitionResult,
}

impl Run<'_> {
    fn event(&mut self, kind: &str, detail: impl Into<String>) {
        let e = Event {
            t_s: self.ctx.t(),
            kind: kind.into(),
            detail: detail.into(),
        };
        self.ctx
            .ui
            .say(format!("partition: {} {}", e.kind, e.detail));
        self.out.events.push(e);
    }

    /// Group of node `i`: 0 (A) or 1 (B).
    fn group(&self, i: usize) -> usize {
        i / self.k
    }

    fn member(&self, group: usize, nth: usize) -> usize {
        group * self.k + nth % self.k
    }

    async fn upload(&mut self, node: usize, size: u64) -> Result<Stored, BenchError> {
        let (s, took) = upload_new(
            &self.clients[node],
            node,
            self.ctx.seed(),
            size,
            UPLOAD_LIMIT,
        )
        .await?;
        self.out.ops.push(OpSample {
            t_s: self.ctx.t(),
            kind: "upload".into(),
            ok: true,
            ms: took.as_secs_f64() * 1000.0,
        });
        self.out.acknowledged += 1;
        Ok(s)
    }

    /// Fetches `s` through `node`; records and returns whether it arrived intact.
    async fn fetch(&mut self, node: usize, s: &Stored, limit: Duration, record: bool) -> bool {
        let start = Instant::now();
        let t_s = self.ctx.t();
        let ok = self.clients[node]
            .get_network(&s.cid, limit)
            .await
            .is_ok_and(|f| f.sha256 == s.sha256);
        if record {
            let across = self.group(node) != self.group(s.origin);
            self.out.ops.push(OpSample {
                t_s,
                kind: if across { "across" } else { "within" }.into(),
                ok,
                ms: start.elapsed().as_secs_f64() * 1000.0,
            });
        }
        ok
    }
}

pub async fn run(ctx: &mut Ctx) -> Result<PartitionResult, BenchError> {
    let k = ctx.profile.partition_group.max(1);
    let pair = NetnsPair::create("p")?;
    let dir = ctx.work_dir.join("partition");
    let mut spec = ctx
        .spec
        .clone()
        .unwrap_or_else(|| ClusterSpec::new(2 * k, dir.clone()));
    spec.nodes = 2 * k;
    spec.dir = dir.clone();
    spec.base_port = super::free_base_port(ctx);
    spec.bootstrap_api_port = None;
    spec.restart = false;
    let any = IpAddr::from([0, 0, 0, 0]);
    spec.placements = (0..2 * k)
        .map(|i| {
            let in_a = i < k;
            Placement {
                netns: Some(if in_a { pair.a.clone() } else { pair.b.clone() }),
                bind: any,
                host: if in_a {
                    pair.a_host.clone()
                } else {
                    pair.b_host.clone()
                },
                // Group B joins through the shared link: before the split, one network.
                bootstrap_host: Some(if in_a {
                    "127.0.0.1".into()
                } else {
                    pair.a_link_ip.clone()
                }),
            }
        })
        .collect();
    ctx.ui.say(format!(
        "partition: {k} nodes in namespace {} and {k} in {}, one link between them",
        pair.a, pair.b
    ));
    let mut cluster =
        Cluster::launch(spec, &ctx.ui)
            .await
            .map_err(|source| BenchError::Launch {
                what: format!("the partition's {} nodes", 2 * k),
                source,
            })?;
    let result = split_and_heal(ctx, &cluster, &pair, k).await;
    cluster.stop(&ctx.ui).await;
    let _ = std::fs::remove_dir_all(&dir);
    drop(pair);
    result
}

async fn split_and_heal(
    ctx: &Ctx,
    cluster: &Cluster,
    pair: &NetnsPair,
    k: usize,
) -> Result<PartitionResult, BenchError> {
    let size = ctx.profile.chaos_file;
    let mut run = Run {
        ctx,
        clients: cluster.clients().to_vec(),
        k,
        out: PartitionResult {
            group_a: k,
            group_b: k,
            ..Default::default()
        },
    };
    let mut stored = Vec::new();
    for node in 0..2 * k {
        stored.push(run.upload(node, size).await?);
    }
    // One network before the split: B reads what A stored.
    let first = stored[0].clone();
    if !run
        .fetch(run.member(1, 0), &first, VERIFY_LIMIT, true)
        .await
    {
        return Err(BenchError::NotOneNetwork);
    }

    pair.cut()?;
    run.event(
        "cut",
        format!("link between {} and {} down", pair.a, pair.b),
    );
    let split_at = Instant::now();
    let mut during = Vec::new();
    let mut round = 0;
    while round == 0 || split_at.elapsed().as_secs_f64() < ctx.profile.split_seconds {
        for group in 0..2 {
            let origin = run.member(group, round);
            let s = run.upload(origin, size).await?;
            if k > 1 {
                let ok = run
                    .fetch(run.member(group, round + 1), &s, SPLIT_LIMIT, true)
                    .await;
                if ok {
                    run.out.within_ok += 1
                } else {
                    run.out.within_failed += 1
                }
            }
            let ok = run
                .fetch(run.member(1 - group, round), &s, SPLIT_LIMIT, true)
                .await;
            if ok {
                run.out.across_ok += 1
            } else {
                run.out.across_failed += 1
            }
            during.push(s);
        }
        round += 1;
    }
    run.out.split_seconds = split_at.elapsed().as_secs_f64();

    pair.restore()?;
    run.event("restore", "link up");
    let restored = Instant::now();
    // Heal: data stored on B during the split becomes readable on A.
    let probe = during
        .iter()
        .find(|s| run.group(s.origin) == 1)
        .cloned()
        .unwrap_or_else(|| stored[k].clone());
    let reader = run.member(0, 0);
    loop {
        if run.fetch(reader, &probe, SPLIT_LIMIT, true).await {
            let healed = restored.elapsed().as_secs_f64();
            run.out.heal_seconds = Some(healed);
            run.event("healed", format!("{healed:.2} s after the link came back"));
            break;
        }
        if restored.elapsed() > HEAL_LIMIT {
            run.event(
                "not healed",
                format!("no transfer across within {HEAL_LIMIT:?}"),
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Nothing acknowledged may be lost: each dataset read from the other side.
    stored.extend(during);
    for s in &stored {
        let reader = run.member(1 - run.group(s.origin), s.origin + 1);
        if !run.fetch(reader, s, VERIFY_LIMIT, false).await {
            run.out.lost += 1;
        }
    }
    ctx.ui.say(format!(
        "partition: within ok/failed {}/{}, across ok/failed {}/{} during {:.1} s split; healed in {}; {} of {} acknowledged lost",
        run.out.within_ok,
        run.out.within_failed,
        run.out.across_ok,
        run.out.across_failed,
        run.out.split_seconds,
        run.out
            .heal_seconds
            .map_or("never".to_string(), |h| format!("{h:.2} s")),
        run.out.lost,
        run.out.acknowledged
    ));
    Ok(run.out)
}
