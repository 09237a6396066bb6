//! The receiver's side of a session: fed the peer's batches, it subtracts its own coded
//! symbols, peels, and says when the difference is known. Every session has a budget of
//! symbols and bytes fixed when it opens, from both set sizes: a peer that streams forever,
//! or sends symbols that never decode, is cut off at the budget with the reason, so it
//! costs bounded memory and time. This module moves no bytes and keeps no clock; the
//! protocol handler does both.
//!
//! Invariant: `cells[i]` is the peer's symbol i minus ours, minus every item peeled as
//! theirs, plus every item peeled as ours, over the items that map to i. An honest stream
//! thus leaves in each cell exactly the unpeeled items of the difference mapped to it.

use crate::encoder::{Encoder, Queue};
use crate::mapping::Mapping;
use crate::symbol::{CodedSymbol, HashKey, Symbol};
use crate::wire::{max_symbol_len, Batch, WireError, MAX_HEADER_LEN};

/// How much a peer may send in one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Symbols allowed per item of the larger set. Disjoint sets of n items each need
    /// about 1.35 · 2n symbols, so 3 lets any honest session finish; a node that would
    /// rather fall back to a plain list sooner sets it lower.
    pub symbols_per_item: u64,
    /// Added to the allowance: small differences vary the most around 1.35.
    pub slack: u64,
    /// The cap whatever the set sizes (a peer announces its own size).
    pub max_symbols: u64,
    /// Most symbols in one batch: bounds the work of one call.
    pub max_batch: usize,
}

impl Default for Limits {
    /// At most 2^21 symbols: 48 MiB of cells for block indices (24 B each), 38 MB on the
    /// wire at the usual 18 B a symbol. Disjoint sets of 10^6 would need 2.7 M, but there
    /// a plain list of the set is the cheaper exchange anyway.
    fn default() -> Self {
        Limits {
            symbols_per_item: 3,
            slack: 256,
            max_symbols: 1 << 21,
            max_batch: 1 << 14,
        }
    }
}

impl Limits {
    /// The symbols a peer may send when the sets have `ours` and `theirs` items.
    pub fn symbol_limit(&self, ours: u64, theirs: u64) -> u64 {
        ours.max(theirs)
            .saturating_mul(self.symbols_per_item)
            .saturating_add(self.slack)
            .min(self.max_symbols)
    }

    /// The bytes a peer may send to deliver `symbols` symbols of width `width`, every
    /// symbol at its longest and in a batch of its own. The symbol budget is the real
    /// bound; this one stops a peer that pads or splits without ever completing a symbol.
    pub fn byte_limit(symbols: u64, width: usize) -> u64 {
        symbols.saturating_mul((max_symbol_len(width) + MAX_HEADER_LEN) as u64)
    }
}

/// Why a session was cut off. The session is over after any of these.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionError {
    #[error("peer sent {received} coded symbols, over this session's limit of {limit}")]
    TooManySymbols { received: u64, limit: u64 },
    #[error("peer sent {received} bytes, over this session's limit of {limit}")]
    TooManyBytes { received: u64, limit: u64 },
    #[error("peer's batch starts at symbol {got}, expected {expected}")]
    OutOfOrder { expected: u64, got: u64 },
    #[error("peer's batch is malformed: {0}")]
    Malformed(#[from] WireError),
    /// No honest stream peels more items than it has symbols (a peeled cell stays empty),
    /// nor leaves symbol 0 empty with others not.
    #[error("peer's coded symbols are inconsistent: {peeled} items peeled from {symbols} symbols")]
    Inconsistent { peeled: u64, symbols: u64 },
    #[error("the session is over; no more symbols are taken")]
    Ended,
}

/// The two sides of the symmetric difference, each sorted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference<S> {
    pub ours_only: Vec<S>,
    pub theirs_only: Vec<S>,
}

impl<S> Default for Difference<S> {
    fn default() -> Self {
        Difference {
            ours_only: Vec::new(),
            theirs_only: Vec::new(),
        }
    }
}

/// What the session needs next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress<S> {
    /// Not decoded yet: more symbols are needed.
    NeedMore { received: u64 },
    /// Decoded; the session is over.
    Done(Difference<S>),
}

/// Reconciles our set against a peer's stream of coded symbols.
#[derive(Debug)]
pub struct Reconciler<S> {
    key: HashKey,
    ours: Encoder<S>,
    their_len: u64,
    cells: Vec<CodedSymbol<S>>,
    /// Peeled as theirs: removed from the peer's later symbols as ours are.
    theirs: Queue<S>,
    /// Peeled as ours: added back to later symbols, which ours were removed from.
    ours_back: Queue<S>,
    difference: Difference<S>,
    pure: Vec<usize>,
    symbol_limit: u64,
    byte_limit: u64,
    bytes: u64,
    max_batch: usize,
    over: bool,
}

impl<S: Symbol> Reconciler<S> {
    /// A session reconciling `ours` with a peer that announced a set of `their_len` items.
    pub fn new(
        key: HashKey,
        limits: &Limits,
        ours: impl IntoIterator<Item = S>,
        their_len: u64,
    ) -> Self {
        Self::with_encoder(key, limits, Encoder::new(key, ours), their_len)
    }

    /// As [`Reconciler::new`], from an encoder of our set made with the same key, which may
    /// have symbols prepared ahead ([`Encoder::prepare`]) but none handed out.
    pub fn with_encoder(key: HashKey, limits: &Limits, ours: Encoder<S>, their_len: u64) -> Self {
        assert_eq!(ours.next_index(), 0, "the encoder has handed out symbols");
        let symbol_limit = limits.symbol_limit(ours.set_len(), their_len);
        Reconciler {
            key,
            ours,
            their_len,
            cells: Vec::new(),
            theirs: Queue::default(),
            ours_back: Queue::default(),
            difference: Difference::default(),
            pure: Vec::new(),
            symbol_limit,
            byte_limit: Limits::byte_limit(symbol_limit, S::WIDTH),
            bytes: 0,
            max_batch: limits.max_batch,
            over: false,
        }
    }

    /// Computes our own coded symbols for the peer's next `n` ahead of their arrival, so
    /// that the work can overlap the wait for them.
    pub fn prepare(&mut self, n: usize) {
        self.ours.prepare(n);
    }

    pub fn symbols_received(&self) -> u64 {
        self.cells.len() as u64
    }

    pub fn bytes_received(&self) -> u64 {
        self.bytes
    }

    pub fn symbol_limit(&self) -> u64 {
        self.symbol_limit
    }

    pub fn byte_limit(&self) -> u64 {
        self.byte_limit
    }

    /// Takes one wire batch from the peer.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Progress<S>, SessionError> {
        self.live()?;
        let result = self.receive_bytes(bytes);
        self.over |= !matches!(result, Ok(Progress::NeedMore { .. }));
        result
    }

    /// Takes one decoded batch from the peer.
    pub fn receive_batch(&mut self, batch: Batch<S>) -> Result<Progress<S>, SessionError> {
        self.live()?;
        let result = self.absorb(batch);
        self.over |= !matches!(result, Ok(Progress::NeedMore { .. }));
        result
    }

    fn live(&self) -> Result<(), SessionError> {
        if self.over {
            Err(SessionError::Ended)
        } else {
            Ok(())
        }
    }

    fn receive_bytes(&mut self, bytes: &[u8]) -> Result<Progress<S>, SessionError> {
        self.bytes = self.bytes.saturating_add(bytes.len() as u64);
        if self.bytes > self.byte_limit {
            return Err(SessionError::TooManyBytes {
                received: self.bytes,
                limit: self.byte_limit,
            });
        }
        let left = self.symbol_limit - self.symbols_received();
        let max = self
            .max_batch
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        let batch = Batch::decode(bytes, self.their_len, max).map_err(|e| match e {
            // Over the session's budget rather than over the batch size.
            WireError::TooLarge { count, .. } if count > left => SessionError::TooManySymbols {
                received: self.symbols_received().saturating_add(count),
                limit: self.symbol_limit,
            },
            e => e.into(),
        })?;
        self.absorb(batch)
    }

    fn absorb(&mut self, batch: Batch<S>) -> Result<Progress<S>, SessionError> {
        let base = self.symbols_received();
        if batch.first_index != base {
            return Err(SessionError::OutOfOrder {
                expected: base,
                got: batch.first_index,
            });
        }
        let n = batch.symbols.len();
        let received = base.saturating_add(n as u64);
        if received > self.symbol_limit {
            return Err(SessionError::TooManySymbols {
                received,
                limit: self.symbol_limit,
            });
        }
        if n > self.max_batch {
            return Err(WireError::TooLarge {
                count: n as u64,
                max: self.max_batch,
            }
            .into());
        }
        if n == 0 {
            return Err(WireError::Empty.into());
        }

        let start = self.cells.len();
        self.cells.extend(batch.symbols);
        let new = &mut self.cells[start..];
        for (cell, own) in new.iter_mut().zip(self.ours.take(n)) {
            cell.subtract(&own);
        }
        self.theirs.apply(base, new, -1);
        self.ours_back.apply(base, new, 1);
        for (i, cell) in new.iter().enumerate() {
            if cell.is_pure(&self.key) {
                self.pure.push(start + i);
            }
        }
        self.peel()?;

        if !self.cells[0].is_zero() {
            return Ok(Progress::NeedMore { received });
        }
        if !self.cells.iter().all(CodedSymbol::is_zero) {
            return Err(self.inconsistent());
        }
        let mut difference = std::mem::take(&mut self.difference);
        difference.ours_only.sort_unstable();
        difference.theirs_only.sort_unstable();
        Ok(Progress::Done(difference))
    }

    /// Peels pure cells until none is left.
    fn peel(&mut self) -> Result<(), SessionError> {
        let len = self.cells.len() as u64;
        while let Some(i) = self.pure.pop() {
            let cell = self.cells[i];
            if !cell.is_pure(&self.key) {
                continue; // changed since it was found pure
            }
            let peeled =
                (self.difference.ours_only.len() + self.difference.theirs_only.len()) as u64;
            if peeled >= len {
                return Err(self.inconsistent());
            }
            // Theirs (+1) is taken out of every cell it is in; ours (-1) is put back.
            let sign = -cell.count;
            let mut map = Mapping::new(cell.checksum);
            while map.index() < len {
                let j = map.index() as usize;
                self.cells[j].add(&cell.sum, cell.checksum, sign);
                if self.cells[j].is_pure(&self.key) {
                    self.pure.push(j);
                }
                map.advance();
            }
            if cell.count == 1 {
                self.difference.theirs_only.push(cell.sum);
                self.theirs.push(cell.sum, cell.checksum, map);
            } else {
                self.difference.ours_only.push(cell.sum);
                self.ours_back.push(cell.sum, cell.checksum, map);
            }
        }
        Ok(())
    }

    fn inconsistent(&self) -> SessionError {
        SessionError::Inconsistent {
            peeled: (self.difference.ours_only.len() + self.difference.theirs_only.len()) as u64,
            symbols: self.symbols_received(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer can craft symbols that peel forever: item x alone in symbol 0 and absent from
    /// another symbol x maps to. Peeling x as theirs leaves -x there, peeling that as ours
    /// puts x back in symbol 0, and so on. The peel budget ends it.
    #[test]
    fn a_peel_loop_is_cut_off_as_inconsistent() {
        let key = HashKey(*b"0123456789abcdef");
        let x = (0u64..)
            .find(|x| {
                let mut m = Mapping::new(key.checksum(x));
                m.advance();
                m.index() < 8
            })
            .unwrap();
        let mut symbols = vec![CodedSymbol::ZERO; 8];
        symbols[0] = CodedSymbol {
            sum: x,
            checksum: key.checksum(&x),
            count: 1,
        };
        let mut session = Reconciler::new(key, &Limits::default(), [], 1);
        assert_eq!(
            session.receive_batch(Batch {
                first_index: 0,
                symbols
            }),
            Err(SessionError::Inconsistent {
                peeled: 8,
                symbols: 8
            })
        );
    }

    /// The honest counterpart: the same x in every symbol it maps to decodes to {x}.
    #[test]
    fn the_honest_stream_of_one_item_decodes() {
        let key = HashKey(*b"0123456789abcdef");
        let mut encoder = Encoder::new(key, [42u64]);
        let mut session = Reconciler::new(key, &Limits::default(), [], 1);
        let Ok(Progress::Done(d)) = session.receive_batch(encoder.next_batch(8)) else {
            panic!("one item decodes from 8 symbols");
        };
        assert_eq!((d.ours_only, d.theirs_only), (vec![], vec![42]));
    }
}
