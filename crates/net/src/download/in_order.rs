//! The dataset's bytes in order for a streaming reader, while blocks arrive in any order:
//! held until the run before them is complete, the last block trimmed to the dataset's
//! size. The last block is held back until the caller lets it go (after the commit), so a
//! reader holding every byte can rely on the dataset being stored.

use std::collections::BTreeMap;

use bytes::Bytes;

pub struct InOrder {
    next: u64,
    total: u64,
    block_size: u64,
    dataset_size: u64,
    held: BTreeMap<u64, Bytes>,
}

impl InOrder {
    pub fn new(total: u64, block_size: u64, dataset_size: u64) -> Self {
        InOrder {
            next: 0,
            total,
            block_size,
            dataset_size,
            held: BTreeMap::new(),
        }
    }

    /// Takes block `index`; returns what can go to the reader now, in order.
    pub fn push(&mut self, index: u64, bytes: Bytes) -> Vec<Bytes> {
        self.held.insert(index, bytes);
        let mut out = Vec::new();
        while self.next + 1 < self.total {
            let Some(bytes) = self.held.remove(&self.next) else {
                break;
            };
            out.push(self.trim(self.next, bytes));
            self.next += 1;
        }
        out
    }

    /// Everything still held, the last block included, in order.
    pub fn rest(mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.held)
            .into_iter()
            .map(|(index, bytes)| self.trim(index, bytes))
            .collect()
    }

    fn trim(&self, index: u64, bytes: Bytes) -> Bytes {
        let start = index * self.block_size;
        let keep = self
            .dataset_size
            .saturating_sub(start)
            .min(bytes.len() as u64);
        bytes.slice(..keep as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_go_out_in_order_and_the_last_block_waits_trimmed() {
        // 3 blocks of 4 bytes, 10 bytes in all: the last is 2 bytes of a padded 4.
        let mut o = InOrder::new(3, 4, 10);
        let block = |b: u8| Bytes::from(vec![b; 4]);
        assert!(o.push(1, block(1)).is_empty(), "block 0 is not in yet");
        assert!(o.push(2, block(2)).is_empty());
        let out = o.push(0, block(0));
        assert_eq!(
            out,
            vec![block(0), block(1)],
            "the last waits for the commit"
        );
        assert_eq!(o.rest(), vec![Bytes::from(vec![2u8; 2])]);
    }

    #[test]
    fn a_one_block_dataset_goes_out_only_at_the_end() {
        let mut o = InOrder::new(1, 4, 3);
        assert!(o.push(0, Bytes::from_static(b"abcd")).is_empty());
        assert_eq!(o.rest(), vec![Bytes::from_static(b"abc")]);
    }
}
