//! The decisions of fetching one block by its CID (a manifest) without the I/O: how long
//! the first provider lookup may take before the connected peers are asked instead, when
//! to look up again, how long silent providers are waited for, when "nobody has it" is the
//! answer. Fed the time and what happened, it says what to do next; `Network::fetch_block`
//! does it.

use std::collections::HashSet;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How long a lookup that finds no provider is repeated before the answer is "nobody".
pub const NO_PROVIDER_GRACE: Duration = Duration::from_secs(5);
/// How long the providers asked may stay silent before they are asked again. A manifest
/// is small, so a duplicate answer costs little.
pub const ASK_AGAIN: Duration = Duration::from_secs(3);
/// How long a fetch's first provider lookup may take before the connected peers are asked.
pub const LOOKUP_PATIENCE: Duration = Duration::from_secs(1);
/// How long to wait for an answer before looking again when nobody asked is left to
/// answer (all said no), or when the peers asked were merely connected ones.
const RETRY: Duration = Duration::from_secs(1);
const FIRST_PAUSE: Duration = Duration::from_millis(25);
const LONGEST_PAUSE: Duration = Duration::from_millis(500);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next<P> {
    /// Look providers up in the DHT, giving up on the lookup at `until`.
    LookUp {
        until: Instant,
    },
    /// Ask the connected peers directly: the shell lists them for [`BlockFetch::connected`].
    ListConnected,
    /// Ask these peers for the block, then [`BlockFetch::wait`].
    Ask(Vec<P>),
    /// Pause until `until`, then [`BlockFetch::start`] again.
    Pause {
        until: Instant,
    },
    /// Wait for answers until `until`, then [`BlockFetch::waited_out`].
    Wait {
        until: Instant,
    },
    Fail(Failure),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No provider was found, or none that was found answered.
    NoProviders,
    /// Providers were found but none delivered within the time given.
    Timeout { waited: Duration },
}

pub struct BlockFetch<P> {
    started: Instant,
    deadline: Instant,
    /// Providers asked that have not said no yet.
    asked: HashSet<P>,
    ever_found: bool,
    asked_connected: bool,
    /// This round asked connected peers rather than providers.
    direct: bool,
    pause: Duration,
    round: Instant,
}

impl<P: Clone + Eq + Hash> BlockFetch<P> {
    pub fn new(now: Instant, timeout: Duration) -> Self {
        BlockFetch {
            started: now,
            deadline: now + timeout,
            asked: HashSet::new(),
            ever_found: false,
            asked_connected: false,
            direct: false,
            pause: FIRST_PAUSE,
            round: now,
        }
    }

    /// The next lookup. The first gets a short patience: one stuck on unreachable peers (a
    /// partition, dead nodes) would hold the fetch to the query timeout, while a connected
    /// peer may have the block. Past it, the connected peers are asked.
    pub fn start(&mut self, now: Instant) -> Next<P> {
        let until = if self.asked_connected || self.ever_found {
            self.deadline
        } else {
            (now + LOOKUP_PATIENCE).min(self.deadline)
        };
        Next::LookUp { until }
    }

    /// The lookup's answer; `None` when it ran out of patience.
    pub fn looked_up(&mut self, found: Option<Vec<P>>, now: Instant) -> Next<P> {
        let found = match found {
            Some(found) => found,
            None if now >= self.deadline => return self.fail(),
            None => Vec::new(),
        };
        if found.is_empty() && !self.ever_found && !self.asked_connected {
            // An upload is acknowledged before its announcement lands, and under load the
            // announcement takes seconds: the connected peers are asked directly, once (a
            // small message each, cheaper than another DHT walk).
            self.asked_connected = true;
            return Next::ListConnected;
        }
        self.ever_found |= !found.is_empty();
        self.ask(found, false, now)
    }

    /// The connected peers, to ask directly.
    pub fn connected(&mut self, peers: Vec<P>, now: Instant) -> Next<P> {
        self.ask(peers, true, now)
    }

    fn ask(&mut self, peers: Vec<P>, direct: bool, now: Instant) -> Next<P> {
        if peers.is_empty() && !self.ever_found {
            // Nobody, again: a clear answer once an announcement has had time to land;
            // polling until the deadline would only delay the 404. Short pauses at first:
            // the announcement is usually milliseconds away.
            if now.duration_since(self.started) >= NO_PROVIDER_GRACE {
                return Next::Fail(Failure::NoProviders);
            }
            let until = now + self.pause;
            self.pause = (self.pause * 2).min(LONGEST_PAUSE);
            return Next::Pause { until };
        }
        self.direct = direct;
        self.round = now;
        // Peers asked directly are not providers: a silent one must not count as a
        // provider still to answer (that would hold off the next lookup).
        let to_ask = peers
            .into_iter()
            .filter(|p| direct || self.asked.insert(p.clone()))
            .collect();
        Next::Ask(to_ask)
    }

    /// How long to wait for answers now: until every provider asked has said no (then a
    /// second, as after asking connected peers), or until they have been silent too long
    /// (an answer can be lost with a connection that closed under it).
    pub fn wait(&self) -> Next<P> {
        let until = if self.asked.is_empty() || self.direct {
            self.round + RETRY
        } else {
            self.round + ASK_AGAIN
        };
        Next::Wait {
            until: until.min(self.deadline),
        }
    }

    /// `peer` said it does not have the block, sent a bad one, or left: it may be asked
    /// again after the next lookup.
    pub fn answered_no(&mut self, peer: &P) {
        self.asked.remove(peer);
    }

    /// Nothing came in time.
    pub fn waited_out(&mut self, now: Instant) -> Next<P> {
        self.asked.clear();
        if now >= self.deadline {
            return self.fail();
        }
        self.start(now)
    }

    /// `peer` delivered: the peers worth starting the dataset's download from (the DHT's
    /// providers, or the one connected peer that had it).
    pub fn providers_after(&self, peer: P) -> Vec<P> {
        if self.ever_found {
            self.asked.iter().cloned().collect()
        } else {
            vec![peer]
        }
    }

    fn fail(&self) -> Next<P> {
        Next::Fail(if self.ever_found {
            Failure::Timeout {
                waited: self.deadline.duration_since(self.started),
            }
        } else {
            Failure::NoProviders
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(20);
    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn nobody_anywhere_is_a_clear_no_after_the_grace() {
        let t0 = Instant::now();
        let mut f: BlockFetch<&str> = BlockFetch::new(t0, T);
        assert_eq!(
            f.start(t0),
            Next::LookUp {
                until: t0 + LOOKUP_PATIENCE
            }
        );
        assert_eq!(f.looked_up(Some(vec![]), t0), Next::ListConnected);
        assert_eq!(
            f.connected(vec![], t0),
            Next::Pause {
                until: t0 + 25 * MS
            }
        );
        // Once the connected peers were asked, lookups get the whole time.
        assert_eq!(f.start(t0), Next::LookUp { until: t0 + T });
        let mut now = t0;
        let mut pauses = Vec::new();
        loop {
            match f.looked_up(Some(vec![]), now) {
                Next::Pause { until } => {
                    pauses.push(until - now);
                    now = until;
                }
                Next::Fail(Failure::NoProviders) => break,
                other => panic!("{other:?}"),
            }
        }
        assert!(now - t0 >= NO_PROVIDER_GRACE && now - t0 < NO_PROVIDER_GRACE + LONGEST_PAUSE);
        assert_eq!(pauses[0], 50 * MS, "pauses double");
        assert_eq!(*pauses.last().unwrap(), LONGEST_PAUSE, "up to a cap");
    }

    #[test]
    fn providers_are_asked_once_each_and_waited_for_until_all_say_no() {
        let t0 = Instant::now();
        let mut f = BlockFetch::new(t0, T);
        f.start(t0);
        assert_eq!(
            f.looked_up(Some(vec!["a", "b"]), t0),
            Next::Ask(vec!["a", "b"])
        );
        assert_eq!(
            f.wait(),
            Next::Wait {
                until: t0 + ASK_AGAIN
            }
        );
        f.answered_no(&"a");
        assert_eq!(
            f.wait(),
            Next::Wait {
                until: t0 + ASK_AGAIN
            },
            "b may still answer"
        );
        f.answered_no(&"b");
        assert_eq!(
            f.wait(),
            Next::Wait { until: t0 + RETRY },
            "nobody left to answer"
        );
        let t1 = t0 + RETRY;
        assert_eq!(f.waited_out(t1), Next::LookUp { until: t0 + T });
        // The same providers found again are asked again; a new one joins them.
        let Next::Ask(mut again) = f.looked_up(Some(vec!["a", "c"]), t1) else {
            panic!("asked")
        };
        again.sort();
        assert_eq!(again, vec!["a", "c"]);
        let mut who = f.providers_after("c");
        who.sort();
        assert_eq!(who, vec!["a", "c"], "the providers found seed the download");
    }

    #[test]
    fn providers_found_but_silent_time_out_at_the_deadline() {
        let t0 = Instant::now();
        let mut f = BlockFetch::new(t0, Duration::from_secs(4));
        f.start(t0);
        f.looked_up(Some(vec!["a"]), t0);
        let Next::Wait { until } = f.wait() else {
            panic!()
        };
        assert_eq!(until, t0 + ASK_AGAIN);
        let Next::LookUp { until } = f.waited_out(until) else {
            panic!()
        };
        assert_eq!(
            until,
            t0 + Duration::from_secs(4),
            "no lookup outlives the fetch"
        );
        assert_eq!(
            f.looked_up(None, until),
            Next::Fail(Failure::Timeout {
                waited: Duration::from_secs(4)
            })
        );
    }

    #[test]
    fn connected_peers_asked_directly_are_not_waited_for_as_providers() {
        let t0 = Instant::now();
        let mut f = BlockFetch::new(t0, T);
        f.start(t0);
        assert_eq!(f.looked_up(None, t0 + LOOKUP_PATIENCE), Next::ListConnected);
        let t1 = t0 + LOOKUP_PATIENCE;
        assert_eq!(f.connected(vec!["x"], t1), Next::Ask(vec!["x"]));
        assert_eq!(f.wait(), Next::Wait { until: t1 + RETRY });
        assert_eq!(f.providers_after("x"), vec!["x"], "the peer that had it");
    }
}
