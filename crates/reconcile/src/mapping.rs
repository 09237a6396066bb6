//! Which coded symbols an item goes into: index 0, then a pseudo-random increasing
//! sequence in which index i is hit with probability 2/(i+2) (the paper's α = 0.5). Dense at
//! the start and sparse later is what makes the code rateless: any prefix of the stream
//! decodes a difference about 1/1.35 of its length.
//!
//! This is the paper's reference mapping (Yang, Gilad, Alizadeh, SIGCOMM 2024, §4 and its
//! Go code): a multiplicative generator seeded with the item's checksum, and a gap drawn by
//! inverting the distribution. Only `*`, `/`, `+`, `sqrt` and `ceil` touch floats, all
//! correctly rounded by IEEE 754, so every platform computes the same indices.

#[derive(Clone, Copy, Debug)]
pub(crate) struct Mapping {
    prng: u64,
    index: u64,
}

impl Mapping {
    pub(crate) fn new(checksum: u64) -> Self {
        Mapping {
            prng: checksum,
            index: 0,
        }
    }

    /// The next coded symbol this item goes into (it starts at 0).
    pub(crate) fn index(&self) -> u64 {
        self.index
    }

    pub(crate) fn advance(&mut self) {
        self.prng = self.prng.wrapping_mul(0xda94_2042_e4dd_58b5);
        const TWO_32: f64 = (1u64 << 32) as f64;
        let gap = (self.index as f64 + 1.5) * (TWO_32 / (self.prng as f64 + 1.0).sqrt() - 1.0);
        // gap >= 0. Its ceiling without `f64::ceil`, which is a libm call on baseline
        // x86-64 and took a quarter of encoding time: truncate (`as` saturates, so huge
        // gaps just end the item's sequence), then round up what was cut off.
        let truncated = gap as u64;
        let ceil = truncated.saturating_add(u64::from((truncated as f64) < gap));
        // A generator output within 2^10 of 2^64 rounds to a gap of 0; the reference code
        // would then hit the same index twice, which makes an item count twice in one cell.
        self.index = self.index.saturating_add(ceil.max(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictly_increasing_from_zero() {
        for seed in 0..1000u64 {
            let mut m = Mapping::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            assert_eq!(m.index(), 0);
            let mut last = 0;
            for _ in 0..50 {
                m.advance();
                assert!(m.index() > last || m.index() == u64::MAX);
                last = m.index();
            }
        }
    }

    /// The ceiling above is `f64::ceil`'s, down to the last index.
    #[test]
    fn ceiling_matches_f64_ceil() {
        for seed in 0..2000u64 {
            let mut m = Mapping::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut reference = m;
            for _ in 0..40 {
                m.advance();
                reference.prng = reference.prng.wrapping_mul(0xda94_2042_e4dd_58b5);
                let two_32 = (1u64 << 32) as f64;
                let gap = (reference.index as f64 + 1.5)
                    * (two_32 / (reference.prng as f64 + 1.0).sqrt() - 1.0);
                reference.index = reference.index.saturating_add((gap.ceil() as u64).max(1));
                assert_eq!(m.index(), reference.index);
            }
        }
    }

    /// Index i holds about 2/(i+2) of the items: the density the 1.35 overhead rests on.
    #[test]
    fn density_is_two_over_i_plus_two() {
        let items = 20_000u64;
        let mut hits = [0u64; 64];
        for seed in 0..items {
            let mut m = Mapping::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5555);
            while m.index() < 64 {
                hits[m.index() as usize] += 1;
                m.advance();
            }
        }
        for (i, &h) in hits.iter().enumerate() {
            let expected = 2.0 * items as f64 / (i as f64 + 2.0);
            let err = (h as f64 - expected).abs() / expected;
            assert!(err < 0.1, "index {i}: {h} hits, expected {expected:.0}");
        }
    }
}
