//! `neverust bench`: scenarios run against a native cluster, each bounded in count and
//! time, each leaving its figures in `results.json` and plots in `report.html`.
//!
//! A run starts (or attaches to) a cluster, measures its baselines once it has settled,
//! samples every node's CPU and RSS from /proc throughout, runs the chosen scenarios in
//! order, and writes the report even when a scenario fails (the failure is in the results).

mod baseline;
mod cache;
mod chaos;
pub mod error;
mod exchange;
mod interop;
mod marketplace;
pub mod netns;
mod partition;
pub mod payload;
mod reconcile;
mod scale;
pub mod stats;
mod stress;
mod throughput;
mod upload;
pub mod zipf;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::client::{sha256, NodeClient};
use crate::cluster::error::io_at;
use crate::cluster::{Cluster, ClusterSpec};
use crate::results::{Baseline, Checks, ClusterSummary, Results, Settings, SCHEMA_VERSION};
use crate::sampler::Sampler;
use crate::ui::Ui;
pub use cache::DEFAULT_SKEW as DEFAULT_CACHE_SKEW;
pub use error::BenchError;
use payload::Stored;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    Upload,
    Exchange,
    Throughput,
    Interop,
    Cache,
    Reconcile,
    Stress,
    Scale,
    Chaos,
    Marketplace,
}

impl Scenario {
    /// In the order they run. `marketplace` comes last: its requests stay proven every
    /// proof period after it ends, which no other scenario's figures should include.
    pub const ALL: [Scenario; 10] = [
        Scenario::Upload,
        Scenario::Exchange,
        Scenario::Throughput,
        Scenario::Interop,
        Scenario::Cache,
        Scenario::Reconcile,
        Scenario::Stress,
        Scenario::Scale,
        Scenario::Chaos,
        Scenario::Marketplace,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Upload => "upload",
            Scenario::Exchange => "exchange",
            Scenario::Throughput => "throughput",
            Scenario::Interop => "interop",
            Scenario::Cache => "cache",
            Scenario::Reconcile => "reconcile",
            Scenario::Stress => "stress",
            Scenario::Scale => "scale",
            Scenario::Chaos => "chaos",
            Scenario::Marketplace => "marketplace",
        }
    }

    /// Why this scenario cannot run on nodes this machine does not run (a cluster found
    /// from its bootstrap's URL), if it cannot.
    pub fn needs_local_nodes(self) -> Option<&'static str> {
        match self {
            Scenario::Chaos => Some("it kills (kill -9), restarts and partitions nodes, which takes their processes and network namespaces on this machine"),
            Scenario::Marketplace => Some("it kills slot hosts (kill -9) and restarts them, which takes their processes on this machine"),
            Scenario::Scale => Some("it starts clusters of its own on this machine, whose figures would say nothing about the deployed cluster"),
            Scenario::Cache | Scenario::Reconcile => Some("it starts nodes of its own on this machine, whose figures would say nothing about the deployed cluster"),
            _ => None,
        }
    }

    /// `all` or one scenario's name.
    pub fn parse_list(s: &str) -> Result<Vec<Scenario>, String> {
        if s == "all" {
            return Ok(Scenario::ALL.to_vec());
        }
        let mut out = Vec::new();
        for part in s.split(',') {
            let found = Scenario::ALL
                .into_iter()
                .find(|x| x.name() == part.trim())
                .ok_or_else(|| {
                    format!("unknown scenario {part:?}: expected all, upload, exchange, throughput, interop, cache, reconcile, stress, scale, chaos or marketplace")
                })?;
            out.push(found);
        }
        Ok(out)
    }
}

/// How much work each scenario does. `smoke` is for tests, `quick` for the README's first
/// command, `full` for figures worth publishing.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: &'static str,
    pub upload_sizes: Vec<(u64, usize)>,
    pub exchange_pairs: usize,
    pub exchange_file: u64,
    pub aggregate_downloads: usize,
    pub aggregate_concurrency: usize,
    pub aggregate_file: u64,
    pub throughput_dataset: u64,
    pub swarm_downloaders: usize,
    pub stress_ops: usize,
    pub stress_file: u64,
    pub scale_nodes: Vec<usize>,
    pub scale_downloads: usize,
    pub chaos_ops: usize,
    pub chaos_file: u64,
    pub partition_group: usize,
    pub split_seconds: f64,
    /// Dataset sizes of `interop`, and how many files of each size go each way.
    pub interop_sizes: Vec<u64>,
    pub interop_rounds: usize,
    /// `cache`: one-block files, reads of them on each node, and reads per round (the two
    /// nodes take turns, a round each).
    pub cache_files: usize,
    pub cache_reads: usize,
    pub cache_round: usize,
    /// `reconcile`: set sizes of the two-node pairs, repetitions of each, the partition
    /// heal's nodes and dataset, and the real-process swarm.
    pub reconcile_sets: Vec<u64>,
    pub reconcile_reps: usize,
    pub reconcile_heal_nodes: usize,
    pub reconcile_heal_blocks: u64,
    pub reconcile_swarm_downloaders: usize,
    pub reconcile_swarm_bytes: u64,
    /// `marketplace`: the size of each client's dataset.
    pub market_file: u64,
    /// How long idle CPU and RSS are sampled. An idle node's work comes in bursts, one every
    /// 15 s when libp2p pings its peers (about 4 s of work, then 10 s of none, read each
    /// second on 50 nodes), so a shorter window often sees none of it and reports 0 %.
    pub idle_window: Duration,
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

impl Profile {
    pub fn named(name: &str) -> Result<Profile, String> {
        match name {
            "smoke" => Ok(Profile {
                name: "smoke",
                upload_sizes: vec![(64 * KIB, 3), (MIB, 3), (16 * MIB, 1)],
                exchange_pairs: 4,
                exchange_file: MIB,
                aggregate_downloads: 8,
                aggregate_concurrency: 4,
                aggregate_file: MIB,
                throughput_dataset: 8 * MIB,
                swarm_downloaders: 3,
                stress_ops: 20,
                stress_file: 256 * KIB,
                scale_nodes: vec![2, 3],
                scale_downloads: 4,
                chaos_ops: 24,
                chaos_file: 256 * KIB,
                partition_group: 2,
                split_seconds: 3.0,
                interop_sizes: vec![64 * KIB, MIB],
                interop_rounds: 1,
                cache_files: 64,
                cache_reads: 640,
                cache_round: 80,
                reconcile_sets: vec![10_000],
                reconcile_reps: 1,
                reconcile_heal_nodes: 4,
                reconcile_heal_blocks: 10_000,
                reconcile_swarm_downloaders: 2,
                reconcile_swarm_bytes: 4 * MIB,
                market_file: MIB,
                idle_window: Duration::from_secs(3),
            }),
            "quick" => Ok(Profile {
                name: "quick",
                upload_sizes: vec![(64 * KIB, 10), (MIB, 10), (16 * MIB, 4), (256 * MIB, 1)],
                exchange_pairs: 20,
                exchange_file: MIB,
                aggregate_downloads: 100,
                aggregate_concurrency: 25,
                aggregate_file: 4 * MIB,
                throughput_dataset: 64 * MIB,
                swarm_downloaders: 10,
                stress_ops: 100,
                stress_file: MIB,
                scale_nodes: vec![10, 25, 50],
                scale_downloads: 25,
                chaos_ops: 100,
                chaos_file: 256 * KIB,
                partition_group: 3,
                split_seconds: 5.0,
                interop_sizes: vec![64 * KIB, MIB, 16 * MIB, 100 * MIB],
                interop_rounds: 2,
                cache_files: 1000,
                cache_reads: 12_000,
                cache_round: 600,
                reconcile_sets: vec![10_000, 100_000, 1_000_000],
                reconcile_reps: 3,
                reconcile_heal_nodes: 8,
                reconcile_heal_blocks: 100_000,
                reconcile_swarm_downloaders: 6,
                reconcile_swarm_bytes: 64 * MIB,
                market_file: 4 * MIB,
                idle_window: Duration::from_secs(15),
            }),
            "full" => Ok(Profile {
                name: "full",
                upload_sizes: vec![(64 * KIB, 50), (MIB, 50), (16 * MIB, 10), (256 * MIB, 3)],
                exchange_pairs: 100,
                exchange_file: MIB,
                aggregate_downloads: 400,
                aggregate_concurrency: 50,
                aggregate_file: 4 * MIB,
                throughput_dataset: 256 * MIB,
                swarm_downloaders: 20,
                stress_ops: 100,
                stress_file: 4 * MIB,
                scale_nodes: vec![10, 25, 50, 100],
                scale_downloads: 50,
                chaos_ops: 200,
                chaos_file: MIB,
                partition_group: 5,
                split_seconds: 10.0,
                interop_sizes: vec![64 * KIB, MIB, 16 * MIB, 100 * MIB],
                interop_rounds: 5,
                cache_files: 4000,
                cache_reads: 48_000,
                cache_round: 1600,
                reconcile_sets: vec![10_000, 100_000, 1_000_000],
                reconcile_reps: 5,
                reconcile_heal_nodes: 16,
                reconcile_heal_blocks: 1_000_000,
                reconcile_swarm_downloaders: 10,
                reconcile_swarm_bytes: 256 * MIB,
                market_file: 16 * MIB,
                idle_window: Duration::from_secs(30),
            }),
            other => Err(format!(
                "unknown profile {other:?}: expected smoke, quick or full"
            )),
        }
    }
}

/// Where the scenarios run.
pub enum Target {
    /// Start a cluster with this spec, and stop it at the end (boxed: a spec is large
    /// beside a path).
    Launch(Box<ClusterSpec>),
    /// A cluster `neverust cluster` runs, from its `cluster.json`.
    Attach(PathBuf),
    /// A deployed cluster (Compose, Kubernetes) found from its bootstrap's API URL.
    Remote(String),
}

impl Target {
    /// `--cluster`'s value: the bootstrap's URL (`http://HOST:PORT`) of a deployed cluster,
    /// or the `cluster.json` of one this machine runs.
    pub fn running(arg: &str) -> Target {
        if arg.starts_with("http://") || arg.starts_with("https://") {
            Target::Remote(arg.to_string())
        } else {
            Target::Attach(PathBuf::from(arg))
        }
    }
}

pub struct BenchOptions {
    pub scenarios: Vec<Scenario>,
    pub profile: Profile,
    pub seed: u64,
    pub report_dir: PathBuf,
    /// Overrides the profile's list of cluster sizes for `scale`.
    pub scale_nodes: Option<Vec<usize>>,
    /// Zipf exponent of `cache`'s reads.
    pub cache_skew: f64,
}

/// A cluster counts as settled below this CPU use per node (percent of a core).
pub const SETTLED_PERCENT: f64 = 1.0;
pub const SETTLE_LIMIT: Duration = Duration::from_secs(15);

/// What every scenario works with.
pub struct Ctx {
    pub cluster: Cluster,
    pub ui: Ui,
    pub t0: Instant,
    pub profile: Profile,
    pub baseline: Baseline,
    pub sampler: Sampler,
    pub checks: Checks,
    /// Where `scale`, `chaos` and `cache` put the extra nodes they start.
    pub work_dir: PathBuf,
    /// The spec the main cluster was launched with, when it was.
    pub spec: Option<ClusterSpec>,
    /// The idle window every run starts with, in seconds since `t0`.
    pub idle_span: (f64, f64),
    rng: StdRng,
    seed: u64,
    next: Arc<AtomicU64>,
}

impl Ctx {
    pub fn t(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    /// A fresh payload seed: every file of a run is different and reproducible.
    pub fn seed(&self) -> u64 {
        self.seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(self.next.fetch_add(1, Ordering::Relaxed))
    }

    pub fn pick(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n)
    }

    /// In an order the seed decides.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        rand::seq::SliceRandom::shuffle(items, &mut self.rng);
    }

    /// Two different nodes of the main cluster.
    pub fn pair(&mut self) -> (usize, usize) {
        self.pair_of(self.cluster.len())
    }

    /// Two different nodes among `n`.
    pub fn pair_of(&mut self, n: usize) -> (usize, usize) {
        let a = self.pick(n);
        let b = (a + 1 + self.pick(n - 1)) % n;
        (a, b)
    }

    /// `ops` operations as (upload node, download node, payload seed) on a cluster of
    /// `nodes`, the two nodes of each distinct.
    pub fn plan(&mut self, ops: usize, nodes: usize) -> Vec<(usize, usize, u64)> {
        (0..ops)
            .map(|_| {
                let (x, y) = self.pair_of(nodes);
                (x, y, self.seed())
            })
            .collect()
    }
}

/// Uploads a fresh payload to `node`; what was stored, with how long it took.
pub async fn upload_new(
    client: &NodeClient,
    origin: usize,
    seed: u64,
    len: u64,
    limit: Duration,
) -> Result<(Stored, Duration), BenchError> {
    let data: Bytes = tokio::task::spawn_blocking(move || payload::payload(seed, len))
        .await
        .map_err(|source| BenchError::Task {
            what: "making a payload",
            source,
        })?;
    let digest = sha256(&data);
    let start = Instant::now();
    let cid = client
        .upload(data, limit)
        .await
        .map_err(|source| BenchError::Upload {
            node: origin,
            source,
        })?;
    Ok((
        Stored {
            cid,
            origin,
            sha256: digest,
            bytes: len,
        },
        start.elapsed(),
    ))
}

/// An error with its causes, cut to a line: for the failures a scenario records and goes on.
pub fn short_error(e: &dyn std::error::Error) -> String {
    let s = crate::error_chain(e);
    if s.len() > 240 {
        format!("{}…", &s[..s.floor_char_boundary(240)])
    } else {
        s
    }
}

/// Runs the scenarios and writes `results.json` and `report.html`; returns the results and
/// the report's path.
pub async fn run(
    opts: BenchOptions,
    target: Target,
    ui: &Ui,
) -> Result<(Results, PathBuf), BenchError> {
    // Refused before anything is created or asked of the cluster.
    if let Target::Remote(url) = &target {
        if let Some((s, why)) = opts
            .scenarios
            .iter()
            .find_map(|s| s.needs_local_nodes().map(|why| (s, why)))
        {
            return Err(BenchError::NeedsLocalNodes {
                scenario: s.name(),
                url: url.clone(),
                why,
            });
        }
    }
    let t0 = Instant::now();
    let started_at = crate::now_rfc3339();
    std::fs::create_dir_all(&opts.report_dir).map_err(io_at("creating", &opts.report_dir))?;
    ui.say(format!(
        "seed {} (--seed {} replays this run)",
        opts.seed, opts.seed
    ));
    let (cluster, spec) = match target {
        Target::Launch(spec) => {
            let spec = *spec;
            ui.say(format!(
                "starting a {}-node cluster in {}",
                spec.nodes,
                spec.dir.display()
            ));
            let c = Cluster::launch(spec.clone(), ui).await?;
            ui.say(format!("cluster ready in {:.2} s", c.ready_seconds));
            (c, Some(spec))
        }
        Target::Attach(path) => (Cluster::attach(&path)?, None),
        Target::Remote(url) => {
            let nodes = crate::cluster::remote::discover(&url).await?;
            // Kept beside the report: which nodes were measured.
            let path = opts.report_dir.join("remote-cluster.json");
            crate::cluster::remote::file(nodes)
                .write(&path)
                .map_err(io_at("writing", &path))?;
            let c = Cluster::attach(&path)?;
            ui.say(format!(
                "{} nodes found from the bootstrap at {url} (listed in {}); their CPU and memory are not sampled (no processes here)",
                c.len(),
                path.display()
            ));
            (c, None)
        }
    };
    let owned = spec.is_some();
    // Baselines beside the settled cluster: the same conditions the scenarios meet, and
    // not while a cluster that just started is still meeting its peers.
    let pids: Vec<u32> = cluster.entries().iter().map(|e| e.pid).collect();
    crate::sampler::settle(&pids, SETTLED_PERCENT, SETTLE_LIMIT).await;
    ui.say("measuring baselines (sha256, loopback TCP)...");
    let baseline = baseline::measure().await?;
    ui.say(format!(
        "baseline: sha256 {:.0} MiB/s, loopback TCP {:.0} MiB/s",
        baseline.sha256_mib_s, baseline.loopback_tcp_mib_s
    ));
    let work_dir = opts.report_dir.join("work");
    let mut ctx = Ctx {
        sampler: Sampler::new(t0),
        ui: ui.clone(),
        t0,
        profile: opts.profile.clone(),
        baseline: baseline.clone(),
        checks: Checks::default(),
        work_dir,
        spec,
        idle_span: (0.0, 0.0),
        rng: StdRng::seed_from_u64(opts.seed),
        seed: opts.seed,
        next: Arc::default(),
        cluster,
    };
    let mut results = Results {
        schema_version: SCHEMA_VERSION,
        started_at,
        machine: machine(),
        settings: Settings {
            scenarios: opts
                .scenarios
                .iter()
                .map(|s| s.name().to_string())
                .collect(),
            nodes: ctx.cluster.len(),
            quick: opts.profile.name != "full",
            seed: opts.seed,
        },
        baseline,
        ..Default::default()
    };
    let outcome = run_scenarios(&opts, &mut ctx, &mut results).await;
    ui.say("photographing the visualizer...");
    results.visualizer =
        Some(crate::viz::shot::for_report(ctx.cluster.file_path(), &opts.report_dir).await);
    results.resources = ctx.sampler.series();
    results.checks = ctx.checks.clone();
    results.seconds = t0.elapsed().as_secs_f64();
    if owned {
        ui.say("stopping the cluster...");
        ctx.cluster.stop(ui).await;
        ctx.cluster.remove_data();
    }
    let _ = std::fs::remove_dir_all(&ctx.work_dir);
    let report = crate::report::write_report(&results, &opts.report_dir)
        .map_err(io_at("writing the report in", &opts.report_dir))?;
    outcome?;
    Ok((results, report))
}

async fn run_scenarios(
    opts: &BenchOptions,
    ctx: &mut Ctx,
    results: &mut Results,
) -> Result<(), BenchError> {
    // Chaos restarts nodes under new pids: it updates this list, which the sampler reads
    // on every tick.
    let live = Arc::new(std::sync::Mutex::new(ctx.cluster.entries()));
    let live2 = live.clone();
    let _sampling = ctx.sampler.spawn(Duration::from_millis(500), move || {
        live2
            .lock()
            .expect("live list")
            .iter()
            .map(|e| (e.index, e.pid, e.role.clone()))
            .collect()
    });
    // Idle figures: the cluster settled before the baselines, and nothing was asked of it
    // yet.
    let idle_from = ctx.t();
    tokio::time::sleep(ctx.profile.idle_window).await;
    let marketplace = ctx
        .cluster
        .entries()
        .iter()
        .filter(|e| e.mode == "marketplace")
        .count();
    ctx.idle_span = (idle_from, ctx.t());
    results.cluster = Some(ClusterSummary {
        nodes: ctx.cluster.len(),
        marketplace_nodes: marketplace,
        ready_seconds: ctx.cluster.ready_seconds,
        idle: ctx.sampler.summary(idle_from, ctx.t()),
    });
    for scenario in &opts.scenarios {
        ctx.ui.say(format!("== {} ==", scenario.name()));
        let r = match scenario {
            Scenario::Upload => upload::run(ctx).await.map(|r| results.upload = Some(r)),
            Scenario::Exchange => exchange::run(ctx).await.map(|r| results.exchange = Some(r)),
            Scenario::Throughput => throughput::run(ctx)
                .await
                .map(|r| results.throughput = Some(r)),
            Scenario::Interop => interop::run(ctx).await.map(|r| results.interop = Some(r)),
            Scenario::Cache => cache::run(ctx, opts.cache_skew)
                .await
                .map(|r| results.cache = Some(r)),
            Scenario::Reconcile => reconcile::run(ctx)
                .await
                .map(|r| results.reconcile = Some(r)),
            Scenario::Stress => stress::run(ctx).await.map(|r| results.stress = Some(r)),
            Scenario::Scale => scale::run(ctx, opts.scale_nodes.clone())
                .await
                .map(|r| results.scale = Some(r)),
            Scenario::Chaos => chaos::run(ctx, &live)
                .await
                .map(|r| results.chaos = Some(r)),
            Scenario::Marketplace => marketplace::run(ctx, &live)
                .await
                .map(|r| results.marketplace = Some(r)),
        };
        if let Err(e) = r {
            ctx.checks.errors += 1;
            return Err(e.in_scenario(scenario.name()));
        }
    }
    Ok(())
}

fn machine() -> crate::results::Machine {
    use procfs::Current;
    let memory_bytes = procfs::Meminfo::current().map_or(0, |m| m.mem_total);
    crate::results::Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_bytes,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// The node binary for the nodes a scenario starts on its own: the main cluster's, or this
/// program when the cluster was not launched here.
fn node_binary(ctx: &Ctx) -> Result<PathBuf, BenchError> {
    match &ctx.spec {
        Some(spec) => Ok(spec.binary.clone()),
        None => std::env::current_exe().map_err(BenchError::OwnBinary),
    }
}

/// A port base above every port the main cluster uses, for the clusters scenarios add.
fn free_base_port(ctx: &Ctx) -> u16 {
    let highest = ctx
        .cluster
        .entries()
        .iter()
        .flat_map(|e| [e.listen_port, e.disc_port, e.api_port])
        .filter(|&p| p != crate::cluster::ports::BOOTSTRAP_API_PORT)
        .max()
        .unwrap_or(crate::cluster::ports::DEFAULT_BASE_PORT);
    highest.saturating_add(30)
}
