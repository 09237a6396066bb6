//! The decisions of a dataset download without its I/O: when to look for providers again,
//! whom to ask for which block (the [`Scheduler`]), who counts as a provider (the DHT's,
//! whole; peers found holding part of the dataset), and when to give up. Fed what happened
//! and the time, it says what to do; the download's exchange moves the bytes.
//!
//! It wants a contiguous range of a tree's leaves: all of them for a dataset, one slot's
//! for a marketplace host. Indices in and out are the tree's; the [`Scheduler`] counts
//! from the range's start.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;
use std::ops::Range;
use std::time::{Duration, Instant};

use super::scheduler::{Cancel, Outcome, Scheduler, SchedulerConfig};

/// How long a download may go without a single new block before it gives up.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How often providers are looked up again while a download is short of them.
pub const RELOOKUP_INTERVAL: Duration = Duration::from_secs(3);

/// Why a download ended without every block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    NoProviders,
    /// No provider delivered these blocks (the first few) for `waited`.
    Stalled {
        missing: Vec<u64>,
        waited: Duration,
    },
}

/// A block accepted: the duplicate requests to cancel, and how long it was waited for.
#[derive(Debug)]
pub struct Accepted<P> {
    pub cancels: Vec<Cancel<P>>,
    pub waited: Option<Duration>,
}

pub struct Policy<P> {
    sched: Scheduler<P>,
    /// The leaves wanted: the scheduler's index 0 is the tree's `range.start`.
    range: Range<u64>,
    /// The tree's leaf count, which every delivered proof must state.
    nleaves: u64,
    providers: HashSet<P>,
    lookup_running: bool,
    last_lookup: Option<Instant>,
    last_progress: Instant,
    asked_at: HashMap<u64, Instant>,
}

impl<P: Clone + Eq + Hash + Ord + std::fmt::Debug> Policy<P> {
    /// A download of all `total` blocks of a dataset whose first lookup starts (or was
    /// answered) at `now`.
    pub fn new(total: u64, now: Instant) -> Self {
        Self::for_range(0..total, total, now)
    }

    /// A download of leaves `range` of a tree of `nleaves` leaves; `range` lies within
    /// `0..nleaves` (the caller checks: a range past the tree is nobody's to fetch).
    pub fn for_range(range: Range<u64>, nleaves: u64, now: Instant) -> Self {
        debug_assert!(range.start <= range.end && range.end <= nleaves);
        Policy {
            sched: Scheduler::new(range_len(&range), SchedulerConfig::default()),
            range,
            nleaves,
            providers: HashSet::new(),
            lookup_running: false,
            last_lookup: Some(now),
            last_progress: now,
            asked_at: HashMap::new(),
        }
    }

    /// Peers that hold the whole dataset (the DHT names them).
    pub fn add_providers(&mut self, found: impl IntoIterator<Item = P>, now: Instant) {
        for p in found {
            if self.providers.insert(p.clone()) {
                self.sched.add_provider(p, now);
            }
        }
    }

    /// A lookup started by [`Policy::start_lookup`] answered.
    pub fn lookup_done(&mut self, found: impl IntoIterator<Item = P>, now: Instant) {
        self.lookup_running = false;
        self.add_providers(found, now);
    }

    /// Whether to start a lookup now: short of providers (fewer than two, or none left for
    /// some block), none running, and the last one long enough ago. Records that it runs.
    pub fn start_lookup(&mut self, now: Instant) -> bool {
        let short =
            self.providers.len() < 2 || matches!(self.sched.outcome(), Outcome::Stalled { .. });
        let due = self
            .last_lookup
            .is_none_or(|t| now.duration_since(t) >= RELOOKUP_INTERVAL);
        if !short || self.lookup_running || !due {
            return false;
        }
        self.last_lookup = Some(now);
        self.lookup_running = true;
        true
    }

    /// `peer` holds `has` (sorted) of the missing blocks: a provider of those from now on.
    /// True when it says something new (it is to be asked again later). Blocks outside the
    /// range say it is fetching the tree too, so it may hold the range's later.
    pub fn add_holder(&mut self, peer: P, has: &[u64], now: Instant) -> bool {
        if has.is_empty() {
            return false;
        }
        let has: Vec<u64> = has.iter().filter_map(|&i| self.local(i)).collect();
        if self.sched.is_provider(&peer) {
            for &index in &has {
                self.sched.on_have(&peer, index);
            }
        } else {
            self.sched.add_partial_provider(peer.clone(), &has, now);
        }
        self.providers.insert(peer);
        true
    }

    pub fn is_provider(&self, peer: &P) -> bool {
        self.providers.contains(peer)
    }

    /// The requests to send now, by peer, lowest index first.
    pub fn requests(&mut self, now: Instant) -> BTreeMap<P, Vec<u64>> {
        let mut out: BTreeMap<P, Vec<u64>> = BTreeMap::new();
        for r in self.sched.poll(now) {
            let index = self.range.start + r.index;
            self.asked_at.entry(index).or_insert(now);
            out.entry(r.peer).or_default().push(index);
        }
        out
    }

    /// A block `peer` delivered, verified against its CID and the tree root; `nleaves` is
    /// its proof's leaf count. `None` when it is not taken: out of range, already held, or
    /// of another shape of tree than this dataset's (an offence of the peer's).
    pub fn on_block(
        &mut self,
        peer: &P,
        index: u64,
        nleaves: Option<u64>,
        now: Instant,
    ) -> Option<Accepted<P>> {
        let local = self.local(index).filter(|&i| !self.sched.is_done(i))?;
        if nleaves != Some(self.nleaves) {
            self.sched.on_invalid(peer, local, now);
            return None;
        }
        let mut cancels = self.sched.on_block(peer, local, now);
        for c in &mut cancels {
            c.index += self.range.start;
        }
        self.last_progress = now;
        let waited = self.asked_at.remove(&index).map(|t| now.duration_since(t));
        Some(Accepted { cancels, waited })
    }

    pub fn on_dont_have(&mut self, peer: &P, index: u64, now: Instant) {
        if let Some(local) = self.local(index) {
            self.sched.on_dont_have(peer, local, now);
        }
    }

    pub fn on_invalid(&mut self, peer: &P, index: u64, now: Instant) {
        if let Some(local) = self.local(index) {
            self.sched.on_invalid(peer, local, now);
        }
    }

    /// `peer` left: its requests go to the others.
    pub fn peer_gone(&mut self, peer: &P) {
        if self.providers.remove(peer) {
            self.sched.remove_provider(peer);
        }
    }

    /// Whether the download is over, and how. `syncing`: peers are still being asked what
    /// they hold, so having no provider yet is not the end.
    pub fn verdict(&self, now: Instant, syncing: bool) -> Option<Result<(), Failure>> {
        if self.providers.is_empty() && self.sched.done_count() == 0 && !syncing {
            return Some(Err(Failure::NoProviders));
        }
        match self.sched.outcome() {
            Outcome::Done => Some(Ok(())),
            Outcome::Stalled { missing }
                if now.duration_since(self.last_progress) >= STALL_TIMEOUT =>
            {
                Some(Err(if self.providers.is_empty() {
                    Failure::NoProviders
                } else {
                    Failure::Stalled {
                        missing: self.global(missing),
                        waited: now.duration_since(self.last_progress),
                    }
                }))
            }
            _ => None,
        }
    }

    /// When to look again if nothing happens: a request's deadline, or the next lookup.
    pub fn wake(&self, now: Instant) -> Instant {
        let relookup = now + RELOOKUP_INTERVAL;
        self.sched
            .next_deadline()
            .map_or(relookup, |d| d.min(relookup))
    }

    pub fn missing(&self) -> Vec<u64> {
        self.global(self.sched.missing())
    }

    pub fn done_count(&self) -> u64 {
        self.sched.done_count()
    }

    pub fn in_flight(&self) -> usize {
        self.sched.in_flight()
    }

    /// Time since the last block arrived (or the start).
    pub fn since_progress(&self, now: Instant) -> Duration {
        now.duration_since(self.last_progress)
    }

    /// The scheduler's index of the tree's leaf `index`, when it is wanted.
    fn local(&self, index: u64) -> Option<u64> {
        self.range
            .contains(&index)
            .then(|| index - self.range.start)
    }

    fn global(&self, mut local: Vec<u64>) -> Vec<u64> {
        for i in &mut local {
            *i += self.range.start;
        }
        local
    }
}

/// How many leaves `range` holds (none when it is reversed).
pub(super) fn range_len(range: &Range<u64>) -> u64 {
    range.end.saturating_sub(range.start)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn without_providers_it_ends_unless_peers_are_still_asked() {
        let t0 = Instant::now();
        let p: Policy<&str> = Policy::new(4, t0);
        assert_eq!(p.verdict(t0, true), None, "sessions may still name holders");
        assert_eq!(p.verdict(t0, false), Some(Err(Failure::NoProviders)));
    }

    #[test]
    fn lookups_repeat_while_short_of_providers_never_two_at_once() {
        let t0 = Instant::now();
        let mut p: Policy<&str> = Policy::new(4, t0);
        assert!(!p.start_lookup(t0 + S), "the first lookup has just run");
        assert!(p.start_lookup(t0 + RELOOKUP_INTERVAL));
        assert!(
            !p.start_lookup(t0 + 10 * RELOOKUP_INTERVAL),
            "one is running"
        );
        p.lookup_done(["a"], t0 + 11 * RELOOKUP_INTERVAL);
        assert!(
            p.start_lookup(t0 + 12 * RELOOKUP_INTERVAL),
            "one provider is short"
        );
        p.lookup_done(["b"], t0 + 12 * RELOOKUP_INTERVAL);
        assert!(
            !p.start_lookup(t0 + 20 * RELOOKUP_INTERVAL),
            "two providers with every block are enough"
        );
    }

    #[test]
    fn blocks_are_asked_taken_once_and_timed() {
        let t0 = Instant::now();
        let mut p = Policy::new(3, t0);
        p.add_providers(["a"], t0);
        let asked = p.requests(t0);
        assert_eq!(asked.get("a"), Some(&vec![0, 1, 2]));
        let got = p.on_block(&"a", 1, Some(3), t0 + S).unwrap();
        assert!(got.cancels.is_empty());
        assert_eq!(got.waited, Some(S));
        assert!(
            p.on_block(&"a", 1, Some(3), t0 + S).is_none(),
            "a duplicate"
        );
        assert!(
            p.on_block(&"a", 7, Some(3), t0 + S).is_none(),
            "out of range"
        );
        assert!(
            p.on_block(&"a", 0, Some(4), t0 + S).is_none(),
            "a leaf of another shape of tree"
        );
        assert_eq!(p.verdict(t0 + S, false), None);
        p.on_block(&"a", 0, Some(3), t0 + S).unwrap();
        p.on_block(&"a", 2, Some(3), t0 + S).unwrap();
        assert_eq!(p.verdict(t0 + S, false), Some(Ok(())));
    }

    #[test]
    fn a_block_nobody_has_stalls_the_download_after_the_timeout() {
        let t0 = Instant::now();
        let mut p = Policy::new(2, t0);
        p.add_providers(["a"], t0);
        p.requests(t0);
        p.on_block(&"a", 0, Some(2), t0).unwrap();
        p.on_dont_have(&"a", 1, t0);
        assert_eq!(p.verdict(t0 + STALL_TIMEOUT - S, false), None);
        assert_eq!(
            p.verdict(t0 + STALL_TIMEOUT, false),
            Some(Err(Failure::Stalled {
                missing: vec![1],
                waited: STALL_TIMEOUT
            }))
        );
        // A holder found meanwhile unblocks it.
        assert!(p.add_holder("b", &[1], t0 + S));
        assert_eq!(p.requests(t0 + S).get("b"), Some(&vec![1]));
        assert_eq!(p.verdict(t0 + STALL_TIMEOUT, false), None);
    }

    #[test]
    fn a_partial_holder_is_asked_only_for_what_it_holds() {
        let t0 = Instant::now();
        let mut p = Policy::new(4, t0);
        assert!(!p.add_holder("h", &[], t0), "holding nothing says nothing");
        assert!(p.add_holder("h", &[2, 3], t0));
        assert!(p.is_provider(&"h"));
        assert_eq!(p.requests(t0).get("h"), Some(&vec![2, 3]));
        p.peer_gone(&"h");
        assert!(!p.is_provider(&"h"));
        assert_eq!(p.verdict(t0, false), Some(Err(Failure::NoProviders)));
    }

    #[test]
    fn a_range_is_asked_taken_and_reported_in_the_trees_indices() {
        let t0 = Instant::now();
        let mut p = Policy::for_range(4..7, 12, t0);
        p.add_providers(["a"], t0);
        assert_eq!(p.missing(), vec![4, 5, 6]);
        assert_eq!(p.requests(t0).get("a"), Some(&vec![4, 5, 6]));
        assert!(p.on_block(&"a", 3, Some(12), t0).is_none(), "before it");
        assert!(p.on_block(&"a", 7, Some(12), t0).is_none(), "after it");
        assert!(
            p.on_block(&"a", 5, Some(3), t0).is_none(),
            "a proof must state the tree's leaf count, not the range's length"
        );
        let got = p.on_block(&"a", 4, Some(12), t0 + S).unwrap();
        assert_eq!(got.waited, Some(S));
        assert_eq!((p.missing(), p.done_count()), (vec![5, 6], 1));
        p.on_dont_have(&"a", 9, t0 + S); // not wanted: nothing to say
        p.on_dont_have(&"a", 6, t0 + S);
        assert_eq!(
            p.verdict(t0 + S + STALL_TIMEOUT, false),
            Some(Err(Failure::Stalled {
                missing: vec![6],
                waited: STALL_TIMEOUT
            }))
        );
        // A peer fetching the tree too, with none of the range yet: watched, asked nothing.
        assert!(p.add_holder("o", &[0, 1], t0 + S));
        assert!(p.add_holder("h", &[1, 6, 9], t0 + S));
        let asked = p.requests(t0 + S);
        assert_eq!(asked.get("h"), Some(&vec![6]));
        assert_eq!(asked.get("o"), None);
        for (peer, indices) in asked {
            for i in indices {
                p.on_block(&peer, i, Some(12), t0 + 2 * S);
            }
        }
        assert_eq!(p.verdict(t0 + 2 * S, false), Some(Ok(())));
        assert_eq!(p.done_count(), 3);
    }

    #[test]
    fn a_ranges_duplicate_requests_are_cancelled_by_the_trees_index() {
        let t0 = Instant::now();
        let mut p = Policy::for_range(10..11, 20, t0);
        p.add_providers(["a", "b"], t0);
        let asked = p.requests(t0);
        assert_eq!(asked.get("a"), Some(&vec![10]), "endgame: asked of both");
        assert_eq!(asked.get("b"), Some(&vec![10]));
        let got = p.on_block(&"b", 10, Some(20), t0 + S).unwrap();
        assert_eq!(
            got.cancels,
            vec![Cancel {
                peer: "a",
                index: 10
            }]
        );
        assert_eq!(p.verdict(t0 + S, false), Some(Ok(())));
    }

    #[test]
    fn it_wakes_for_the_next_request_deadline_or_lookup() {
        let t0 = Instant::now();
        let mut p: Policy<&str> = Policy::new(2, t0);
        assert_eq!(p.wake(t0), t0 + RELOOKUP_INTERVAL);
        p.add_providers(["a"], t0);
        p.requests(t0);
        let request_timeout = SchedulerConfig::default().request_timeout;
        let later = t0 + request_timeout;
        assert_eq!(p.wake(later - S), later.min(later - S + RELOOKUP_INTERVAL));
    }
}
