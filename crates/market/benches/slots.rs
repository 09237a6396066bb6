//! What a storage request costs in CPU, next to hashing the same bytes (the work an upload
//! does anyway): coding a 16 MiB dataset into 3 slots (K = 2, M = 1), rebuilding one lost
//! slot from the other two, and a host proving one challenge and a verifier checking it.
//! Also printed once: a proof's size on the ledger (JSON, as it is signed and sent) against
//! the slot it vouches for; and what every party does with each proof on the ledger: write
//! it as a log line, read it back, check its signature.
//! Run: `cargo bench -p neverust-market --bench slots`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use neverust_content::{sha256, BLOCK_SIZE};
use neverust_market::erasure::{self, SlotSet};
use neverust_market::ids::{RequestId, SlotId};
use neverust_market::ledger::{Action, SignedAction};
use neverust_market::proofs::{self, Challenge};
use neverust_market::request::ErasureParams;

const BLOCKS: usize = 256;

fn dataset() -> Vec<Vec<u8>> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..BLOCKS)
        .map(|_| {
            (0..BLOCK_SIZE)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect()
}

fn challenge(set: &SlotSet, slot: usize, round: u8) -> Challenge {
    let id = SlotId::new(&RequestId([7; 32]), slot as u64);
    Challenge::new(
        id,
        slot as u64,
        set.layout.slot_blocks() as u64,
        proofs::cells_per_block(BLOCK_SIZE as u64),
        [round; 32],
    )
}

fn bench(c: &mut Criterion) {
    let blocks = dataset();
    let params = ErasureParams::new(3, 1).expect("valid parameters");
    let set = erasure::encode(&blocks, params).expect("codes");
    let verify_tree = set.verify_tree();
    let root_proof = verify_tree.proof(1).expect("slot 1");
    let slot = &set.slots[1];
    let tree = erasure::slot_tree(&slot.blocks);
    let read = |i: u64| slot.blocks.get(i as usize).cloned();
    let proof = proofs::prove(&challenge(&set, 1, 1), &tree, &root_proof, read).expect("proves");
    let proof_json = serde_json::to_vec(&proof).expect("serializes").len();
    println!(
        "proof on the ledger: {proof_json} bytes of JSON for a slot of {} bytes ({:.1} %)",
        set.layout.slot_size(),
        100.0 * proof_json as f64 / set.layout.slot_size() as f64
    );

    let mut g = c.benchmark_group("16 MiB, 3 slots (K 2, M 1)");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("sha256 of the dataset (baseline)", |b| {
        b.iter(|| blocks.iter().map(|b| sha256(b)[0]).fold(0u8, |a, x| a ^ x))
    });
    g.bench_function("code into slots, with slot trees", |b| {
        b.iter(|| erasure::encode(&blocks, params).expect("codes"))
    });
    let mut present: Vec<Option<Vec<Vec<u8>>>> =
        set.slots.iter().map(|s| Some(s.blocks.clone())).collect();
    present[1] = None;
    g.bench_function("rebuild one lost slot from the other two", |b| {
        b.iter(|| erasure::repair_slot(&set.layout, &present, 1).expect("rebuilds"))
    });
    g.bench_function("prove a challenge (5 cells)", |b| {
        b.iter(|| proofs::prove(&challenge(&set, 1, 2), &tree, &root_proof, read).expect("proves"))
    });
    let root = set.verify_root();
    g.bench_function("verify a proof", |b| {
        b.iter(|| proofs::verify(&challenge(&set, 1, 1), &root, &proof).expect("verifies"))
    });
    let key = libp2p_identity::Keypair::generate_ed25519();
    let signed = SignedAction::sign(
        &key,
        1,
        Action::SubmitProof {
            slot: SlotId::new(&RequestId([7; 32]), 1),
            challenge: 0,
            proof: proof.clone(),
        },
    );
    let line = signed.to_json();
    g.bench_function("a signed proof to its log line", |b| {
        b.iter(|| signed.to_json())
    });
    g.bench_function("a log line back to a signed proof", |b| {
        b.iter(|| SignedAction::from_json_line(&line).expect("reads"))
    });
    g.bench_function("check a signed proof's signature", |b| {
        b.iter(|| signed.verify().expect("verifies"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
