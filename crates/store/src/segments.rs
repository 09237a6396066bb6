//! Block payloads in append-only segment files (`<dir>/segments/NNNNNNNN.seg`).
//!
//! redb keeps only where each block lives; the bytes go here with one sequential write,
//! so a 64 KiB block costs 64 KiB of I/O instead of a copy-on-write B-tree page of twice its
//! size. A segment file whose blocks are all deleted is removed; partially dead segments
//! keep their dead bytes until compaction (not written yet). Bytes appended by a
//! transaction that never committed are unreachable garbage, never read.
//!
//! Payloads are written with `O_DIRECT` where the file system allows it, a batch in one
//! vectored write, straight from the blocks' own buffers when they are aligned (an upload's
//! are, see [`crate::buffers`]), else through an aligned staging buffer. Through the page
//! cache, a 256 MiB upload cost as much CPU in the kernel (page allocation, buffer heads,
//! the copy) as hashing it, and its fsync then waited for all of it at the end; direct
//! writes cost a fifth of that CPU, reach the device while the upload streams, and leave the
//! durable commit only a cache flush. Every payload
//! starts on a 4 KiB boundary for that; the padding is never read. Reads stay buffered, so
//! blocks that are read often are served from the page cache.
//!
//! Payloads are appended before the transaction that indexes them commits, so a segment
//! whose indexed blocks all went (deleted, or moved to another tier) may still be about to
//! receive index entries: [`Unindexed`] keeps such a segment's file until they commit.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::IoSlice;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rustix::fs::OFlags;
use rustix::io::Errno;

use crate::buffers::{is_aligned, BufferPool, PoolUser, ALIGN};

/// A new segment starts once the active one passes this size.
const SEGMENT_MAX: u64 = 256 << 20;
/// Size of a pooled staging buffer: a batch of downloaded blocks (which arrive unaligned)
/// fits in one, so it goes out in one write.
const STAGE: usize = 8 << 20;
/// Staging buffers kept for reuse until the node goes idle; more concurrent writers
/// allocate their own.
const POOLED: usize = 2;

pub struct Segments {
    dir: PathBuf,
    /// Whether this file system accepted `O_DIRECT` (tmpfs and some overlays do not).
    direct: bool,
    state: Arc<Mutex<State>>,
    staging: Arc<BufferPool>,
}

struct State {
    active_id: u64,
    active: Arc<File>,
    /// Bytes reserved in the active segment, written or still being written.
    len: u64,
    /// Segments whose completed writes have not been synced yet.
    dirty: HashMap<u64, Arc<File>>,
    readers: HashMap<u64, Arc<File>>,
    /// Appends per segment whose index transaction has not finished yet.
    unindexed: HashMap<u64, usize>,
}

/// Appends whose index entries are not committed yet: while it lives, their segments are
/// not deleted (a segment left empty meanwhile is deleted at the next open instead). Drop
/// it once the transaction indexing them has committed or failed.
#[must_use = "dropping it at once lets the segment be deleted before its payloads are indexed"]
#[derive(Default)]
pub struct Unindexed {
    state: Option<Arc<Mutex<State>>>,
    ids: Vec<u64>,
}

impl Unindexed {
    /// Holds `other`'s segments too, until this one drops.
    pub fn merge(&mut self, mut other: Unindexed) {
        if self.state.is_none() {
            self.state = other.state.take();
        }
        self.ids.append(&mut other.ids);
    }
}

impl Drop for Unindexed {
    fn drop(&mut self) {
        let Some(state) = &self.state else {
            return;
        };
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        for id in self.ids.drain(..) {
            if let Some(n) = s.unindexed.get_mut(&id) {
                *n -= 1;
                if *n == 0 {
                    s.unindexed.remove(&id);
                }
            }
        }
    }
}

/// Space a payload of `len` bytes takes in a segment.
pub fn padded(len: usize) -> usize {
    len.div_ceil(ALIGN).max(1) * ALIGN
}

/// Padding for buffered writes.
static ZEROS: [u8; ALIGN] = [0; ALIGN];

/// Most buffers one `pwritev` takes (Linux's `IOV_MAX`).
const IOV_MAX: usize = 1024;

fn write_all_vectored_at(
    file: &File,
    mut slices: &mut [IoSlice<'_>],
    mut offset: u64,
) -> std::io::Result<()> {
    while !slices.is_empty() {
        let n = slices.len().min(IOV_MAX);
        let written = rustix::io::pwritev(file, &slices[..n], offset)?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        offset += written as u64;
        IoSlice::advance_slices(&mut slices, written);
    }
    Ok(())
}

fn path_of(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:08}.seg"))
}

/// Ids of the segment files present in `dir`.
pub fn existing(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse().ok())
        {
            ids.push(id);
        }
    }
    ids.sort();
    Ok(ids)
}

fn create(dir: &Path, id: u64, direct: bool) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create_new(true).write(true);
    if direct {
        options.custom_flags(OFlags::DIRECT.bits() as i32);
    }
    options.open(path_of(dir, id))
}

impl Segments {
    /// Opens the segment dir and starts a fresh active segment after the newest existing one,
    /// so nothing is ever appended behind garbage a crash left.
    pub fn open(dir: &Path) -> std::io::Result<Segments> {
        std::fs::create_dir_all(dir)?;
        let active_id = existing(dir)?.last().copied().unwrap_or(0) + 1;
        let (active, direct) = match create(dir, active_id, true) {
            Ok(file) => (file, true),
            Err(e) if e.raw_os_error() == Some(Errno::INVAL.raw_os_error()) => {
                tracing::info!(dir = %dir.display(), "no direct I/O here; writing through the page cache");
                (create(dir, active_id, false)?, false)
            }
            Err(e) => return Err(e),
        };
        Ok(Segments {
            dir: dir.to_path_buf(),
            direct,
            state: Arc::new(Mutex::new(State {
                active_id,
                active: Arc::new(active),
                len: 0,
                dirty: HashMap::new(),
                readers: HashMap::new(),
                unindexed: HashMap::new(),
            })),
            staging: BufferPool::new(STAGE, POOLED),
        })
    }

    /// The directory of the segment files, for errors to name.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of segment `id`, for errors to name.
    pub fn path(&self, id: u64) -> PathBuf {
        path_of(&self.dir, id)
    }

    pub fn active_id(&self) -> u64 {
        self.lock().active_id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves `total` bytes in the active segment, starting a new one when it is full,
    /// and holds that segment for the caller's index transaction.
    fn reserve(&self, total: u64) -> std::io::Result<(u64, Arc<File>, u64, Unindexed)> {
        let mut s = self.lock();
        if s.len >= SEGMENT_MAX {
            let next = s.active_id + 1;
            // Writers still busy in the old segment hold their own handle, and mark it dirty
            // when they finish, so it needs no sync here.
            s.active = Arc::new(create(&self.dir, next, self.direct)?);
            s.active_id = next;
            s.len = 0;
        }
        let start = s.len;
        s.len += total;
        let id = s.active_id;
        *s.unindexed.entry(id).or_default() += 1;
        let held = Unindexed {
            state: Some(self.state.clone()),
            ids: vec![id],
        };
        Ok((id, s.active.clone(), start, held))
    }

    /// Appends payloads with as few writes as possible; returns (segment id, offset) of
    /// each, and the hold that keeps their segment until they are indexed. The bytes are on
    /// their way to the disk, durable after the next [`Self::sync`].
    ///
    /// Payloads already aligned in memory (an upload's blocks) are written from where they
    /// are; the others are first copied into an aligned staging buffer.
    pub fn append(&self, payloads: &[&[u8]]) -> std::io::Result<(Vec<(u64, u64)>, Unindexed)> {
        if payloads.is_empty() {
            return Ok((Vec::new(), Unindexed::default()));
        }
        let in_place = |p: &[u8]| !self.direct || is_aligned(p);
        let total: usize = payloads.iter().map(|p| padded(p.len())).sum();
        let copied: usize = payloads
            .iter()
            .filter(|p| !in_place(p))
            .map(|p| padded(p.len()))
            .sum();
        // A batch larger than a pooled buffer gets one of its own from take_len.
        let mut staging = (copied > 0).then(|| self.staging.take_len(copied));
        if let Some(staging) = staging.as_mut() {
            let window = staging.as_mut();
            let mut filled = 0;
            for p in payloads.iter().filter(|p| !in_place(p)) {
                window[filled..filled + p.len()].copy_from_slice(p);
                window[filled + p.len()..filled + padded(p.len())].fill(0);
                filled += padded(p.len());
            }
        }
        let mut slices = Vec::with_capacity(payloads.len() * 2);
        let mut staged_at = 0;
        for p in payloads {
            let size = padded(p.len());
            if in_place(p) {
                slices.push(IoSlice::new(p));
                // Buffered writes take any payload as it is; the padding is written too, so
                // a segment never has holes.
                if size > p.len() {
                    slices.push(IoSlice::new(&ZEROS[..size - p.len()]));
                }
            } else {
                let staging = staging.as_ref().expect("sized for every staged payload");
                slices.push(IoSlice::new(&staging.as_ref()[staged_at..staged_at + size]));
                staged_at += size;
            }
        }
        let (id, file, start, held) = self.reserve(total as u64)?;
        write_all_vectored_at(&file, &mut slices, start)?;
        self.lock().dirty.entry(id).or_insert(file);
        let mut at = start;
        let locs = payloads
            .iter()
            .map(|p| {
                let loc = (id, at);
                at += padded(p.len()) as u64;
                loc
            })
            .collect();
        Ok((locs, held))
    }

    /// Keeps staging buffers for reuse until the guard drops (an upload's lifetime).
    pub fn staging_user(&self) -> PoolUser {
        self.staging.user()
    }

    /// Makes every completed append durable; called before a durable index commit.
    pub fn sync(&self) -> std::io::Result<()> {
        let dirty: Vec<(u64, Arc<File>)> = self.lock().dirty.drain().collect();
        for (i, (_, file)) in dirty.iter().enumerate() {
            if let Err(e) = file.sync_data() {
                // Still owed: the next durable commit tries again.
                let mut s = self.lock();
                for (id, file) in &dirty[i..] {
                    s.dirty.entry(*id).or_insert_with(|| file.clone());
                }
                return Err(e);
            }
        }
        Ok(())
    }

    pub fn read(&self, id: u64, offset: u64, len: u64) -> std::io::Result<Bytes> {
        let file = {
            let mut s = self.lock();
            match s.readers.get(&id) {
                Some(f) => f.clone(),
                None => {
                    let f = Arc::new(File::open(path_of(&self.dir, id))?);
                    s.readers.insert(id, f.clone());
                    f
                }
            }
        };
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, offset)?;
        Ok(Bytes::from(buf))
    }

    /// Bytes a segment file takes (payloads, padding and dead bytes alike).
    pub fn file_len(&self, id: u64) -> std::io::Result<u64> {
        Ok(std::fs::metadata(path_of(&self.dir, id))?.len())
    }

    /// Deletes a segment that holds no live block any more (never the active one, nor one
    /// with payloads on their way into the index: the next open deletes it if it stays
    /// empty).
    pub fn remove(&self, id: u64) -> std::io::Result<()> {
        let mut s = self.lock();
        if id == s.active_id || s.unindexed.contains_key(&id) {
            return Ok(());
        }
        s.readers.remove(&id);
        s.dirty.remove(&id);
        match std::fs::remove_file(path_of(&self.dir, id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffers::AlignedBuf;

    fn payload(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    #[test]
    fn payloads_of_any_size_read_back_after_sync_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let sizes = [1, 4095, 4096, 4097, 65536, 65537, (5 << 20) + 3, 0];
        let plain: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| payload(n, i as u8))
            .collect();
        // Aligned buffers are written from where they are, between the staged ones.
        let aligned: Vec<AlignedBuf> = [ALIGN, 16 * ALIGN]
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let mut a = AlignedBuf::zeroed(n);
                a.as_mut().copy_from_slice(&payload(n, 100 + i as u8));
                a
            })
            .collect();
        let mut refs: Vec<&[u8]> = plain.iter().map(|d| d.as_slice()).collect();
        refs.insert(2, aligned[0].as_ref());
        refs.insert(5, aligned[1].as_ref());
        let locs = {
            let segs = Segments::open(dir.path()).unwrap();
            let (locs, _held) = segs.append(&refs).unwrap();
            for ((id, off), d) in locs.iter().zip(&refs) {
                assert_eq!(off % ALIGN as u64, 0, "every payload starts aligned");
                assert_eq!(segs.read(*id, *off, d.len() as u64).unwrap(), d[..]);
            }
            segs.sync().unwrap();
            locs
        };
        let segs = Segments::open(dir.path()).unwrap();
        for ((id, off), d) in locs.iter().zip(&refs) {
            assert_eq!(segs.read(*id, *off, d.len() as u64).unwrap(), d[..]);
        }
    }

    #[test]
    fn a_segment_is_kept_while_appends_to_it_are_unindexed() {
        let dir = tempfile::tempdir().unwrap();
        let segs = Segments::open(dir.path()).unwrap();
        let (at, held) = segs.append(&[b"abc"]).unwrap();
        // The segment rolls over: the old one is no longer active.
        segs.lock().len = SEGMENT_MAX;
        let (_, later) = segs.append(&[b"d"]).unwrap();
        segs.remove(at[0].0).unwrap();
        assert_eq!(segs.read(at[0].0, at[0].1, 3).unwrap(), &b"abc"[..]);
        drop(held);
        segs.remove(at[0].0).unwrap();
        assert!(
            segs.read(at[0].0, at[0].1, 3).is_err(),
            "deleted once indexed"
        );
        drop(later);
    }

    #[test]
    fn concurrent_appends_never_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let segs = Arc::new(Segments::open(dir.path()).unwrap());
        let writers: Vec<_> = (0..4u8)
            .map(|w| {
                let segs = segs.clone();
                std::thread::spawn(move || {
                    (0..20u8)
                        .map(|i| {
                            let d = payload(3000 + 7000 * i as usize, w * 32 + i);
                            let (at, _held) = segs.append(&[&d, &d[..100]]).unwrap();
                            (at, d)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for w in writers {
            for (at, d) in w.join().unwrap() {
                assert_eq!(segs.read(at[0].0, at[0].1, d.len() as u64).unwrap(), d[..]);
                assert_eq!(segs.read(at[1].0, at[1].1, 100).unwrap(), d[..100]);
            }
        }
    }
}
