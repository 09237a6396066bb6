//! A validator (archivist/validation): once per proof period it draws fresh entropy and
//! challenges each slot of a running request filled before this period with probability
//! `1 / proofProbability`
//! (`proofs::proof_required`); it marks the challenges left unanswered past their deadline,
//! which slashes the host and, after `tolerance` of them, frees the slot for repair; and it
//! settles requests whose time has come, whoever made them.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use neverust_market::ids::{RequestId, SlotId};
use neverust_market::ledger::{Action, ChallengeStatus, MarketState};
use neverust_market::proofs::proof_required;
use neverust_market::states::{RequestState, SlotState};

use super::link::unix_now;
use super::metrics::ProofLabels;
use super::Market;
use crate::state::NodeState;

#[derive(Default)]
pub struct Validator {
    state: Mutex<Rounds>,
}

#[derive(Default)]
struct Rounds {
    period: u64,
    entropy: [u8; 32],
    /// Slots already looked at in this period.
    looked: BTreeSet<SlotId>,
    /// Challenges of ours whose outcome was counted.
    counted: BTreeSet<(SlotId, u64)>,
}

/// What one look at the books asks for.
#[derive(Default)]
struct Work {
    challenge: Vec<SlotId>,
    mark: Vec<(SlotId, u64)>,
    settle: Vec<RequestId>,
    outcomes: Vec<((SlotId, u64), &'static str)>,
}

impl Validator {
    pub async fn round(&self, state: &Arc<NodeState>, market: &Market) {
        let now = unix_now();
        let period_len = market.options.proof_period.max(1);
        let work = {
            let mut rounds = self.state.lock().expect("validator lock");
            let period = now / period_len;
            if period != rounds.period {
                rounds.period = period;
                rounds.entropy = rand::random();
                rounds.looked.clear();
            }
            let rounds = &mut *rounds;
            market.copy().read(|l| {
                let mut work = Work::default();
                for r in l.books().requests.values() {
                    let due = match r.state {
                        RequestState::New => now > r.expires_at,
                        RequestState::Started => now >= r.ends_at,
                        _ => false,
                    };
                    if due {
                        work.settle.push(r.id);
                    }
                }
                for (id, s) in &l.books().slots {
                    for (n, c) in s.challenges.iter().enumerate() {
                        let key = (*id, n as u64);
                        if c.validator != market.me {
                            continue;
                        }
                        match c.status {
                            ChallengeStatus::Open
                                if now > c.deadline && s.state == SlotState::Filled =>
                            {
                                work.mark.push(key)
                            }
                            ChallengeStatus::Open => {}
                            done if !rounds.counted.contains(&key) => {
                                rounds.counted.insert(key);
                                work.outcomes.push((
                                    key,
                                    match done {
                                        ChallengeStatus::Proven => "verified",
                                        ChallengeStatus::Invalid => "invalid",
                                        _ => "missed",
                                    },
                                ));
                            }
                            _ => {}
                        }
                    }
                    let Some(r) = l.request(&s.slot.request_id) else {
                        continue;
                    };
                    // As Archivist's `Proofs`: no proof is required in the period a slot
                    // was filled in, which the fill's own proof covers.
                    let live = r.state == RequestState::Started
                        && now < r.ends_at
                        && s.filled_at / period_len < period;
                    let open = s
                        .challenges
                        .iter()
                        .any(|c| c.status == ChallengeStatus::Open);
                    if !live || s.state != SlotState::Filled || open || !rounds.looked.insert(*id) {
                        continue;
                    }
                    if proof_required(&rounds.entropy, id, period, r.request.ask.proof_probability)
                    {
                        work.challenge.push(*id);
                    }
                }
                work
            })
        };
        let proofs = &state.metrics.market.proofs;
        for (_, outcome) in &work.outcomes {
            proofs
                .get_or_create(&ProofLabels {
                    role: "validator",
                    outcome,
                })
                .inc();
        }
        for slot in work.challenge {
            let entropy: [u8; 32] = rand::random();
            if let Err(e) = market.link.act(Action::Challenge { slot, entropy }).await {
                tracing::debug!(%slot, "challenging: {e}");
            }
        }
        for (slot, challenge) in work.mark {
            match market
                .link
                .act(Action::MarkProofMissing { slot, challenge })
                .await
            {
                Ok(outcome) => tracing::info!(%slot, challenge, ?outcome, "proof missed"),
                Err(e) => tracing::debug!(%slot, "marking a proof missing: {e}"),
            }
        }
        for request in work.settle {
            if let Err(e) = market.link.act(Action::Settle { request }).await {
                tracing::debug!(%request, "settling: {e}");
            }
        }
    }
}
