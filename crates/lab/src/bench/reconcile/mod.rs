//! `reconcile`: what set reconciliation (`/neverust/reconcile/1.0.0`) saves against
//! blockexc's plain way of learning who holds which blocks (a want-have per block, a
//! presence back), measured side by side in one run.
//!
//! - pairs: two nodes each hold N blocks of a 2N-block dataset (two downloads halfway),
//!   differing in a given share of their blocks; each must learn what the other holds
//!   that it lacks. Reconciliation: one session. Plain: each side sends a want-have for
//!   every block it lacks and gets a presence for each.
//! - heal: the same at swarm scale after a partition heals: two groups of nodes whose
//!   members each hold their own share of a dataset meet, and every node learns from every
//!   node of the other group what it lacks, all at once; timed until the last knows.
//! - swarm: real node processes (`neverust start`), one holding a dataset and several
//!   downloading it at once, with reconciliation and then without (`--reconcile false`):
//!   wall time, and the control bytes every node wrote (wantlists, presences,
//!   reconciliation), from their metrics.
//!
//! The first two run in-process: real libp2p hosts (TCP, Noise, yamux on loopback, the
//! node's own network layer and reconciliation service) whose block sets are given as
//! index lists, since no store on this machine holds 10^6-block datasets twice. The
//! plain side speaks blockexc's wire format on a stream of its own and answers from the
//! same sets. Every learned difference is checked against the true one.

mod plain;
mod sets;
mod swarm;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use neverust_content::Cid;
use neverust_net::reconcile::{Holdings, ReconcileError, Reconciled};
use neverust_net::{NetConfig, NetError, NetMetrics, Network, StartError};
use neverust_store::{MemoryStore, StoreConfig};

use super::{BenchError, Ctx};
use crate::error_chain;
use crate::results::{MethodCost, ReconcileHeal, ReconcilePair, ReconcileResult};
use plain::{Asked, PlainError};
use sets::{cpu_seconds, median, PairSets};

/// Differences measured at each set size, as shares of the set.
pub const DIFFERENCES: [f64; 3] = [0.001, 0.01, 0.1];
const SESSION_LIMIT: Duration = Duration::from_secs(120);

/// Block index sets, one per tree, as a node's holdings.
pub(crate) struct Sets(HashMap<Cid, Arc<Vec<u64>>>);

impl Holdings for Sets {
    fn held(&self, tree: &Cid) -> Vec<u64> {
        self.0
            .get(tree)
            .map(|s| s.as_ref().clone())
            .unwrap_or_default()
    }
    fn downloading(&self, _tree: &Cid) -> bool {
        true
    }
}

/// Why an in-process host could not start, reach its peer, or learn what the peer holds.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum HostError {
    #[error("starting an in-process host")]
    Start(#[source] StartError),
    #[error("dialling host {peer}")]
    Dial {
        peer: PeerId,
        #[source]
        source: NetError,
    },
    #[error("reconciling with host {peer}")]
    Session {
        peer: PeerId,
        #[source]
        source: ReconcileError,
    },
    #[error("a session with host {peer} took over {limit:?}")]
    SessionTimeout { peer: PeerId, limit: Duration },
    #[error("asking host {peer} for want-haves")]
    Plain {
        peer: PeerId,
        #[source]
        source: PlainError,
    },
}

/// An in-process host holding `set` of `tree`, answering plain want-haves from it too.
pub(crate) struct Host {
    pub net: Network,
    pub set: Arc<Vec<u64>>,
}

impl Host {
    pub async fn start(tree: Cid, set: Vec<u64>) -> Result<Host, HostError> {
        let set = Arc::new(set);
        let holdings = Sets(HashMap::from([(tree, set.clone())]));
        let store = Arc::new(MemoryStore::new(StoreConfig {
            quota_max_bytes: 1 << 20,
            block_ttl: Duration::from_secs(3600),
        }));
        let net = Network::start_with_holdings(
            libp2p::identity::Keypair::generate_ed25519(),
            NetConfig {
                // Nothing to find in a DHT: the hosts are dialled directly.
                ..NetConfig::loopback("neverust-bench")
            },
            store,
            NetMetrics::new("altruistic"),
            Some(Arc::new(holdings)),
        )
        .await
        .map_err(HostError::Start)?;
        plain::serve(&net, set.clone());
        Ok(Host { net, set })
    }

    pub fn id(&self) -> PeerId {
        self.net.local_peer_id()
    }

    pub async fn connect(&self, other: &Host) -> Result<(), HostError> {
        let peer = other.id();
        self.net
            .dial(Some(peer), other.net.listen_addrs())
            .await
            .map_err(|source| HostError::Dial { peer, source })?;
        Ok(())
    }

    /// One reconciliation session with `other` about `tree`.
    async fn reconcile(&self, other: &Host, tree: Cid) -> Result<Reconciled, HostError> {
        let peer = other.id();
        self.net
            .reconcile(peer, tree)
            .await
            .map_err(|source| HostError::Session { peer, source })
    }

    /// Asks `other` about every block of `missing`, the plain way.
    async fn ask(&self, other: &Host, tree: Cid, missing: &[u64]) -> Result<Asked, HostError> {
        let peer = other.id();
        plain::ask(&self.net, peer, tree, missing)
            .await
            .map_err(|source| HostError::Plain { peer, source })
    }
}

/// A tree CID for the sets (any valid one: no block of it exists).
fn tree_of(seed: u64) -> Cid {
    let leaves = (0..2u64)
        .map(|i| neverust_content::sha256(&(seed ^ i).to_le_bytes()))
        .collect();
    neverust_content::MerkleTree::new(leaves)
        .expect("two leaves")
        .root_cid()
}

pub async fn run(ctx: &mut Ctx) -> Result<ReconcileResult, BenchError> {
    let p = ctx.profile.clone();
    let mut out = ReconcileResult {
        repetitions: p.reconcile_reps,
        ..Default::default()
    };
    let bar = ctx.ui.bar(
        (p.reconcile_sets.len() * DIFFERENCES.len()) as u64,
        "reconcile pairs",
    );
    for &n in &p.reconcile_sets {
        for &share in &DIFFERENCES {
            match pair(ctx.seed(), n, share, p.reconcile_reps).await {
                Ok(r) => {
                    ctx.ui.say(format!(
                        "reconcile: {n} blocks, {:.1} % differ: {} vs {} bytes ({:.0}x fewer), {:.1} vs {:.1} ms ({:.1}x faster){}",
                        share * 100.0,
                        r.reconcile.bytes,
                        r.plain.bytes,
                        r.bytes_ratio,
                        r.reconcile.wall_ms,
                        r.plain.wall_ms,
                        r.time_ratio,
                        if r.correct { "" } else { " — WRONG DIFFERENCE" }
                    ));
                    if !r.correct {
                        ctx.checks.errors += 1;
                    }
                    out.pairs.push(r);
                }
                Err(e) => {
                    ctx.checks.errors += 1;
                    out.errors.push(format!(
                        "pair of {n} blocks at {share}: {}",
                        error_chain(&e)
                    ));
                }
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();

    ctx.ui.say(format!(
        "reconcile: partition heal, {} nodes, {} blocks",
        p.reconcile_heal_nodes, p.reconcile_heal_blocks
    ));
    match heal(ctx.seed(), p.reconcile_heal_nodes, p.reconcile_heal_blocks).await {
        Ok(h) => {
            ctx.ui.say(format!(
                "reconcile: heal known after {:.1} ms vs {:.1} ms plain ({:.1}x), {} vs {} bytes{}",
                h.reconcile.wall_ms,
                h.plain.wall_ms,
                h.time_ratio,
                h.reconcile.bytes,
                h.plain.bytes,
                if h.correct {
                    ""
                } else {
                    " — WRONG DIFFERENCE"
                }
            ));
            if !h.correct {
                ctx.checks.errors += 1;
            }
            out.heal = Some(h);
        }
        Err(e) => {
            ctx.checks.errors += 1;
            out.errors.push(format!("heal: {}", error_chain(&e)));
        }
    }

    match swarm::run(ctx).await {
        Ok(s) => out.swarm = Some(s),
        Err(e) => {
            ctx.checks.errors += 1;
            out.errors.push(format!("swarm: {}", error_chain(&e)));
        }
    }
    Ok(out)
}

/// One pair of hosts at one size and difference, both methods `reps` times.
async fn pair(seed: u64, n: u64, share: f64, reps: usize) -> Result<ReconcilePair, HostError> {
    let tree = tree_of(seed);
    let sets = PairSets::new(seed, n, share);
    let a = Host::start(tree, sets.a.clone()).await?;
    let b = Host::start(tree, sets.b.clone()).await?;
    a.connect(&b).await?;
    let mut correct = true;
    let (mut rec, mut pl) = (Vec::new(), Vec::new());
    for _ in 0..reps.max(1) {
        // Reconciliation: one session tells both sides.
        let cpu = cpu_seconds();
        let started = Instant::now();
        let r = tokio::time::timeout(SESSION_LIMIT, a.reconcile(&b, tree))
            .await
            .map_err(|_| HostError::SessionTimeout {
                peer: b.id(),
                limit: SESSION_LIMIT,
            })??;
        let wall = started.elapsed();
        correct &= r.peer_has == sets.b_only && r.peer_lacks == sets.a_only;
        rec.push(MethodCost {
            bytes: r.stats.bytes_sent + r.stats.bytes_received,
            round_trips: r.stats.round_trips,
            messages: 0,
            wall_ms: wall.as_secs_f64() * 1e3,
            cpu_ms: (cpu_seconds() - cpu) * 1e3,
            by_runs: r.stats.by_runs,
        });

        // Plain: each side asks the other for every block it lacks, at once.
        let cpu = cpu_seconds();
        let started = Instant::now();
        let (ab, ba) = tokio::join!(
            a.ask(&b, tree, &sets.a_missing),
            b.ask(&a, tree, &sets.b_missing)
        );
        let wall = started.elapsed();
        let (ab, ba) = (ab?, ba?);
        correct &= ab.has == sets.b_only && ba.has == sets.a_only;
        pl.push(MethodCost {
            bytes: ab.bytes_sent + ba.bytes_sent,
            round_trips: 1,
            messages: ab.messages_sent + ba.messages_sent,
            wall_ms: wall.as_secs_f64() * 1e3,
            cpu_ms: (cpu_seconds() - cpu) * 1e3,
            by_runs: false,
        });
    }
    let (reconcile, plain) = (median(&rec), median(&pl));
    Ok(ReconcilePair {
        set_size: n,
        difference_share: share,
        difference: (sets.a_only.len() + sets.b_only.len()) as u64,
        correct,
        bytes_ratio: plain.bytes as f64 / reconcile.bytes.max(1) as f64,
        time_ratio: plain.wall_ms / reconcile.wall_ms.max(1e-6),
        cpu_ratio: plain.cpu_ms / reconcile.cpu_ms.max(1e-6),
        reconcile,
        plain,
    })
}

/// `k` hosts in two groups meet; every host learns from every host of the other group.
async fn heal(seed: u64, k: usize, blocks: u64) -> Result<ReconcileHeal, HostError> {
    let tree = tree_of(seed);
    let all = sets::heal_sets(seed, k.max(2), blocks);
    let mut hosts = Vec::new();
    for set in &all {
        hosts.push(Host::start(tree, set.clone()).await?);
    }
    let half = hosts.len() / 2;
    let (left, right) = hosts.split_at(half);
    for a in left {
        for b in right {
            a.connect(b).await?;
        }
    }
    let mut correct = true;

    let cpu = cpu_seconds();
    let started = Instant::now();
    let sessions = left.iter().flat_map(|a| {
        right
            .iter()
            .map(move |b| async move { (a, b, a.reconcile(b, tree).await) })
    });
    let mut bytes = 0;
    let mut round_trips = 0;
    for (a, b, r) in futures::future::join_all(sessions).await {
        let r = r?;
        let (a_only, b_only) = sets::difference(&a.set, &b.set);
        correct &= r.peer_has == b_only && r.peer_lacks == a_only;
        bytes += r.stats.bytes_sent + r.stats.bytes_received;
        round_trips = round_trips.max(r.stats.round_trips);
    }
    let reconcile = MethodCost {
        bytes,
        round_trips,
        messages: 0,
        wall_ms: started.elapsed().as_secs_f64() * 1e3,
        cpu_ms: (cpu_seconds() - cpu) * 1e3,
        by_runs: false,
    };

    let cpu = cpu_seconds();
    let started = Instant::now();
    let asks = hosts.iter().enumerate().flat_map(|(i, a)| {
        let others = if i < half { right } else { left };
        let missing = sets::complement(&a.set, blocks);
        others.iter().map(move |b| {
            let missing = missing.clone();
            async move { (a, b, a.ask(b, tree, &missing).await) }
        })
    });
    let (mut bytes, mut messages) = (0, 0);
    for (a, b, r) in futures::future::join_all(asks).await {
        let r = r?;
        let (_, b_only) = sets::difference(&a.set, &b.set);
        correct &= r.has == b_only;
        bytes += r.bytes_sent;
        messages += r.messages_sent;
    }
    let plain = MethodCost {
        bytes,
        round_trips: 1,
        messages,
        wall_ms: started.elapsed().as_secs_f64() * 1e3,
        cpu_ms: (cpu_seconds() - cpu) * 1e3,
        by_runs: false,
    };
    Ok(ReconcileHeal {
        nodes: hosts.len(),
        dataset_blocks: blocks,
        sessions: left.len() * right.len(),
        correct,
        bytes_ratio: plain.bytes as f64 / reconcile.bytes.max(1) as f64,
        time_ratio: plain.wall_ms / reconcile.wall_ms.max(1e-6),
        reconcile,
        plain,
    })
}

#[cfg(test)]
mod tests {
    /// Both methods find the true difference, between two hosts and across a healing
    /// partition, and the reconciliation's bytes stay a small share of the want-haves'.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_methods_find_the_true_difference() {
        let p = super::pair(11, 5_000, 0.01, 1).await.unwrap();
        assert!(p.correct, "{p:?}");
        assert_eq!(p.difference, 50);
        assert!(p.bytes_ratio > 10.0, "{p:?}");
        let h = super::heal(12, 4, 5_000).await.unwrap();
        assert!(h.correct, "{h:?}");
        assert_eq!(h.sessions, 4);
    }
}
