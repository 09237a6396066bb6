//! `throughput`: one large dataset fetched by one node, then by many nodes at once (they
//! swarm: each also serves what it already has). The downloaders' receive rate over time
//! comes from their `/metrics`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use neverust_node::metrics::names::BYTES_RECEIVED_TOTAL as RECEIVED;

use super::payload::Stored;
use super::stats::{mib_s, ratio};
use super::{upload_new, BenchError, Ctx};
use crate::client::{ClientError, Fetched, NodeClient};
use crate::results::{RatePoint, Swarm, ThroughputResult, Transfer};

const LIMIT: Duration = Duration::from_secs(600);

pub async fn run(ctx: &mut Ctx) -> Result<ThroughputResult, BenchError> {
    let n = ctx.cluster.len();
    let size = ctx.profile.throughput_dataset;
    let (src, single) = ctx.pair();
    ctx.ui.say(format!(
        "throughput: {} MiB dataset on node {src}",
        size >> 20
    ));
    let (stored, _) = upload_new(ctx.cluster.client(src), src, ctx.seed(), size, LIMIT).await?;
    ctx.checks.uploads_acknowledged += 1;
    let timeline = Arc::new(Mutex::new(Vec::new()));

    let bar = ctx.ui.bytes_bar(size, "one node");
    let watcher = Watcher::start(ctx, vec![single], "single", timeline.clone(), bar.clone()).await;
    let f = ctx
        .cluster
        .client(single)
        .get_network(&stored.cid, LIMIT)
        .await;
    watcher.finish().await;
    let f = checked(f, single, &stored)?;
    bar.finish_and_clear();
    ctx.checks.downloads_verified += 1;
    let single_mib = mib_s(size, f.total.as_secs_f64());
    let single_t = Transfer {
        seconds: f.total.as_secs_f64(),
        mib_s: single_mib,
        ratio_to_loopback_tcp: ratio(single_mib, ctx.baseline.loopback_tcp_mib_s),
    };
    ctx.ui.say(format!(
        "throughput one node: {:.0} MiB/s ({:.0} % of loopback TCP)",
        single_t.mib_s,
        single_t.ratio_to_loopback_tcp * 100.0
    ));

    let swarm: Vec<usize> = (0..n)
        .filter(|&i| i != src && i != single)
        .take(ctx.profile.swarm_downloaders)
        .collect();
    let mut swarm_r = Swarm {
        downloaders: swarm.len(),
        ..Default::default()
    };
    if !swarm.is_empty() {
        let bar = ctx.ui.bytes_bar(size * swarm.len() as u64, "swarm");
        let watcher =
            Watcher::start(ctx, swarm.clone(), "swarm", timeline.clone(), bar.clone()).await;
        let start = Instant::now();
        let fetches = swarm.iter().map(|&i| {
            let c = ctx.cluster.client(i).clone();
            let cid = stored.cid.clone();
            async move { c.get_network(&cid, LIMIT).await }
        });
        let all = futures::future::join_all(fetches).await;
        swarm_r.seconds = start.elapsed().as_secs_f64();
        watcher.finish().await;
        bar.finish_and_clear();
        for (&i, f) in swarm.iter().zip(all) {
            let f = checked(f, i, &stored)?;
            ctx.checks.downloads_verified += 1;
            swarm_r.per_node_seconds.push(f.total.as_secs_f64());
        }
        swarm_r.aggregate_mib_s = mib_s(size * swarm.len() as u64, swarm_r.seconds);
        swarm_r.ratio_to_loopback_tcp =
            ratio(swarm_r.aggregate_mib_s, ctx.baseline.loopback_tcp_mib_s);
        ctx.ui.say(format!(
            "throughput swarm of {}: {:.0} MiB/s together ({:.0} % of loopback TCP)",
            swarm_r.downloaders,
            swarm_r.aggregate_mib_s,
            swarm_r.ratio_to_loopback_tcp * 100.0
        ));
    }
    let timeline = timeline.lock().expect("timeline").clone();
    Ok(ThroughputResult {
        dataset_bytes: size,
        single: single_t,
        swarm: swarm_r,
        timeline,
    })
}

/// A download of `stored` through `node`, if it arrived byte for byte.
fn checked(
    fetched: Result<Fetched, ClientError>,
    node: usize,
    stored: &Stored,
) -> Result<Fetched, BenchError> {
    let f = fetched.map_err(|source| BenchError::Download {
        node,
        cid: stored.cid.clone(),
        source,
    })?;
    if f.sha256 != stored.sha256 {
        return Err(BenchError::Mismatch {
            node,
            cid: stored.cid.clone(),
        });
    }
    Ok(f)
}

/// Samples the downloaders' received bytes every 100 ms into a timeline (and the bar)
/// until `finish`, which takes a last sample so even a short transfer has a point.
struct Watcher {
    task: tokio::task::JoinHandle<()>,
    sampler: Arc<RateSampler>,
}

struct RateSampler {
    clients: Vec<NodeClient>,
    phase: &'static str,
    t0: Instant,
    timeline: Arc<Mutex<Vec<RatePoint>>>,
    bar: indicatif::ProgressBar,
    /// (first total, last sample time, last total)
    state: Mutex<Option<(f64, Instant, f64)>>,
}

impl RateSampler {
    async fn sample(&self) {
        let scrapes = futures::future::join_all(self.clients.iter().map(|c| c.metrics())).await;
        let now = Instant::now();
        let total: f64 = scrapes
            .iter()
            .flatten()
            .map(|t| crate::metrics::sum(&crate::metrics::parse(t), RECEIVED))
            .sum();
        let mut state = self.state.lock().expect("rate state");
        match *state {
            None => *state = Some((total, now, total)),
            Some((first, at, prev)) => {
                self.bar.set_position((total - first).max(0.0) as u64);
                let dt = now.duration_since(at).as_secs_f64().max(1e-3);
                self.timeline.lock().expect("timeline").push(RatePoint {
                    phase: self.phase.into(),
                    t_s: now.duration_since(self.t0).as_secs_f64(),
                    mib_s: (total - prev).max(0.0) / dt / (1024.0 * 1024.0),
                });
                *state = Some((first, now, total));
            }
        }
    }
}

impl Watcher {
    async fn start(
        ctx: &Ctx,
        nodes: Vec<usize>,
        phase: &'static str,
        timeline: Arc<Mutex<Vec<RatePoint>>>,
        bar: indicatif::ProgressBar,
    ) -> Watcher {
        let sampler = Arc::new(RateSampler {
            clients: nodes
                .iter()
                .map(|&i| ctx.cluster.client(i).clone())
                .collect(),
            phase,
            t0: ctx.t0,
            timeline,
            bar,
            state: Mutex::new(None),
        });
        // The starting total, before the transfer begins.
        sampler.sample().await;
        let s = sampler.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            tick.tick().await;
            loop {
                tick.tick().await;
                s.sample().await;
            }
        });
        Watcher { task, sampler }
    }

    async fn finish(self) {
        self.task.abort();
        let _ = self.task.await;
        self.sampler.sample().await;
    }
}
