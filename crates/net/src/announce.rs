//! Announcements waiting for their DHT walk.
//!
//! An announcement walks the DHT to the peers closest to its key and stores a provider record
//! at each: a few dozen requests across the network. A burst of finished downloads would
//! start as many walks at once, all competing with the transfers still running, so they wait
//! here and go out a few at a time. The queue is bounded: a key that finds it full is kept
//! in the local record store only, and goes out with the next periodic republication.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use libp2p::kad::RecordKey;

/// Walks one node runs at once.
pub(crate) const ANNOUNCES_IN_FLIGHT: usize = 2;
/// Keys that may wait for a walk; past this they wait for the republication instead.
pub(crate) const ANNOUNCES_WAITING: usize = 4096;

/// Generic over the query id so that it can be tested without a swarm.
pub(crate) struct Announcements<Id> {
    waiting: VecDeque<RecordKey>,
    running: HashMap<Id, RecordKey>,
    in_flight: usize,
    capacity: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Waiting, or already waiting or running: nothing more to do now.
    Queued,
    /// The queue is full: the caller keeps the record locally for the republication.
    Full(RecordKey),
}

impl<Id: Hash + Eq> Announcements<Id> {
    pub(crate) fn new(in_flight: usize, capacity: usize) -> Self {
        Announcements {
            waiting: VecDeque::new(),
            running: HashMap::new(),
            in_flight: in_flight.max(1),
            capacity,
        }
    }

    pub(crate) fn offer(&mut self, key: RecordKey) -> Offer {
        if self.waiting.contains(&key) || self.running.values().any(|k| *k == key) {
            return Offer::Queued;
        }
        if self.waiting.len() >= self.capacity {
            return Offer::Full(key);
        }
        self.waiting.push_back(key);
        Offer::Queued
    }

    /// The next key to walk for, when a walk may start.
    pub(crate) fn next(&mut self) -> Option<RecordKey> {
        if self.running.len() >= self.in_flight {
            return None;
        }
        self.waiting.pop_front()
    }

    pub(crate) fn started(&mut self, id: Id, key: RecordKey) {
        self.running.insert(id, key);
    }

    /// Whether `id` was one of ours (the DHT's own republications are not).
    pub(crate) fn finished(&mut self, id: &Id) -> bool {
        self.running.remove(id).is_some()
    }

    /// A key no longer provided need not be announced.
    pub(crate) fn cancel(&mut self, key: &RecordKey) {
        self.waiting.retain(|k| k != key);
    }

    pub(crate) fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> RecordKey {
        RecordKey::new(&[n])
    }

    #[test]
    fn walks_start_a_few_at_a_time_in_arrival_order() {
        let mut a = Announcements::<u32>::new(2, 10);
        for n in 0..5 {
            assert_eq!(a.offer(key(n)), Offer::Queued);
        }
        let first = a.next().unwrap();
        a.started(1, first.clone());
        let second = a.next().unwrap();
        a.started(2, second.clone());
        assert_eq!((first, second), (key(0), key(1)));
        assert_eq!(a.next(), None, "two walks already run");
        assert!(!a.finished(&99), "a query that is not an announcement");
        assert_eq!(a.next(), None);
        assert!(a.finished(&1));
        assert_eq!(a.next(), Some(key(2)));
        assert_eq!(a.waiting(), 2);
    }

    #[test]
    fn a_key_waiting_or_running_is_not_queued_twice() {
        let mut a = Announcements::<u32>::new(1, 10);
        a.offer(key(1));
        a.offer(key(1));
        assert_eq!(a.waiting(), 1);
        let k = a.next().unwrap();
        a.started(7, k);
        a.offer(key(1));
        assert_eq!(a.waiting(), 0, "already being announced");
        assert!(a.finished(&7));
        a.offer(key(1));
        assert_eq!(a.waiting(), 1, "announced again once the last walk is over");
    }

    #[test]
    fn a_full_queue_hands_the_key_back_and_cancel_removes_waiting_keys() {
        let mut a = Announcements::<u32>::new(1, 2);
        a.offer(key(1));
        a.offer(key(2));
        assert_eq!(a.offer(key(3)), Offer::Full(key(3)));
        a.cancel(&key(1));
        assert_eq!(a.waiting(), 1);
        assert_eq!(a.offer(key(3)), Offer::Queued);
        assert_eq!(a.next(), Some(key(2)));
    }
}
