//! The market's counters as `marketplace` reads them from the nodes' `/metrics`: proofs by
//! outcome as validators saw them, and slots filled, repaired and rebuilt by hosts. No I/O:
//! the scenario scrapes, this adds up.

use std::collections::BTreeMap;

use neverust_node::metrics::names;

use crate::metrics::{sum, Sample};
use crate::results::ProofCounts;

/// One node's market counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    pub proofs: ProofCounts,
    pub filled: u64,
    pub repaired: u64,
    pub rebuilt: u64,
}

impl Counters {
    pub fn of(samples: &[Sample]) -> Counters {
        let validator = |outcome: &str| -> u64 {
            samples
                .iter()
                .filter(|s| {
                    s.name == names::MARKET_PROOFS_TOTAL
                        && s.label("role") == Some("validator")
                        && s.label("outcome") == Some(outcome)
                })
                .map(|s| s.value)
                .sum::<f64>() as u64
        };
        Counters {
            proofs: ProofCounts {
                verified: validator("verified"),
                missed: validator("missed"),
                invalid: validator("invalid"),
            },
            filled: sum(samples, names::MARKET_SLOTS_FILLED_TOTAL) as u64,
            repaired: sum(samples, names::MARKET_SLOTS_REPAIRED_TOTAL) as u64,
            rebuilt: sum(samples, names::MARKET_SLOTS_REBUILT_TOTAL) as u64,
        }
    }

    fn add(self, o: Counters) -> Counters {
        Counters {
            proofs: ProofCounts {
                verified: self.proofs.verified + o.proofs.verified,
                missed: self.proofs.missed + o.proofs.missed,
                invalid: self.proofs.invalid + o.proofs.invalid,
            },
            filled: self.filled + o.filled,
            repaired: self.repaired + o.repaired,
            rebuilt: self.rebuilt + o.rebuilt,
        }
    }

    fn since(self, before: Counters) -> Counters {
        Counters {
            proofs: ProofCounts {
                verified: self.proofs.verified.saturating_sub(before.proofs.verified),
                missed: self.proofs.missed.saturating_sub(before.proofs.missed),
                invalid: self.proofs.invalid.saturating_sub(before.proofs.invalid),
            },
            filled: self.filled.saturating_sub(before.filled),
            repaired: self.repaired.saturating_sub(before.repaired),
            rebuilt: self.rebuilt.saturating_sub(before.rebuilt),
        }
    }
}

/// What the nodes counted between two readings (node index → counters), summed over the
/// nodes read both times: a node killed in between took its counts with it, and one
/// restarted in between started again from zero.
pub fn between(before: &BTreeMap<usize, Counters>, after: &BTreeMap<usize, Counters>) -> Counters {
    after
        .iter()
        .filter_map(|(node, a)| Some(a.since(*before.get(node)?)))
        .fold(Counters::default(), Counters::add)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::parse;

    #[test]
    fn validators_proofs_and_hosts_slots_over_the_nodes_read_twice() {
        let keeper = |verified: u64, missed: u64| {
            Counters::of(&parse(&format!(
                "neverust_market_proofs_total{{role=\"validator\",outcome=\"verified\"}} {verified}\n\
                 neverust_market_proofs_total{{role=\"validator\",outcome=\"missed\"}} {missed}\n\
                 neverust_market_proofs_total{{role=\"host\",outcome=\"verified\"}} 100\n"
            )))
        };
        let host = |filled: u64, repaired: u64| {
            Counters::of(&parse(&format!(
                "neverust_market_slots_filled_total {filled}\n\
                 neverust_market_slots_repaired_total {repaired}\n\
                 neverust_market_slots_rebuilt_total 0\n"
            )))
        };
        assert_eq!(
            keeper(5, 1).proofs.verified,
            5,
            "host proofs are not counted"
        );
        let before = BTreeMap::from([(0, keeper(2, 0)), (3, host(1, 0)), (6, host(0, 0))]);
        let after = BTreeMap::from([(0, keeper(9, 2)), (3, host(2, 1)), (9, host(4, 4))]);
        let c = between(&before, &after);
        assert_eq!(
            c.proofs,
            ProofCounts {
                verified: 7,
                missed: 2,
                invalid: 0
            }
        );
        assert_eq!((c.filled, c.repaired, c.rebuilt), (1, 1, 0));
    }
}
