//! A batch of coded symbols on the wire. Hand-written rather than protobuf: a batch is a
//! run of fixed-width records, and a protobuf field per record would add 3 tag and length
//! bytes to each 17.
//!
//! ```text
//! batch  = varint(first_index) varint(n) symbol{n}        n >= 1
//! symbol = sum[WIDTH] checksum[8, little-endian] varint(zigzag(count - expected))
//! expected(i) = floor(2 * set_len / (i + 2))
//! ```
//!
//! Varints are unsigned LEB128 (`unsigned-varint`, minimal encodings only). The count of a
//! sender's coded symbol i is binomial with mean `expected(i)`, `set_len` being the size the
//! sender announced when the session opened; sending the deviation keeps it to one byte
//! where the raw count of symbol 0 (the whole set) would take three. The encoding is
//! canonical: a batch that decodes re-encodes to the same bytes.

use crate::symbol::{CodedSymbol, Symbol};

/// Consecutive coded symbols of one sender's stream, from `first_index` on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch<S> {
    pub first_index: u64,
    pub symbols: Vec<CodedSymbol<S>>,
}

/// Why bytes are not a batch. The peer sent them; nothing here panics on them.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    #[error("batch ends after {len} bytes, inside its {field}")]
    Truncated { field: &'static str, len: usize },
    #[error("batch has an invalid varint in its {field}: {source}")]
    Varint {
        field: &'static str,
        #[source]
        source: unsigned_varint::decode::Error,
    },
    #[error("batch has no symbols")]
    Empty,
    #[error("batch of {count} symbols is over the limit of {max} per batch")]
    TooLarge { count: u64, max: usize },
    #[error("batch from symbol {first_index} with {count} symbols runs past index 2^64")]
    IndexOverflow { first_index: u64, count: u64 },
    #[error("{extra} bytes follow the batch")]
    Trailing { extra: usize },
}

/// The mean count of a sender's coded symbol `index` for a set of `set_len` items.
pub fn expected_count(set_len: u64, index: u64) -> i64 {
    let mean = 2 * u128::from(set_len) / (u128::from(index) + 2);
    i64::try_from(mean).unwrap_or(i64::MAX)
}

/// The most bytes one coded symbol of width `width` takes on the wire.
pub const fn max_symbol_len(width: usize) -> usize {
    width + 8 + 10
}

/// The most bytes a batch header takes.
pub const MAX_HEADER_LEN: usize = 20;

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn varint<'a>(
    bytes: &'a [u8],
    field: &'static str,
    len: usize,
) -> Result<(u64, &'a [u8]), WireError> {
    unsigned_varint::decode::u64(bytes).map_err(|source| match source {
        unsigned_varint::decode::Error::Insufficient => WireError::Truncated { field, len },
        source => WireError::Varint { field, source },
    })
}

impl<S: Symbol> Batch<S> {
    /// Appends the batch's bytes to `out`. `set_len` is the size of the sender's set.
    pub fn encode(&self, set_len: u64, out: &mut Vec<u8>) {
        let mut buf = unsigned_varint::encode::u64_buffer();
        out.extend_from_slice(unsigned_varint::encode::u64(self.first_index, &mut buf));
        let n = self.symbols.len() as u64;
        out.extend_from_slice(unsigned_varint::encode::u64(n, &mut buf));
        out.reserve(self.symbols.len() * (S::WIDTH + 9));
        for (index, s) in (self.first_index..).zip(&self.symbols) {
            out.extend_from_slice(s.sum.to_bytes().as_ref());
            out.extend_from_slice(&s.checksum.to_le_bytes());
            let delta = s.count.wrapping_sub(expected_count(set_len, index));
            out.extend_from_slice(unsigned_varint::encode::u64(zigzag(delta), &mut buf));
        }
    }

    /// Decodes exactly one batch of at most `max_symbols` symbols from a sender whose set
    /// has `set_len` items. Memory is allocated only for symbols the bytes actually hold.
    pub fn decode(bytes: &[u8], set_len: u64, max_symbols: usize) -> Result<Self, WireError> {
        let len = bytes.len();
        let (first_index, rest) = varint(bytes, "first index", len)?;
        let (count, mut rest) = varint(rest, "symbol count", len)?;
        if count == 0 {
            return Err(WireError::Empty);
        }
        if count > max_symbols as u64 {
            return Err(WireError::TooLarge {
                count,
                max: max_symbols,
            });
        }
        if first_index.checked_add(count).is_none() {
            return Err(WireError::IndexOverflow { first_index, count });
        }
        let fixed = S::WIDTH + 8;
        let mut symbols = Vec::with_capacity((count as usize).min(rest.len() / (fixed + 1)));
        for index in first_index..first_index + count {
            if rest.len() < fixed {
                return Err(WireError::Truncated {
                    field: "coded symbol",
                    len,
                });
            }
            let sum = S::from_bytes(&rest[..S::WIDTH]);
            let checksum = u64::from_le_bytes(rest[S::WIDTH..fixed].try_into().expect("8 bytes"));
            let (delta, after) = varint(&rest[fixed..], "symbol count delta", len)?;
            // Wrapping both ways makes every count encodable and the encoding a bijection.
            let count = unzigzag(delta).wrapping_add(expected_count(set_len, index));
            symbols.push(CodedSymbol {
                sum,
                checksum,
                count,
            });
            rest = after;
        }
        if !rest.is_empty() {
            return Err(WireError::Trailing { extra: rest.len() });
        }
        Ok(Batch {
            first_index,
            symbols,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_round_trips_the_extremes() {
        for v in [0, 1, -1, 2, -2, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }

    #[test]
    fn expected_count_is_the_mean() {
        assert_eq!(expected_count(1000, 0), 1000);
        assert_eq!(expected_count(1000, 2), 500);
        assert_eq!(expected_count(0, 5), 0);
        assert_eq!(expected_count(u64::MAX, 0), i64::MAX);
    }
}
