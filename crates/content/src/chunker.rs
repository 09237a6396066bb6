//! Cuts a byte stream into fixed-size blocks; the last one is zero-padded, as Archivist's
//! chunker does, while the true byte count is kept for the manifest.

use bytes::{Bytes, BytesMut};

pub struct Chunker {
    block_size: usize,
    current: BytesMut,
    total: u64,
}

impl Chunker {
    pub fn new(block_size: usize) -> Self {
        assert!(block_size > 0, "block size must be positive");
        Chunker {
            block_size,
            current: BytesMut::with_capacity(block_size),
            total: 0,
        }
    }

    pub fn push(&mut self, mut data: &[u8], mut emit: impl FnMut(Bytes)) {
        self.total += data.len() as u64;
        while !data.is_empty() {
            let take = (self.block_size - self.current.len()).min(data.len());
            self.current.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.current.len() == self.block_size {
                let full =
                    std::mem::replace(&mut self.current, BytesMut::with_capacity(self.block_size));
                emit(full.freeze());
            }
        }
    }

    pub fn finish(mut self, mut emit: impl FnMut(Bytes)) -> u64 {
        if !self.current.is_empty() {
            self.current.resize(self.block_size, 0);
            emit(self.current.freeze());
        }
        self.total
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
    }
}
