//! A host's sales (archivist/sales): one agent per slot it tries to hold, from reserving to
//! payout. Each round the host publishes its availabilities' terms when they changed,
//! answers open challenges on its slots, follows its sales to their end, and tries one open
//! slot of each request it holds nothing of and whose ask one of its availabilities matches.
//! At most one slot per request: a host that held two would lose two to one failure.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use neverust_market::ids::{SlotId, SlotRef};
use neverust_market::ledger::{Action, ChallengeStatus, MarketState, Outcome};
use neverust_market::request::{OfferTerms, StorageRequest};
use neverust_market::states::{Lifecycle, RequestState, SaleState, SlotState};
use neverust_market::views::{self, Reservation};
use rand::seq::SliceRandom;

use super::link::unix_now;
use super::metrics::{MarketMetrics, ProofLabels};
use super::slot_data::{self, HeldSlot};
use super::{Market, Trader};
use crate::state::NodeState;

/// A slot the host failed to take is not tried again for this long.
const RETRY_AFTER: Duration = Duration::from_secs(15);
/// Sales downloading at once.
const MAX_STARTING: usize = 2;
/// How long a host tries to reach one of a request's other holders before fetching.
const MEET_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Sale {
    pub slot: SlotRef,
    pub request: StorageRequest,
    pub state: SaleState,
    pub reservation: Option<Reservation>,
    pub held: Option<HeldSlot>,
}

#[derive(Default)]
pub struct Sales {
    pub by_slot: Mutex<BTreeMap<SlotId, Sale>>,
    /// Challenges being answered: (slot, challenge number).
    answering: Mutex<BTreeSet<(SlotId, u64)>>,
    tried: Mutex<BTreeMap<SlotId, Instant>>,
    published: Mutex<Option<Vec<OfferTerms>>>,
}

impl Sales {
    pub fn agent(&self, slot: &SlotId) -> Option<views::SlotAgent> {
        let sales = self.by_slot.lock().expect("sales lock");
        sales.get(slot).map(|s| views::SlotAgent {
            slot_index: s.slot.slot_index,
            request_id: s.slot.request_id,
            request: Some(s.request.clone()),
            reservation: s.reservation.clone(),
            state: s.state,
        })
    }

    /// Slots this host holds (filled and proving).
    pub fn held(&self) -> Vec<views::Slot> {
        let sales = self.by_slot.lock().expect("sales lock");
        sales
            .iter()
            .filter(|(_, s)| matches!(s.state, SaleState::SaleFilled | SaleState::SaleProving))
            .map(|(id, s)| views::Slot {
                id: *id,
                request: s.request.clone(),
                slot_index: s.slot.slot_index,
            })
            .collect()
    }

    fn set(&self, slot: &SlotId, state: SaleState) {
        if let Some(s) = self.by_slot.lock().expect("sales lock").get_mut(slot) {
            s.state = state;
        }
    }
}

pub async fn round(state: &Arc<NodeState>, market: &Arc<Market>, trader: &Trader) {
    // First: a challenge has seconds to be answered, and the steps below may wait on the
    // keeper.
    answer_challenges(state, market, trader);
    publish_terms(market, trader).await;
    resume_held(state, market, trader).await;
    follow_to_end(market, trader);
    take_open_slots(state, market, trader);
    let states: Vec<SaleState> = {
        let sales = trader.sales.by_slot.lock().expect("sales lock");
        sales.values().map(|s| s.state).collect()
    };
    MarketMetrics::set_states(&state.metrics.market.sales, states);
}

/// Publishes the availabilities' terms when they differ from what was last published.
async fn publish_terms(market: &Market, trader: &Trader) {
    let terms = trader.availabilities.terms();
    if trader.sales.published.lock().expect("sales lock").as_ref() == Some(&terms) {
        return;
    }
    let in_books = market
        .copy()
        .read(|l| l.books().offers.get(&market.me).cloned());
    if in_books.as_ref() != Some(&terms) {
        if let Err(e) = market
            .link
            .act(Action::Offer {
                terms: terms.clone(),
            })
            .await
        {
            tracing::debug!("publishing availabilities: {e}");
            return;
        }
    }
    *trader.sales.published.lock().expect("sales lock") = Some(terms);
}

/// Slots the books say this host fills but no agent follows (after a restart).
async fn resume_held(state: &Arc<NodeState>, market: &Market, trader: &Trader) {
    let mine: Vec<(SlotId, SlotRef, StorageRequest)> = market.copy().read(|l| {
        l.books()
            .slots
            .iter()
            .filter(|(_, s)| s.host == Some(market.me) && s.state == SlotState::Filled)
            .filter_map(|(id, s)| {
                let r = l.request(&s.slot.request_id)?;
                Some((*id, s.slot, r.request.clone()))
            })
            .collect()
    });
    for (id, slot, request) in mine {
        // Also a sale that gave up while its fill went through after all (its outcome lost
        // with a dropped stream or a slow echo): the books say this host holds the slot, so
        // it proves it.
        let followed = trader
            .sales
            .by_slot
            .lock()
            .expect("sales lock")
            .get(&id)
            .is_some_and(|s| !s.state.is_terminal());
        if followed {
            continue;
        }
        let (held, state_now) = match slot_data::held_slot(state, &request, slot.slot_index).await {
            Ok(h) => (Some(h), SaleState::SaleProving),
            Err(e) => {
                tracing::warn!(slot = %id, "the books say this host holds the slot, but: {e}");
                (None, SaleState::SaleErrored)
            }
        };
        tracing::info!(slot = %id, state = ?state_now, "resumed a sale from the ledger");
        let reservation = trader
            .availabilities
            .reservation_for(&slot.request_id, slot.slot_index);
        trader.sales.by_slot.lock().expect("sales lock").insert(
            id,
            Sale {
                slot,
                request,
                state: state_now,
                reservation,
                held,
            },
        );
    }
}

/// Starts answering every open challenge on a slot this host holds the data of and, the
/// books say, fills: from the moment the fill is sequenced, which this host may hear of
/// through its copy before the keeper's answer to the fill arrives.
fn answer_challenges(state: &Arc<NodeState>, market: &Arc<Market>, trader: &Trader) {
    let now = unix_now();
    let open: Vec<(SlotId, u64, neverust_market::proofs::Challenge, HeldSlot)> = {
        let sales = trader.sales.by_slot.lock().expect("sales lock");
        market.copy().read(|l| {
            sales
                .iter()
                .filter(|(_, s)| matches!(s.state, SaleState::SaleFilling | SaleState::SaleProving))
                .filter_map(|(id, s)| Some((id, l.slot(id)?, s.held.clone()?)))
                .filter(|(_, rec, _)| rec.host == Some(market.me))
                .flat_map(|(id, rec, held)| {
                    rec.challenges
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| c.status == ChallengeStatus::Open && c.deadline >= now)
                        .map(|(n, c)| (*id, n as u64, c.challenge.clone(), held.clone()))
                        .collect::<Vec<_>>()
                })
                .collect()
        })
    };
    for (slot, n, challenge, held) in open {
        if !trader
            .sales
            .answering
            .lock()
            .expect("sales lock")
            .insert((slot, n))
        {
            continue;
        }
        let (state, market) = (state.clone(), market.clone());
        tokio::spawn(async move {
            let labels = |outcome| ProofLabels {
                role: "host",
                outcome,
            };
            let proofs = &state.metrics.market.proofs;
            match slot_data::prove(&state, &held, challenge).await {
                Ok(proof) => {
                    let action = Action::SubmitProof {
                        slot,
                        challenge: n,
                        proof,
                    };
                    match market.link.act(action).await {
                        Ok(Outcome::Proven) => proofs.get_or_create(&labels("verified")).inc(),
                        Ok(_) => proofs.get_or_create(&labels("invalid")).inc(),
                        Err(e) => {
                            tracing::warn!(%slot, challenge = n, "proof not accepted: {e}");
                            proofs.get_or_create(&labels("missed")).inc()
                        }
                    };
                }
                Err(e) => {
                    tracing::warn!(%slot, challenge = n, "cannot prove: {e}");
                    proofs.get_or_create(&labels("missed")).inc();
                }
            }
        });
    }
}

/// Moves sales on when their request or slot ended, giving reservations back.
fn follow_to_end(market: &Market, trader: &Trader) {
    let mut ended = Vec::new();
    {
        let mut sales = trader.sales.by_slot.lock().expect("sales lock");
        market.copy().read(|l| {
            for (id, sale) in sales.iter_mut() {
                if !matches!(sale.state, SaleState::SaleFilled | SaleState::SaleProving) {
                    continue;
                }
                let Some(rec) = l.slot(id) else { continue };
                let request = l.request(&sale.slot.request_id).map(|r| r.state);
                let next = match (request, rec.state) {
                    (Some(RequestState::Finished), _) => SaleState::SaleFinished,
                    (Some(RequestState::Cancelled), _) => SaleState::SaleCancelled,
                    (Some(RequestState::Failed), _) => SaleState::SaleFailed,
                    // Freed (proofs missed): the slot is someone else's to repair now.
                    (_, SlotState::Repair | SlotState::Free) => SaleState::SaleFailed,
                    // Repaired by another host while this one was down: a host restarted
                    // from books older than the repair resumed the sale, and must let go.
                    _ if rec.host != Some(market.me) => SaleState::SaleFailed,
                    _ => continue,
                };
                let returned = if next == SaleState::SaleFinished {
                    sale.request.ask.collateral_per_slot().unwrap_or(0)
                } else {
                    0
                };
                sale.state = next;
                if let Some(r) = sale.reservation.take() {
                    ended.push((r, returned));
                }
            }
        });
    }
    for (r, returned) in ended {
        if let Err(e) = trader.availabilities.release(&r.id, returned) {
            tracing::warn!("giving a reservation back: {e}");
        }
    }
}

/// Tries one open slot of each request this host holds nothing of.
fn take_open_slots(state: &Arc<NodeState>, market: &Arc<Market>, trader: &Trader) {
    let now = unix_now();
    let starting = trader
        .sales
        .by_slot
        .lock()
        .expect("sales lock")
        .values()
        .filter(|s| {
            matches!(
                s.state,
                SaleState::SalePreparing
                    | SaleState::SaleSlotReserving
                    | SaleState::SaleDownloading
                    | SaleState::SaleInitialProving
                    | SaleState::SaleFilling
            )
        })
        .count();
    if starting >= MAX_STARTING {
        return;
    }
    let candidates: Vec<(StorageRequest, Vec<u64>, u64)> = market.copy().read(|l| {
        let max = l.config().max_reservations as usize;
        l.books()
            .requests
            .values()
            .filter(|r| r.request.client != market.me)
            .filter(|r| match r.state {
                RequestState::New => now < r.expires_at,
                RequestState::Started => now < r.ends_at,
                _ => false,
            })
            .map(|r| {
                let open = (0..r.request.ask.slots)
                    .filter(|i| {
                        l.slot(&r.request.slot_id(*i)).is_some_and(|s| {
                            matches!(s.state, SlotState::Free | SlotState::Repair)
                                && s.reservations.len() < max
                        })
                    })
                    .collect();
                (r.request.clone(), open, r.ends_at)
            })
            .collect()
    });
    let mut budget = MAX_STARTING - starting;
    for (request, mut open, ends_at) in candidates {
        if budget == 0 {
            return;
        }
        let id = request.id();
        let busy = {
            let sales = trader.sales.by_slot.lock().expect("sales lock");
            sales.values().any(|s| {
                s.slot.request_id == id
                    && !matches!(
                        s.state,
                        SaleState::SaleIgnored
                            | SaleState::SaleErrored
                            | SaleState::SaleFailed
                            | SaleState::SaleCancelled
                            | SaleState::SaleFinished
                    )
            })
        };
        if busy {
            continue;
        }
        open.shuffle(&mut rand::rng());
        let tried = trader.sales.tried.lock().expect("sales lock").clone();
        let Some(slot_index) = open.into_iter().find(|i| {
            tried
                .get(&request.slot_id(*i))
                .is_none_or(|at| at.elapsed() > RETRY_AFTER)
        }) else {
            continue;
        };
        let reservation = match trader
            .availabilities
            .reserve(&request.ask, id, slot_index, ends_at)
        {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("reserving availability: {e}");
                continue;
            }
        };
        let slot = SlotRef {
            request_id: id,
            slot_index,
        };
        trader
            .sales
            .tried
            .lock()
            .expect("sales lock")
            .insert(slot.id(), Instant::now());
        trader.sales.by_slot.lock().expect("sales lock").insert(
            slot.id(),
            Sale {
                slot,
                request: request.clone(),
                state: SaleState::SalePreparing,
                reservation: Some(reservation),
                held: None,
            },
        );
        budget -= 1;
        let (state, market) = (state.clone(), market.clone());
        tokio::spawn(async move {
            let Some(trader) = market.trader.as_ref() else {
                return;
            };
            if let Err((to, e)) = sell(&state, &market, trader, slot, &request).await {
                tracing::info!(slot = %slot.id(), "sale ended in {to:?}: {e}");
                let r = {
                    let mut sales = trader.sales.by_slot.lock().expect("sales lock");
                    sales.get_mut(&slot.id()).and_then(|s| {
                        s.state = to;
                        s.reservation.take()
                    })
                };
                if let Some(r) = r {
                    let _ = trader.availabilities.release(&r.id, 0);
                }
            }
        });
    }
}

/// Reserve, fetch, prove, fill. Errors carry the state the sale ends in.
async fn sell(
    state: &Arc<NodeState>,
    market: &Market,
    trader: &Trader,
    slot: SlotRef,
    request: &StorageRequest,
) -> Result<(), (SaleState, String)> {
    let sales = &trader.sales;
    let id = slot.id();
    sales.set(&id, SaleState::SaleSlotReserving);
    market
        .link
        .act(Action::ReserveSlot { slot })
        .await
        .map_err(|e| (SaleState::SaleIgnored, e.to_string()))?;
    sales.set(&id, SaleState::SaleDownloading);
    meet_holders(state, market, request).await;
    let was_repair = market
        .copy()
        .read(|l| l.slot(&id).is_some_and(|s| s.state == SlotState::Repair));
    let (held, rebuilt) = slot_data::fetch_slot(state, request, slot.slot_index)
        .await
        .map_err(|e| (SaleState::SaleErrored, e.to_string()))?;
    sales.set(&id, SaleState::SaleInitialProving);
    let challenge = market
        .copy()
        .read(|l| l.fill_challenge(request, slot.slot_index));
    let proof = slot_data::prove(state, &held, challenge)
        .await
        .map_err(|e| (SaleState::SaleErrored, e.to_string()))?;
    if let Some(s) = sales.by_slot.lock().expect("sales lock").get_mut(&id) {
        s.held = Some(held.clone());
        s.state = SaleState::SaleFilling;
    }
    let collateral = request.ask.collateral_per_slot().unwrap_or(0);
    market
        .fund(collateral)
        .await
        .map_err(|e| (SaleState::SaleErrored, e.to_string()))?;
    market
        .link
        .act(Action::FillSlot { slot, proof })
        .await
        .map_err(|e| (SaleState::SaleIgnored, e.to_string()))?;
    sales.set(&id, SaleState::SaleProving);
    let metrics = &state.metrics.market;
    metrics.slots_filled.inc();
    if was_repair {
        metrics.slots_repaired.inc();
    }
    if rebuilt {
        metrics.slots_rebuilt.inc();
    }
    tracing::info!(slot = %id, request = %slot.request_id, index = slot.slot_index, repair = was_repair, rebuilt, "slot filled");
    // Announced as a provider of the coded dataset, so a host repairing another slot finds
    // this one through the DHT; downloads ask a provider for blocks and take its don't-haves.
    // In the background: a DHT announce can take seconds, the first challenge may not.
    let (net, cid, tree) = (state.net.clone(), request.content.cid, held.tree);
    tokio::spawn(async move { net.provide_dataset(&cid, &tree).await });
    Ok(())
}

/// Connects to the request's client and the hosts of its other slots (where the network
/// knows them): downloads ask connected peers what they hold, so a slot can be fetched, or
/// rebuilt from the others, even when the DHT's providers are gone.
async fn meet_holders(state: &Arc<NodeState>, market: &Market, request: &StorageRequest) {
    let holders: Vec<_> = market.copy().read(|l| {
        let hosts = (0..request.ask.slots).filter_map(|i| l.slot(&request.slot_id(i))?.host);
        std::iter::once(request.client).chain(hosts).collect()
    });
    let me = state.net.local_peer_id();
    let dials = holders
        .iter()
        .filter_map(|a| market.copy().peer_of(a))
        .filter(|p| *p != me)
        .map(|p| {
            let net = state.net.clone();
            async move {
                let _ = tokio::time::timeout(MEET_TIMEOUT, net.dial(Some(p), Vec::new())).await;
            }
        });
    futures::future::join_all(dials).await;
}
