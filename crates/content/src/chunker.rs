//! Cuts a byte stream into fixed-size blocks; the last one is zero-padded, as Archivist's
//! chunker does, while the true byte count is kept for the manifest.
//!
//! Block buffers come from a [`BlockAlloc`], so a store can hand out buffers it can write
//! without another copy (aligned for direct I/O) and take them back when a block is dropped.

use bytes::Bytes;

/// Where the chunker gets each block's buffer: exactly `block_size` bytes, any contents.
pub trait BlockAlloc {
    type Buf: AsRef<[u8]> + AsMut<[u8]> + Send + 'static;
    fn alloc(&mut self, block_size: usize) -> Self::Buf;
}

/// Plain heap buffers.
#[derive(Debug, Default, Clone, Copy)]
pub struct HeapAlloc;

impl BlockAlloc for HeapAlloc {
    type Buf = Vec<u8>;
    fn alloc(&mut self, block_size: usize) -> Vec<u8> {
        vec![0; block_size]
    }
}

pub struct Chunker<A: BlockAlloc = HeapAlloc> {
    block_size: usize,
    alloc: A,
    current: Option<A::Buf>,
    filled: usize,
    total: u64,
}

impl Chunker {
    pub fn new(block_size: usize) -> Self {
        Chunker::with_alloc(block_size, HeapAlloc)
    }
}

impl<A: BlockAlloc> Chunker<A> {
    pub fn with_alloc(block_size: usize, alloc: A) -> Self {
        assert!(block_size > 0, "block size must be positive");
        Chunker {
            block_size,
            alloc,
            current: None,
            filled: 0,
            total: 0,
        }
    }

    pub fn push(&mut self, mut data: &[u8], mut emit: impl FnMut(Bytes)) {
        self.total += data.len() as u64;
        while !data.is_empty() {
            let block_size = self.block_size;
            let alloc = &mut self.alloc;
            let buf = self.current.get_or_insert_with(|| alloc.alloc(block_size));
            let take = (block_size - self.filled).min(data.len());
            buf.as_mut()[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled == block_size {
                self.emit_current(&mut emit);
            }
        }
    }

    pub fn finish(mut self, mut emit: impl FnMut(Bytes)) -> u64 {
        if self.filled > 0 {
            if let Some(buf) = self.current.as_mut() {
                buf.as_mut()[self.filled..].fill(0);
            }
            self.emit_current(&mut emit);
        }
        self.total
    }

    fn emit_current(&mut self, emit: &mut impl FnMut(Bytes)) {
        if let Some(buf) = self.current.take() {
            debug_assert_eq!(buf.as_ref().len(), self.block_size);
            emit(Bytes::from_owner(buf));
        }
        self.filled = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn blocks_reassemble_to_the_input(data in proptest::collection::vec(any::<u8>(), 0..5000),
                                          cuts in proptest::collection::vec(1usize..700, 1..20),
                                          bs in 1usize..600) {
            let mut c = Chunker::new(bs);
            let mut blocks = Vec::new();
            let mut rest = &data[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = cuts[i % cuts.len()].min(rest.len());
                c.push(&rest[..n], |b| blocks.push(b));
                rest = &rest[n..];
                i += 1;
            }
            let total = c.finish(|b| blocks.push(b));
            prop_assert_eq!(total, data.len() as u64);
            prop_assert!(blocks.iter().all(|b| b.len() == bs));
            prop_assert_eq!(blocks.len(), data.len().div_ceil(bs));
            let joined: Vec<u8> = blocks.concat();
            prop_assert_eq!(&joined[..data.len()], &data[..]);
            prop_assert!(joined[data.len()..].iter().all(|&b| b == 0));
        }

        #[test]
        fn recycled_buffers_never_leak_old_bytes(data in proptest::collection::vec(any::<u8>(), 1..3000),
                                                 bs in 1usize..600) {
            // Buffers full of 0xFF, as a pool returns them: the padding must still be zeros.
            struct Dirty;
            impl BlockAlloc for Dirty {
                type Buf = Vec<u8>;
                fn alloc(&mut self, block_size: usize) -> Vec<u8> {
                    vec![0xFF; block_size]
                }
            }
            let mut c = Chunker::with_alloc(bs, Dirty);
            let mut blocks = Vec::new();
            c.push(&data, |b| blocks.push(b));
            c.finish(|b| blocks.push(b));
            let joined: Vec<u8> = blocks.concat();
            prop_assert_eq!(&joined[..data.len()], &data[..]);
            prop_assert!(joined[data.len()..].iter().all(|&b| b == 0));
        }
    }
}
