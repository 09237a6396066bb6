//! The market's series: purchases and sales by state (set from the agents' view at every
//! round), proofs by outcome, slots filled, repaired and rebuilt, the ledger's length.

use neverust_market::states::Lifecycle;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProofLabels {
    /// `host` (proofs this node gave) or `validator` (challenges this node issued).
    pub role: &'static str,
    /// `verified`, `invalid` or `missed`.
    pub outcome: &'static str,
}

#[derive(Clone, Default)]
pub struct MarketMetrics {
    pub purchases: Family<StateLabels, Gauge>,
    pub sales: Family<StateLabels, Gauge>,
    pub proofs: Family<ProofLabels, Counter>,
    pub slots_filled: Counter,
    pub slots_repaired: Counter,
    pub slots_rebuilt: Counter,
    pub ledger_entries: Gauge,
}

impl MarketMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "market_purchases",
            "Storage requests this node made, by purchase state",
            self.purchases.clone(),
        );
        registry.register(
            "market_sales",
            "Slots this node sells (hosts or tries to), by sale state",
            self.sales.clone(),
        );
        registry.register(
            "market_proofs",
            "Storage proofs by role (host, validator) and outcome (verified, invalid, missed)",
            self.proofs.clone(),
        );
        registry.register(
            "market_slots_filled",
            "Slots this node filled as a host",
            self.slots_filled.clone(),
        );
        registry.register(
            "market_slots_repaired",
            "Slots this node filled after another host lost them",
            self.slots_repaired.clone(),
        );
        registry.register(
            "market_slots_rebuilt",
            "Slots this node rebuilt from other slots because their blocks could not be fetched",
            self.slots_rebuilt.clone(),
        );
        registry.register(
            "market_ledger_entries",
            "Entries in this node's copy of the market ledger",
            self.ledger_entries.clone(),
        );
    }

    /// Sets a by-state gauge family to how many of `states` are in each state, every
    /// state of the machine shown, at zero too.
    pub fn set_states<S: Lifecycle + PartialEq>(
        family: &Family<StateLabels, Gauge>,
        states: impl IntoIterator<Item = S>,
    ) {
        let states: Vec<S> = states.into_iter().collect();
        for state in S::ALL {
            let n = states.iter().filter(|s| *s == state).count();
            family
                .get_or_create(&StateLabels {
                    state: state.name(),
                })
                .set(n as i64);
        }
    }
}
