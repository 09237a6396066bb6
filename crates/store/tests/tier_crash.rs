//! kill -9 in the middle of migrations loses no acknowledged block.
//!
//! The test re-runs its own binary as a child (`child_migrates_until_killed`, which does
//! nothing unless `NEVERUST_TIER_CRASH_DIR` is set). The child writes blocks and
//! datasets, reads a hot set over and over and rebalances tiers of a few blocks each, so it
//! is migrating (and, after a restart, compacting) nearly all the time; it appends each block to `acked` only once the store
//! has acknowledged it, and a block it is about to delete to `deleting`. The parent kills it
//! with SIGKILL at a random moment, reopens the store, and checks every acknowledged block's
//! bytes and that the per-tier counts add up to the totals; eight times over.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use neverust_content::{block_cid, cid_from_digest, codec, sha256, Cid};
use neverust_store::{BlockStore, LeafRef, StoreConfig, TierKind, TierSpec, TieredStore};
use rand::Rng;

const DIR_VAR: &str = "NEVERUST_TIER_CRASH_DIR";
const ROUND_VAR: &str = "NEVERUST_TIER_CRASH_ROUND";
const BLOCK: usize = 16 << 10;
const ROUNDS: u32 = 8;

fn open(dir: &Path) -> TieredStore {
    let specs: Vec<TierSpec> = [
        "memory:64KiB".to_string(),
        format!("nvme:{}/nvme:160KiB", dir.display()),
        format!("ssd:{}/ssd:640KiB", dir.display()),
        format!("hdd:{}/hdd:1GiB", dir.display()),
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let cfg = StoreConfig {
        quota_max_bytes: 1 << 30,
        block_ttl: Duration::from_secs(3600),
    };
    TieredStore::open(&specs, cfg).unwrap()
}

fn block(seed: u64) -> (Cid, Bytes) {
    let mut d = vec![0u8; BLOCK];
    for (i, b) in d.iter_mut().enumerate() {
        *b = (i as u64).wrapping_mul(seed | 1).wrapping_add(seed >> 3) as u8;
    }
    d[..8].copy_from_slice(&seed.to_le_bytes());
    (block_cid(&d), Bytes::from(d))
}

fn seeds(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}

fn append(path: &Path, seeds: &[u64]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let text: String = seeds.iter().map(|s| format!("{s}\n")).collect();
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn child_migrates_until_killed() {
    let Some(dir) = std::env::var_os(DIR_VAR) else {
        return; // only ever run as the crash test's child
    };
    let dir = Path::new(&dir);
    let round: u64 = std::env::var(ROUND_VAR).unwrap().parse().unwrap();
    let store = open(dir);
    let (acked, deleting, moves) = (dir.join("acked"), dir.join("deleting"), dir.join("moves"));
    let mut live: Vec<u64> = seeds(&acked);
    let gone: HashSet<u64> = seeds(&deleting).into_iter().collect();
    live.retain(|s| !gone.contains(s));
    let mut rng = rand::rng();
    let mut next = round * 1_000_000;
    loop {
        let r = rng.random_range(0..10);
        if r < 6 {
            next += 1;
            let (cid, data) = block(next);
            store.put_block(&cid, data).unwrap();
            append(&acked, &[next]);
            live.push(next);
        } else if r < 7 {
            // A dataset of four blocks, acknowledged by its commit.
            let mut up = store.begin_upload().unwrap();
            let firsts: Vec<u64> = (1..=4).map(|i| next + i).collect();
            next += 4;
            let mut leaves = Vec::new();
            for s in &firsts {
                let (cid, data) = block(*s);
                up.put_block(&cid, data).unwrap();
                leaves.push(LeafRef {
                    cid,
                    proof: Bytes::new(),
                });
            }
            let tree = cid_from_digest(codec::DATASET_ROOT, &sha256(&next.to_le_bytes()));
            let manifest = Bytes::from(next.to_le_bytes().to_vec());
            let manifest_cid = cid_from_digest(codec::MANIFEST, &sha256(&manifest));
            up.commit(&tree, leaves, &manifest_cid, manifest).unwrap();
            append(&acked, &firsts);
            live.extend(firsts);
        } else if r < 8 && live.len() > 20 {
            let s = live.swap_remove(rng.random_range(0..live.len()));
            // Recorded first: a kill right after the delete must not count as a loss.
            append(&deleting, &[s]);
            store.delete_block(&block(s).0).unwrap();
        }
        // A hot set that shifts as blocks arrive, read from whatever tier holds it.
        if !live.is_empty() {
            for _ in 0..6 {
                let hot = live
                    .len()
                    .saturating_sub(rng.random_range(1..=live.len().min(40)));
                let s = live[hot.min(live.len() - 1)];
                let (cid, data) = block(s);
                assert_eq!(store.get_block(&cid).unwrap(), Some(data), "seed {s}");
            }
        }
        let done = store.rebalance(8).unwrap();
        let moved = done.promoted + done.demoted + done.compacted;
        if moved > 0 {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&moves)
                .unwrap();
            writeln!(f, "{moved}").unwrap();
        }
    }
}

/// Reopens the store and checks every acknowledged block and the per-tier accounting.
fn verify(dir: &Path) -> usize {
    let store = open(dir);
    let gone: HashSet<u64> = seeds(&dir.join("deleting")).into_iter().collect();
    let acked = seeds(&dir.join("acked"));
    let mut checked = 0;
    for s in acked.iter().filter(|s| !gone.contains(s)) {
        let (cid, data) = block(*s);
        let got = store.get_block(&cid).unwrap();
        assert!(got.is_some(), "acknowledged block {s} lost");
        assert!(got == Some(data), "acknowledged block {s} has wrong bytes");
        checked += 1;
    }
    let space = store.space().unwrap();
    let tiers = store.tier_stats();
    let on_disk = tiers.iter().filter(|t| t.kind != TierKind::Memory);
    let (blocks, bytes) = on_disk.fold((0, 0), |(b, n), t| (b + t.blocks, n + t.bytes));
    assert_eq!(
        (blocks, bytes),
        (space.total_blocks, space.quota_used_bytes)
    );
    assert!(space.total_blocks as usize >= checked);
    checked
}

#[test]
fn kill_9_during_migrations_loses_no_acknowledged_block() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rng();
    for round in 1..=ROUNDS {
        let mut child = Command::new(&exe)
            .args(["--exact", "child_migrates_until_killed", "--test-threads=1"])
            .env(DIR_VAR, dir.path())
            .env(ROUND_VAR, round.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Long enough to open the store and get going, then a random moment.
        let started = Instant::now();
        while !dir.path().join("moves").exists() && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(200..1500)));
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the child stopped by itself ({status}): {err}");
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let checked = verify(dir.path());
        assert!(checked > 0, "round {round}: nothing was acknowledged");
        let moves: u64 = seeds(&dir.path().join("moves")).iter().sum();
        eprintln!("round {round}: {checked} acknowledged blocks intact, {moves} moves so far");
    }
    let moves: u64 = seeds(&dir.path().join("moves")).iter().sum();
    assert!(
        moves > 50,
        "the child migrated too little to test anything: {moves}"
    );
}
