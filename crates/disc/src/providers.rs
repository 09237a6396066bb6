//! Provider records this node stores for the DHT: content key → signed peer records of the
//! nodes that said they hold it.
//!
//! Bounded against floods: at most `max_records` records in all (each at most
//! [`crate::spr::MAX_SPR_SIZE`] bytes) and [`MAX_PROVIDERS_PER_KEY`] providers per key
//! (Archivist's `MaxProvidersPerEntry`), each record kept for `ttl`
//! (Archivist's default is 24 h). A provider that announces again replaces its record when
//! the new one is at least as recent. Like Archivist, it does not check that the announcing
//! node is the provider: the record's signature is what vouches for it.
//!
//! A plain map driven by `now`; no timers, no I/O.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::node_id::NodeId;
use crate::spr::Spr;

pub const MAX_PROVIDERS_PER_KEY: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    Added,
    Replaced,
    Refused,
}

pub struct ProviderStore {
    max_records: usize,
    ttl: Duration,
    entries: HashMap<NodeId, Vec<(Spr, Instant)>>,
    records: usize,
}

impl ProviderStore {
    pub fn new(max_records: usize, ttl: Duration) -> Self {
        ProviderStore {
            max_records,
            ttl,
            entries: HashMap::new(),
            records: 0,
        }
    }

    pub fn add(&mut self, now: Instant, content: NodeId, record: Spr) -> Stored {
        let expires = now + self.ttl;
        let known = self
            .entries
            .get(&content)
            .is_some_and(|list| list.iter().any(|(r, _)| r.peer_id() == record.peer_id()));
        if !known && self.records >= self.max_records {
            self.expire(now);
            if self.records >= self.max_records {
                return Stored::Refused;
            }
        }
        let list = self.entries.entry(content).or_default();
        if let Some(slot) = list
            .iter_mut()
            .find(|(r, _)| r.peer_id() == record.peer_id())
        {
            if record.seq() < slot.0.seq() {
                return Stored::Refused;
            }
            *slot = (record, expires);
            return Stored::Replaced;
        }
        if list.len() >= MAX_PROVIDERS_PER_KEY {
            // Make room by dropping the record closest to expiry.
            let oldest = list
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(i, _)| i)
                .expect("a full list is not empty");
            list.swap_remove(oldest);
            self.records -= 1;
        }
        list.push((record, expires));
        self.records += 1;
        Stored::Added
    }

    /// The live providers of `content`.
    pub fn get(&self, now: Instant, content: &NodeId) -> Vec<Spr> {
        self.entries
            .get(content)
            .map(|list| {
                list.iter()
                    .filter(|(_, at)| *at > now)
                    .map(|(r, _)| r.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn expire(&mut self, now: Instant) {
        self.entries.retain(|_, list| {
            list.retain(|(_, at)| *at > now);
            !list.is_empty()
        });
        self.records = self.entries.values().map(Vec::len).sum();
    }

    pub fn keys(&self) -> usize {
        self.entries.len()
    }

    pub fn records(&self) -> usize {
        self.records
    }
}

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;

    use super::*;

    fn record() -> Spr {
        Spr::sign(
            &Keypair::generate_secp256k1(),
            vec!["/ip4/127.0.0.1/tcp/1".parse().unwrap()],
        )
        .unwrap()
    }

    #[test]
    fn bounded_per_key_and_in_keys_and_expiring() {
        let now = Instant::now();
        let mut store = ProviderStore::new(MAX_PROVIDERS_PER_KEY + 1, Duration::from_secs(10));
        let key = NodeId([1; 32]);
        let first = record();
        assert_eq!(store.add(now, key, first.clone()), Stored::Added);
        assert_eq!(store.add(now, key, first.clone()), Stored::Replaced);
        for _ in 0..30 {
            store.add(now, key, record());
        }
        assert_eq!(store.get(now, &key).len(), MAX_PROVIDERS_PER_KEY);
        assert_eq!(store.add(now, NodeId([2; 32]), record()), Stored::Added);
        assert_eq!(store.add(now, NodeId([3; 32]), record()), Stored::Refused);
        let later = now + Duration::from_secs(11);
        assert!(store.get(later, &key).is_empty());
        assert_eq!(store.add(later, NodeId([3; 32]), record()), Stored::Added);
        assert_eq!((store.keys(), store.records()), (1, 1));
    }
}
