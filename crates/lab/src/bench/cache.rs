//! `cache`: how well a tiered node keeps a skewed workload in memory. Two nodes are started
//! for the purpose beside the main cluster: a tiered one (a memory tier a tenth of the
//! dataset, an emulated SSD and an emulated disk under the run's work directory) and a
//! reference on the memory store. Both get the same one-block files (64 KiB, so a read is
//! one data block, plus its manifest), then the same Zipf-distributed sequence of reads,
//! a few at once, the nodes taking turns a round each so both meet the same machine.
//!
//! Every read is checked against its file's sha256. After each of the tiered node's rounds
//! its `/metrics` give each tier's share of the round's block reads, the blocks moved
//! between tiers, and each tier's read latency histogram. It does not measure the network:
//! every read is of a node's own data.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use neverust_node::metrics::names::{
    TIER_CAPACITY_BYTES as CAPACITY, TIER_DEMOTIONS_TOTAL as DEMOTIONS, TIER_HITS_TOTAL as HITS,
    TIER_MISSES_TOTAL as MISSES, TIER_PROMOTIONS_TOTAL as PROMOTIONS,
    TIER_READ_LATENCY_SECONDS as LATENCY,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::stats::{bucket_delta, histogram, quantiles, ratio};
use super::zipf::Zipf;
use super::{short_error, BenchError, Ctx};
use crate::client::{sha256, NodeClient};
use crate::cluster::solo::SoloNode;
use crate::metrics::{self, Sample};
use crate::results::{CacheNode, CacheResult, CacheTier};

pub const DEFAULT_SKEW: f64 = 1.0;
const BLOCK: u64 = 64 * 1024;
const CONCURRENCY: usize = 4;
const UPLOADS_AT_ONCE: usize = 4;
const LIMIT: Duration = Duration::from_secs(60);
const READY_LIMIT: Duration = Duration::from_secs(30);
const ERRORS_KEPT: usize = 20;

/// The tiered node's tiers for a dataset of `bytes`: memory a tenth of it, an SSD (100 µs,
/// 1 GB/s) a third, a disk (8 ms, 150 MB/s) the rest with room to spare; new blocks fill
/// the SSD first, so most of the dataset starts on the disk.
pub fn tier_specs(dir: &Path, bytes: u64) -> Vec<String> {
    vec![
        format!("memory:{}", bytes / 10),
        format!(
            "ssd:{}:{}:latency=100us,bw=1GB/s",
            dir.join("ssd").display(),
            bytes * 3 / 10
        ),
        format!(
            "hdd:{}:{}:latency=8ms,bw=150MB/s",
            dir.join("hdd").display(),
            bytes * 2
        ),
    ]
}

struct File {
    cid: String,
    sha256: [u8; 32],
}

pub async fn run(ctx: &mut Ctx, skew: f64) -> Result<CacheResult, BenchError> {
    let dir = ctx.work_dir.join("cache");
    let binary = super::node_binary(ctx)?;
    let dataset = ctx.profile.cache_files as u64 * BLOCK;
    let specs = tier_specs(&dir.join("tiered"), dataset);
    let tier_args: Vec<String> = specs
        .iter()
        .flat_map(|s| ["--tier".to_string(), s.clone()])
        .collect();
    ctx.ui.say(format!(
        "cache: starting a tiered node ({}) and a memory-store node",
        specs.join(" ")
    ));
    let tiered = SoloNode::start(&binary, &dir.join("tiered"), &tier_args, READY_LIMIT)
        .await
        .map_err(|source| BenchError::StartNode {
            node: "the tiered node".into(),
            source,
        })?;
    let memory = SoloNode::start(
        &binary,
        &dir.join("memory"),
        &["--store".into(), "memory".into()],
        READY_LIMIT,
    )
    .await
    .map_err(|source| BenchError::StartNode {
        node: "the memory-store node".into(),
        source,
    })?;
    let out = measure(ctx, skew, specs, &tiered.client, &memory.client).await;
    tiered.stop().await;
    memory.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    out
}

async fn measure(
    ctx: &mut Ctx,
    skew: f64,
    specs: Vec<String>,
    tiered: &NodeClient,
    memory: &NodeClient,
) -> Result<CacheResult, BenchError> {
    let p = ctx.profile.clone();
    let mut out = CacheResult {
        skew,
        concurrency: CONCURRENCY,
        tier_specs: specs,
        ..Default::default()
    };
    let mut errors = Vec::new();
    let (tiered_files, memory_files) = upload(ctx, tiered, memory, &mut errors).await;
    if tiered_files.is_empty() {
        return Err(BenchError::NoCacheFiles {
            first: errors.first().cloned().unwrap_or_default(),
        });
    }
    out.files = tiered_files.len();
    out.dataset_bytes = out.files as u64 * BLOCK;

    // Rank r of the Zipf distribution is a random file, so the hot files are not simply
    // the first uploaded (which landed on the faster disk tier).
    let mut rng = StdRng::seed_from_u64(ctx.seed());
    let mut by_rank: Vec<usize> = (0..out.files).collect();
    by_rank.shuffle(&mut rng);
    let zipf = Zipf::new(out.files, skew);
    let reads: Vec<usize> = (0..p.cache_reads)
        .map(|_| by_rank[zipf.rank(rng.random())])
        .collect();
    out.reads = reads.len();

    let rounds: Vec<&[usize]> = reads.chunks(p.cache_round.max(1)).collect();
    let half = rounds.len() / 2;
    let bar = ctx.ui.bar(2 * reads.len() as u64, "cache reads");
    let start = Instant::now();
    let before = scrape(tiered).await?;
    let mut snaps: Vec<(f64, Vec<TierSnap>)> = Vec::with_capacity(rounds.len());
    let mut t_lat: Vec<(usize, f64)> = Vec::new();
    let mut m_lat: Vec<(usize, f64)> = Vec::new();
    for (round, chunk) in rounds.iter().enumerate() {
        for r in read_round(tiered, &tiered_files, chunk).await {
            r.map_or_else(|e| errors.push(e), |ms| t_lat.push((round, ms)));
        }
        snaps.push((start.elapsed().as_secs_f64(), scrape(tiered).await?));
        for r in read_round(memory, &memory_files, chunk).await {
            r.map_or_else(|e| errors.push(e), |ms| m_lat.push((round, ms)));
        }
        bar.inc(2 * chunk.len() as u64);
    }
    bar.finish_and_clear();

    let node = |store: &str, lat: &[(usize, f64)]| {
        let all: Vec<f64> = lat.iter().map(|(_, ms)| *ms).collect();
        let steady: Vec<f64> = lat
            .iter()
            .filter(|(r, _)| *r >= half)
            .map(|(_, ms)| *ms)
            .collect();
        CacheNode {
            store: store.into(),
            reads: reads.len(),
            verified: all.len(),
            latency: quantiles(&all),
            steady: quantiles(&steady),
            latencies_ms: all,
        }
    };
    out.tiered = node("tiered", &t_lat);
    out.memory = node("memory", &m_lat);
    out.p50_ratio = ratio(out.tiered.steady.p50, out.memory.steady.p50);
    out.p99_ratio = ratio(out.tiered.steady.p99, out.memory.steady.p99);

    let last = snaps.last().map_or(&before, |(_, s)| s);
    let mid = match half {
        0 => &before,
        h => &snaps[h - 1].1,
    };
    out.tiers = tiers(&before, last, &snaps);
    if let Some(i) = last.iter().position(|t| t.tier.starts_with("memory")) {
        out.memory_hit_ratio_steady =
            ratio(last[i].hits - mid[i].hits, reads_of(last) - reads_of(mid));
        let held = out.tiers[i].capacity_bytes / BLOCK;
        out.memory_hit_ratio_ideal = zipf.share(0, held as usize);
    }

    ctx.checks.downloads_verified += out.tiered.verified + out.memory.verified;
    ctx.checks.errors += errors.len();
    errors.truncate(ERRORS_KEPT);
    out.errors = errors;
    let per_tier: Vec<String> = out
        .tiers
        .iter()
        .map(|t| format!("{} {:.0} %", t.tier, t.hit_ratio * 100.0))
        .collect();
    let (mut copied, mut moved) = (0, 0);
    for t in &out.tiers {
        if t.tier.starts_with("memory") {
            copied += t.moved_in_bytes;
        } else {
            moved += t.moved_in_bytes + t.moved_out_bytes;
        }
    }
    ctx.ui.say(format!(
        "cache s={skew}: {} files, {} reads each; memory tier served {:.1} % of block reads at steady state (ideal {:.1} %); whole run: {}; p50 {:.2} ms tiered vs {:.2} ms memory store ({:.2}×), p99 {:.2} vs {:.2} ms; {:.1} MiB moved between persistent tiers, {:.1} MiB copied into memory",
        out.files,
        out.reads,
        out.memory_hit_ratio_steady * 100.0,
        out.memory_hit_ratio_ideal * 100.0,
        per_tier.join(", "),
        out.tiered.steady.p50,
        out.memory.steady.p50,
        out.p50_ratio,
        out.tiered.steady.p99,
        out.memory.steady.p99,
        moved as f64 / 1048576.0,
        copied as f64 / 1048576.0,
    ));
    Ok(out)
}

/// The same fresh files on both nodes, a few at once: each node's list, in the same order.
async fn upload(
    ctx: &mut Ctx,
    tiered: &NodeClient,
    memory: &NodeClient,
    errors: &mut Vec<String>,
) -> (Vec<File>, Vec<File>) {
    let n = ctx.profile.cache_files;
    let seeds: Vec<u64> = (0..n).map(|_| ctx.seed()).collect();
    let bar = ctx.ui.bar(n as u64, "cache uploads");
    let done = futures::stream::iter(seeds.into_iter().map(|seed| {
        let bar = bar.clone();
        async move {
            let data = super::payload::payload(seed, BLOCK);
            let digest = sha256(&data);
            let on = |c: &NodeClient| {
                let data = data.clone();
                let c = c.clone();
                async move { c.upload(data, LIMIT).await.map_err(|e| short_error(&e)) }
            };
            let r = (on(tiered).await, on(memory).await);
            bar.inc(1);
            (digest, r)
        }
    }))
    .buffer_unordered(UPLOADS_AT_ONCE)
    .collect::<Vec<_>>()
    .await;
    bar.finish_and_clear();
    let (mut on_tiered, mut on_memory) = (Vec::new(), Vec::new());
    for (digest, r) in done {
        ctx.checks.uploads_acknowledged += r.0.is_ok() as usize + r.1.is_ok() as usize;
        match r {
            (Ok(a), Ok(b)) => {
                if a != b {
                    errors.push(format!("the same bytes got two CIDs: {a} and {b}"));
                }
                on_tiered.push(File {
                    cid: a,
                    sha256: digest,
                });
                on_memory.push(File {
                    cid: b,
                    sha256: digest,
                });
            }
            (Err(e), _) | (_, Err(e)) => errors.push(e),
        }
    }
    (on_tiered, on_memory)
}

/// Reads `chunk` (file indices) from `client`, a few at once: each read's ms, or why it
/// failed (not found, or other bytes than uploaded).
async fn read_round(
    client: &NodeClient,
    files: &[File],
    chunk: &[usize],
) -> Vec<Result<f64, String>> {
    futures::stream::iter(chunk.iter().map(|&i| {
        let f = &files[i];
        async move {
            match client.get_local(&f.cid, LIMIT).await {
                Ok(got) if got.sha256 == f.sha256 && got.bytes == BLOCK => {
                    Ok(got.total.as_secs_f64() * 1000.0)
                }
                Ok(got) => Err(format!(
                    "{} on {}: read back {} bytes that differ from the upload",
                    f.cid, client.base, got.bytes
                )),
                Err(e) => Err(short_error(&e)),
            }
        }
    }))
    .buffer_unordered(CONCURRENCY)
    .collect()
    .await
}

/// One tier's counters at one scrape.
#[derive(Debug, Clone, Default)]
struct TierSnap {
    tier: String,
    emulated: bool,
    capacity: f64,
    hits: f64,
    misses: f64,
    promotions: f64,
    demotions: f64,
    buckets: Vec<(f64, f64)>,
}

/// The tiered node's tiers, fastest first, as its `/metrics` shows them now.
async fn scrape(client: &NodeClient) -> Result<Vec<TierSnap>, BenchError> {
    let text = client
        .metrics()
        .await
        .map_err(|source| BenchError::Metrics {
            node: "the tiered node".into(),
            source,
        })?;
    let samples = metrics::parse(&text);
    Ok(snapshot(&samples))
}

fn snapshot(samples: &[Sample]) -> Vec<TierSnap> {
    samples
        .iter()
        .filter(|s| s.name == HITS)
        .filter_map(|s| {
            let tier = s.label("tier")?;
            let of = |name| metrics::sum_where(samples, name, "tier", tier);
            Some(TierSnap {
                tier: tier.to_string(),
                emulated: s.label("emulated") == Some("true"),
                capacity: of(CAPACITY),
                hits: s.value,
                misses: of(MISSES),
                promotions: of(PROMOTIONS),
                demotions: of(DEMOTIONS),
                buckets: metrics::buckets_where(samples, LATENCY, "tier", tier),
            })
        })
        .collect()
}

/// Block reads the node served in all: each was served by one tier or missed them all.
fn reads_of(tiers: &[TierSnap]) -> f64 {
    tiers.iter().map(|t| t.hits).sum::<f64>() + tiers.last().map_or(0.0, |t| t.misses)
}

/// Each tier's figures between `before` and `after`, and over the rounds in `snaps`.
fn tiers(
    before: &[TierSnap],
    after: &[TierSnap],
    snaps: &[(f64, Vec<TierSnap>)],
) -> Vec<CacheTier> {
    let total = reads_of(after) - reads_of(before);
    after
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let b = before.get(i).cloned().unwrap_or_default();
            let blocks = |x: f64| x.max(0.0).round() as u64;
            let moved = |s: &TierSnap| {
                blocks(s.promotions - b.promotions + s.demotions - b.demotions) * BLOCK
            };
            let mut t = CacheTier {
                tier: a.tier.clone(),
                emulated: a.emulated,
                capacity_bytes: blocks(a.capacity),
                hits: blocks(a.hits - b.hits),
                hit_ratio: ratio(a.hits - b.hits, total),
                promotions: blocks(a.promotions - b.promotions),
                demotions: blocks(a.demotions - b.demotions),
                read_latency: histogram(&bucket_delta(&b.buckets, &a.buckets)),
                ..Default::default()
            };
            t.moved_in_bytes = t.promotions * BLOCK;
            t.moved_out_bytes = t.demotions * BLOCK;
            let mut prev = before;
            for (t_s, snap) in snaps {
                if let (Some(now), Some(then)) = (snap.get(i), prev.get(i)) {
                    t.t_s.push(*t_s);
                    t.hit_ratio_over_time
                        .push(ratio(now.hits - then.hits, reads_of(snap) - reads_of(prev)));
                    t.moved_bytes_over_time.push(moved(now));
                }
                prev = snap;
            }
            t
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
neverust_tier_capacity_bytes{tier="memory0",emulated="false"} 1000
neverust_tier_capacity_bytes{tier="hdd1",emulated="true"} 9000
neverust_tier_hits_total{tier="memory0",emulated="false"} HM
neverust_tier_hits_total{tier="hdd1",emulated="true"} HH
neverust_tier_misses_total{tier="memory0",emulated="false"} HH
neverust_tier_misses_total{tier="hdd1",emulated="true"} 0
neverust_tier_promotions_total{tier="memory0",emulated="false"} HH
neverust_tier_demotions_total{tier="memory0",emulated="false"} 0
neverust_tier_promotions_total{tier="hdd1",emulated="true"} 0
neverust_tier_demotions_total{tier="hdd1",emulated="true"} 0
"#;

    fn snap(memory_hits: u32, disk_hits: u32) -> Vec<TierSnap> {
        let text = TEXT
            .replace("HM", &memory_hits.to_string())
            .replace("HH", &disk_hits.to_string());
        snapshot(&metrics::parse(&text))
    }

    #[test]
    fn shares_of_block_reads_per_tier_and_round() {
        let before = snap(0, 0);
        let rounds = vec![(1.0, snap(2, 8)), (2.0, snap(11, 9))];
        let t = tiers(&before, &rounds[1].1, &rounds);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].tier.as_str(), t[0].emulated), ("memory0", false));
        assert_eq!((t[1].tier.as_str(), t[1].emulated), ("hdd1", true));
        assert_eq!(t[0].capacity_bytes, 1000);
        // 20 block reads: 11 from memory, 9 from the disk.
        assert!((t[0].hit_ratio - 0.55).abs() < 1e-9);
        assert!((t[1].hit_ratio - 0.45).abs() < 1e-9);
        // Per round: 2 of 10, then 9 of 10.
        assert_eq!(t[0].hit_ratio_over_time, vec![0.2, 0.9]);
        assert_eq!(t[0].t_s, vec![1.0, 2.0]);
        // Every disk hit was copied into memory.
        assert_eq!(t[0].moved_in_bytes, 9 * BLOCK);
        assert_eq!(t[0].moved_bytes_over_time, vec![8 * BLOCK, 9 * BLOCK]);
        assert_eq!(t[1].moved_in_bytes, 0);
    }

    #[test]
    fn memory_is_a_tenth_of_the_dataset_and_the_slow_tiers_are_emulated() {
        let specs = tier_specs(Path::new("/w"), 1000 * BLOCK);
        assert_eq!(specs[0], format!("memory:{}", 100 * BLOCK));
        assert!(
            specs[1].starts_with("ssd:/w/ssd:") && specs[1].ends_with(":latency=100us,bw=1GB/s")
        );
        assert!(
            specs[2].starts_with("hdd:/w/hdd:") && specs[2].ends_with(":latency=8ms,bw=150MB/s")
        );
        for s in &specs {
            let parsed: neverust_node::tiers::TierSpec = s.parse().expect(s);
            let _ = parsed;
        }
    }
}
