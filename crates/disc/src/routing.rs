//! The routing table: up to [`BUCKET_SIZE`] nodes per log distance from our id, so at most
//! 256 × 16 entries however many records peers send us.
//!
//! A node is "seen" once it answered one of our requests or completed a handshake from the
//! address its record names; like Archivist (`FindnodeSeenThreshold`), FINDNODE answers list
//! only seen nodes, so an unverified record we were told about is not passed on. A full
//! bucket makes room only by evicting a node that failed to answer; bootstrap nodes are
//! never evicted.
//!
//! Plain data structure: no timers, no I/O.

use std::collections::HashSet;
use std::net::SocketAddr;

use crate::node_id::NodeId;
use crate::spr::Spr;

pub const BUCKET_SIZE: usize = 16;
/// Unanswered requests after which a node that had answered before is dropped (a node that
/// never answered is dropped on its first failure, as Archivist's `NoreplyRemoveThreshold`).
const MAX_FAILURES: u8 = 3;

#[derive(Clone, Debug)]
pub struct Entry {
    pub record: Spr,
    pub addr: SocketAddr,
    pub seen: bool,
    pub failures: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insert {
    Added,
    Updated,
    Unchanged,
    /// The record names no IPv4 + UDP address, or is our own.
    Unusable,
    BucketFull,
}

pub struct RoutingTable {
    local: NodeId,
    buckets: Vec<Vec<Entry>>,
    bootstrap: HashSet<NodeId>,
}

impl RoutingTable {
    pub fn new(local: NodeId) -> Self {
        RoutingTable {
            local,
            buckets: vec![Vec::new(); 256],
            bootstrap: HashSet::new(),
        }
    }

    fn bucket_of(&self, id: &NodeId) -> Option<usize> {
        match self.local.log_distance(id) {
            0 => None,
            d => Some(d as usize - 1),
        }
    }

    pub fn len(&self) -> usize {
        self.buckets.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, id: &NodeId) -> Option<&Entry> {
        let b = self.bucket_of(id)?;
        self.buckets[b].iter().find(|e| e.record.node_id() == *id)
    }

    fn get_mut(&mut self, id: &NodeId) -> Option<&mut Entry> {
        let b = self.bucket_of(id)?;
        self.buckets[b]
            .iter_mut()
            .find(|e| e.record.node_id() == *id)
    }

    /// Marks a node as one we never evict.
    pub fn protect(&mut self, id: NodeId) {
        self.bootstrap.insert(id);
    }

    /// Adds or refreshes a node; a newer record (higher seq) replaces the stored one.
    pub fn insert(&mut self, record: Spr, seen: bool) -> Insert {
        let id = record.node_id();
        let (Some(b), Some(addr)) = (self.bucket_of(&id), record.udp_address()) else {
            return Insert::Unusable;
        };
        if let Some(entry) = self.get_mut(&id) {
            entry.seen |= seen;
            if record.seq() > entry.record.seq() {
                entry.record = record;
                entry.addr = addr;
                return Insert::Updated;
            }
            return Insert::Unchanged;
        }
        let bucket = &mut self.buckets[b];
        if bucket.len() >= BUCKET_SIZE {
            let bootstrap = &self.bootstrap;
            let Some(victim) = bucket
                .iter()
                .position(|e| e.failures > 0 && !bootstrap.contains(&e.record.node_id()))
            else {
                return Insert::BucketFull;
            };
            bucket.remove(victim);
        }
        bucket.push(Entry {
            record,
            addr,
            seen,
            failures: 0,
        });
        Insert::Added
    }

    /// Records an answer: the node becomes the most recently seen of its bucket.
    pub fn mark_seen(&mut self, id: &NodeId) {
        let Some(b) = self.bucket_of(id) else { return };
        let bucket = &mut self.buckets[b];
        if let Some(pos) = bucket.iter().position(|e| e.record.node_id() == *id) {
            let mut e = bucket.remove(pos);
            e.seen = true;
            e.failures = 0;
            bucket.insert(0, e);
        }
    }

    /// The least recently seen node of one non-empty bucket (`pick` chooses which), the one
    /// to ping next.
    pub fn least_recently_seen(&self, pick: usize) -> Option<Spr> {
        let non_empty: Vec<&Vec<Entry>> = self.buckets.iter().filter(|b| !b.is_empty()).collect();
        if non_empty.is_empty() {
            return None;
        }
        non_empty[pick % non_empty.len()]
            .last()
            .map(|e| e.record.clone())
    }

    /// Records an unanswered request; drops the node when it is not trusted enough to keep.
    pub fn mark_failed(&mut self, id: &NodeId) {
        if self.bootstrap.contains(id) {
            return;
        }
        let Some(b) = self.bucket_of(id) else { return };
        let bucket = &mut self.buckets[b];
        if let Some(pos) = bucket.iter().position(|e| e.record.node_id() == *id) {
            let e = &mut bucket[pos];
            e.failures = e.failures.saturating_add(1);
            if !e.seen || e.failures >= MAX_FAILURES {
                bucket.remove(pos);
            }
        }
    }

    /// Up to `k` nodes closest to `target` (seen ones only when `seen_only`).
    pub fn closest(&self, target: &NodeId, k: usize, seen_only: bool) -> Vec<Entry> {
        let mut all: Vec<&Entry> = self
            .buckets
            .iter()
            .flatten()
            .filter(|e| e.seen || !seen_only)
            .collect();
        all.sort_by_key(|e| e.record.node_id().distance(target));
        all.into_iter().take(k).cloned().collect()
    }

    /// Up to `k` seen nodes whose log distance from us is one of `distances`, in the order the
    /// distances are given.
    pub fn at_distances(&self, distances: &[u16], k: usize) -> Vec<Spr> {
        let mut out = Vec::new();
        for d in distances {
            if *d == 0 || *d > 256 {
                continue;
            }
            for e in &self.buckets[*d as usize - 1] {
                if out.len() == k {
                    return out;
                }
                if e.seen && !out.contains(&e.record) {
                    out.push(e.record.clone());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;

    use super::*;

    fn node(port: u16) -> Spr {
        let key = Keypair::generate_secp256k1();
        let addr = format!("/ip4/127.0.0.1/udp/{port}").parse().unwrap();
        Spr::sign(&key, vec![addr]).unwrap()
    }

    #[test]
    fn insert_update_fail_and_distances() {
        let local = NodeId([0; 32]);
        let mut table = RoutingTable::new(local);
        let a = node(1);
        assert_eq!(table.insert(a.clone(), false), Insert::Added);
        assert_eq!(table.insert(a.clone(), true), Insert::Unchanged);
        assert!(table.get(&a.node_id()).unwrap().seen);
        let d = local.log_distance(&a.node_id());
        assert_eq!(table.at_distances(&[d], 16), vec![a.clone()]);
        assert!(table.at_distances(&[0, 257], 16).is_empty());
        // A seen node survives a failure; an unseen one does not.
        table.mark_failed(&a.node_id());
        assert_eq!(table.len(), 1);
        let b = node(2);
        table.insert(b.clone(), false);
        table.mark_failed(&b.node_id());
        assert!(table.get(&b.node_id()).is_none());
        let tcp_only = Spr::sign(
            &Keypair::generate_secp256k1(),
            vec!["/ip4/1.2.3.4/tcp/1".parse().unwrap()],
        )
        .unwrap();
        assert_eq!(table.insert(tcp_only, true), Insert::Unusable);
    }

    #[test]
    fn buckets_are_bounded() {
        let mut table = RoutingTable::new(NodeId([0; 32]));
        // Node ids are hashes: about half of random nodes fall at distance 256.
        for port in 0..200 {
            table.insert(node(port), false);
        }
        assert!(table.buckets.iter().all(|b| b.len() <= BUCKET_SIZE));
        assert!(table.len() < 200);
        let closest = table.closest(&NodeId([0; 32]), 5, false);
        assert_eq!(closest.len(), 5);
        assert!(closest
            .windows(2)
            .all(|w| w[0].record.node_id().distance(&NodeId([0; 32]))
                <= w[1].record.node_id().distance(&NodeId([0; 32]))));
    }
}
