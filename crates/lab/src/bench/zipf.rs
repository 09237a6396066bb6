//! Zipf-distributed choices: rank `r` (from 0) is drawn with probability ∝ 1/(r+1)^s, by
//! inverse CDF over a precomputed table. Pure: the caller supplies the uniform draw.
//!
//! The store's criterion bench (`crates/store/benches/tiers.rs`) has the same few lines: the
//! store cannot depend on the lab.

#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// Over `n` ranks (at least one) with skew `s` (0 is uniform).
    pub fn new(n: usize, s: f64) -> Zipf {
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (1..=n.max(1))
            .map(|k| {
                total += 1.0 / (k as f64).powf(s);
                total
            })
            .collect();
        cdf.iter_mut().for_each(|p| *p /= total);
        Zipf { cdf }
    }

    /// The rank a uniform draw `u` in [0, 1) falls on.
    pub fn rank(&self, u: f64) -> usize {
        self.cdf.partition_point(|&p| p < u).min(self.cdf.len() - 1)
    }

    /// Probability that a draw falls on ranks `from..to`.
    pub fn share(&self, from: usize, to: usize) -> f64 {
        let at = |r: usize| match r.min(self.cdf.len()) {
            0 => 0.0,
            r => self.cdf[r - 1],
        };
        at(to) - at(from.min(to))
    }
}

#[cfg(test)]
mod tests {
    use super::Zipf;

    #[test]
    fn shares_follow_the_harmonic_numbers() {
        let z = Zipf::new(1000, 1.0);
        let h = |n: usize| (1..=n).map(|k| 1.0 / k as f64).sum::<f64>();
        assert!((z.share(0, 100) - h(100) / h(1000)).abs() < 1e-12);
        assert!((z.share(0, 5000) - 1.0).abs() < 1e-12);
        assert_eq!(z.share(7, 7), 0.0);
        let uniform = Zipf::new(4, 0.0);
        assert!((uniform.share(1, 3) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn draws_land_on_ranks_by_their_probability() {
        let z = Zipf::new(10, 1.0);
        assert_eq!(z.rank(0.0), 0);
        assert_eq!(z.rank(0.999_999_9), 9);
        let n = 100_000;
        let first = (0..n)
            .filter(|i| z.rank((*i as f64 + 0.5) / n as f64) == 0)
            .count();
        assert!((first as f64 / n as f64 - z.share(0, 1)).abs() < 1e-3);
    }
}
