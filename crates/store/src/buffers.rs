//! Heap buffers aligned for direct I/O, and pools that recycle them while they are busy.
//!
//! An upload's chunker fills [`AlignedBlocks`] buffers, so the disk store writes each block
//! straight from the memory it arrived in; unaligned payloads (downloaded blocks) are copied
//! into a segment's staging buffer instead. Both come from a [`BufferPool`]: a dropped
//! buffer goes back to its pool, because memory the process has not touched yet is
//! expensive. The kernel faults in and zeroes every page, and in a virtual machine that gave
//! its free pages back to the host the first touch of each page is a trip to the host as
//! well: a fresh allocation per block cost about a quarter of what hashing it costs. A pool
//! keeps its buffers while it has users (uploads running) and after, until the node, gone
//! idle, calls [`trim_idle`] and [`release_free_heap`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use neverust_content::{BlockAlloc, BLOCK_SIZE};

/// Direct I/O alignment of offsets, lengths and buffers (the page size; enough for any disk).
pub const ALIGN: usize = 4096;

/// Block buffers kept: what an upload holds in flight (its pipeline stages and the batches
/// on their way to disk).
const POOLED_BLOCKS: usize = 512;

static BLOCKS: LazyLock<Arc<BufferPool>> =
    LazyLock::new(|| BufferPool::new(BLOCK_SIZE, POOLED_BLOCKS));

/// Every pool, for [`trim_idle`].
static POOLS: Mutex<Vec<Weak<BufferPool>>> = Mutex::new(Vec::new());

/// Empties every pool that has no users and has not been used for `idle`; returns the
/// bytes given back.
pub fn trim_idle(idle: Duration) -> usize {
    let pools: Vec<Arc<BufferPool>> = {
        let mut all = POOLS.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|p| p.strong_count() > 0);
        all.iter().filter_map(Weak::upgrade).collect()
    };
    pools.iter().map(|p| p.trim(idle)).sum()
}

/// Returns malloc's free pages to the kernel. Block-sized buffers are small enough to live
/// in malloc's arenas, which keep freed memory for the next allocation: after a burst of
/// transfers an idle node held three times its idle size. Only for a node that has gone
/// idle: while it works it would fault the same pages straight back in.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

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

/// Aligned buffers of one size, kept for reuse while the pool has users or was used lately.
pub struct BufferPool {
    len: usize,
    keep: usize,
    free: Mutex<Free>,
    users: AtomicUsize,
}

struct Free {
    buffers: Vec<Vec<u8>>,
    last_used: Instant,
}

impl BufferPool {
    pub fn new(len: usize, keep: usize) -> Arc<BufferPool> {
        let pool = Arc::new(BufferPool {
            len,
            keep,
            free: Mutex::new(Free {
                buffers: Vec::new(),
                last_used: Instant::now(),
            }),
            users: AtomicUsize::new(0),
        });
        POOLS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::downgrade(&pool));
        pool
    }

    /// A buffer of the pool's size; its contents are whatever its last user left. A new
    /// one is allocated zeroed: a staging-sized one is usually mapped fresh, so only the
    /// pages its users write are faulted in, but malloc may zero all of it instead. Either
    /// way that is paid once until the node goes idle, not once per batch.
    pub fn take(self: &Arc<Self>) -> AlignedBuf {
        let raw = {
            let mut free = self.free();
            free.last_used = Instant::now();
            free.buffers.pop()
        };
        let raw = raw.unwrap_or_else(|| vec![0u8; self.len + ALIGN]);
        AlignedBuf::over(raw, self.len, Some(self.clone()))
    }

    /// A buffer of exactly `len` bytes: a pooled one cut to size when `len` fits in one,
    /// else one of its own.
    pub fn take_len(self: &Arc<Self>, len: usize) -> AlignedBuf {
        if len > self.len {
            return AlignedBuf::zeroed(len);
        }
        let mut buf = self.take();
        buf.len = len;
        buf
    }

    /// Keeps the pool filled until the returned guard drops (and a while after).
    pub fn user(self: &Arc<Self>) -> PoolUser {
        self.users.fetch_add(1, Ordering::Relaxed);
        PoolUser(self.clone())
    }

    fn give(&self, raw: Vec<u8>) {
        let mut free = self.free();
        if free.buffers.len() < self.keep {
            free.buffers.push(raw);
        }
    }

    /// Empties the pool unless it has users or was used within `idle`; the bytes freed.
    fn trim(&self, idle: Duration) -> usize {
        let mut free = self.free();
        if self.users.load(Ordering::Relaxed) > 0 || free.last_used.elapsed() < idle {
            return 0;
        }
        let bytes = free.buffers.iter().map(Vec::len).sum();
        free.buffers = Vec::new();
        bytes
    }

    fn free(&self) -> std::sync::MutexGuard<'_, Free> {
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A reason for a [`BufferPool`] to keep buffers, however long ago one was taken.
pub struct PoolUser(Arc<BufferPool>);

impl Drop for PoolUser {
    fn drop(&mut self) {
        self.0.users.fetch_sub(1, Ordering::Relaxed);
        self.0.free().last_used = Instant::now();
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
    fn buffers_are_reused_and_idle_pools_give_them_back() {
        let pool = BufferPool::new(3 * ALIGN, 2);
        let a = pool.take();
        assert!(is_aligned(a.as_ref()));
        let kept = a.as_ref().as_ptr();
        drop(a);
        let b = pool.take();
        assert_eq!(b.as_ref().as_ptr(), kept, "a returned buffer is reused");
        let more: Vec<AlignedBuf> = (0..4).map(|_| pool.take()).collect();
        drop(more);
        drop(b);
        assert_eq!(
            pool.free().buffers.len(),
            2,
            "the pool keeps at most `keep`"
        );

        assert_eq!(pool.trim(Duration::from_secs(60)), 0, "used just now");
        let user = pool.user();
        assert_eq!(pool.trim(Duration::ZERO), 0, "a user keeps the pool");
        drop(user);
        assert_eq!(pool.trim(Duration::ZERO), 2 * (3 * ALIGN + ALIGN));
        assert!(pool.free().buffers.is_empty());
    }

    #[test]
    fn trim_idle_reaches_every_live_pool() {
        let pool = BufferPool::new(ALIGN, 4);
        drop(pool.take());
        assert_eq!(pool.free().buffers.len(), 1);
        // Idle for an hour: other tests' pools, used just now, are left alone.
        let hour = Duration::from_secs(3600);
        pool.free().last_used = Instant::now().checked_sub(2 * hour).unwrap();
        assert_eq!(trim_idle(hour), 2 * ALIGN);
        assert!(pool.free().buffers.is_empty());
    }

    #[test]
    fn take_len_cuts_a_pooled_buffer_and_gives_large_requests_their_own() {
        let pool = BufferPool::new(16 * ALIGN, 2);
        let small = pool.take_len(ALIGN);
        assert_eq!(small.as_ref().len(), ALIGN, "sized to the request");
        assert!(is_aligned(small.as_ref()));
        let kept = small.as_ref().as_ptr();
        drop(small);
        let whole = pool.take_len(16 * ALIGN);
        assert_eq!(whole.as_ref().as_ptr(), kept, "the same pooled buffer");
        assert_eq!(whole.as_ref().len(), 16 * ALIGN);

        let large = pool.take_len(20 * ALIGN);
        assert_eq!(large.as_ref().len(), 20 * ALIGN);
        assert!(is_aligned(large.as_ref()));
        drop((whole, large));
        assert_eq!(pool.free().buffers.len(), 1, "the large one is not pooled");
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
