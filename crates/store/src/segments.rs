//! Block payloads in append-only segment files (`<dir>/segments/NNNNNNNN.seg`).
//!
//! redb keeps only where each block lives; the bytes go here with one sequential write,
//! so a 64 KiB block costs 64 KiB of I/O instead of a copy-on-write B-tree page of twice its
//! size. A segment file whose blocks are all deleted is removed; partially dead segments
//! keep their dead bytes until compaction (not written yet). Bytes appended by a
//! transaction that never committed are unreachable garbage, never read.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// A new segment starts once the active one passes this size.
const SEGMENT_MAX: u64 = 256 << 20;

pub struct Segments {
    dir: PathBuf,
    state: Mutex<State>,
}

struct State {
    active_id: u64,
    active: File,
    len: u64,
    /// Segments written to since the last sync.
    dirty: Vec<u64>,
    readers: HashMap<u64, Arc<File>>,
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

fn create(dir: &Path, id: u64) -> std::io::Result<File> {
    OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path_of(dir, id))
}

impl Segments {
    /// Opens the segment dir and starts a fresh active segment after the newest existing one,
    /// so nothing is ever appended behind garbage a crash left.
    pub fn open(dir: &Path) -> std::io::Result<Segments> {
        std::fs::create_dir_all(dir)?;
        let active_id = existing(dir)?.last().copied().unwrap_or(0) + 1;
        let active = create(dir, active_id)?;
        Ok(Segments {
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                active_id,
                active,
                len: 0,
                dirty: Vec::new(),
                readers: HashMap::new(),
            }),
        })
    }

    pub fn active_id(&self) -> u64 {
        self.lock().active_id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a payload; returns (segment id, offset).
    pub fn append(&self, data: &[u8]) -> std::io::Result<(u64, u64)> {
        let mut s = self.lock();
        if s.len >= SEGMENT_MAX {
            let next = s.active_id + 1;
            let file = create(&self.dir, next)?;
            let old = std::mem::replace(&mut s.active, file);
            // The rolled segment may still need its fsync: keep it dirty, sync it here.
            old.sync_data()?;
            s.dirty.retain(|id| *id != next - 1);
            s.active_id = next;
            s.len = 0;
        }
        let (id, offset) = (s.active_id, s.len);
        s.active.write_all(data)?;
        s.len += data.len() as u64;
        if s.dirty.last() != Some(&id) {
            s.dirty.push(id);
        }
        Ok((id, offset))
    }

    /// Makes every appended payload durable; called before a durable index commit.
    pub fn sync(&self) -> std::io::Result<()> {
        let mut s = self.lock();
        if s.dirty.contains(&s.active_id) {
            s.active.sync_data()?;
        }
        s.dirty.clear();
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

    /// Deletes a segment that holds no live block any more (never the active one).
    pub fn remove(&self, id: u64) -> std::io::Result<()> {
        let mut s = self.lock();
        if id == s.active_id {
            return Ok(());
        }
        s.readers.remove(&id);
        match std::fs::remove_file(path_of(&self.dir, id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
