//! Benchmark data: pseudo-random bytes from a seed, so a run can be reproduced and no two
//! files share blocks (identical blocks would be deduplicated and flatter the figures).

use bytes::Bytes;
use rand::{RngCore, SeedableRng};

pub fn payload(seed: u64, len: u64) -> Bytes {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut data = vec![0u8; len as usize];
    rng.fill_bytes(&mut data);
    Bytes::from(data)
}

/// A dataset every node can check a download against.
#[derive(Debug, Clone)]
pub struct Stored {
    pub cid: String,
    pub origin: usize,
    pub sha256: [u8; 32],
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds_reproduce_and_differ() {
        assert_eq!(super::payload(1, 1000), super::payload(1, 1000));
        assert_ne!(super::payload(1, 1000), super::payload(2, 1000));
        assert_eq!(super::payload(3, 65537).len(), 65537);
    }
}
