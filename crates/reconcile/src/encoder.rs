//! The sender's side: the endless stream of coded symbols of one set, handed out in
//! batches. The reconciler runs one over its own set too, to subtract it from the peer's.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::mapping::Mapping;
use crate::symbol::{CodedSymbol, HashKey, Symbol};
use crate::wire::Batch;

/// Fewest coded symbols computed at a time. Each computation scans the whole set once,
/// so symbols are computed in chunks that double (up to [`MAX_CHUNK`]) and then handed out
/// as asked: about log2(symbols) scans, and at most twice the symbols asked for.
const MIN_CHUNK: u64 = 256;
const MAX_CHUNK: u64 = 1 << 16;

#[derive(Clone, Debug)]
struct Entry<S> {
    item: S,
    checksum: u64,
    /// The next coded symbol the item goes into: at or past the window's applied range.
    map: Mapping,
}

/// Items with where each goes next, applied to consecutive ranges of coded symbols by
/// scanning them all: the cheapest way for a whole set applied a chunk at a time.
#[derive(Clone, Debug)]
pub(crate) struct Window<S> {
    entries: Vec<Entry<S>>,
}

impl<S: Symbol> Window<S> {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds an item whose mapping has been applied up to (not including) `map.index()`.
    pub(crate) fn push(&mut self, item: S, checksum: u64, map: Mapping) {
        self.entries.push(Entry {
            item,
            checksum,
            map,
        });
    }

    /// Adds (`sign` 1) or removes (-1) every item in the coded symbols it maps to among
    /// `cells`, which are symbols `base..base + cells.len()`; `base` is where the previous
    /// call ended.
    pub(crate) fn apply(&mut self, base: u64, cells: &mut [CodedSymbol<S>], sign: i64) {
        let end = base + cells.len() as u64;
        // One step per item per round: consecutive steps belong to different items, so
        // their floating-point chains (a square root and a division each) overlap in the
        // CPU instead of each waiting for the one before, as an item's own steps would.
        let mut due: Vec<u32> = (0..self.entries.len() as u32).collect();
        while !due.is_empty() {
            due.retain(|&i| {
                let e = &mut self.entries[i as usize];
                if e.map.index() >= end {
                    return false;
                }
                cells[(e.map.index() - base) as usize].add(&e.item, e.checksum, sign);
                e.map.advance();
                true
            });
        }
    }
}

/// Like [`Window`], but the items wait in a min-heap on their next index, so applying a
/// range touches only the items due in it: for items peeled mid-stream, applied to every
/// batch the peer sends however small.
#[derive(Clone, Debug)]
pub(crate) struct Queue<S> {
    entries: Vec<Entry<S>>,
    due: BinaryHeap<Reverse<(u64, usize)>>,
}

impl<S> Default for Queue<S> {
    fn default() -> Self {
        Queue {
            entries: Vec::new(),
            due: BinaryHeap::new(),
        }
    }
}

impl<S: Symbol> Queue<S> {
    /// As [`Window::push`].
    pub(crate) fn push(&mut self, item: S, checksum: u64, map: Mapping) {
        self.due.push(Reverse((map.index(), self.entries.len())));
        self.entries.push(Entry {
            item,
            checksum,
            map,
        });
    }

    /// As [`Window::apply`].
    pub(crate) fn apply(&mut self, base: u64, cells: &mut [CodedSymbol<S>], sign: i64) {
        let end = base + cells.len() as u64;
        while let Some(mut top) = self.due.peek_mut() {
            let Reverse((index, slot)) = *top;
            if index >= end {
                break;
            }
            let e = &mut self.entries[slot];
            cells[(index - base) as usize].add(&e.item, e.checksum, sign);
            e.map.advance();
            *top = Reverse((e.map.index(), slot));
        }
    }
}

/// Streams the coded symbols of a set, from index 0 on.
#[derive(Clone, Debug)]
pub struct Encoder<S> {
    window: Window<S>,
    /// Computed, not yet handed out: symbols `next..next + ready.len()`.
    ready: VecDeque<CodedSymbol<S>>,
    next: u64,
}

impl<S: Symbol> Encoder<S> {
    /// The encoder of a set; repeated items are dropped.
    pub fn new(key: HashKey, items: impl IntoIterator<Item = S>) -> Self {
        let mut items: Vec<S> = items.into_iter().collect();
        items.sort_unstable();
        items.dedup();
        let mut window = Window {
            entries: Vec::with_capacity(items.len()),
        };
        for item in items {
            let checksum = key.checksum(&item);
            window.push(item, checksum, Mapping::new(checksum));
        }
        Encoder {
            window,
            ready: VecDeque::new(),
            next: 0,
        }
    }

    /// How many distinct items the set has: what the sender announces to its peer.
    pub fn set_len(&self) -> u64 {
        self.window.len() as u64
    }

    /// The index of the next coded symbol to be handed out.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    /// The next `n` coded symbols.
    pub fn next_batch(&mut self, n: usize) -> Batch<S> {
        let first_index = self.next;
        let symbols = self.take(n);
        Batch {
            first_index,
            symbols,
        }
    }

    /// Appends the next `n` coded symbols, as a wire batch, to `out`.
    pub fn encode_next(&mut self, n: usize, out: &mut Vec<u8>) {
        let set_len = self.set_len();
        self.next_batch(n).encode(set_len, out);
    }

    /// Computes the next `n` coded symbols ahead of being asked for them, so that the work
    /// can overlap a wait (for the peer's first batch, say).
    pub fn prepare(&mut self, n: usize) {
        self.compute(n as u64);
    }

    fn compute(&mut self, n_u64: u64) {
        if (self.ready.len() as u64) < n_u64 {
            let computed = self.next + self.ready.len() as u64;
            let chunk = computed.clamp(MIN_CHUNK, MAX_CHUNK).max(n_u64);
            let mut cells = vec![CodedSymbol::ZERO; chunk as usize];
            self.window.apply(computed, &mut cells, 1);
            self.ready.extend(cells);
        }
    }

    pub(crate) fn take(&mut self, n: usize) -> Vec<CodedSymbol<S>> {
        let n_u64 = n as u64;
        self.compute(n_u64);
        self.next += n_u64;
        self.ready.drain(..n).collect()
    }
}
