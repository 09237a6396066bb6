//! The tiered store's read path: a memory-tier hit against the plain memory store (the
//! tiering's own overhead), and a Zipf-skewed read workload over a dataset ten times the
//! memory tier, reporting which tier served the reads once placement has settled.
//!
//! `NEVERUST_ZIPF_S` sets the skew (default 0.99; 0 is uniform).

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use neverust_content::{block_cid, Cid, BLOCK_SIZE};
use neverust_store::{BlockStore, MemoryStore, StoreConfig, TierSpec, TieredStore};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const MEMORY_TIER: usize = 4 << 20;
/// Ten times the memory tier.
const DATASET_BLOCKS: usize = 10 * MEMORY_TIER / BLOCK_SIZE;

fn cfg() -> StoreConfig {
    StoreConfig {
        quota_max_bytes: 1 << 40,
        block_ttl: Duration::from_secs(3600),
    }
}

fn block(i: usize) -> (Cid, Bytes) {
    let mut d = vec![(i % 251) as u8; BLOCK_SIZE];
    d[..8].copy_from_slice(&(i as u64).to_le_bytes());
    (block_cid(&d), Bytes::from(d))
}

fn tiered(dir: &std::path::Path) -> TieredStore {
    let d = dir.display();
    let specs: Vec<TierSpec> = [
        format!("memory:{MEMORY_TIER}"),
        format!("nvme:{d}/nvme:{}", 2 * MEMORY_TIER),
        format!("ssd:{d}/ssd:{}", 4 * MEMORY_TIER),
        format!("hdd:{d}/hdd:1TiB"),
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    TieredStore::open(&specs, cfg()).unwrap()
}

fn memory_hit(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (cid, data) = block(0);
    let plain = MemoryStore::new(cfg());
    plain.put_block(&cid, data.clone()).unwrap();
    let tiers = tiered(dir.path());
    tiers.put_block(&cid, data).unwrap();
    tiers.get_block(&cid).unwrap(); // now in the memory tier
    let mut g = c.benchmark_group("get_64KiB_memory_hit");
    g.bench_function("memory_store", |b| {
        b.iter(|| black_box(plain.get_block(black_box(&cid)).unwrap()))
    });
    g.bench_function("tiered_store", |b| {
        b.iter(|| black_box(tiers.get_block(black_box(&cid)).unwrap()))
    });
    g.finish();
    assert_eq!(
        tiers.tier_stats()[0].misses,
        1,
        "every timed read was a memory hit"
    );
}

/// Ranks 0.. drawn with probability ∝ 1/(rank+1)^s.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                total += 1.0 / (k as f64).powf(s);
                total
            })
            .collect();
        cdf.iter_mut().for_each(|p| *p /= total);
        Zipf { cdf }
    }

    /// Probability that a read falls on ranks `from..to`.
    fn share(&self, from: usize, to: usize) -> f64 {
        let at = |r: usize| {
            if r == 0 {
                0.0
            } else {
                self.cdf[r.min(self.cdf.len()) - 1]
            }
        };
        at(to) - at(from)
    }

    fn sample(&self, rng: &mut impl Rng) -> usize {
        let u: f64 = rng.random();
        self.cdf.partition_point(|&p| p < u).min(self.cdf.len() - 1)
    }
}

fn zipf_reads(c: &mut Criterion) {
    let s: f64 = std::env::var("NEVERUST_ZIPF_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.99);
    let dir = tempfile::tempdir().unwrap();
    let store = tiered(dir.path());
    let cids: Vec<Cid> = (0..DATASET_BLOCKS)
        .map(|i| {
            let (cid, data) = block(i);
            store.put_block(&cid, data).unwrap();
            cid
        })
        .collect();
    // Popularity unrelated to write order (which decided the first placement).
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut by_rank = cids.clone();
    by_rank.shuffle(&mut rng);
    let zipf = Zipf::new(DATASET_BLOCKS, s);
    let read = |n: usize, rng: &mut rand::rngs::StdRng| {
        for i in 0..n {
            let cid = &by_rank[zipf.sample(rng)];
            black_box(store.get_block(cid).unwrap());
            if i % 64 == 63 {
                // The node's background task, here inline.
                store.rebalance(32).unwrap();
            }
        }
    };
    // Warm up until placement settles, then measure the ratios on fresh counters.
    read(30_000, &mut rng);
    let before = store.tier_stats();
    let reads = 20_000;
    read(reads, &mut rng);
    let after = store.tier_stats();
    println!(
        "zipf s={s}: {DATASET_BLOCKS} blocks of 64 KiB, memory tier {} MiB; hit ratio per tier over {reads} reads \
         (ideal: each tier holding the most read blocks the faster ones do not, as many as it holds now):",
        MEMORY_TIER >> 20
    );
    let mut rank = 0;
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        let hits = a.hits - b.hits;
        // The slowest tier ideally holds the rest.
        let held = if i + 1 == after.len() {
            DATASET_BLOCKS - rank
        } else {
            a.blocks as usize
        };
        let ideal = zipf.share(rank, rank + held);
        rank += held;
        println!(
            "  {:<6} {:>5.1} %  ideal {:>5.1} %  ({} blocks, {} promoted, {} demoted while measuring)",
            a.kind.name(),
            100.0 * hits as f64 / reads as f64,
            100.0 * ideal,
            a.blocks,
            a.promotions - b.promotions,
            a.demotions - b.demotions,
        );
    }
    c.bench_function("zipf_read_64KiB", |b| {
        b.iter(|| read(1, &mut rng));
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = memory_hit, zipf_reads
}
criterion_main!(benches);
