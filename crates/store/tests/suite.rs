//! One suite, every store: each test runs against the memory store, the disk store and
//! the tiered store in several layouts, one of them with tiers so small that blocks move
//! between them after every operation.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use neverust_content::{block_cid, cid_from_digest, codec, sha256, Cid};
use neverust_store::{
    BlockStore, DiskStore, LeafRef, MemoryStore, StoreConfig, StoreError, TierSpec, TieredStore,
};

const TTL: Duration = Duration::from_secs(3600);

fn cfg(quota: u64) -> StoreConfig {
    StoreConfig {
        quota_max_bytes: quota,
        block_ttl: TTL,
    }
}

fn block(seed: u32, len: usize) -> (Cid, Bytes) {
    let mut d = vec![0u8; len];
    for (i, b) in d.iter_mut().enumerate() {
        *b = (i as u32).wrapping_mul(31).wrapping_add(seed) as u8;
    }
    d[..4].copy_from_slice(&seed.to_le_bytes());
    (block_cid(&d), Bytes::from(d))
}

/// Uploads `blocks` as a dataset; returns (manifest cid, tree cid).
fn upload(store: &dyn BlockStore, blocks: &[(Cid, Bytes)], tag: u8) -> (Cid, Cid) {
    let mut up = store.begin_upload().unwrap();
    for (cid, data) in blocks {
        up.put_block(cid, data.clone()).unwrap();
    }
    let tree = cid_from_digest(codec::DATASET_ROOT, &sha256(&[tag, blocks.len() as u8]));
    let manifest = Bytes::from(vec![tag; 40]);
    let manifest_cid = cid_from_digest(codec::MANIFEST, &sha256(&manifest));
    let leaves = blocks
        .iter()
        .map(|(cid, _)| LeafRef {
            cid: *cid,
            proof: Bytes::from_static(b"proof"),
        })
        .collect();
    up.commit(&tree, leaves, &manifest_cid, manifest).unwrap();
    (manifest_cid, tree)
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $( #[test] fn $name() { super::$name(&|quota, _dir| Box::new(super::MemoryStore::new(super::cfg(quota)))); } )*
        }
        mod disk {
            $( #[test] fn $name() { super::$name(&|quota, dir| Box::new(super::DiskStore::open(dir, super::cfg(quota)).unwrap())); } )*
        }
        mod tiered_memory_disk {
            $( #[test] fn $name() { super::$name(&|quota, dir| Box::new(super::tiered(dir, quota, &["memory:1MiB", "ssd:{}/ssd:1GiB"]))); } )*
        }
        mod tiered_churning {
            $( #[test] fn $name() { super::$name(&|quota, dir| Box::new(super::churning(dir, quota))); } )*
        }
    };
}

type Open<'a> = &'a dyn Fn(u64, &std::path::Path) -> Box<dyn BlockStore>;

/// A tiered store over `specs`, each `{}` replaced by `dir`.
fn tiered(dir: &std::path::Path, quota: u64, specs: &[&str]) -> TieredStore {
    let specs: Vec<TierSpec> = specs
        .iter()
        .map(|s| s.replace("{}", &dir.display().to_string()).parse().unwrap())
        .collect();
    TieredStore::open(&specs, cfg(quota)).unwrap()
}

/// Disk tiers of a few KiB each: blocks are demoted (and the blocks the suite reads
/// promoted) after every operation, so every test also runs with migrations interleaved.
/// The memory tier is too small for any block (each would otherwise be read from a disk tier
/// only once).
fn churning(dir: &std::path::Path, quota: u64) -> churn::Churning {
    let specs = [
        "memory:256",
        "nvme:{}/nvme:1500",
        "ssd:{}/ssd:4KiB",
        "hdd:{}/hdd:1GiB",
    ];
    churn::Churning(std::sync::Arc::new(tiered(dir, quota, &specs)))
}

mod churn {
    use super::*;
    use neverust_store::{Reclaimed, Space, StoreStats, Upload};
    use std::sync::Arc;

    pub struct Churning(pub Arc<TieredStore>);

    impl Churning {
        fn churn<T>(&self, out: T) -> T {
            self.0.rebalance(8).unwrap();
            out
        }

        /// Reads a block twice, so that it turns hot and the next churn moves it up
        /// (and a colder block down to make room).
        fn heat(&self, cid: &Cid) {
            heat(&self.0, cid)
        }
    }

    fn heat(store: &TieredStore, cid: &Cid) {
        store.get_block(cid).unwrap();
        store.get_block(cid).unwrap();
    }

    impl BlockStore for Churning {
        fn put_block(&self, cid: &Cid, data: Bytes) -> Result<bool, StoreError> {
            let out = self.0.put_block(cid, data);
            self.heat(cid);
            self.churn(out)
        }
        fn get_block(&self, cid: &Cid) -> Result<Option<Bytes>, StoreError> {
            self.heat(cid);
            self.churn(self.0.get_block(cid))
        }
        fn has_block(&self, cid: &Cid) -> Result<bool, StoreError> {
            self.heat(cid);
            self.churn(self.0.has_block(cid))
        }
        fn delete_block(&self, cid: &Cid) -> Result<bool, StoreError> {
            self.churn(self.0.delete_block(cid))
        }
        fn get_leaf(&self, tree: &Cid, index: u64) -> Result<Option<LeafRef>, StoreError> {
            self.churn(self.0.get_leaf(tree, index))
        }
        fn put_leaf(&self, tree: &Cid, index: u64, leaf: LeafRef) -> Result<(), StoreError> {
            self.churn(self.0.put_leaf(tree, index, leaf))
        }
        fn begin_upload(&self) -> Result<Box<dyn Upload>, StoreError> {
            Ok(Box::new(ChurningUpload {
                inner: self.0.begin_upload()?,
                store: self.0.clone(),
            }))
        }
        fn delete_dataset(&self, m: &Cid, t: &Cid, blocks: u64) -> Result<(), StoreError> {
            self.churn(self.0.delete_dataset(m, t, blocks))
        }
        fn list_manifests(&self) -> Result<Vec<(Cid, Bytes)>, StoreError> {
            self.churn(self.0.list_manifests())
        }
        fn space(&self) -> Result<Space, StoreError> {
            self.churn(self.0.space())
        }
        fn stats(&self) -> StoreStats {
            self.churn(self.0.stats())
        }
        fn maintain(&self, now: SystemTime) -> Result<Reclaimed, StoreError> {
            self.churn(self.0.maintain(now))
        }
    }

    struct ChurningUpload {
        inner: Box<dyn Upload>,
        store: Arc<TieredStore>,
    }

    impl Upload for ChurningUpload {
        fn put_block(&mut self, cid: &Cid, data: Bytes) -> Result<(), StoreError> {
            let out = self.inner.put_block(cid, data);
            heat(&self.store, cid);
            self.store.rebalance(8).unwrap();
            out
        }
        fn commit(
            self: Box<Self>,
            tree: &Cid,
            leaves: Vec<LeafRef>,
            manifest_cid: &Cid,
            manifest: Bytes,
        ) -> Result<(), StoreError> {
            let out = self.inner.commit(tree, leaves, manifest_cid, manifest);
            self.store.rebalance(8).unwrap();
            out
        }
        fn abort(self: Box<Self>) -> Result<(), StoreError> {
            self.inner.abort()
        }
    }
}

suite!(
    put_get_has_delete,
    dedup_counts_once,
    quota_refusal_leaves_nothing,
    dropped_upload_leaves_nothing,
    shared_blocks_survive_one_dataset_delete,
    ttl_expiry_removes_datasets,
    leaves_round_trip_and_manifests_list,
);

fn put_get_has_delete(open: Open) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(1 << 30, dir.path());
    let (cid, data) = block(1, 1000);
    assert!(s.put_block(&cid, data.clone()).unwrap());
    assert!(s.has_block(&cid).unwrap());
    assert_eq!(s.get_block(&cid).unwrap(), Some(data));
    assert!(s.delete_block(&cid).unwrap());
    assert!(!s.has_block(&cid).unwrap());
    assert_eq!(s.get_block(&cid).unwrap(), None);
    assert_eq!(s.space().unwrap().quota_used_bytes, 0);
}

fn dedup_counts_once(open: Open) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(1 << 30, dir.path());
    let (cid, data) = block(2, 500);
    assert!(s.put_block(&cid, data.clone()).unwrap());
    assert!(!s.put_block(&cid, data).unwrap());
    let space = s.space().unwrap();
    assert_eq!((space.total_blocks, space.quota_used_bytes), (1, 500));
    assert_eq!(s.stats().block_bytes, 500);
}

fn quota_refusal_leaves_nothing(open: Open) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(10_000, dir.path());
    let (c, d) = block(3, 1000);
    s.put_block(&c, d).unwrap();
    let before = s.space().unwrap();
    let mut up = s.begin_upload().unwrap();
    let mut failed = None;
    for i in 0..20 {
        let (cid, data) = block(100 + i, 1000);
        if let Err(e) = up.put_block(&cid, data) {
            failed = Some(e);
            break;
        }
    }
    // The disk store may only notice at commit, when it writes its last batch.
    let err = match failed {
        Some(e) => {
            drop(up);
            e
        }
        None => up
            .commit(&c, vec![], &c, Bytes::new())
            .expect_err("over quota"),
    };
    assert!(
        matches!(err, StoreError::QuotaExceeded { max: 10_000, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("10000"));
    assert_eq!(s.space().unwrap(), before);
}

fn dropped_upload_leaves_nothing(open: Open) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(1 << 30, dir.path());
    {
        let mut up = s.begin_upload().unwrap();
        for i in 0..100 {
            let (cid, data) = block(200 + i, 2000);
            up.put_block(&cid, data).unwrap();
        }
    }
    assert_eq!(s.space().unwrap().quota_used_bytes, 0);
    assert_eq!(s.space().unwrap().total_blocks, 0);
}

fn shared_blocks_survive_one_dataset_delete(open: Open) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(1 << 30, dir.path());
    let a: Vec<_> = (0..4).map(|i| block(300 + i, 1000)).collect();
    let mut b = a[..2].to_vec();
    b.extend((0..2).map(|i| block(400 + i, 1000)));
    let (ma, ta) = upload(s.as_ref(), &a, 1);
    let (_mb, tb) = upload(s.as_ref(), &b, 2);
    s.delete_dataset(&ma, &ta, 4).unwrap();
    assert!(!s.has_block(&ma).unwrap());
    for (i, (cid, _)) in b.iter().enumerate() {
        assert!(s.has_block(cid).unwrap(), "block {i} of b");
        assert_eq!(s.get_leaf(&tb, i as u64).unwrap().unwrap().cid, *cid);
    }
    for (cid, _) in &a[2..] {
        assert!(!s.has_block(cid).unwrap());
    }
    assert_eq!(s.get_leaf(&ta, 0).unwrap(), None);
    assert_eq!(s.space().unwrap().total_blocks, 5);
}

fn ttl_expiry_removes_datasets(open: Open) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(1 << 30, dir.path());
    let blocks: Vec<_> = (0..3).map(|i| block(500 + i, 1000)).collect();
    upload(s.as_ref(), &blocks, 3);
    let r = s.maintain(SystemTime::now()).unwrap();
    assert_eq!(r.blocks, 0, "nothing has expired yet");
    let r = s
        .maintain(SystemTime::now() + TTL + Duration::from_secs(5))
        .unwrap();
    assert_eq!(r.datasets, 1);
    assert_eq!(s.space().unwrap().total_blocks, 0);
    assert_eq!(s.space().unwrap().quota_used_bytes, 0);
}

fn leaves_round_trip_and_manifests_list(open: Open) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(1 << 30, dir.path());
    let blocks: Vec<_> = (0..2).map(|i| block(600 + i, 100)).collect();
    let (m, t) = upload(s.as_ref(), &blocks, 4);
    let leaf = s.get_leaf(&t, 1).unwrap().unwrap();
    assert_eq!(leaf.cid, blocks[1].0);
    assert_eq!(&leaf.proof[..], b"proof");
    let list = s.list_manifests().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].0, m);
}

#[test]
fn disk_keeps_commits_and_drops_unfinished_uploads_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let blocks: Vec<_> = (0..5).map(|i| block(700 + i, 4000)).collect();
    let (m, t) = {
        let s = DiskStore::open(dir.path(), cfg(1 << 30)).unwrap();
        let ids = upload(&s, &blocks, 5);
        // An upload the process never finishes (a kill -9 mid-upload is tested end to end
        // in the binary's integration tests).
        let mut up = s.begin_upload().unwrap();
        for i in 0..70 {
            let (cid, data) = block(800 + i, 4000);
            up.put_block(&cid, data).unwrap();
        }
        drop(s);
        drop(up);
        ids
    };
    let s = DiskStore::open(dir.path(), cfg(1 << 30)).unwrap();
    assert!(s.has_block(&m).unwrap());
    for (i, (cid, data)) in blocks.iter().enumerate() {
        assert_eq!(s.get_leaf(&t, i as u64).unwrap().unwrap().cid, *cid);
        assert_eq!(s.get_block(cid).unwrap().as_ref(), Some(data));
    }
    let space = s.space().unwrap();
    assert_eq!(space.total_blocks, 6);
    assert_eq!(space.quota_used_bytes, 5 * 4000 + 40);
}

mod random_ops {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn quota_used_is_the_sum_of_unique_blocks(ops in proptest::collection::vec((0u32..12, any::<bool>()), 1..60)) {
            let dir = tempfile::tempdir().unwrap();
            let stores: Vec<Box<dyn BlockStore>> = vec![
                Box::new(MemoryStore::new(cfg(1 << 30))),
                Box::new(DiskStore::open(dir.path(), cfg(1 << 30)).unwrap()),
                Box::new(churning(&dir.path().join("tiered"), 1 << 30)),
            ];
            for s in &stores {
                let mut model = std::collections::HashMap::new();
                for (seed, put) in &ops {
                    let (cid, data) = block(*seed, 100 + *seed as usize * 10);
                    if *put {
                        s.put_block(&cid, data.clone()).unwrap();
                        model.insert(cid, data.len() as u64);
                    } else {
                        s.delete_block(&cid).unwrap();
                        model.remove(&cid);
                    }
                }
                let space = s.space().unwrap();
                prop_assert_eq!(space.quota_used_bytes, model.values().sum::<u64>());
                prop_assert_eq!(space.total_blocks, model.len() as u64);
            }
        }
    }
}

#[test]
fn disk_deletes_segment_files_that_hold_nothing_live() {
    let dir = tempfile::tempdir().unwrap();
    let seg_dir = dir.path().join("segments");
    let count = || std::fs::read_dir(&seg_dir).unwrap().count();
    let blocks: Vec<_> = (0..3).map(|i| block(900 + i, 1000)).collect();
    {
        let s = DiskStore::open(dir.path(), cfg(1 << 30)).unwrap();
        for (cid, data) in &blocks {
            s.put_block(cid, data.clone()).unwrap();
        }
    }
    // Reopening starts a new active segment; the old one still holds live blocks.
    let s = DiskStore::open(dir.path(), cfg(1 << 30)).unwrap();
    assert_eq!(count(), 2);
    for (cid, data) in &blocks {
        assert_eq!(s.get_block(cid).unwrap().as_ref(), Some(data));
        s.delete_block(cid).unwrap();
    }
    assert_eq!(
        count(),
        1,
        "the emptied segment is gone, the active one stays"
    );
}

#[test]
fn disk_reports_a_lost_segment_file_as_io_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cid, data) = block(950, 1000);
    let s = DiskStore::open(dir.path(), cfg(1 << 30)).unwrap();
    s.put_block(&cid, data).unwrap();
    let seg_dir = dir.path().join("segments");
    for entry in std::fs::read_dir(&seg_dir).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    match s.get_block(&cid).unwrap_err() {
        StoreError::Io { path, source, .. } => {
            assert!(path.starts_with(&seg_dir), "{}", path.display());
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
}
