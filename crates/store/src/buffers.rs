//! Heap buffers aligned for direct I/O, and pools that recycle them while they are busy.
//!
//! An upload's chunker fills [`AlignedBlocks`] buffers, so the disk store writes each block
//! straight from the memory it arrived in; unaligned payloads (downloaded blocks) are copied
//! into a segment's staging buffer instead. Both come from a [`BufferPool`]: a dropped buffer
//! goes back to its pool, because a fresh allocation per block made the kernel fault in and
//! zero every page of every upload, about a quarter of what hashing it costs. A pool keeps
//! buffers only while it has users (uploads running): an idle node gives the memory back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use neverust_content::{BlockAlloc, BLOCK_SIZE};

/// Direct I/O alignment of offsets, lengths and buffers (the page size; enough for any disk).
pub const ALIGN: usize = 4096;

/// Block buffers kept: what an upload holds in flight (its pipeline stages and the batches
/// on their way to disk).
const POOLED_BLOCKS: usize = 512;

static BLOCKS: LazyLock<Arc<BufferPool>> =
    LazyLock::new(|| BufferPool::new(BLOCK_SIZE, POOLED_BLOCKS));

/// A heap buffer with an aligned window of `len` bytes; returns to its pool when dropped.
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
    home: Option<Arc<BufferPool>>,
}

impl AlignedBuf {
    /// A zeroed buffer of its own, not pooled.
    pub fn zeroed(len: usize) -> AlignedBuf {
        AlignedBuf::over(vec![0u8; len + ALIGN], len, None)
    }

    fn over(raw: Vec<u8>, len: usize, home: Option<Arc<BufferPool>>) -> AlignedBuf {
        let start = raw.as_ptr().align_offset(ALIGN);
        AlignedBuf {
            raw,
            start,
            len,
            home,
        }
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
        if let Some(home) = self.home.take() {
            home.give(std::mem::take(&mut self.raw));
        }
    }
}

/// Aligned buffers of one size, kept for reuse while the pool has users.
pub struct BufferPool {
    len: usize,
    keep: usize,
    free: Mutex<Vec<Vec<u8>>>,
    users: AtomicUsize,
}

impl BufferPool {
    pub fn new(len: usize, keep: usize) -> Arc<BufferPool> {
        Arc::new(BufferPool {
            len,
            keep,
            free: Mutex::new(Vec::new()),
            users: AtomicUsize::new(0),
        })
    }

    /// A buffer of the pool's size; its contents are whatever its last user left.
    pub fn take(self: &Arc<Self>) -> AlignedBuf {
        let raw = self.free().pop();
        let raw = raw.unwrap_or_else(|| vec![0u8; self.len + ALIGN]);
        AlignedBuf::over(raw, self.len, Some(self.clone()))
    }

    /// A buffer of at least `len` bytes: a pooled one if one is free, else a new one. The
    /// new one is pool-sized only for a large `len`: a download's few blocks should not
    /// fault in and zero a whole staging buffer, which cost more than writing them.
    pub fn take_at_least(self: &Arc<Self>, len: usize) -> AlignedBuf {
        let raw = self.free().pop();
        match raw {
            Some(raw) => AlignedBuf::over(raw, self.len, Some(self.clone())),
            None if len > self.len / 2 => self.take(),
            None => AlignedBuf::zeroed(len),
        }
    }

    /// Keeps the pool filled until the returned guard drops.
    pub fn user(self: &Arc<Self>) -> PoolUser {
        self.users.fetch_add(1, Ordering::Relaxed);
        PoolUser(self.clone())
    }

    fn give(&self, raw: Vec<u8>) {
        if self.users.load(Ordering::Relaxed) > 0 {
            let mut free = self.free();
            if free.len() < self.keep {
                free.push(raw);
            }
        }
    }

    fn free(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A reason for a [`BufferPool`] to keep buffers; the last one to go empties it.
pub struct PoolUser(Arc<BufferPool>);

impl Drop for PoolUser {
    fn drop(&mut self) {
        if self.0.users.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.free().clear();
        }
    }
}

/// Block buffers for [`neverust_content::Chunker`]: aligned, and recycled while any
/// `AlignedBlocks` lives.
pub struct AlignedBlocks {
    _user: PoolUser,
}

impl AlignedBlocks {
    #[allow(clippy::new_without_default)] // a handle that keeps the pool, not a value
    pub fn new() -> AlignedBlocks {
        AlignedBlocks {
            _user: BLOCKS.user(),
        }
    }
}

impl BlockAlloc for AlignedBlocks {
    type Buf = AlignedBuf;

    fn alloc(&mut self, block_size: usize) -> AlignedBuf {
        if block_size == BLOCK_SIZE {
            BLOCKS.take()
        } else {
            AlignedBuf::zeroed(block_size)
        }
    }
}

/// Whether `data` can be written with direct I/O as it is.
pub fn is_aligned(data: &[u8]) -> bool {
    (data.as_ptr() as usize).is_multiple_of(ALIGN) && data.len().is_multiple_of(ALIGN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_only_while_the_pool_has_users() {
        let pool = BufferPool::new(3 * ALIGN, 2);
        let a = pool.take();
        assert!(is_aligned(a.as_ref()));
        drop(a);
        assert!(pool.free().is_empty(), "no user: the buffer is freed");

        let user = pool.user();
        let a = pool.take();
        let addr_kept = a.as_ref().as_ptr();
        drop(a);
        let b = pool.take();
        assert_eq!(
            b.as_ref().as_ptr(),
            addr_kept,
            "reused while a user holds the pool"
        );
        let more: Vec<AlignedBuf> = (0..4).map(|_| pool.take()).collect();
        drop(more);
        assert_eq!(pool.free().len(), 2, "the pool keeps at most `keep`");
        drop(user);
        assert!(pool.free().is_empty(), "the last user empties it");
    }

    #[test]
    fn a_small_request_gets_a_small_buffer_unless_a_pooled_one_is_free() {
        let pool = BufferPool::new(16 * ALIGN, 2);
        let _user = pool.user();
        let small = pool.take_at_least(ALIGN);
        assert_eq!(small.as_ref().len(), ALIGN, "sized to the request");
        assert!(is_aligned(small.as_ref()));
        drop(small);
        assert!(pool.free().is_empty(), "a small buffer is not pooled");

        let large = pool.take_at_least(12 * ALIGN);
        assert_eq!(
            large.as_ref().len(),
            16 * ALIGN,
            "large requests get a pooled one"
        );
        let kept = large.as_ref().as_ptr();
        drop(large);
        let reused = pool.take_at_least(ALIGN);
        assert_eq!(
            reused.as_ref().as_ptr(),
            kept,
            "a free pooled buffer serves any size"
        );
    }

    #[test]
    fn chunker_blocks_are_aligned() {
        let mut alloc = AlignedBlocks::new();
        assert!(is_aligned(alloc.alloc(BLOCK_SIZE).as_ref()));
        let odd = alloc.alloc(100);
        assert_eq!(odd.as_ref().len(), 100);
        assert!((odd.as_ref().as_ptr() as usize).is_multiple_of(ALIGN));
    }
}
