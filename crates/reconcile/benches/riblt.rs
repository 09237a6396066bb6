//! Reconciling sets of 10^4, 10^5 and 10^6 blocks of which 0.1 %, 1 % and 10 % differ
//! (half only ours, half only theirs). First, once per case, what goes on the wire: coded
//! symbols needed per differing item (batches of one) and their bytes, then the bytes of
//! a stream in batches of 64 (what a sender that cannot know when we are done sends)
//! against sending the whole set as a blockexc wantlist, at a flat 40 bytes an entry and
//! at the exact size of Archivist's protobuf Entry for a leaf BlockAddress. Then criterion times a whole session, both
//! encoders (sort, hash) included: the peer encodes, we subtract and peel until done.
//! Run: `cargo bench -p neverust-reconcile --bench riblt`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{mix, run, sets, KEY};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use neverust_content::{sha256, MerkleTree};
use neverust_reconcile::{BlockKey, Encoder, Limits, Symbol};

const SIZES: [u64; 3] = [10_000, 100_000, 1_000_000];
/// Differences in tenths of a percent.
const PERMILLE: [u64; 3] = [1, 10, 100];
/// Symbols per batch: a sender streams without knowing when we are done, so the last
/// batch overshoots by up to this many; the bytes below include that.
const BATCH: usize = 64;

fn varint_len(v: u64) -> usize {
    unsigned_varint::encode::u64(v, &mut unsigned_varint::encode::u64_buffer()).len()
}

/// One entry of a blockexc wantlist asking for block `index` of a dataset, as our blockexc
/// codec (and Archivist's) writes it: every optional field present. Address: leaf (2),
/// tree CID (tag, length, CIDv1 bytes), index (tag, varint). Entry: address (tag, length,
/// address), priority 1, cancel, want type, send-dont-have (2 each). Wantlist: tag, length.
fn wantlist_entry_len(cid_len: usize, index: u64) -> usize {
    let address = 2 + (1 + varint_len(cid_len as u64) + cid_len) + (1 + varint_len(index));
    let entry = (1 + varint_len(address as u64) + address) + 4 * 2;
    1 + varint_len(entry as u64) + entry
}

fn block_key(i: u64) -> BlockKey {
    BlockKey::derive(&KEY, &sha256(&(i % 16).to_le_bytes()), i / 16)
}

fn raw_block(i: u64) -> [u8; 40] {
    let mut b = [0u8; 40];
    b[..32].copy_from_slice(&sha256(&(i % 16).to_le_bytes()));
    b[32..].copy_from_slice(&(i / 16).to_le_bytes());
    b
}

fn limits() -> Limits {
    Limits {
        max_symbols: 1 << 23,
        ..Limits::default()
    }
}

fn report<S: Symbol>(kind: &str, n: u64, d: u64, item: impl Fn(u64) -> S, cid_len: usize) {
    let s = sets(n, d, d / 2, item);
    // Batches of one symbol: exactly the symbols decoding needed.
    let exact = run(&limits(), &s.ours, &s.theirs, |_| 1).expect("decodes");
    assert_eq!(exact.difference.ours_only, s.ours_only);
    assert_eq!(exact.difference.theirs_only, s.theirs_only);
    let mut needed = Vec::new();
    Encoder::new(KEY, s.theirs.iter().copied()).encode_next(exact.symbols as usize, &mut needed);
    let streamed = run(&limits(), &s.ours, &s.theirs, |_| BATCH).expect("decodes");
    // The peer's set as a wantlist: one entry per block, indices spread over 16 datasets
    // (small varints: the cheap case for the plain list).
    let listed = s.theirs.len() as u64;
    let flat = listed * 40;
    let exact_list: u64 = (0..listed)
        .map(|i| wantlist_entry_len(cid_len, i / 16) as u64)
        .sum();
    println!(
        "{kind:>8} n={n:>7} d={d:>6}: {:>6} symbols = {:.3}/item, {:>7} B ({:>5.1} B/item); \
         streamed in {BATCH}s {:>7} B | wantlist {:>8} B at 40 B/entry = {:>6.1}x, \
         {:>8} B exact = {:>6.1}x",
        exact.symbols,
        exact.symbols as f64 / d.max(1) as f64,
        needed.len(),
        needed.len() as f64 / d.max(1) as f64,
        streamed.bytes,
        flat,
        flat as f64 / streamed.bytes as f64,
        exact_list,
        exact_list as f64 / streamed.bytes as f64,
    );
}

fn bench(c: &mut Criterion) {
    let tree = MerkleTree::new(vec![sha256(&[0]), sha256(&[1])]).unwrap();
    let cid_len = tree.root_cid().to_bytes().len();
    println!(
        "tree CID {cid_len} B; wantlist entry for index 1: {} B, index 10^5: {} B",
        wantlist_entry_len(cid_len, 1),
        wantlist_entry_len(cid_len, 100_000)
    );
    for n in SIZES {
        for pm in PERMILLE {
            let d = n * pm / 1000;
            report("index", n, d, mix, cid_len);
            report("BlockKey", n, d, block_key, cid_len);
            report("raw 40 B", n, d, raw_block, cid_len);
        }
    }

    let mut group = c.benchmark_group("session");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for n in SIZES {
        for pm in PERMILLE {
            let d = n * pm / 1000;
            let s = sets(n, d, d / 2, mix);
            let id = BenchmarkId::new(format!("index/{n}"), format!("{:.1}%", pm as f64 / 10.0));
            group.bench_function(id, |b| {
                b.iter(|| run(&limits(), &s.ours, &s.theirs, |_| BATCH).unwrap())
            });
            let s = sets(n, d, d / 2, block_key);
            let id = BenchmarkId::new(format!("BlockKey/{n}"), format!("{:.1}%", pm as f64 / 10.0));
            group.bench_function(id, |b| {
                b.iter(|| run(&limits(), &s.ours, &s.theirs, |_| BATCH).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
