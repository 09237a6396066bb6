//! Storage proofs: a verifier's challenge, the host's answer, and its verification.
//!
//! A challenge names a slot and carries entropy the verifier chose; from it both sides derive
//! the same cell indices, as Archivist's sampler derives cell indices from entropy, the slot
//! and a counter 1..=samples (archivist/slots/sampler/utils.nim `cellIndices`; 5 samples,
//! archivisttypes.nim `DefaultSamplesNum`), over 2 KiB cells (`DefaultCellSize`). The host
//! answers with each sampled cell, its Merkle proof against its block's cell root and that
//! root's proof against the slot root, and with the slot root's proof against the request's
//! `content.merkleRoot`, so a verifier needs only the request to check it.
//!
//! Where Archivist proves with a Groth16 circuit over Poseidon2 cell trees, this proof
//! carries the sampled cells themselves with sha256 trees: no trusted setup, about 10 KiB of
//! cells per proof. Index derivation hashes with sha256 over the slot id (not the slot root,
//! which a verifier may not know before the answer) and reduces modulo the slot's cell
//! count.

use neverust_content::{sha256, Digest, MerkleProof, MerkleTree};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::SlotId;

/// Samples per challenge (Archivist's `DefaultSamplesNum`).
pub const DEFAULT_SAMPLES: usize = 5;
/// What a sample is (Archivist's `DefaultCellSize`).
pub const CELL_SIZE: usize = 2048;

/// Cells in a block of `block_size` bytes (a shorter last cell counts).
pub fn cells_per_block(block_size: u64) -> u64 {
    block_size.div_ceil(CELL_SIZE as u64).max(1)
}

/// The tree over a block's cells' sha256 digests.
pub fn cell_tree(block: &[u8]) -> MerkleTree {
    let cells = if block.is_empty() {
        vec![sha256(block)]
    } else {
        block.chunks(CELL_SIZE).map(sha256).collect()
    };
    MerkleTree::new(cells).expect("a block has at least one cell")
}

/// A block's leaf in its slot's tree.
pub fn cell_root(block: &[u8]) -> Digest {
    cell_tree(block).root()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    #[error("the host does not hold block {index} of slot {slot_id}")]
    MissingBlock { slot_id: SlotId, index: u64 },
    #[error("proof has {got} cells, the challenge asks for {want}")]
    WrongCount { got: usize, want: usize },
    #[error("proof answers cell {got} where the challenge asks for {want}")]
    WrongIndex { got: u64, want: u64 },
    #[error("cell {index} does not match the slot root")]
    BadCell { index: u64 },
    #[error("slot root is not slot {slot_index} of the request's root")]
    BadSlotRoot { slot_index: u64 },
    #[error("slot of {slot_blocks} blocks cannot be challenged")]
    EmptySlot { slot_blocks: u64 },
}

/// What a verifier asks a host to prove.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Challenge {
    pub slot_id: SlotId,
    pub slot_index: u64,
    /// Blocks in the slot (`slotSize / blockSize`).
    pub slot_blocks: u64,
    /// Cells in each block ([`cells_per_block`]).
    pub block_cells: u64,
    #[serde(with = "hex32")]
    pub entropy: [u8; 32],
    pub samples: usize,
}

impl Challenge {
    pub fn new(
        slot_id: SlotId,
        slot_index: u64,
        slot_blocks: u64,
        block_cells: u64,
        entropy: [u8; 32],
    ) -> Self {
        Challenge {
            slot_id,
            slot_index,
            slot_blocks,
            block_cells,
            entropy,
            samples: DEFAULT_SAMPLES,
        }
    }

    fn slot_cells(&self) -> u64 {
        self.slot_blocks.saturating_mul(self.block_cells.max(1))
    }

    /// `sha256(entropy ‖ slotId ‖ counter)` for counter 1..=samples, as a big-endian number
    /// modulo the slot's cell count. Indices may repeat, as Archivist's do.
    pub fn indices(&self) -> Vec<u64> {
        (1..=self.samples as u64)
            .map(|counter| {
                let mut buf = Vec::with_capacity(72);
                buf.extend_from_slice(&self.entropy);
                buf.extend_from_slice(&self.slot_id.0);
                buf.extend_from_slice(&counter.to_be_bytes());
                let h = sha256(&buf);
                let x = u128::from_be_bytes(h[..16].try_into().expect("16 bytes"));
                (x % self.slot_cells().max(1) as u128) as u64
            })
            .collect()
    }
}

/// Whether a slot must be proven in `period`: with probability `1 / proofProbability`, from
/// entropy the verifier publishes for the period (the chain's block hash in Archivist).
pub fn proof_required(
    entropy: &[u8; 32],
    slot_id: &SlotId,
    period: u64,
    probability: u128,
) -> bool {
    let mut buf = Vec::with_capacity(72);
    buf.extend_from_slice(entropy);
    buf.extend_from_slice(&slot_id.0);
    buf.extend_from_slice(&period.to_be_bytes());
    let h = sha256(&buf);
    u128::from_be_bytes(h[..16].try_into().expect("16 bytes")) % probability.max(1) == 0
}

mod hex32 {
    use super::*;

    pub fn serialize<S: Serializer>(x: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(x))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(&s)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| serde::de::Error::custom("not 32 hex bytes"))
    }
}

mod hex_bytes {
    use super::*;

    pub fn serialize<S: Serializer>(x: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(x))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Merkle proofs travel in Archivist's protobuf form (neverust-content `MerkleProof::encode`).
mod merkle_proof {
    use super::*;

    pub fn serialize<S: Serializer>(p: &MerkleProof, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(p.encode()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MerkleProof, D::Error> {
        let bytes = hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)?;
        MerkleProof::decode(&bytes).map_err(serde::de::Error::custom)
    }
}

/// One challenged cell with its proofs: in its block's cell tree, and that tree's root in
/// the slot tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CellProof {
    /// The cell's index in the slot: block `index / block_cells`, cell `index % block_cells`.
    pub index: u64,
    #[serde(with = "hex_bytes")]
    pub data: Vec<u8>,
    #[serde(with = "merkle_proof")]
    pub cell_proof: MerkleProof,
    #[serde(with = "merkle_proof")]
    pub block_proof: MerkleProof,
}

/// A host's answer to a [`Challenge`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageProof {
    #[serde(with = "hex32")]
    pub slot_root: Digest,
    /// The slot root's place in the tree over all slot roots.
    #[serde(with = "merkle_proof")]
    pub slot_root_proof: MerkleProof,
    pub cells: Vec<CellProof>,
}

/// Answers `challenge` from a host's slot: its tree (the cell root of every block), the
/// slot root's proof in the request's tree, and a way to read the block at a position.
pub fn prove(
    challenge: &Challenge,
    tree: &MerkleTree,
    slot_root_proof: &MerkleProof,
    block: impl Fn(u64) -> Option<Vec<u8>>,
) -> Result<StorageProof, ProofError> {
    let per_block = challenge.block_cells.max(1);
    let cells = challenge
        .indices()
        .into_iter()
        .map(|index| {
            let (b, c) = (index / per_block, (index % per_block) as usize);
            let missing = ProofError::MissingBlock {
                slot_id: challenge.slot_id,
                index: b,
            };
            let data = block(b).ok_or(missing.clone())?;
            let cell = data
                .chunks(CELL_SIZE)
                .nth(c)
                .ok_or(missing.clone())?
                .to_vec();
            let cell_proof = cell_tree(&data).proof(c).map_err(|_| missing.clone())?;
            let block_proof = tree.proof(b as usize).map_err(|_| missing)?;
            Ok(CellProof {
                index,
                data: cell,
                cell_proof,
                block_proof,
            })
        })
        .collect::<Result<_, ProofError>>()?;
    Ok(StorageProof {
        slot_root: tree.root(),
        slot_root_proof: slot_root_proof.clone(),
        cells,
    })
}

/// Checks `proof` against the challenge and the request's root over slot roots.
pub fn verify(
    challenge: &Challenge,
    verify_root: &Digest,
    proof: &StorageProof,
) -> Result<(), ProofError> {
    if challenge.slot_blocks == 0 {
        return Err(ProofError::EmptySlot { slot_blocks: 0 });
    }
    if proof.slot_root_proof.index != challenge.slot_index
        || !proof.slot_root_proof.verify(&proof.slot_root, verify_root)
    {
        return Err(ProofError::BadSlotRoot {
            slot_index: challenge.slot_index,
        });
    }
    let want = challenge.indices();
    if proof.cells.len() != want.len() {
        return Err(ProofError::WrongCount {
            got: proof.cells.len(),
            want: want.len(),
        });
    }
    let per_block = challenge.block_cells.max(1);
    for (cell, &index) in proof.cells.iter().zip(&want) {
        let (b, c) = (index / per_block, index % per_block);
        if cell.index != index || cell.cell_proof.index != c || cell.block_proof.index != b {
            return Err(ProofError::WrongIndex {
                got: cell.index,
                want: index,
            });
        }
        let leaf = sha256(&cell.data);
        // The block's cell root is what the cell and its path make; the path's shape is
        // checked by verifying against it, the root by the slot tree.
        let block_root = cell.cell_proof.reconstruct_root(&leaf);
        if cell.cell_proof.nleaves != per_block
            || !cell.cell_proof.verify(&leaf, &block_root)
            || cell.block_proof.nleaves != challenge.slot_blocks
            || !cell.block_proof.verify(&block_root, &proof.slot_root)
        {
            return Err(ProofError::BadCell { index });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::erasure::{encode, SlotSet};
    use crate::request::ErasureParams;
    use proptest::prelude::*;

    /// Blocks of three cells, the last one short.
    const BLOCK: usize = 2 * CELL_SIZE + 64;

    fn slots(n: usize, seed: u8) -> SlotSet {
        let blocks: Vec<Vec<u8>> = (0..n)
            .map(|i| vec![(i as u8).wrapping_mul(13) ^ seed; BLOCK])
            .collect();
        encode(&blocks, ErasureParams::new(4, 1).unwrap()).unwrap()
    }

    fn challenge(set: &SlotSet, slot: usize, entropy: [u8; 32]) -> Challenge {
        Challenge::new(
            SlotId([slot as u8; 32]),
            slot as u64,
            set.layout.slot_blocks() as u64,
            cells_per_block(set.layout.block_size as u64),
            entropy,
        )
    }

    fn honest(set: &SlotSet, slot: usize, c: &Challenge) -> StorageProof {
        let s = &set.slots[slot];
        let tree = crate::erasure::slot_tree(&s.blocks);
        let root_proof = set.verify_tree().proof(slot).unwrap();
        prove(c, &tree, &root_proof, |i| s.blocks.get(i as usize).cloned()).unwrap()
    }

    #[test]
    fn indices_are_deterministic_in_range_and_depend_on_entropy() {
        let c = Challenge::new(SlotId([1; 32]), 0, 10, 32, [7; 32]);
        let a = c.indices();
        assert_eq!(a.len(), DEFAULT_SAMPLES);
        assert!(a.iter().all(|&i| i < 320), "cells of the slot: {a:?}");
        assert_eq!(a, c.indices());
        let d = Challenge::new(SlotId([1; 32]), 0, 1 << 40, 32, [8; 32]);
        let e = Challenge::new(SlotId([1; 32]), 0, 1 << 40, 32, [9; 32]);
        assert_ne!(d.indices(), e.indices());
    }

    #[test]
    fn proof_probability_is_about_one_in_p() {
        let hits = (0..4000u64)
            .filter(|&p| proof_required(&[3; 32], &SlotId([4; 32]), p, 4))
            .count();
        assert!((800..1200).contains(&hits), "{hits}");
        assert!((0..50).all(|p| proof_required(&[3; 32], &SlotId([4; 32]), p, 1)));
    }

    #[test]
    fn proof_of_another_slot_or_challenge_fails() {
        let set = slots(12, 1);
        let root = set.verify_root();
        let c = challenge(&set, 1, [5; 32]);
        let p = honest(&set, 1, &c);
        verify(&c, &root, &p).unwrap();
        let c2 = challenge(&set, 2, [5; 32]);
        assert_eq!(
            verify(&c2, &root, &p),
            Err(ProofError::BadSlotRoot { slot_index: 2 })
        );
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<StorageProof>(&json).unwrap(), p);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn a_host_holding_its_slot_always_passes(n in 3usize..40, slot in 0usize..4, entropy: [u8; 32], seed: u8) {
            let set = slots(n, seed);
            let c = challenge(&set, slot, entropy);
            let p = honest(&set, slot, &c);
            prop_assert_eq!(verify(&c, &set.verify_root(), &p), Ok(()));
        }

        /// A host that lost a challenged block cannot answer; one that makes the block up,
        /// or flips one byte of it, fails verification.
        #[test]
        fn a_host_missing_or_altering_a_challenged_block_fails(
            n in 3usize..40, slot in 0usize..4, entropy: [u8; 32], seed: u8, pick: prop::sample::Index, byte: prop::sample::Index,
        ) {
            let set = slots(n, seed);
            let c = challenge(&set, slot, entropy);
            let at = pick.index(c.samples);
            let target = c.indices()[at];
            // The first sample of the target's block is the one that fails.
            let block = target / c.block_cells;
            let first = *c.indices().iter().find(|&&i| i / c.block_cells == block).unwrap();
            let s = &set.slots[slot];
            let tree = crate::erasure::slot_tree(&s.blocks);
            let root_proof = set.verify_tree().proof(slot).unwrap();
            let lost = prove(&c, &tree, &root_proof, |i| (i != block).then(|| s.blocks[i as usize].clone()));
            prop_assert!(
                matches!(lost, Err(ProofError::MissingBlock { index, .. }) if index == block),
                "{:?}", lost
            );
            let made_up = prove(&c, &tree, &root_proof, |i| {
                // Real blocks here are one byte repeated; this one never is.
                let mut fake = vec![0xEE; BLOCK];
                for cell in fake.chunks_mut(CELL_SIZE) {
                    cell[0] = 0x11;
                }
                Some(if i == block { fake } else { s.blocks[i as usize].clone() })
            }).unwrap();
            prop_assert_eq!(verify(&c, &set.verify_root(), &made_up), Err(ProofError::BadCell { index: first }));
            let mut flipped = honest(&set, slot, &c);
            let len = flipped.cells[at].data.len();
            flipped.cells[at].data[byte.index(len)] ^= 1;
            prop_assert_eq!(verify(&c, &set.verify_root(), &flipped), Err(ProofError::BadCell { index: target }));
        }
    }
}
