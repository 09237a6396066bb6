//! Heap buffers aligned for direct I/O, and a pool of block-sized ones for uploads.
//!
//! An upload's chunker fills [`AlignedBlocks`] buffers, so the disk store writes each block
//! straight from the memory it arrived in. Dropped blocks return their buffer to the pool:
//! a fresh 64 KiB allocation per block made the kernel fault in and zero every page of
//! every upload, which cost as much CPU as a fifth of the hashing. The pool lives only
//! while some upload holds an [`AlignedBlocks`]: an idle node gives the memory back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use neverust_content::{BlockAlloc, BLOCK_SIZE};

/// Direct I/O alignment of offsets, lengths and buffers (the page size; enough for any disk).
pub const ALIGN: usize = 4096;

/// Buffers the pool keeps: what an upload holds in flight (its pipeline stages and the batches
/// on their way to disk). More are allocated when needed and freed when dropped.
const POOLED_BLOCKS: usize = 512;

static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
/// Live [`AlignedBlocks`] handles.
static USERS: AtomicUsize = AtomicUsize::new(0);

/// A heap buffer with an aligned window of `len` bytes.
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// A zeroed buffer, not pooled.
    pub fn zeroed(len: usize) -> AlignedBuf {
        AlignedBuf::over(vec![0u8; len + ALIGN], len)
    }

    fn over(raw: Vec<u8>, len: usize) -> AlignedBuf {
        let start = raw.as_ptr().align_offset(ALIGN);
        AlignedBuf { raw, start, len }
    }

    fn pooled(&self) -> bool {
        self.len == BLOCK_SIZE && self.raw.len() == BLOCK_SIZE + ALIGN
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
}

impl AsMut<[u8]> for AlignedBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if self.pooled() && USERS.load(Ordering::Relaxed) > 0 {
            let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < POOLED_BLOCKS {
                pool.push(std::mem::take(&mut self.raw));
            }
        }
    }
}

/// Block buffers for [`neverust_content::Chunker`]: aligned, and recycled when they are
/// block-sized. Their contents are whatever the last user left.
#[derive(Debug)]
pub struct AlignedBlocks(());

impl AlignedBlocks {
    #[allow(clippy::new_without_default)] // a handle with a side effect, not a value
    pub fn new() -> AlignedBlocks {
        USERS.fetch_add(1, Ordering::Relaxed);
        AlignedBlocks(())
    }
}

impl Drop for AlignedBlocks {
    fn drop(&mut self) {
        if USERS.fetch_sub(1, Ordering::Relaxed) == 1 {
            release_pooled_buffers();
        }
    }
}

impl BlockAlloc for AlignedBlocks {
    type Buf = AlignedBuf;

    fn alloc(&mut self, block_size: usize) -> AlignedBuf {
        if block_size == BLOCK_SIZE {
            if let Some(raw) = POOL.lock().unwrap_or_else(|p| p.into_inner()).pop() {
                return AlignedBuf::over(raw, block_size);
            }
        }
        AlignedBuf::zeroed(block_size)
    }
}

/// Frees the pooled buffers.
fn release_pooled_buffers() {
    POOL.lock().unwrap_or_else(|p| p.into_inner()).clear();
}

/// Whether `data` can be written with direct I/O as it is.
pub fn is_aligned(data: &[u8]) -> bool {
    (data.as_ptr() as usize).is_multiple_of(ALIGN) && data.len().is_multiple_of(ALIGN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_and_come_back() {
        let mut alloc = AlignedBlocks::new();
        let a = alloc.alloc(BLOCK_SIZE);
        assert!(is_aligned(a.as_ref()));
        let addr = a.as_ref().as_ptr();
        drop(a);
        // Another test may take it first; the pool only promises to keep what it is given.
        let again: Vec<AlignedBuf> = (0..4).map(|_| alloc.alloc(BLOCK_SIZE)).collect();
        assert!(again.iter().all(|b| is_aligned(b.as_ref())));
        assert!(again.iter().any(|b| b.as_ref().as_ptr() == addr) || POOLED_BLOCKS == 0);
        let odd = alloc.alloc(100);
        assert_eq!(odd.as_ref().len(), 100);
        assert!((odd.as_ref().as_ptr() as usize).is_multiple_of(ALIGN));
    }
}
