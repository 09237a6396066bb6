//! What a benchmark run measured: the `results.json` schema, and the input of the report.
//!
//! Raw samples (latencies, time series) are kept, bounded by the scenarios' counts, so the
//! report can draw distributions rather than only the summaries computed here. Throughput
//! figures come with their ratio to a baseline measured in the same run, because the
//! machines are shared and noisy: the ratio is the figure to compare across runs.

use serde::{Deserialize, Serialize};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Results {
    pub schema_version: u32,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub seconds: f64,
    pub machine: Machine,
    pub settings: Settings,
    pub baseline: Baseline,
    /// The cluster the scenarios ran against (`scale` starts its own, reported there).
    pub cluster: Option<ClusterSummary>,
    pub upload: Option<UploadResult>,
    pub exchange: Option<ExchangeResult>,
    pub throughput: Option<ThroughputResult>,
    pub stress: Option<StressResult>,
    pub scale: Option<ScaleResult>,
    pub chaos: Option<ChaosResult>,
    /// A mixed cluster's Archivist nodes beside its Neverust nodes.
    #[serde(default)]
    pub interop: Option<InteropResult>,
    /// A tiered node beside a memory-store node under the same skewed reads.
    #[serde(default)]
    pub cache: Option<CacheResult>,
    #[serde(default)]
    pub reconcile: Option<ReconcileResult>,
    /// Storage requests filled by marketplace hosts, a host killed, the slot repaired.
    #[serde(default)]
    pub marketplace: Option<MarketplaceResult>,
    /// Per node CPU and RSS sampled from /proc during the whole run.
    pub resources: Vec<NodeResources>,
    /// Totals over every scenario, what a CI run asserts on.
    pub checks: Checks,
    /// A picture of the visualizer near the end of the run, while the cluster still ran.
    #[serde(default)]
    pub visualizer: Option<VisualizerShot>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct VisualizerShot {
    /// The PNG, beside the report; None when there is none (`note` says why).
    pub png: Option<std::path::PathBuf>,
    /// What the snapshot in the picture held.
    pub nodes: usize,
    pub active_nodes: usize,
    pub edges: usize,
    pub note: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Machine {
    pub cores: usize,
    pub memory_bytes: u64,
    pub kernel: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Settings {
    pub scenarios: Vec<String>,
    pub nodes: usize,
    pub quick: bool,
    pub seed: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Baseline {
    /// sha256 over 64 KiB blocks, one core.
    pub sha256_mib_s: f64,
    /// One TCP stream over 127.0.0.1, 64 KiB writes.
    pub loopback_tcp_mib_s: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct ClusterSummary {
    pub nodes: usize,
    pub marketplace_nodes: usize,
    /// From the first spawn until every node was healthy and had found its peers.
    pub ready_seconds: f64,
    /// Resource use of the idle cluster, sampled right after it was ready.
    pub idle: ResourceSummary,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct ResourceSummary {
    pub rss_mean_bytes: f64,
    pub rss_max_bytes: u64,
    /// Percent of one core.
    pub cpu_mean_percent: f64,
    pub cpu_max_percent: f64,
}

/// Quantiles of a latency sample, in milliseconds.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Quantiles {
    pub count: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// Archivist and Neverust nodes of one cluster, measured side by side.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct InteropResult {
    /// Why the scenario did not run (no Archivist nodes), when it did not.
    pub skipped: Option<String>,
    pub kinds: Vec<InteropKind>,
    pub sizes: Vec<InteropSize>,
    pub errors: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct InteropKind {
    /// neverust or archivist.
    pub implementation: String,
    pub nodes: usize,
    /// Over the idle window the run starts with.
    pub idle: ResourceSummary,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct InteropSize {
    pub size_bytes: u64,
    /// One per implementation uploaded to.
    pub uploads: Vec<InteropUpload>,
    /// One per (uploaded to, read through) pair of implementations.
    pub transfers: Vec<InteropTransfer>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct InteropUpload {
    pub implementation: String,
    pub latency: Quantiles,
    pub throughput_mib_s: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct InteropTransfer {
    /// The implementation of the node the dataset was uploaded to.
    pub from: String,
    /// The implementation of the node it was read through, which fetched it.
    pub to: String,
    pub count: usize,
    /// Read back byte for byte (sha256 and length).
    pub verified: usize,
    pub latencies_ms: Vec<f64>,
    pub latency: Quantiles,
    pub throughput_mib_s: f64,
}

/// The `reconcile` scenario: set reconciliation against plain want-haves and presences.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct ReconcileResult {
    /// Each pair's figures are medians over this many repetitions.
    pub repetitions: usize,
    pub pairs: Vec<ReconcilePair>,
    pub heal: Option<ReconcileHeal>,
    pub swarm: Option<ReconcileSwarm>,
    pub errors: Vec<String>,
}

/// What one method cost to learn a difference. Bytes are on the wire in both directions,
/// length prefixes included; CPU is the benchmark process's, which runs both hosts.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq)]
pub struct MethodCost {
    pub bytes: u64,
    /// Request/answer exchanges one after the other (want-haves are pipelined: one).
    pub round_trips: u32,
    /// Messages sent (want-have method only).
    pub messages: u64,
    pub wall_ms: f64,
    pub cpu_ms: f64,
    /// A side sent its set as index runs, not coded symbols (reconciliation only).
    pub by_runs: bool,
}

/// Two nodes each holding `set_size` blocks of a dataset of twice that, differing in
/// `difference_share` of them.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct ReconcilePair {
    pub set_size: u64,
    pub difference_share: f64,
    /// The true symmetric difference, in blocks.
    pub difference: u64,
    /// Every repetition of both methods found exactly the true difference.
    pub correct: bool,
    pub reconcile: MethodCost,
    pub plain: MethodCost,
    /// Want-have / reconciliation: bytes, wall time to a known difference, CPU.
    pub bytes_ratio: f64,
    pub time_ratio: f64,
    pub cpu_ratio: f64,
}

/// Two groups of nodes meeting after a partition: every node learns from every node of
/// the other group what it lacks, all at once.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct ReconcileHeal {
    pub nodes: usize,
    pub dataset_blocks: u64,
    /// Reconciliation sessions (one per pair across the groups; each tells both sides).
    pub sessions: usize,
    pub correct: bool,
    /// Totals over every exchange; wall time until the last node knows.
    pub reconcile: MethodCost,
    pub plain: MethodCost,
    pub bytes_ratio: f64,
    pub time_ratio: f64,
}

/// Real nodes: one holds a dataset, the others fetch it at once, by each method.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct ReconcileSwarm {
    pub downloaders: usize,
    pub dataset_bytes: u64,
    pub runs: Vec<SwarmRun>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct SwarmRun {
    /// `reconciliation` or `want-have`.
    pub method: String,
    /// Until the last copy was in.
    pub seconds: f64,
    /// Copies read back identical (sha256 and length).
    pub verified: usize,
    /// Bytes every node wrote, summed: wantlist messages (block requests included),
    /// presences, reconciliation sessions.
    pub wantlist_bytes: u64,
    pub presence_bytes: u64,
    pub reconcile_bytes: u64,
    /// Blocks served by the node that held the dataset, and by the other downloaders.
    pub blocks_from_seed: u64,
    pub blocks_from_peers: u64,
    pub errors: Vec<String>,
}

/// The `cache` scenario: the same Zipf-skewed reads of one-block files on a tiered node
/// and on a memory-store node.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct CacheResult {
    /// Zipf exponent of the reads (`--cache-skew`).
    pub skew: f64,
    /// One-block files (64 KiB each) stored on both nodes.
    pub files: usize,
    pub dataset_bytes: u64,
    /// Reads each node served, `concurrency` at a time.
    pub reads: usize,
    pub concurrency: usize,
    /// The tiered node's `--tier` specs, fastest first.
    pub tier_specs: Vec<String>,
    /// Per tier of the tiered node, in the same order.
    pub tiers: Vec<CacheTier>,
    /// The tiered node's memory tier: share of block reads it served over the last half of
    /// the reads, and what an oracle holding the most read files that fit would serve.
    pub memory_hit_ratio_steady: f64,
    pub memory_hit_ratio_ideal: f64,
    pub tiered: CacheNode,
    pub memory: CacheNode,
    /// Tiered p50 / memory-store p50 (and p99), over the last half of the reads.
    pub p50_ratio: f64,
    pub p99_ratio: f64,
    pub errors: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct CacheTier {
    /// As the node labels it: kind and position (`memory0`, `ssd1`, ...).
    pub tier: String,
    /// Its reads wait as a device of the spec's speed would (`:latency=...,bw=...`).
    pub emulated: bool,
    pub capacity_bytes: u64,
    /// Block reads this tier served, and their share of all the node's block reads.
    pub hits: u64,
    pub hit_ratio: f64,
    /// Blocks copied or moved into this tier (a memory tier: copies admitted) and out of it
    /// (a memory tier: copies evicted), and their bytes at 64 KiB a block.
    pub promotions: u64,
    pub demotions: u64,
    pub moved_in_bytes: u64,
    pub moved_out_bytes: u64,
    /// Block read latency on this tier, from the node's histogram.
    pub read_latency: Histogram,
    /// After each round of reads: seconds since the scenario started, this tier's share of
    /// the round's block reads, and bytes moved in and out of it since the start.
    pub t_s: Vec<f64>,
    pub hit_ratio_over_time: Vec<f64>,
    pub moved_bytes_over_time: Vec<u64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct CacheNode {
    /// tiered or memory.
    pub store: String,
    pub reads: usize,
    /// Reads whose bytes matched the file's sha256.
    pub verified: usize,
    /// Every read's latency, request to last byte, in the order they finished.
    pub latencies_ms: Vec<f64>,
    pub latency: Quantiles,
    /// Over the last half of the reads.
    pub steady: Quantiles,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct UploadResult {
    pub sizes: Vec<UploadSize>,
    pub errors: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct UploadSize {
    pub size_bytes: u64,
    pub count: usize,
    pub latencies_ms: Vec<f64>,
    pub latency: Quantiles,
    /// Bytes uploaded / time spent uploading, one upload at a time.
    pub throughput_mib_s: f64,
    pub ratio_to_sha256: f64,
    /// Uploads read back from their node and matched by sha256.
    pub verified: usize,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct ExchangeResult {
    pub file_bytes: u64,
    /// Sequential downloads, one random pair at a time.
    pub pairs: usize,
    pub ttfb_ms: Vec<f64>,
    pub ttfb: Quantiles,
    pub file_ms: Vec<f64>,
    pub file: Quantiles,
    /// Per-block fetch latency from the downloaders' own histograms.
    pub block_latency: Histogram,
    /// Many pairs at once: the cluster's aggregate exchange rate.
    pub aggregate: Aggregate,
    pub verified: usize,
    pub errors: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Histogram {
    /// Upper bounds in milliseconds, with the count of samples at or below each
    /// (cumulative, as Prometheus exports them); the last bound is +Inf as `f64::MAX`.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Aggregate {
    pub concurrent: usize,
    pub downloads: usize,
    pub blocks: u64,
    pub seconds: f64,
    pub blocks_per_s: f64,
    pub mib_s: f64,
    pub ratio_to_loopback_tcp: f64,
    /// CPU time all nodes spent in the window, per block delivered (µs): a steadier figure
    /// than the rate on a shared machine. None when the nodes are not processes of this
    /// machine.
    #[serde(default)]
    pub node_cpu_us_per_block: Option<f64>,
    /// Each verified download's time, request to last byte: a straggler stretches
    /// `seconds` (and lowers the rate) without showing in a mean.
    #[serde(default)]
    pub download_ms: Vec<f64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct ThroughputResult {
    pub dataset_bytes: u64,
    pub single: Transfer,
    pub swarm: Swarm,
    /// Receive rate of the downloaders over time, from their `/metrics`.
    pub timeline: Vec<RatePoint>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Transfer {
    pub seconds: f64,
    pub mib_s: f64,
    pub ratio_to_loopback_tcp: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Swarm {
    pub downloaders: usize,
    pub seconds: f64,
    pub aggregate_mib_s: f64,
    pub ratio_to_loopback_tcp: f64,
    pub per_node_seconds: Vec<f64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct RatePoint {
    /// "single" or "swarm".
    pub phase: String,
    pub t_s: f64,
    pub mib_s: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct StressResult {
    pub operations: usize,
    pub concurrency: usize,
    pub file_bytes: u64,
    pub uploads_ok: usize,
    pub downloads_ok: usize,
    pub verified: usize,
    pub error_count: usize,
    /// The first errors, for the report.
    pub errors: Vec<String>,
    pub upload_ms: Vec<f64>,
    pub upload: Quantiles,
    pub download_ms: Vec<f64>,
    pub download: Quantiles,
    pub seconds: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct ScaleResult {
    pub points: Vec<ScalePoint>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct ScalePoint {
    pub nodes: usize,
    pub ready_seconds: f64,
    pub download: Quantiles,
    pub blocks_per_s: f64,
    pub mib_s: f64,
    pub idle: ResourceSummary,
    pub loaded: ResourceSummary,
    pub errors: usize,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct ChaosResult {
    pub killed: Vec<usize>,
    pub acknowledged: usize,
    /// Acknowledged uploads found again through another node after the restarts.
    pub retrievable_network: usize,
    /// Acknowledged uploads served by their original node after it restarted (or stayed up).
    pub retrievable_origin: usize,
    pub lost: usize,
    /// Why acknowledged uploads could not be read back (the first 20).
    #[serde(default)]
    pub lost_details: Vec<String>,
    /// Operations that failed while nodes were down (expected: those nodes were gone).
    pub failed_during_faults: usize,
    pub restart_seconds: Vec<f64>,
    pub events: Vec<Event>,
    pub ops: Vec<OpSample>,
    pub partition: Option<PartitionResult>,
    /// Why the partition part did not run (not root, no `ip`), when it did not.
    pub partition_skipped: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Event {
    pub t_s: f64,
    /// kill, restart, cut, restore, healed, ...
    pub kind: String,
    pub detail: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct OpSample {
    pub t_s: f64,
    /// upload, download, within, across
    pub kind: String,
    pub ok: bool,
    pub ms: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct PartitionResult {
    pub group_a: usize,
    pub group_b: usize,
    pub split_seconds: f64,
    pub within_ok: usize,
    pub within_failed: usize,
    pub across_ok: usize,
    pub across_failed: usize,
    /// From restoring the link until a download across it succeeded again (None: it did
    /// not within the scenario's limit).
    pub heal_seconds: Option<f64>,
    pub acknowledged: usize,
    pub lost: usize,
    pub events: Vec<Event>,
    pub ops: Vec<OpSample>,
}

/// The `marketplace` scenario: storage requests from several clients filled by the
/// cluster's marketplace hosts; then, per request, a slot host killed with -9 and the time
/// until another host holds that slot again.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct MarketplaceResult {
    /// Why the scenario did not run (too few marketplace nodes), when it did not.
    pub skipped: Option<String>,
    pub marketplace_nodes: usize,
    /// Nodes whose availability was accepted (every marketplace node offers storage).
    pub hosts: usize,
    pub dataset_bytes: u64,
    /// Each request's `nodes` and `tolerance`.
    pub slots: u64,
    pub tolerance: u64,
    pub requests: Vec<MarketRequest>,
    /// The slot hosts killed with -9, restarted once the repairs were measured.
    pub killed: Vec<usize>,
    pub restart_seconds: Vec<f64>,
    /// Requests that reached `started`, whose lost slot another host holds again, whose
    /// dataset was read back identical through a node other than its client.
    pub started: usize,
    pub repaired: usize,
    /// Lost slots that stayed with their host, restarted by its launcher in time.
    #[serde(default)]
    pub kept: usize,
    pub downloadable: usize,
    /// Validators' proof outcomes during the scenario, summed over every node.
    pub proofs: ProofCounts,
    /// Slots the hosts filled, repaired and rebuilt from the other slots during the
    /// scenario (nodes that were killed counted up to their kill).
    pub slots_filled: u64,
    pub slots_repaired: u64,
    pub slots_rebuilt: u64,
    pub events: Vec<Event>,
    pub errors: Vec<String>,
}

/// One client's storage request.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct MarketRequest {
    pub client: usize,
    pub cid: String,
    /// `0x…`, once the client accepted the request.
    pub request_id: Option<String>,
    /// From the first try until the client accepted the request (it refuses one until some
    /// host's terms have reached its copy of the ledger).
    pub accepted_s: Option<f64>,
    /// From the acceptance until the purchase was `started` (every slot filled).
    pub started_s: Option<f64>,
    /// Who held which slot once it started.
    pub holders: Vec<SlotHolder>,
    /// The slot lost with its killed host, when one was killed.
    pub lost: Option<LostSlot>,
    /// The purchase's state at the end.
    pub state: String,
    /// Read back identical (sha256) through `reader`.
    pub downloaded: bool,
    pub reader: Option<usize>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotHolder {
    pub node: usize,
    pub slot_index: u64,
}

impl SlotHolder {
    /// Slot i held by `nodes[i]`: a request's holders, in slot order.
    pub fn in_slot_order(nodes: &[usize]) -> Vec<SlotHolder> {
        nodes
            .iter()
            .enumerate()
            .map(|(i, &node)| SlotHolder {
                node,
                slot_index: i as u64,
            })
            .collect()
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct LostSlot {
    pub node: usize,
    pub slot_index: u64,
    /// From the kill until a host held the slot again (None: not within the limit).
    pub repair_s: Option<f64>,
    /// Another host, or `node` itself when the slot was [kept](LostSlot::kept).
    pub repaired_by: Option<usize>,
}

impl LostSlot {
    /// The killed host held the slot again first: its launcher (`cluster --restart`)
    /// brought it back before a proof was missed, so the slot was never freed.
    pub fn kept(&self) -> bool {
        self.repaired_by == Some(self.node)
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq)]
pub struct ProofCounts {
    pub verified: u64,
    pub missed: u64,
    pub invalid: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct NodeResources {
    pub index: usize,
    pub mode: String,
    /// Seconds since the run started.
    pub t_s: Vec<f64>,
    pub rss_bytes: Vec<u64>,
    /// Percent of one core over the previous interval.
    pub cpu_percent: Vec<f64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Checks {
    pub uploads_acknowledged: usize,
    pub uploads_verified: usize,
    pub downloads_verified: usize,
    pub acknowledged_lost: usize,
    pub errors: usize,
}
