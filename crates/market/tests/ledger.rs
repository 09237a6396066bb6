//! The signed ledger end to end: a dataset coded into slots, a request, hosts filling and
//! proving, validators challenging, payouts; and a property test that tokens are conserved and
//! that replaying the log rebuilds the same books.

use libp2p_identity::Keypair;
use neverust_content::{cid_from_digest, codec};
use neverust_market::erasure::{encode, slot_tree, SlotSet};
use neverust_market::ids::{Address, Nonce, SlotId, SlotRef};
use neverust_market::ledger::{
    Action, ChallengeStatus, LedgerError, MarketConfig, MarketState, MemoryLedger, Outcome,
    SignedAction, MAX_ACTION_AGE,
};
use neverust_market::proofs::{prove, Challenge, StorageProof};
use neverust_market::request::{ErasureParams, StorageAsk, StorageContent, StorageRequest};
use neverust_market::states::{RequestState, SlotState};
use proptest::prelude::*;

const BLOCK: usize = 64;
const RATE: u128 = 2;
const COLLATERAL_PER_BYTE: u128 = 10;

struct World {
    set: SlotSet,
    market: MemoryLedger,
    client: Keypair,
    hosts: Vec<Keypair>,
    validator: Keypair,
}

fn addr(k: &Keypair) -> Address {
    Address::of(&k.public())
}

fn world() -> World {
    let blocks: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i.wrapping_mul(37); BLOCK]).collect();
    let set = encode(&blocks, ErasureParams::new(4, 1).unwrap()).unwrap();
    let config = MarketConfig {
        block_size: BLOCK as u64,
        ..MarketConfig::default()
    };
    let mut w = World {
        set,
        market: MemoryLedger::new(config),
        client: Keypair::generate_secp256k1(),
        hosts: (0..6)
            .map(|i| {
                if i % 2 == 0 {
                    Keypair::generate_ed25519()
                } else {
                    Keypair::generate_secp256k1()
                }
            })
            .collect(),
        validator: Keypair::generate_ed25519(),
    };
    w.market.deposit(&w.client, 0, 1_000_000_000).unwrap();
    for h in w.hosts.clone() {
        w.market.deposit(&h, 0, 1_000_000).unwrap();
    }
    w
}

impl World {
    fn request(&self, nonce: u8) -> StorageRequest {
        StorageRequest {
            client: addr(&self.client),
            ask: StorageAsk {
                proof_probability: 4,
                price_per_byte_per_second: RATE,
                collateral_per_byte: COLLATERAL_PER_BYTE,
                slots: 4,
                slot_size: self.set.layout.slot_size(),
                duration: 1000,
                max_slot_loss: 1,
            },
            content: StorageContent {
                cid: cid_from_digest(codec::MANIFEST, &[nonce; 32]),
                merkle_root: self.set.verify_root(),
            },
            expiry: 100,
            nonce: Nonce([nonce; 32]),
        }
    }

    fn answer(&self, c: &Challenge) -> StorageProof {
        let slot = &self.set.slots[c.slot_index as usize];
        let root_proof = self.set.verify_tree().proof(slot.index).unwrap();
        prove(c, &slot_tree(&slot.blocks), &root_proof, |i| {
            slot.blocks.get(i as usize).cloned()
        })
        .unwrap()
    }

    fn fill(
        &mut self,
        host: usize,
        req: &StorageRequest,
        index: u64,
        at: u64,
    ) -> Result<bool, LedgerError> {
        let slot = SlotRef {
            request_id: req.id(),
            slot_index: index,
        };
        let key = self.hosts[host].clone();
        self.market.reserve_slot(&key, at, slot)?;
        let proof = self.answer(&self.market.fill_challenge(req, index));
        self.market.fill_slot(&key, at, slot, proof)
    }

    fn conserved(&self) {
        let b = self.market.books();
        assert_eq!(b.accounted(), Some(b.minted));
    }
}

fn collateral(w: &World) -> u128 {
    COLLATERAL_PER_BYTE * w.set.layout.slot_size() as u128
}

fn rate(w: &World) -> u128 {
    RATE * w.set.layout.slot_size() as u128
}

#[test]
fn a_request_runs_to_its_end_and_everyone_is_paid() {
    let mut w = world();
    let req = w.request(1);
    let total = req.ask.total_price().unwrap();
    let id = w
        .market
        .post_request(&w.client.clone(), 10, req.clone())
        .unwrap();
    assert_eq!(w.market.balance(&addr(&w.client)), 1_000_000_000 - total);
    for i in 0..4u64 {
        let started = w.fill(i as usize, &req, i, 20 + i).unwrap();
        assert_eq!(started, i == 3);
    }
    assert_eq!(w.market.request(&id).unwrap().state, RequestState::Started);
    assert_eq!(
        w.market.balance(&addr(&w.hosts[0])),
        1_000_000 - collateral(&w)
    );

    // A validator challenges slot 2; its host answers in time.
    let sid = req.slot_id(2);
    let v = w.validator.clone();
    let n = w.market.challenge(&v, 50, sid, [7; 32]).unwrap();
    let c = w.market.slot(&sid).unwrap().challenges[n as usize]
        .challenge
        .clone();
    let proof = w.answer(&c);
    let h2 = w.hosts[2].clone();
    assert_eq!(
        w.market
            .submit_proof(&h2, 60, sid, n, proof.clone())
            .unwrap(),
        Outcome::Proven
    );
    assert!(matches!(
        w.market.submit_proof(&h2, 61, sid, n, proof),
        Err(LedgerError::ChallengeClosed { .. })
    ));

    assert!(matches!(
        w.market.settle(&v, 500, id),
        Err(LedgerError::Timing { .. })
    ));
    assert_eq!(
        w.market.settle(&v, 1010, id).unwrap(),
        RequestState::Finished
    );
    for i in 0..4u64 {
        let earned = rate(&w) * (1010 - (20 + i) as u128);
        assert_eq!(
            w.market.balance(&addr(&w.hosts[i as usize])),
            1_000_000 + earned
        );
        assert_eq!(
            w.market.slot(&req.slot_id(i)).unwrap().state,
            SlotState::Paid
        );
    }
    let refund: u128 = (0..4).map(|i| rate(&w) * (20 + i - 10) as u128).sum();
    assert_eq!(
        w.market.balance(&addr(&w.client)),
        1_000_000_000 - total + refund
    );
    assert_eq!(w.market.request(&id).unwrap().escrow, 0);
    w.conserved();

    // Anyone can check the books from the log, and a forged entry is caught.
    let replayed =
        MemoryLedger::replay(w.market.config().clone(), w.market.log().to_vec()).unwrap();
    assert_eq!(replayed.books(), w.market.books());
    let mut forged = w.market.log().to_vec();
    forged[1].at += 1;
    let (at, err) = MemoryLedger::replay(w.market.config().clone(), forged).unwrap_err();
    assert_eq!((at, err), (1, LedgerError::BadSignature));
}

#[test]
fn an_unfilled_request_is_cancelled_at_expiry() {
    let mut w = world();
    let req = w.request(2);
    let total = req.ask.total_price().unwrap();
    let id = w
        .market
        .post_request(&w.client.clone(), 0, req.clone())
        .unwrap();
    w.fill(0, &req, 0, 30).unwrap();
    w.fill(1, &req, 1, 40).unwrap();
    let v = w.validator.clone();
    assert!(w.market.settle(&v, 100, id).is_err(), "not expired yet");
    assert!(matches!(
        w.fill(2, &req, 2, 101),
        Err(LedgerError::Timing { .. })
    ));
    assert_eq!(
        w.market.settle(&v, 101, id).unwrap(),
        RequestState::Cancelled
    );
    assert_eq!(
        w.market.balance(&addr(&w.hosts[0])),
        1_000_000 + rate(&w) * 70
    );
    assert_eq!(
        w.market.balance(&addr(&w.hosts[1])),
        1_000_000 + rate(&w) * 60
    );
    assert_eq!(
        w.market.balance(&addr(&w.client)),
        1_000_000_000 - rate(&w) * 130
    );
    assert!(total > rate(&w) * 130);
    w.conserved();
}

#[test]
fn missed_and_invalid_proofs_slash_free_repair_and_fail() {
    let mut w = world();
    let req = w.request(3);
    let id = w
        .market
        .post_request(&w.client.clone(), 0, req.clone())
        .unwrap();
    for i in 0..4u64 {
        w.fill(i as usize, &req, i, 10).unwrap();
    }
    let v = w.validator.clone();
    let s1 = req.slot_id(1);
    let n = w.market.challenge(&v, 20, s1, [1; 32]).unwrap();
    assert!(matches!(
        w.market.mark_proof_missing(&v, 80, s1, n),
        Err(LedgerError::ChallengeOpen { .. })
    ));
    let slash = collateral(&w) / 10;
    // maxSlotLoss = 1: one slash frees the slot.
    assert_eq!(
        w.market.mark_proof_missing(&v, 81, s1, n).unwrap(),
        Outcome::Slashed {
            amount: slash,
            freed: true,
            failed: false
        }
    );
    assert_eq!(w.market.balance(&addr(&v)), slash / 5);
    let s = w.market.slot(&s1).unwrap();
    assert_eq!((s.state, s.host), (SlotState::Repair, None));
    assert_eq!(s.challenges[0].status, ChallengeStatus::Missed);
    let reward = collateral(&w) / 10;
    assert_eq!(s.repair_reward, reward);
    w.conserved();

    // Repair: a new host takes the slot at a discount.
    let before = w.market.balance(&addr(&w.hosts[4]));
    w.fill(4, &req, 1, 90).unwrap();
    assert_eq!(
        w.market.balance(&addr(&w.hosts[4])),
        before - (collateral(&w) - reward)
    );

    // Slot 3's host answers with a wrong block: slashed and freed at once; a second lost
    // slot is more than the request tolerates, so it fails and pays out.
    let s3 = req.slot_id(3);
    let n = w.market.challenge(&v, 100, s3, [2; 32]).unwrap();
    let c = w.market.slot(&s3).unwrap().challenges[n as usize]
        .challenge
        .clone();
    let mut proof = w.answer(&c);
    proof.cells[0].data[0] ^= 1;
    let h3 = w.hosts[3].clone();
    assert_eq!(
        w.market.submit_proof(&h3, 110, s3, n, proof).unwrap(),
        Outcome::Slashed {
            amount: slash,
            freed: true,
            failed: true
        }
    );
    assert_eq!(w.market.request(&id).unwrap().state, RequestState::Failed);
    assert_eq!(
        w.market.balance(&addr(&w.hosts[3])),
        1_000_000 - collateral(&w)
    );
    assert_eq!(
        w.market.balance(&addr(&w.hosts[0])),
        1_000_000 + rate(&w) * 100
    );
    assert_eq!(
        w.market.balance(&addr(&w.hosts[4])),
        before - (collateral(&w) - reward) + collateral(&w) + rate(&w) * 20
    );
    assert_eq!(w.market.request(&id).unwrap().escrow, 0);
    assert!(w.market.settle(&v, 2000, id).is_err(), "already over");
    w.conserved();
}

#[test]
fn refusals_change_nothing() {
    let mut w = world();
    let req = w.request(4);
    let h0 = w.hosts[0].clone();
    // Only the client named in the request may post it.
    assert!(matches!(
        w.market.post_request(&h0, 0, req.clone()),
        Err(LedgerError::NotClient { .. })
    ));
    let mut bad = req.clone();
    bad.expiry = bad.ask.duration;
    assert!(matches!(
        w.market.post_request(&w.client.clone(), 0, bad),
        Err(LedgerError::Invalid(e)) if e.field() == "expiry"
    ));
    let poor = Keypair::generate_ed25519();
    let mut theirs = req.clone();
    theirs.client = addr(&poor);
    assert!(matches!(
        w.market.post_request(&poor, 0, theirs),
        Err(LedgerError::InsufficientFunds { .. })
    ));
    let id = w
        .market
        .post_request(&w.client.clone(), 5, req.clone())
        .unwrap();
    assert!(matches!(
        w.market.post_request(&w.client.clone(), 5, req.clone()),
        Err(LedgerError::Duplicate(_))
    ));
    let slot = SlotRef {
        request_id: id,
        slot_index: 0,
    };
    let proof = w.answer(&w.market.fill_challenge(&req, 0));
    assert!(matches!(
        w.market.fill_slot(&h0, 6, slot, proof.clone()),
        Err(LedgerError::ReservationRequired { .. })
    ));
    for h in &w.hosts[..3] {
        w.market.reserve_slot(h, 6, slot).unwrap();
    }
    assert!(matches!(
        w.market.reserve_slot(&w.hosts[3].clone(), 6, slot),
        Err(LedgerError::ReservationsFull { max: 3, .. })
    ));
    // A proof of the wrong slot does not fill.
    let other = w.answer(&w.market.fill_challenge(&req, 1));
    assert!(matches!(
        w.market.fill_slot(&h0, 7, slot, other),
        Err(LedgerError::FillProof(_))
    ));
    let books = w.market.books().clone();
    let entries = w.market.log().len();
    assert!(
        w.market.challenge(&h0, 8, slot.id(), [0; 32]).is_err(),
        "slot not filled"
    );
    assert!(w.market.free_slot(&h0, 8, SlotId([9; 32])).is_err());
    assert_eq!(w.market.books().slots, books.slots);
    assert_eq!(w.market.log().len(), entries);
    w.market.fill_slot(&h0, 8, slot, proof).unwrap();
    let h1 = w.hosts[1].clone();
    let n = w.market.challenge(&h1, 9, slot.id(), [3; 32]).unwrap();
    let c = w.market.slot(&slot.id()).unwrap().challenges[n as usize]
        .challenge
        .clone();
    let answer = w.answer(&c);
    assert!(matches!(
        w.market.submit_proof(&h1, 10, slot.id(), n, answer),
        Err(LedgerError::NotHost { .. })
    ));
    w.conserved();
}

#[test]
fn an_action_applies_at_the_ledgers_time_once_and_not_when_too_old() {
    let mut w = world();
    let key = Keypair::generate_ed25519();
    w.market.deposit(&key, 100, 1).unwrap();
    // Signed before the ledger's time (another party's action was sequenced first): it
    // applies at the ledger's time, which never goes back.
    w.market.deposit(&key, 90, 2).unwrap();
    assert_eq!(w.market.books().now, 100);
    assert_eq!(w.market.balance(&addr(&key)), 3);
    let late = SignedAction::sign(
        &key,
        100 - MAX_ACTION_AGE - 1,
        Action::Deposit { amount: 4 },
    );
    assert!(matches!(
        w.market.apply(late),
        Err(LedgerError::TooOld { now: 100, .. })
    ));
    // The very same signed action twice is one action; signed again, it is another.
    let once = SignedAction::sign(&key, 101, Action::Deposit { amount: 5 });
    w.market.apply(once.clone()).unwrap();
    let seq = w.market.log().len() as u64 - 1;
    assert_eq!(w.market.apply(once), Err(LedgerError::Replayed { seq }));
    w.market.deposit(&key, 101, 5).unwrap();
    assert_eq!(w.market.balance(&addr(&key)), 13);
    w.conserved();
}

#[derive(Clone, Debug)]
enum Op {
    Fill { host: usize, slot: u64 },
    Challenge { slot: u64, entropy: u8 },
    Answer { honest: bool },
    Miss,
    Free { slot: u64 },
    Settle,
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..6, 0u64..4).prop_map(|(host, slot)| Op::Fill { host, slot }),
        3 => (0u64..4, any::<u8>()).prop_map(|(slot, entropy)| Op::Challenge { slot, entropy }),
        2 => any::<bool>().prop_map(|honest| Op::Answer { honest }),
        2 => Just(Op::Miss),
        1 => (0u64..4).prop_map(|slot| Op::Free { slot }),
        1 => Just(Op::Settle),
        3 => (1u64..120).prop_map(Op::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Whatever hosts, clients and validators do, and whatever the market refuses, every token
    /// is in a balance, in escrow or burned; requests that ended hold no escrow; and replaying
    /// the signed log rebuilds the same books.
    #[test]
    fn tokens_are_conserved_and_the_log_replays(ops in prop::collection::vec(op(), 1..80), slashes in 1u8..3) {
        let mut w = world();
        let mut config = w.market.config().clone();
        config.collateral.max_number_of_slashes = Some(slashes);
        let log = w.market.log().to_vec();
        w.market = MemoryLedger::replay(config.clone(), log).unwrap();
        let mut req = w.request(9);
        req.expiry = 500;
        let id = w.market.post_request(&w.client.clone(), 0, req.clone()).unwrap();
        let v = w.validator.clone();
        let mut now = 0u64;
        let mut last: Option<(SlotId, u64)> = None;
        for op in ops {
            match op {
                Op::Fill { host, slot } => { let _ = w.fill(host, &req, slot, now); }
                Op::Challenge { slot, entropy } => {
                    let sid = req.slot_id(slot);
                    if let Ok(n) = w.market.challenge(&v, now, sid, [entropy; 32]) {
                        last = Some((sid, n));
                    }
                }
                Op::Answer { honest } => if let Some((sid, n)) = last {
                    let s = w.market.slot(&sid).unwrap().clone();
                    let mut proof = w.answer(&s.challenges[n as usize].challenge);
                    if !honest { proof.cells[0].data[1] ^= 0x80; }
                    if let Some(host) = w.hosts.iter().find(|h| Some(addr(h)) == s.host).cloned() {
                        let _ = w.market.submit_proof(&host, now, sid, n, proof);
                    }
                },
                Op::Miss => if let Some((sid, n)) = last {
                    let _ = w.market.mark_proof_missing(&v, now, sid, n);
                },
                Op::Free { slot } => {
                    let sid = req.slot_id(slot);
                    if let Some(host) = w.market.slot(&sid).unwrap().host {
                        let key = w.hosts.iter().find(|h| addr(h) == host).cloned().unwrap();
                        let _ = w.market.free_slot(&key, now, sid);
                    }
                }
                Op::Settle => { let _ = w.market.settle(&v, now, id); }
                Op::Wait(dt) => now += dt,
            }
            let b = w.market.books();
            prop_assert_eq!(b.accounted(), Some(b.minted));
            let r = w.market.request(&id).unwrap();
            if !matches!(r.state, RequestState::New | RequestState::Started) {
                prop_assert_eq!(r.escrow, 0);
            }
        }
        // Whatever happened, the request can always be brought to an end.
        let r = w.market.request(&id).unwrap().clone();
        if matches!(r.state, RequestState::New | RequestState::Started) {
            let end = now.max(r.ends_at).max(r.expires_at + 1);
            w.market.settle(&v, end, id).unwrap();
            prop_assert_eq!(w.market.request(&id).unwrap().escrow, 0);
        }
        let replayed = MemoryLedger::replay(config, w.market.log().to_vec()).unwrap();
        prop_assert_eq!(replayed.books(), w.market.books());
    }
}
