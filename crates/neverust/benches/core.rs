//! Storage-node core benchmarks, in one run so figures can be read as ratios:
//! sha256 on 64 KiB blocks (the floor every upload pays), chunk+hash+tree, an end-to-end
//! 256 MiB upload through the HTTP API into the disk store, put/get latency of a 64 KiB
//! block on each store, an idle node's RSS, and two baselines for the upload: the same
//! upload into the memory store, and the disk's own write+fsync speed (buffered and
//! `O_DIRECT`), which bounds any durable upload. A summary table closes the run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, Criterion, Throughput};
use neverust_content::{block_cid, sha256, Chunker, MerkleTree, BLOCK_SIZE};
use neverust_node::{Node, NodeConfig, StoreKind};
use neverust_store::{BlockStore, DiskStore, MemoryStore, StoreConfig};

/// Per-iteration times of each benchmark, for the closing summary.
static SAMPLES: Mutex<Vec<(&'static str, Vec<Duration>)>> = Mutex::new(Vec::new());

fn record(name: &'static str, took: Duration, iters: u64) {
    let mut all = SAMPLES.lock().unwrap();
    let per = took / iters.max(1) as u32;
    match all.iter_mut().find(|(n, _)| *n == name) {
        Some((_, v)) => v.push(per),
        None => all.push((name, vec![per])),
    }
}

fn quantile(name: &str, q: f64) -> Option<Duration> {
    let all = SAMPLES.lock().unwrap();
    let mut v = all.iter().find(|(n, _)| *n == name)?.1.clone();
    v.sort();
    v.get(((v.len() - 1) as f64 * q).round() as usize).copied()
}

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

const DATASET: usize = 64 << 20;
const UPLOAD: usize = 256 << 20;

fn hashing(c: &mut Criterion) {
    let block = pseudo_random(BLOCK_SIZE);
    let mut g = c.benchmark_group("content");
    g.throughput(Throughput::Bytes(BLOCK_SIZE as u64));
    g.bench_function("sha256_64KiB", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                std::hint::black_box(sha256(std::hint::black_box(&block)));
            }
            let took = t.elapsed();
            record("sha256_64KiB", took, iters);
            took
        })
    });
    let data = pseudo_random(DATASET);
    g.throughput(Throughput::Bytes(DATASET as u64));
    g.sample_size(10);
    g.bench_function("chunk_hash_tree_64MiB", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                let mut chunker = Chunker::new(BLOCK_SIZE);
                let mut leaves = Vec::with_capacity(DATASET / BLOCK_SIZE);
                for piece in data.chunks(256 * 1024) {
                    chunker.push(piece, |blk| leaves.push(sha256(&blk)));
                }
                chunker.finish(|blk| leaves.push(sha256(&blk)));
                let tree = MerkleTree::new(leaves).unwrap();
                std::hint::black_box(tree.root_cid());
            }
            let took = t.elapsed();
            record("chunk_hash_tree_64MiB", took, iters);
            took
        })
    });
    g.finish();
}

fn upload(c: &mut Criterion) {
    upload_into(c, StoreKind::Disk, "upload_256MiB_disk");
    upload_into(c, StoreKind::Memory, "upload_256MiB_memory");
}

/// The same HTTP upload into each store: the memory store's figure is the API and hashing
/// pipeline alone, so the gap to the disk store's is what durability costs.
fn upload_into(c: &mut Criterion, store: StoreKind, name: &'static str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::ephemeral(dir.path().to_path_buf());
    config.storage_quota = 64 << 30;
    config.store = store;
    let node = rt.block_on(Node::start(config)).unwrap();
    let url = format!("{}/data", node.api_url());
    let client = reqwest::Client::new();
    let mut g = c.benchmark_group("api");
    g.throughput(Throughput::Bytes(UPLOAD as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    let mut seed = 0u8;
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // Fresh content each time: re-uploading identical blocks would only dedup.
                seed = seed.wrapping_add(1);
                let mut body = pseudo_random(UPLOAD);
                body.iter_mut().step_by(BLOCK_SIZE).for_each(|b| *b ^= seed);
                let body = Bytes::from(body);
                let t = Instant::now();
                let resp = rt
                    .block_on(client.post(&url).body(body).send())
                    .expect("upload");
                assert!(
                    resp.status().is_success(),
                    "upload failed: {}",
                    resp.status()
                );
                total += t.elapsed();
                // Keep the store from filling across samples.
                let cid = rt.block_on(resp.text()).unwrap();
                rt.block_on(client.delete(format!("{url}/{cid}")).send())
                    .unwrap();
            }
            record(name, total, iters);
            total
        })
    });
    g.finish();
    rt.block_on(node.shutdown());
}

fn store_latency(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || StoreConfig {
        quota_max_bytes: 64 << 30,
        block_ttl: Duration::from_secs(3600),
    };
    let stores: Vec<(&'static str, &'static str, Arc<dyn BlockStore>)> = vec![
        (
            "put_memory",
            "get_memory",
            Arc::new(MemoryStore::new(cfg())),
        ),
        (
            "put_disk",
            "get_disk",
            Arc::new(DiskStore::open(dir.path(), cfg()).unwrap()),
        ),
    ];
    let mut g = c.benchmark_group("store_64KiB");
    for (put_name, get_name, store) in stores {
        let blocks: Vec<(neverust_content::Cid, Bytes)> = (0..512u32)
            .map(|i| {
                let mut d = pseudo_random(BLOCK_SIZE);
                d[..4].copy_from_slice(&i.to_le_bytes());
                (block_cid(&d), Bytes::from(d))
            })
            .collect();
        let mut next = 0usize;
        g.bench_function(put_name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (_, data) = &blocks[next % blocks.len()];
                    // A new CID each time so every put really writes.
                    let mut fresh = data.to_vec();
                    fresh[4..12].copy_from_slice(&(next as u64).to_le_bytes());
                    next += 1;
                    let cid = block_cid(&fresh);
                    let fresh = Bytes::from(fresh);
                    let t = Instant::now();
                    store.put_block(&cid, fresh).unwrap();
                    let took = t.elapsed();
                    record(put_name, took, 1);
                    total += took;
                    store.delete_block(&cid).unwrap();
                }
                total
            })
        });
        for (cid, data) in &blocks {
            store.put_block(cid, data.clone()).unwrap();
        }
        let mut i = 0usize;
        g.bench_function(get_name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (cid, _) = &blocks[i % blocks.len()];
                    i += 1;
                    let t = Instant::now();
                    std::hint::black_box(store.get_block(cid).unwrap().unwrap());
                    let took = t.elapsed();
                    record(get_name, took, 1);
                    total += took;
                }
                total
            })
        });
    }
    g.finish();
}

/// The disk's own limit for a durable upload: 256 MiB written and fsync'd to a file on the
/// same file system the node's data dir uses, both ways a store could write it: through the
/// page cache, and with `O_DIRECT` in 8 MiB writes one at a time. The disk store writes
/// `O_DIRECT` batches with several in flight, so it can beat the second figure; the faster
/// of the two is the ceiling the summary reads the upload against. A shared disk's speed
/// moves by 3x or more between days here, so only a baseline from the same run means
/// anything.
fn disk_baseline(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("baseline");
    g.throughput(Throughput::Bytes(UPLOAD as u64));
    g.sample_size(10);
    let buffered = pseudo_random(1 << 20);
    durable_write(
        &mut g,
        dir.path(),
        "disk_write_fsync_256MiB",
        false,
        &buffered,
    );
    let mut aligned = neverust_store::AlignedBuf::zeroed(8 << 20);
    aligned.as_mut().copy_from_slice(&pseudo_random(8 << 20));
    durable_write(
        &mut g,
        dir.path(),
        "disk_direct_fsync_256MiB",
        true,
        aligned.as_ref(),
    );
    g.finish();
}

fn durable_write(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    dir: &std::path::Path,
    name: &'static str,
    direct: bool,
    chunk: &[u8],
) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let path = dir.join("baseline.bin");
                let t = Instant::now();
                let mut options = std::fs::OpenOptions::new();
                options.create(true).truncate(true).write(true);
                if direct {
                    options.custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32);
                }
                let mut f = options.open(&path).unwrap();
                for _ in 0..UPLOAD / chunk.len() {
                    f.write_all(chunk).unwrap();
                }
                f.sync_all().unwrap();
                total += t.elapsed();
                drop(f);
                std::fs::remove_file(&path).unwrap();
            }
            record(name, total, iters);
            total
        })
    });
}

fn idle_rss_kib() -> Option<u64> {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().ok()?;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_neverust"))
        .args([
            "start",
            "--api-port",
            "0",
            "--listen-port",
            "0",
            "--disc-port",
            "0",
        ])
        .args([
            "--listen-ip",
            "127.0.0.1",
            "--log-level",
            "warn",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let stdout = child.stdout.take()?;
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.starts_with("READY "));
    std::thread::sleep(Duration::from_secs(2));
    let usage = neverust_node::procfs::usage(child.id());
    let _ = child.kill();
    let _ = child.wait();
    if !ready {
        return None;
    }
    usage.map(|u| u.rss_bytes / 1024)
}

fn summary() {
    let mbps = |name: &str, bytes: usize| {
        quantile(name, 0.5).map(|d| bytes as f64 / d.as_secs_f64() / (1 << 20) as f64)
    };
    let sha = mbps("sha256_64KiB", BLOCK_SIZE);
    let tree = mbps("chunk_hash_tree_64MiB", DATASET);
    let up = mbps("upload_256MiB_disk", UPLOAD);
    let up_mem = mbps("upload_256MiB_memory", UPLOAD);
    let disk_buffered = mbps("disk_write_fsync_256MiB", UPLOAD);
    let disk_direct = mbps("disk_direct_fsync_256MiB", UPLOAD);
    let disk = disk_buffered
        .into_iter()
        .chain(disk_direct)
        .reduce(f64::max);
    println!("\n== neverust core summary (medians of this run) ==");
    let ratio = |x: Option<f64>| match (x, sha) {
        (Some(x), Some(s)) => format!("{:.0} MiB/s  ({:.0} % of sha256)", x, 100.0 * x / s),
        _ => "n/a".into(),
    };
    println!("sha256 64 KiB blocks      : {}", ratio(sha));
    println!("chunk + hash + tree       : {}", ratio(tree));
    println!("upload 256 MiB, HTTP→disk : {}", ratio(up));
    println!("upload 256 MiB, HTTP→mem  : {}", ratio(up_mem));
    println!("disk write+fsync 256 MiB  : {}", ratio(disk_buffered));
    println!("disk O_DIRECT+fsync 256MiB: {}", ratio(disk_direct));
    if let (Some(u), Some(d)) = (up, disk) {
        println!(
            "durable upload vs disk    : {:.0} % of the faster way the disk can write and fsync",
            100.0 * u / d
        );
    }
    for name in ["put_memory", "get_memory", "put_disk", "get_disk"] {
        if let (Some(p50), Some(p99)) = (quantile(name, 0.5), quantile(name, 0.99)) {
            println!(
                "{name:<26}: p50 {:>8.1} µs   p99 {:>8.1} µs",
                p50.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6
            );
        }
    }
    match idle_rss_kib() {
        Some(kib) => println!("idle node RSS             : {:.1} MiB", kib as f64 / 1024.0),
        None => println!("idle node RSS             : n/a (node did not start)"),
    }
}

criterion_group!(benches, hashing, disk_baseline, upload, store_latency);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
