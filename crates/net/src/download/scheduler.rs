//! Which block to ask which provider for, and when: the I/O-free brain of a download.
//!
//! Fed events (a block arrived, a peer lacks a block, a peer left) and `Instant`s, it
//! returns requests and cancels. Each provider has a window of requests in flight that grows
//! while it delivers and halves when it times out, so a fast provider frees its slots sooner
//! and is handed proportionally more blocks; among providers with room, the one with the
//! lowest recent latency goes first. Blocks are asked for lowest index first and never
//! beyond `lookahead` past the first missing one, which bounds a streaming reader's reorder
//! buffer. When nothing is left to ask, the oldest outstanding requests are duplicated to
//! another provider (endgame), and the loser is cancelled when the winner delivers.
//!
//! It does not send anything, verify anything or know what a peer is: `P` is any id.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::Hash;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    pub max_in_flight: usize,
    pub initial_peer_window: usize,
    pub max_peer_window: usize,
    pub min_peer_window: usize,
    pub lookahead: u64,
    pub request_timeout: Duration,
    pub max_strikes: u32,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_in_flight: 256,
            initial_peer_window: 16,
            max_peer_window: 128,
            min_peer_window: 2,
            lookahead: 1024,
            request_timeout: Duration::from_secs(10),
            max_strikes: 3,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<P> {
    pub peer: P,
    pub index: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cancel<P> {
    pub peer: P,
    pub index: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    InProgress,
    Done,
    /// Some missing blocks have no provider left that may have them (first few listed).
    Stalled {
        missing: Vec<u64>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProviderStats<P> {
    pub peer: P,
    pub delivered: u64,
    pub in_flight: usize,
    pub window: usize,
    /// Smoothed time from request to delivery.
    pub latency: Option<Duration>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Queued,
    InFlight,
    Done,
}

#[derive(Debug)]
struct Provider {
    in_flight: BTreeSet<u64>,
    window: f64,
    latency: Option<Duration>,
    strikes: u32,
    delivered: u64,
}

pub struct Scheduler<P> {
    cfg: SchedulerConfig,
    total: u64,
    state: Vec<State>,
    queue: BTreeSet<u64>,
    lowest_missing: u64,
    done: u64,
    /// index → copies in flight: who was asked and when.
    in_flight: BTreeMap<u64, Vec<(P, Instant)>>,
    deadlines: BTreeSet<(Instant, u64, P)>,
    providers: BTreeMap<P, Provider>,
    lacks: HashMap<u64, HashSet<P>>,
}

const MAX_COPIES: usize = 2;

impl<P: Clone + Eq + Hash + Ord + std::fmt::Debug> Scheduler<P> {
    pub fn new(total: u64, cfg: SchedulerConfig) -> Self {
        Scheduler {
            cfg,
            total,
            state: vec![State::Queued; total as usize],
            queue: (0..total).collect(),
            lowest_missing: 0,
            done: 0,
            in_flight: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            providers: BTreeMap::new(),
            lacks: HashMap::new(),
        }
    }

    pub fn mark_present(&mut self, index: u64) {
        if index < self.total && self.state[index as usize] == State::Queued {
            self.queue.remove(&index);
            self.finish(index);
        }
    }

    pub fn add_provider(&mut self, peer: P, _now: Instant) {
        let window = self.cfg.initial_peer_window as f64;
        self.providers.entry(peer).or_insert(Provider {
            in_flight: BTreeSet::new(),
            window,
            latency: None,
            strikes: 0,
            delivered: 0,
        });
    }

    /// A provider that holds only some of the dataset (another download in progress):
    /// `has` (sorted) lists what it holds of the blocks still missing; it is not asked
    /// for the others until [`Scheduler::on_have`] says it has them.
    pub fn add_partial_provider(&mut self, peer: P, has: &[u64], now: Instant) {
        for index in self.missing() {
            if has.binary_search(&index).is_err() {
                self.lacks.entry(index).or_default().insert(peer.clone());
            }
        }
        self.add_provider(peer, now);
    }

    /// `peer` now holds `index` (it lacked it before).
    pub fn on_have(&mut self, peer: &P, index: u64) {
        if let Some(lacking) = self.lacks.get_mut(&index) {
            lacking.remove(peer);
            if lacking.is_empty() {
                self.lacks.remove(&index);
            }
        }
    }

    /// The blocks not yet delivered, in order.
    pub fn missing(&self) -> Vec<u64> {
        (self.lowest_missing..self.total)
            .filter(|i| self.state[*i as usize] != State::Done)
            .collect()
    }

    /// Block `index` has been delivered (or was present).
    pub fn is_done(&self, index: u64) -> bool {
        self.state
            .get(index as usize)
            .is_some_and(|s| *s == State::Done)
    }

    pub fn is_provider(&self, peer: &P) -> bool {
        self.providers.contains_key(peer)
    }

    pub fn remove_provider(&mut self, peer: &P) {
        let Some(p) = self.providers.remove(peer) else {
            return;
        };
        for index in p.in_flight {
            self.drop_copy(index, peer);
        }
    }

    pub fn on_block(&mut self, peer: &P, index: u64, now: Instant) -> Vec<Cancel<P>> {
        if index >= self.total || self.state[index as usize] == State::Done {
            return Vec::new();
        }
        let copies = self.in_flight.remove(&index).unwrap_or_default();
        let mut cancels = Vec::new();
        for (asked, sent) in copies {
            self.deadlines
                .remove(&(sent + self.cfg.request_timeout, index, asked.clone()));
            let is_sender = &asked == peer;
            if let Some(p) = self.providers.get_mut(&asked) {
                p.in_flight.remove(&index);
                if is_sender {
                    let took = now.saturating_duration_since(sent);
                    p.latency = Some(match p.latency {
                        // Smoothing over ~8 deliveries follows a provider's pace without
                        // jumping on one batched message.
                        Some(l) => (l * 7 + took) / 8,
                        None => took,
                    });
                    p.window = (p.window + 1.0).min(self.cfg.max_peer_window as f64);
                    p.strikes = 0;
                }
            }
            if !is_sender {
                cancels.push(Cancel { peer: asked, index });
            }
        }
        if let Some(p) = self.providers.get_mut(peer) {
            p.delivered += 1;
        }
        self.queue.remove(&index);
        self.finish(index);
        cancels
    }

    pub fn on_dont_have(&mut self, peer: &P, index: u64, _now: Instant) {
        if index >= self.total || self.state[index as usize] == State::Done {
            return;
        }
        self.lacks.entry(index).or_default().insert(peer.clone());
        if let Some(p) = self.providers.get_mut(peer) {
            p.in_flight.remove(&index);
        }
        self.drop_copy(index, peer);
    }

    pub fn on_invalid(&mut self, peer: &P, index: u64, _now: Instant) {
        if index >= self.total || self.state[index as usize] == State::Done {
            return;
        }
        if let Some(p) = self.providers.get_mut(peer) {
            p.in_flight.remove(&index);
        }
        self.drop_copy(index, peer);
        self.strike(peer);
    }

    pub fn poll(&mut self, now: Instant) -> Vec<Request<P>> {
        self.expire(now);
        let mut out = Vec::new();
        let limit = self.lowest_missing.saturating_add(self.cfg.lookahead);
        let mut skipped = Vec::new();
        // Starved: room to ask, but nothing new may be asked (all queued blocks asked, or
        // the look-ahead reached). Then the oldest outstanding requests, which are what the
        // look-ahead waits on, get a second provider: a silent provider holding the head of
        // the dataset must not stall everything until its requests time out.
        let mut starved = false;
        while self.in_flight_count() < self.cfg.max_in_flight {
            let Some(&index) = self.queue.iter().find(|i| !skipped.contains(*i)) else {
                starved = true;
                break;
            };
            if index >= limit {
                starved = true;
                break;
            }
            match self.best_provider(index, None) {
                Some(peer) => {
                    self.queue.remove(&index);
                    self.ask(index, peer.clone(), now);
                    out.push(Request { peer, index });
                }
                None if self.any_room() => skipped.push(index),
                None => break,
            }
            // Indices nobody can serve right now stay queued; stop scanning past a few.
            if skipped.len() > 64 {
                starved = true;
                break;
            }
        }
        if starved {
            out.extend(self.endgame(now));
        }
        out
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(t, _, _)| *t)
    }

    pub fn outcome(&self) -> Outcome {
        if self.done == self.total {
            return Outcome::Done;
        }
        if self.providers.is_empty() {
            let missing = (self.lowest_missing..self.total)
                .filter(|i| self.state[*i as usize] != State::Done)
                .take(16)
                .collect();
            return Outcome::Stalled { missing };
        }
        let mut missing: Vec<u64> = self
            .lacks
            .iter()
            .filter(|(i, lacking)| {
                self.state[**i as usize] == State::Queued
                    && self.providers.keys().all(|p| lacking.contains(p))
            })
            .map(|(i, _)| *i)
            .collect();
        if missing.is_empty() {
            return Outcome::InProgress;
        }
        missing.sort_unstable();
        missing.truncate(16);
        Outcome::Stalled { missing }
    }

    pub fn lowest_missing(&self) -> u64 {
        self.lowest_missing
    }

    pub fn done_count(&self) -> u64 {
        self.done
    }

    /// Blocks with at least one request outstanding.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub fn providers(&self) -> Vec<P> {
        self.providers.keys().cloned().collect()
    }

    pub fn provider_stats(&self) -> Vec<ProviderStats<P>> {
        self.providers
            .iter()
            .map(|(peer, p)| ProviderStats {
                peer: peer.clone(),
                delivered: p.delivered,
                in_flight: p.in_flight.len(),
                window: p.window as usize,
                latency: p.latency,
            })
            .collect()
    }

    fn in_flight_count(&self) -> usize {
        self.providers.values().map(|p| p.in_flight.len()).sum()
    }

    fn any_room(&self) -> bool {
        self.providers
            .values()
            .any(|p| p.in_flight.len() < p.window as usize)
    }

    fn best_provider(&self, index: u64, except: Option<&P>) -> Option<P> {
        let lacking = self.lacks.get(&index);
        self.providers
            .iter()
            .filter(|(peer, p)| {
                p.in_flight.len() < p.window as usize
                    && Some(*peer) != except
                    && !p.in_flight.contains(&index)
                    && !lacking.is_some_and(|l| l.contains(*peer))
            })
            // Unmeasured providers count as fast so that each gets tried.
            .min_by_key(|(_, p)| (p.latency.unwrap_or(Duration::ZERO), p.in_flight.len()))
            .map(|(peer, _)| peer.clone())
    }

    fn ask(&mut self, index: u64, peer: P, now: Instant) {
        self.state[index as usize] = State::InFlight;
        self.in_flight
            .entry(index)
            .or_default()
            .push((peer.clone(), now));
        self.deadlines
            .insert((now + self.cfg.request_timeout, index, peer.clone()));
        if let Some(p) = self.providers.get_mut(&peer) {
            p.in_flight.insert(index);
        }
    }

    fn endgame(&mut self, now: Instant) -> Vec<Request<P>> {
        let mut out = Vec::new();
        let candidates: Vec<(u64, P)> = self
            .in_flight
            .iter()
            .filter(|(_, copies)| copies.len() < MAX_COPIES)
            .map(|(i, copies)| (*i, copies[0].0.clone()))
            .collect();
        for (index, first) in candidates {
            if self.in_flight_count() >= self.cfg.max_in_flight {
                break;
            }
            if let Some(peer) = self.best_provider(index, Some(&first)) {
                self.ask(index, peer.clone(), now);
                out.push(Request { peer, index });
            }
        }
        out
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, index, peer)) = self.deadlines.first().cloned() {
            if at > now {
                break;
            }
            self.deadlines.remove(&(at, index, peer.clone()));
            if let Some(p) = self.providers.get_mut(&peer) {
                p.in_flight.remove(&index);
                p.window = (p.window / 2.0).max(self.cfg.min_peer_window as f64);
            }
            self.drop_copy(index, &peer);
            self.strike(&peer);
        }
    }

    fn strike(&mut self, peer: &P) {
        let Some(p) = self.providers.get_mut(peer) else {
            return;
        };
        p.strikes += 1;
        if p.strikes >= self.cfg.max_strikes {
            self.remove_provider(peer);
        }
    }

    /// Forgets `peer`'s request for `index`; with no copy left the block is queued again.
    fn drop_copy(&mut self, index: u64, peer: &P) {
        if let Some(copies) = self.in_flight.get_mut(&index) {
            if let Some(pos) = copies.iter().position(|(p, _)| p == peer) {
                let (_, sent) = copies.remove(pos);
                self.deadlines
                    .remove(&(sent + self.cfg.request_timeout, index, peer.clone()));
            }
            if copies.is_empty() {
                self.in_flight.remove(&index);
            }
        }
        if !self.in_flight.contains_key(&index) && self.state[index as usize] == State::InFlight {
            self.state[index as usize] = State::Queued;
            self.queue.insert(index);
        }
    }

    fn finish(&mut self, index: u64) {
        self.state[index as usize] = State::Done;
        self.done += 1;
        self.lacks.remove(&index);
        while self.lowest_missing < self.total
            && self.state[self.lowest_missing as usize] == State::Done
        {
            self.lowest_missing += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SchedulerConfig {
        SchedulerConfig {
            max_in_flight: 8,
            initial_peer_window: 4,
            max_peer_window: 8,
            min_peer_window: 1,
            lookahead: 100,
            request_timeout: Duration::from_secs(1),
            max_strikes: 2,
        }
    }

    #[test]
    fn a_partial_provider_is_asked_only_for_what_it_holds_until_it_has_more() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(6, cfg());
        s.add_partial_provider("p", &[1, 3], t0);
        let mut asked: Vec<u64> = s.poll(t0).iter().map(|r| r.index).collect();
        asked.sort_unstable();
        assert_eq!(asked, vec![1, 3]);
        for i in [1, 3] {
            s.on_block(&"p", i, t0);
        }
        assert!(s.poll(t0).is_empty());
        assert!(matches!(s.outcome(), Outcome::Stalled { .. }));
        assert_eq!(s.missing(), vec![0, 2, 4, 5]);
        s.on_have(&"p", 4);
        let asked: Vec<u64> = s.poll(t0).iter().map(|r| r.index).collect();
        assert_eq!(asked, vec![4]);
        s.add_provider("full", t0);
        let mut rest: Vec<u64> = s.poll(t0).iter().map(|r| r.index).collect();
        rest.sort_unstable();
        // 4, still with the partial provider, may go out a second time (endgame).
        rest.retain(|i| *i != 4);
        assert_eq!(
            rest,
            vec![0, 2, 5],
            "the whole provider takes what the partial one lacks"
        );
        assert!(s.is_provider(&"p") && !s.is_provider(&"q"));
    }

    #[test]
    fn one_provider_gets_every_block_once_in_order() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(10, cfg());
        s.add_provider("a", t0);
        let mut asked = vec![];
        while s.outcome() != Outcome::Done {
            let reqs = s.poll(t0);
            assert!(!reqs.is_empty());
            assert!(s.in_flight() <= 8);
            for r in reqs {
                asked.push(r.index);
                assert!(s.on_block(&"a", r.index, t0).is_empty());
            }
        }
        assert_eq!(asked, (0..10).collect::<Vec<_>>());
        assert_eq!(s.lowest_missing(), 10);
    }

    #[test]
    fn windows_lookahead_and_present_blocks_are_respected() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.lookahead = 3;
        let mut s = Scheduler::new(10, c);
        s.mark_present(0);
        s.add_provider("a", t0);
        s.add_provider("b", t0);
        let reqs = s.poll(t0);
        let mut idx: Vec<u64> = reqs.iter().map(|r| r.index).collect();
        idx.sort_unstable();
        idx.dedup();
        // With the look-ahead reached at once, the head also goes to the second provider.
        assert_eq!(idx, vec![1, 2, 3], "0 is present, 4+ is past the lookahead");
        assert!(reqs.len() <= 2 * idx.len(), "at most two copies of a block");
        let mut w = Scheduler::new(100, cfg());
        w.add_provider("a", t0);
        assert_eq!(w.poll(t0).len(), 4, "one provider's initial window");
    }

    #[test]
    fn a_vanished_provider_hands_its_blocks_to_the_others() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(6, cfg());
        s.add_provider("a", t0);
        s.add_provider("b", t0);
        let first = s.poll(t0);
        let of_a: Vec<u64> = first
            .iter()
            .filter(|r| r.peer == "a")
            .map(|r| r.index)
            .collect();
        assert!(!of_a.is_empty());
        s.remove_provider(&"a");
        for r in first.iter().filter(|r| r.peer == "b") {
            s.on_block(&"b", r.index, t0);
        }
        let mut rounds = 0;
        while s.outcome() != Outcome::Done {
            rounds += 1;
            assert!(rounds < 20);
            for r in s.poll(t0) {
                assert_eq!(r.peer, "b");
                s.on_block(&"b", r.index, t0);
            }
        }
    }

    #[test]
    fn silent_providers_time_out_and_are_dropped() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(4, cfg());
        s.add_provider("slow", t0);
        let reqs = s.poll(t0);
        assert_eq!(reqs.len(), 4);
        assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(1)));
        // Four timeouts at once: strikes pass max_strikes and the provider is gone.
        let later = t0 + Duration::from_secs(2);
        assert!(s.poll(later).is_empty());
        assert!(s.providers().is_empty());
        assert!(matches!(s.outcome(), Outcome::Stalled { .. }));
        s.add_provider("fast", later);
        assert_eq!(
            s.poll(later).len(),
            4,
            "a new provider un-stalls the download"
        );
    }

    #[test]
    fn dont_have_moves_a_block_elsewhere_and_stalls_when_nobody_has_it() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.max_in_flight = 1;
        let mut s = Scheduler::new(1, c);
        s.add_provider("a", t0);
        s.add_provider("b", t0);
        let r = s.poll(t0);
        assert_eq!(r.len(), 1);
        let first = r[0].peer;
        s.on_dont_have(&first, 0, t0);
        let r = s.poll(t0);
        assert_eq!(r.len(), 1);
        assert_ne!(
            r[0].peer, first,
            "never asked again of a peer that lacks it"
        );
        assert_eq!(s.outcome(), Outcome::InProgress);
        s.on_dont_have(&r[0].peer, 0, t0);
        assert_eq!(s.outcome(), Outcome::Stalled { missing: vec![0] });
        s.add_provider("c", t0);
        assert_eq!(s.outcome(), Outcome::InProgress);
        assert_eq!(
            s.poll(t0),
            vec![Request {
                peer: "c",
                index: 0
            }]
        );
    }

    #[test]
    fn endgame_duplicates_and_cancels_the_loser() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(1, cfg());
        s.add_provider("a", t0);
        s.add_provider("b", t0);
        let reqs = s.poll(t0);
        assert_eq!(reqs.len(), 2, "the one block is asked of both");
        let cancels = s.on_block(&"b", 0, t0);
        assert_eq!(
            cancels,
            vec![Cancel {
                peer: "a",
                index: 0
            }]
        );
        assert_eq!(s.outcome(), Outcome::Done);
    }

    #[test]
    fn a_silent_provider_at_the_head_does_not_hold_up_the_lookahead() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.lookahead = 8;
        let mut s = Scheduler::new(100, c);
        s.add_provider("silent", t0);
        let head = s.poll(t0);
        assert_eq!(
            head.len(),
            4,
            "the silent provider gets the head of the dataset"
        );
        s.add_provider("b", t0);
        for r in s.poll(t0) {
            assert_eq!(r.peer, "b");
            s.on_block(&"b", r.index, t0);
        }
        // Blocks 4..8 are in; 8+ is past the look-ahead while 0..4 wait on the silent one.
        let again = s.poll(t0);
        assert!(
            head.iter().all(|h| again.contains(&Request {
                peer: "b",
                index: h.index
            })),
            "the head is asked again elsewhere before any timeout: {again:?}"
        );
        for r in again {
            let cancels = s.on_block(&"b", r.index, t0);
            assert_eq!(
                cancels,
                vec![Cancel {
                    peer: "silent",
                    index: r.index
                }]
            );
        }
        assert_eq!(s.lowest_missing(), 8);
    }

    /// Two providers, one answering four times faster: a small discrete-time simulation.
    #[test]
    fn faster_providers_serve_more() {
        let t0 = Instant::now();
        let c = SchedulerConfig {
            max_in_flight: 32,
            initial_peer_window: 4,
            max_peer_window: 16,
            ..SchedulerConfig::default()
        };
        let mut s = Scheduler::new(2000, c);
        s.add_provider("fast", t0);
        s.add_provider("slow", t0);
        let lat = |p: &str| Duration::from_millis(if p == "fast" { 5 } else { 20 });
        let mut pending: Vec<(Instant, &str, u64)> = vec![];
        let mut now = t0;
        for _ in 0..100_000 {
            if s.outcome() == Outcome::Done {
                break;
            }
            for r in s.poll(now) {
                pending.push((now + lat(r.peer), r.peer, r.index));
            }
            now += Duration::from_millis(1);
            let (due, rest): (Vec<_>, Vec<_>) =
                pending.into_iter().partition(|(t, _, _)| *t <= now);
            pending = rest;
            for (_, p, i) in due {
                s.on_block(&p, i, now);
            }
        }
        assert_eq!(s.outcome(), Outcome::Done);
        let stats = s.provider_stats();
        let got = |p: &str| stats.iter().find(|x| x.peer == p).unwrap().delivered;
        assert!(
            got("fast") > 2 * got("slow"),
            "fast {} slow {}",
            got("fast"),
            got("slow")
        );
    }

    /// Random providers, losses and departures; invariants hold at every step.
    #[test]
    fn random_runs_keep_invariants_and_finish() {
        for seed in 1..20u64 {
            let mut x = seed;
            let mut rnd = move |n: u64| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % n
            };
            let t0 = Instant::now();
            let c = SchedulerConfig {
                request_timeout: Duration::from_secs(30),
                ..cfg()
            };
            let mut s = Scheduler::new(200, c.clone());
            for p in 0..4u8 {
                s.add_provider(p, t0);
            }
            // Provider 0 is complete and reliable; the others misbehave at random.
            let mut pending: Vec<(u8, u64)> = vec![];
            let mut now = t0;
            let mut delivered = HashSet::new();
            for _ in 0..20_000 {
                if s.outcome() == Outcome::Done {
                    break;
                }
                for r in s.poll(now) {
                    pending.push((r.peer, r.index));
                }
                assert!(s.in_flight() <= c.max_in_flight);
                for st in s.provider_stats() {
                    assert!(st.in_flight <= c.max_peer_window);
                }
                now += Duration::from_millis(100);
                if pending.is_empty() {
                    continue;
                }
                let (p, i) = pending.swap_remove(rnd(pending.len() as u64) as usize);
                match (p, rnd(10)) {
                    (0, _) | (_, 0..=5) => {
                        s.on_block(&p, i, now);
                        delivered.insert(i);
                    }
                    (_, 6) => s.on_dont_have(&p, i, now),
                    (_, 7) => s.on_invalid(&p, i, now),
                    (_, 8) => s.remove_provider(&p),
                    _ => {} // lost: left to time out
                }
            }
            assert_eq!(s.outcome(), Outcome::Done, "seed {seed}");
            assert_eq!(s.done_count(), 200);
            assert_eq!(delivered.len(), 200);
        }
    }
}
