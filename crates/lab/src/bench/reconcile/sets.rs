//! The block sets the in-process parts reconcile, drawn from a seed, and their true
//! differences to check every method's answer against.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::results::MethodCost;

/// Two sets of `n` blocks each out of a dataset of `2n`, differing in `share` of them.
pub struct PairSets {
    pub a: Vec<u64>,
    pub b: Vec<u64>,
    pub a_only: Vec<u64>,
    pub b_only: Vec<u64>,
    /// What each lacks of the dataset: the blocks it asks for by want-have.
    pub a_missing: Vec<u64>,
    pub b_missing: Vec<u64>,
}

impl PairSets {
    pub fn new(seed: u64, n: u64, share: f64) -> PairSets {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut order: Vec<u64> = (0..2 * n).collect();
        order.shuffle(&mut rng);
        // Half the difference on each side: a's first `swap` blocks are b's last ones.
        let swap = ((n as f64 * share / 2.0).round() as u64).clamp(1, n) as usize;
        let n = n as usize;
        let mut a = order[..n].to_vec();
        let mut b: Vec<u64> = order[swap..n + swap].to_vec();
        a.sort_unstable();
        b.sort_unstable();
        let (a_only, b_only) = difference(&a, &b);
        let total = 2 * n as u64;
        PairSets {
            a_missing: complement(&a, total),
            b_missing: complement(&b, total),
            a,
            b,
            a_only,
            b_only,
        }
    }
}

/// `k` sets of a dataset of `blocks`: half of it in common, each group of k/2 with 1 % of
/// its own (what it traded while cut off), and each member 0.5 % more of its own.
pub fn heal_sets(seed: u64, k: usize, blocks: u64) -> Vec<Vec<u64>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut order: Vec<u64> = (0..blocks).collect();
    order.shuffle(&mut rng);
    let base = blocks as usize / 2;
    let group = (blocks as usize / 100).max(1);
    let own = (blocks as usize / 200).max(1);
    let mut next = base + 2 * group;
    (0..k)
        .map(|i| {
            let g = usize::from(i >= k / 2);
            let mut set: Vec<u64> = order[..base].to_vec();
            set.extend_from_slice(&order[base + g * group..base + (g + 1) * group]);
            let end = (next + own).min(order.len());
            set.extend_from_slice(&order[next.min(end)..end]);
            next = end;
            set.sort_unstable();
            set
        })
        .collect()
}

/// (a − b, b − a) of two sorted lists.
pub fn difference(a: &[u64], b: &[u64]) -> (Vec<u64>, Vec<u64>) {
    let bs: std::collections::HashSet<u64> = b.iter().copied().collect();
    let as_: std::collections::HashSet<u64> = a.iter().copied().collect();
    (
        a.iter().copied().filter(|x| !bs.contains(x)).collect(),
        b.iter().copied().filter(|x| !as_.contains(x)).collect(),
    )
}

/// The blocks of `0..total` not in sorted `set`.
pub fn complement(set: &[u64], total: u64) -> Vec<u64> {
    let mut out = Vec::with_capacity(total as usize - set.len().min(total as usize));
    let mut it = set.iter().peekable();
    for i in 0..total {
        if it.peek() == Some(&&i) {
            it.next();
        } else {
            out.push(i);
        }
    }
    out
}

/// This process's CPU time (user and system, every thread), in seconds.
pub fn cpu_seconds() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => 0.0,
    }
}

/// Each figure's median over the repetitions.
pub fn median(runs: &[MethodCost]) -> MethodCost {
    fn mid<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
        v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        v[v.len() / 2]
    }
    MethodCost {
        bytes: mid(runs.iter().map(|r| r.bytes).collect()),
        round_trips: mid(runs.iter().map(|r| r.round_trips).collect()),
        messages: mid(runs.iter().map(|r| r.messages).collect()),
        wall_ms: mid(runs.iter().map(|r| r.wall_ms).collect()),
        cpu_ms: mid(runs.iter().map(|r| r.cpu_ms).collect()),
        by_runs: runs.iter().any(|r| r.by_runs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_sets_differ_by_the_share_asked() {
        let s = PairSets::new(3, 10_000, 0.01);
        assert_eq!((s.a.len(), s.b.len()), (10_000, 10_000));
        assert_eq!(s.a_only.len() + s.b_only.len(), 100);
        assert_eq!(s.a_missing.len(), 10_000);
        assert!(s.a_missing.iter().all(|x| s.a.binary_search(x).is_err()));
    }

    #[test]
    fn heal_groups_share_half_and_differ_between_groups() {
        let sets = heal_sets(5, 4, 10_000);
        let (x, y) = difference(&sets[0], &sets[2]);
        // 1 % per group and 0.5 % per member on each side.
        assert_eq!((x.len(), y.len()), (150, 150));
        assert_eq!(complement(&[1, 3], 5), vec![0, 2, 4]);
    }
}
