//! Per-peer accounts of a marketplace node: what it served each peer and what it got back.
//!
//! A marketplace node serves a peer on credit up to a limit, and the peer earns more credit
//! by serving blocks in return (tit-for-tat). Altruistic nodes keep the same accounts, for
//! metrics, but never refuse. Pure bookkeeping: no clocks, no I/O; storage deals and
//! payments are not here.

use std::collections::HashMap;
use std::hash::Hash;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerPolicy {
    /// Announced in block presences; 0 means free.
    pub price_per_byte: u64,
    /// Bytes a peer may receive beyond what it has sent us; `None` serves without limit.
    pub credit_limit: Option<u64>,
}

impl LedgerPolicy {
    pub fn altruistic() -> Self {
        LedgerPolicy {
            price_per_byte: 0,
            credit_limit: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Account {
    pub blocks_sent: u64,
    pub bytes_sent: u64,
    pub blocks_received: u64,
    pub bytes_received: u64,
    pub refused: u64,
}

impl Account {
    /// How far the peer is in our debt.
    pub fn debt(&self) -> u64 {
        self.bytes_sent.saturating_sub(self.bytes_received)
    }
}

#[derive(Debug)]
pub struct Ledgers<P> {
    policy: LedgerPolicy,
    accounts: HashMap<P, Account>,
}

impl<P: Clone + Eq + Hash> Ledgers<P> {
    pub fn new(policy: LedgerPolicy) -> Self {
        Ledgers {
            policy,
            accounts: HashMap::new(),
        }
    }

    pub fn policy(&self) -> &LedgerPolicy {
        &self.policy
    }

    /// Decides whether `bytes` more may go to `peer`; a refusal is counted on its account.
    pub fn try_serve(&mut self, peer: &P, bytes: u64) -> bool {
        let account = self.accounts.entry(peer.clone()).or_default();
        let ok = match self.policy.credit_limit {
            None => true,
            Some(limit) => account.debt().saturating_add(bytes) <= limit,
        };
        if !ok {
            account.refused += 1;
        }
        ok
    }

    pub fn on_sent(&mut self, peer: &P, bytes: u64) {
        let a = self.accounts.entry(peer.clone()).or_default();
        a.blocks_sent += 1;
        a.bytes_sent += bytes;
    }

    pub fn on_received(&mut self, peer: &P, bytes: u64) {
        let a = self.accounts.entry(peer.clone()).or_default();
        a.blocks_received += 1;
        a.bytes_received += bytes;
    }

    pub fn account(&self, peer: &P) -> Account {
        self.accounts.get(peer).copied().unwrap_or_default()
    }

    pub fn accounts(&self) -> impl Iterator<Item = (&P, &Account)> {
        self.accounts.iter()
    }

    /// The price of `bytes` as Archivist's presence field carries it: a minimal big-endian
    /// integer (empty for free).
    pub fn price_of(&self, bytes: u64) -> Vec<u8> {
        let price = u128::from(self.policy.price_per_byte) * u128::from(bytes);
        let be = price.to_be_bytes();
        let first = be.iter().position(|b| *b != 0).unwrap_or(be.len());
        be[first..].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn market(limit: u64) -> Ledgers<&'static str> {
        Ledgers::new(LedgerPolicy {
            price_per_byte: 3,
            credit_limit: Some(limit),
        })
    }

    #[test]
    fn credit_runs_out_and_reciprocity_restores_it() {
        let mut l = market(100);
        assert!(l.try_serve(&"a", 60));
        l.on_sent(&"a", 60);
        assert!(l.try_serve(&"a", 40));
        l.on_sent(&"a", 40);
        assert!(!l.try_serve(&"a", 1), "debt of 100 is the limit");
        assert!(l.try_serve(&"b", 100), "accounts are per peer");
        l.on_received(&"a", 30);
        assert!(l.try_serve(&"a", 30));
        assert!(!l.try_serve(&"a", 31));
        let a = l.account(&"a");
        assert_eq!(
            (a.blocks_sent, a.bytes_sent, a.bytes_received),
            (2, 100, 30)
        );
        assert_eq!(a.refused, 2);
        assert_eq!(a.debt(), 70);
    }

    #[test]
    fn altruists_never_refuse_and_are_free() {
        let mut l = Ledgers::<u8>::new(LedgerPolicy::altruistic());
        l.on_sent(&1, u64::MAX / 2);
        assert!(l.try_serve(&1, u64::MAX));
        assert!(l.price_of(65536).is_empty());
    }

    #[test]
    fn prices_are_minimal_big_endian() {
        let l = market(0);
        assert_eq!(l.price_of(1), vec![3]);
        assert_eq!(l.price_of(65536), vec![0x03, 0x00, 0x00]);
        assert_eq!(l.price_of(0), Vec::<u8>::new());
    }
}
