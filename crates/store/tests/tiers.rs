//! The tiered store's own behaviour: where blocks go, promotion and demotion, the memory
//! tier, emulated device speeds, and opening existing or misconfigured directories.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use neverust_content::{block_cid, Cid};
use neverust_store::{
    BlockStore, DiskStore, LeafRef, StoreConfig, StoreError, TierKind, TierSpec, TieredStore,
};

const KIB: usize = 1024;

fn cfg() -> StoreConfig {
    StoreConfig {
        quota_max_bytes: 1 << 30,
        block_ttl: Duration::from_secs(3600),
    }
}

fn block(seed: u32, len: usize) -> (Cid, Bytes) {
    let mut d = vec![seed as u8; len];
    d[..4].copy_from_slice(&seed.to_le_bytes());
    (block_cid(&d), Bytes::from(d))
}

fn open(dir: &Path, specs: &[&str]) -> Result<TieredStore, StoreError> {
    let specs: Vec<TierSpec> = specs
        .iter()
        .map(|s| s.replace("{}", &dir.display().to_string()).parse().unwrap())
        .collect();
    TieredStore::open(&specs, cfg())
}

/// Blocks on each persistent tier (the memory tier left out).
fn placed(s: &TieredStore) -> Vec<u64> {
    s.tier_stats()
        .iter()
        .filter(|t| t.kind != TierKind::Memory)
        .map(|t| t.blocks)
        .collect()
}

#[test]
fn new_blocks_fill_the_fastest_tier_with_room_first() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), &["nvme:{}/nvme:8KiB", "hdd:{}/hdd:1GiB"]).unwrap();
    for i in 0..5 {
        let (cid, data) = block(i, 2 * KIB);
        s.put_block(&cid, data).unwrap();
    }
    assert_eq!(placed(&s), vec![4, 1]);
    let stats = s.tier_stats();
    assert_eq!((stats[0].bytes, stats[0].capacity), (8192, 8192));
    assert_eq!(
        stats[0].dir.as_deref(),
        Some(dir.path().join("nvme").as_path())
    );
}

#[test]
fn a_block_read_often_is_promoted_in_place_of_a_colder_one() {
    let dir = tempfile::tempdir().unwrap();
    // Room for four blocks under the fill limit (90 %), not five.
    let s = open(dir.path(), &["nvme:{}/nvme:9200", "hdd:{}/hdd:1GiB"]).unwrap();
    let blocks: Vec<_> = (0..8).map(|i| block(i, 2 * KIB)).collect();
    for (cid, data) in &blocks {
        s.put_block(cid, data.clone()).unwrap();
    }
    assert_eq!(placed(&s), vec![4, 4]);
    let (hot, hot_data) = &blocks[6];
    for _ in 0..3 {
        assert_eq!(s.get_block(hot).unwrap().as_ref(), Some(hot_data));
    }
    let done = s.rebalance(10).unwrap();
    assert_eq!(
        (done.promoted, done.demoted),
        (1, 1),
        "swapped with a cold block"
    );
    assert_eq!(placed(&s), vec![4, 4]);
    let stats = s.tier_stats();
    assert_eq!((stats[0].promotions, stats[0].demotions), (1, 1));
    assert_eq!(stats[0].hits, 0);
    assert_eq!(stats[1].hits, 3);
    // Now read from the fast tier, with the same bytes.
    assert_eq!(s.get_block(hot).unwrap().as_ref(), Some(hot_data));
    assert_eq!(s.tier_stats()[0].hits, 1);
    for (cid, data) in &blocks {
        assert_eq!(s.get_block(cid).unwrap().as_ref(), Some(data));
    }
}

#[test]
fn promotion_goes_straight_to_the_fastest_tier_with_room() {
    let dir = tempfile::tempdir().unwrap();
    let specs = ["nvme:{}/nvme:9200", "ssd:{}/ssd:9200", "hdd:{}/hdd:1GiB"];
    let s = open(dir.path(), &specs).unwrap();
    let blocks: Vec<_> = (0..9).map(|i| block(i, 2 * KIB)).collect();
    for (cid, data) in &blocks {
        s.put_block(cid, data.clone()).unwrap();
    }
    assert_eq!(placed(&s), vec![4, 4, 1]);
    s.delete_block(&blocks[0].0).unwrap(); // room on nvme
    s.get_block(&blocks[8].0).unwrap();
    s.get_block(&blocks[8].0).unwrap();
    assert_eq!(s.rebalance(10).unwrap().promoted, 1);
    assert_eq!(placed(&s), vec![4, 4, 0]);
}

#[test]
fn a_tier_over_its_size_pushes_its_coldest_blocks_down() {
    let dir = tempfile::tempdir().unwrap();
    let blocks: Vec<_> = (0..10).map(|i| block(i, 2 * KIB)).collect();
    {
        let s = open(dir.path(), &["nvme:{}/nvme:1MiB", "hdd:{}/hdd:1GiB"]).unwrap();
        for (cid, data) in &blocks {
            s.put_block(cid, data.clone()).unwrap();
        }
        assert_eq!(placed(&s), vec![10, 0]);
    }
    // The same tiers, the fast one now smaller than what it holds.
    let s = open(dir.path(), &["nvme:{}/nvme:9200", "hdd:{}/hdd:1GiB"]).unwrap();
    assert_eq!(placed(&s), vec![10, 0], "counts survive a reopen");
    let hot = &blocks[..3];
    for _ in 0..2 {
        for (cid, _) in hot {
            s.get_block(cid).unwrap();
        }
    }
    let done = s.rebalance(100).unwrap();
    assert_eq!((done.demoted, done.promoted), (6, 0));
    assert_eq!(placed(&s), vec![4, 6]);
    assert_eq!(s.tier_stats()[0].demotions, 6);
    for (cid, _) in hot {
        s.get_block(cid).unwrap();
    }
    assert_eq!(s.tier_stats()[0].hits, 6 + 3, "the hot blocks stayed up");
    assert_eq!(s.rebalance(100).unwrap(), Default::default(), "settled");
    for (cid, data) in &blocks {
        assert_eq!(s.get_block(cid).unwrap().as_ref(), Some(data));
    }
    drop(s);
    let s = open(dir.path(), &["nvme:{}/nvme:9200", "hdd:{}/hdd:1GiB"]).unwrap();
    assert_eq!(placed(&s), vec![4, 6]);
    assert_eq!(s.space().unwrap().total_blocks, 10);
    assert_eq!(s.space().unwrap().quota_used_bytes, 10 * 2048);
}

#[test]
fn the_memory_tier_serves_repeat_reads_and_forgets_deleted_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), &["memory:1MiB", "ssd:{}/ssd:1GiB"]).unwrap();
    let (cid, data) = block(1, 4 * KIB);
    s.put_block(&cid, data.clone()).unwrap();
    assert_eq!(s.get_block(&cid).unwrap(), Some(data.clone()));
    assert_eq!(s.get_block(&cid).unwrap(), Some(data));
    let stats = s.tier_stats();
    assert_eq!(
        (stats[0].kind, stats[0].hits, stats[0].misses),
        (TierKind::Memory, 1, 1)
    );
    assert_eq!((stats[0].blocks, stats[0].promotions), (1, 1));
    assert_eq!(stats[1].hits, 1);
    assert_eq!(stats[0].read_latency.count, 1);
    assert_eq!(stats[1].read_latency.count, 1);
    s.delete_block(&cid).unwrap();
    assert_eq!(
        s.get_block(&cid).unwrap(),
        None,
        "not served from memory after a delete"
    );
    assert_eq!(s.tier_stats()[0].blocks, 0);
}

#[test]
fn memory_is_a_cache_never_the_only_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (cid, data) = block(2, 4 * KIB);
    {
        let s = open(dir.path(), &["memory:1MiB", "ssd:{}/ssd:1GiB"]).unwrap();
        s.put_block(&cid, data.clone()).unwrap();
        s.get_block(&cid).unwrap();
    }
    let s = open(dir.path(), &["memory:1MiB", "ssd:{}/ssd:1GiB"]).unwrap();
    assert_eq!(s.get_block(&cid).unwrap(), Some(data));
}

#[test]
fn emulated_tiers_read_as_slowly_as_asked() {
    let dir = tempfile::tempdir().unwrap();
    let specs = ["nvme:{}/nvme:4KiB", "hdd:{}/hdd:1GiB:latency=5ms,bw=10MB/s"];
    let s = open(dir.path(), &specs).unwrap();
    let (fast, _) = block(1, 4 * KIB);
    let (slow, slow_data) = block(2, 50_000);
    s.put_block(&fast, block(1, 4 * KIB).1).unwrap();
    s.put_block(&slow, slow_data).unwrap();
    let t = std::time::Instant::now();
    s.get_block(&slow).unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(10),
        "5 ms + 50 kB at 10 MB/s"
    );
    s.get_block(&fast).unwrap();
    let stats = s.tier_stats();
    assert!(stats[1].read_latency.sum >= Duration::from_millis(10));
    assert!(
        stats[0].read_latency.sum < Duration::from_millis(5),
        "nvme is not emulated"
    );
}

#[test]
fn an_existing_disk_store_opens_as_the_first_tier() {
    let dir = tempfile::tempdir().unwrap();
    let blocks: Vec<_> = (0..6).map(|i| block(i, 2 * KIB)).collect();
    {
        let d = DiskStore::open(&dir.path().join("nvme"), cfg()).unwrap();
        for (cid, data) in &blocks {
            d.put_block(cid, data.clone()).unwrap();
        }
    }
    {
        let s = open(dir.path(), &["nvme:{}/nvme:4600", "hdd:{}/hdd:1GiB"]).unwrap();
        assert_eq!(placed(&s), vec![6, 0]);
        assert_eq!(s.rebalance(100).unwrap().demoted, 4);
        for (cid, data) in &blocks {
            assert_eq!(s.get_block(cid).unwrap().as_ref(), Some(data));
        }
    }
    // Blocks moved to the hdd cannot be reached without it: refused, not lost.
    let err = DiskStore::open(&dir.path().join("nvme"), cfg())
        .err()
        .unwrap();
    assert!(err.to_string().contains("blocks on tier 1"), "{err}");
}

#[test]
fn reordered_or_invalid_tiers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), &["ssd:{}/ssd:1GiB", "hdd:{}/hdd:1GiB"]).unwrap());
    let err = open(dir.path(), &["hdd:{}/hdd:1GiB", "ssd:{}/ssd:1GiB"])
        .err()
        .unwrap();
    assert!(err.to_string().contains("must keep their order"), "{err}");
    assert!(err.to_string().contains("TIER"), "names the path: {err}");
    let err = open(dir.path(), &["memory:1GiB"]).err().unwrap();
    assert!(matches!(err, StoreError::Tiers(_)), "{err}");
}

/// The churning layout of the suite really moves blocks both ways.
#[test]
fn small_tiers_move_blocks_both_ways_during_an_upload() {
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        "memory:2KiB",
        "nvme:{}/nvme:6KiB",
        "ssd:{}/ssd:24KiB",
        "hdd:{}/hdd:1GiB",
    ];
    let s = open(dir.path(), &specs).unwrap();
    let blocks: Vec<_> = (0..40).map(|i| block(i, 2000)).collect();
    let mut up = s.begin_upload().unwrap();
    for (cid, data) in &blocks {
        up.put_block(cid, data.clone()).unwrap();
    }
    let leaves = blocks
        .iter()
        .map(|(cid, _)| LeafRef {
            cid: *cid,
            proof: Bytes::new(),
        })
        .collect();
    let (manifest, manifest_data) = block(1000, 100);
    up.commit(&blocks[0].0, leaves, &manifest, manifest_data)
        .unwrap();
    // A batch larger than the fast tiers' room went to the hdd, the small manifest to nvme.
    assert_eq!(placed(&s), vec![1, 0, 40]);
    let mut total = neverust_store::Rebalanced::default();
    // Reads go round the blocks so that they keep missing the small memory tier: only
    // reads the persistent tiers serve make a block a candidate for them.
    let mut read_rounds = |range: std::ops::Range<usize>, rounds| {
        for _ in 0..rounds {
            for (cid, data) in &blocks[range.clone()] {
                assert_eq!(s.get_block(cid).unwrap().as_ref(), Some(data));
            }
        }
        for _ in 0..20 {
            let r = s.rebalance(8).unwrap();
            total.promoted += r.promoted;
            total.demoted += r.demoted;
        }
    };
    read_rounds(30..40, 3);
    // Hotter blocks take the place of the first ones.
    read_rounds(0..10, 5);
    assert!(total.promoted > 0 && total.demoted > 0, "{total:?}");
    let stats = s.tier_stats();
    for t in &stats[1..3] {
        assert!(t.bytes <= t.capacity * 9 / 10, "{t:?}");
    }
}

#[test]
fn compaction_moves_the_live_blocks_out_of_a_mostly_dead_segment() {
    let dir = tempfile::tempdir().unwrap();
    let specs = ["nvme:{}/nvme:1GiB", "hdd:{}/hdd:1GiB"];
    let blocks: Vec<_> = (0..20).map(|i| block(i, 16 * KIB)).collect();
    {
        let s = open(dir.path(), &specs).unwrap();
        for (cid, data) in &blocks {
            s.put_block(cid, data.clone()).unwrap();
        }
    }
    let seg_dir = dir.path().join("nvme/segments");
    let files = || std::fs::read_dir(&seg_dir).unwrap().count();
    // Reopened, the first segment is no longer the one being appended to.
    let s = open(dir.path(), &specs).unwrap();
    assert_eq!(files(), 2);
    for (cid, _) in &blocks[..9] {
        s.delete_block(cid).unwrap();
    }
    assert_eq!(s.rebalance(4).unwrap().compacted, 0, "45 % dead: not yet");
    for (cid, _) in &blocks[9..12] {
        s.delete_block(cid).unwrap();
    }
    let done = s.rebalance(100).unwrap();
    assert_eq!((done.compacted, done.promoted, done.demoted), (8, 0, 0));
    assert_eq!(files(), 1, "the emptied segment is gone");
    assert_eq!(placed(&s), vec![8, 0]);
    for (cid, data) in &blocks[12..] {
        assert_eq!(s.get_block(cid).unwrap().as_ref(), Some(data));
    }
    assert_eq!(s.rebalance(100).unwrap(), Default::default());
    drop(s);
    let s = open(dir.path(), &specs).unwrap();
    assert_eq!(s.space().unwrap().quota_used_bytes, 8 * 16 * 1024);
    for (cid, data) in &blocks[12..] {
        assert_eq!(s.get_block(cid).unwrap().as_ref(), Some(data));
    }
}

/// Reads racing migrations and compaction (segments deleted under them) always see the
/// block's bytes.
#[test]
fn reads_during_migrations_never_fail() {
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        "memory:8KiB",
        "nvme:{}/nvme:24KiB",
        "ssd:{}/ssd:48KiB",
        "hdd:{}/hdd:1GiB",
    ];
    let blocks: Vec<_> = (0..60).map(|i| block(i, 4 * KIB)).collect();
    {
        let s = open(dir.path(), &specs).unwrap();
        for (cid, data) in &blocks {
            s.put_block(cid, data.clone()).unwrap();
        }
    }
    // Reopened, the blocks are in segments no longer appended to, which moves empty and
    // delete while the readers read.
    let s = std::sync::Arc::new(open(dir.path(), &specs).unwrap());
    let seg_files = || -> usize {
        ["nvme", "ssd", "hdd"]
            .iter()
            .map(|t| {
                std::fs::read_dir(dir.path().join(t).join("segments"))
                    .unwrap()
                    .count()
            })
            .sum()
    };
    let files_before = seg_files();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (s, stop, blocks) = (s.clone(), stop.clone(), blocks.clone());
            std::thread::spawn(move || {
                let mut reads = 0;
                let mut i = r;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // Skewed: low indexes are read far more often; never the blocks the
                    // main thread deletes and puts back.
                    let k = (i * 7919) % (1 + i % 40);
                    let (cid, data) = &blocks[k];
                    let got = s.get_block(cid).unwrap();
                    assert!(got.as_ref() == Some(data), "block {k}");
                    reads += 1;
                    i += 1;
                }
                reads
            })
        })
        .collect();
    let mut moved = 0;
    // At least 200 rounds, and on until a segment was deleted (bounded: the assertions
    // below fail if it never is).
    for round in 0..5000 {
        if round >= 200 && seg_files() < files_before {
            break;
        }
        let r = s.rebalance(4).unwrap();
        moved += r.promoted + r.demoted + r.compacted;
        if round % 50 == 49 {
            // Deletes and re-puts leave dead bytes for compaction.
            for (cid, data) in &blocks[40..50] {
                s.delete_block(cid).unwrap();
                s.put_block(cid, data.clone()).unwrap();
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(moved > 20 && reads > 1000, "moved {moved}, read {reads}");
    assert!(
        seg_files() < files_before,
        "segments were deleted under the readers"
    );
}

mod model {
    //! Random operations, reopens among them, against a map of what must be stored.
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Clone, Debug)]
    enum Op {
        Put(u32),
        Delete(u32),
        Read(u32),
        Rebalance(usize),
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u32..24).prop_map(Op::Put),
            1 => (0u32..24).prop_map(Op::Delete),
            4 => (0u32..24).prop_map(Op::Read),
            2 => (1usize..8).prop_map(Op::Rebalance),
            1 => Just(Op::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn the_store_holds_what_the_model_holds(ops in proptest::collection::vec(op(), 1..80)) {
            let dir = tempfile::tempdir().unwrap();
            let specs = ["memory:12KiB", "nvme:{}/nvme:10KiB", "ssd:{}/ssd:20KiB", "hdd:{}/hdd:1GiB"];
            let mut s = open(dir.path(), &specs).unwrap();
            let mut model: HashMap<u32, Bytes> = HashMap::new();
            // Sizes vary so that blocks do not fit tiers evenly.
            let data = |seed: u32| block(seed, 1000 + 700 * (seed as usize % 5));
            for op in ops {
                match op {
                    Op::Put(seed) => {
                        let (cid, bytes) = data(seed);
                        s.put_block(&cid, bytes.clone()).unwrap();
                        model.insert(seed, bytes);
                    }
                    Op::Delete(seed) => {
                        s.delete_block(&data(seed).0).unwrap();
                        model.remove(&seed);
                    }
                    Op::Read(seed) => {
                        let got = s.get_block(&data(seed).0).unwrap();
                        prop_assert_eq!(got.as_ref(), model.get(&seed));
                    }
                    Op::Rebalance(budget) => {
                        s.rebalance(budget).unwrap();
                    }
                    Op::Reopen => {
                        drop(s);
                        s = open(dir.path(), &specs).unwrap();
                    }
                }
                let space = s.space().unwrap();
                prop_assert_eq!(space.total_blocks, model.len() as u64);
                let on_disk: (u64, u64) = s
                    .tier_stats()
                    .iter()
                    .filter(|t| t.kind != TierKind::Memory)
                    .fold((0, 0), |(b, n), t| (b + t.blocks, n + t.bytes));
                prop_assert_eq!(on_disk, (space.total_blocks, space.quota_used_bytes));
            }
            for (seed, bytes) in &model {
                let got = s.get_block(&data(*seed).0).unwrap();
                prop_assert_eq!(got.as_ref(), Some(bytes));
            }
        }
    }
}
