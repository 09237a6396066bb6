//! Erasure coding of a dataset's blocks into slots, and rebuilding lost slots.
//!
//! Layout, as Archivist's (archivist/erasure/erasure.nim `EncodingParams.init`,
//! `prepareEncodingData`; archivist/slots/builder/builder.nim): with `n` blocks and K data and
//! M parity shards, `rounded = roundUp(n, K)`, `steps = rounded / K`. The encoded dataset has
//! `steps × (K + M)` blocks: the `rounded` data blocks (blocks past `n` are zero), then the
//! parity. Row `r` (Archivist's "step", its `SteppedStrategy`) codes the data blocks
//! `r, r + steps, …, r + (K−1)·steps` and puts its j-th parity block at
//! `rounded + r + j·steps`. Slots take the encoded blocks linearly (`LinearStrategy`), `steps`
//! each: slot `i` holds encoded blocks `i·steps .. (i+1)·steps`, so slot `i < K` is a run of
//! original blocks, slot `K + j` holds the j-th parity of every row, and a row has exactly
//! one block in every slot. Losing a slot loses one shard per row; any K slots rebuild all.
//!
//! Codec: `reed-solomon-simd` (Leopard's O(n log n) Reed–Solomon over GF(2^16), the algorithm
//! Archivist's nim-leopard wraps). Its parity bytes are not claimed identical to
//! libleopard's; the layout and the recovery guarantee are.
//!
//! Not here: Archivist pads each slot to a power-of-two number of 2 KiB cells for its
//! Poseidon2 slot trees; a slot root here is the sha256 tree of neverust-content over each
//! block's cell root (the tree over its 2 KiB cells), so a proof samples cells as
//! Archivist's do.

use neverust_content::{cid_from_digest, sha256, Cid, Digest, MerkleProof, MerkleTree};

use crate::proofs::cell_root;
use crate::request::ErasureParams;

/// Multicodec of a slot root (Archivist's `SlotRootCodec`).
pub const SLOT_ROOT_CODEC: u64 = 0xCD04;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErasureError {
    /// Archivist's `InsufficientBlocksError`: fewer blocks than data shards.
    #[error("Dataset too small for erasure parameters, need at least {min_size} bytes ({blocks} blocks < K = {ec_k})")]
    InsufficientBlocks {
        blocks: usize,
        ec_k: usize,
        min_size: u64,
    },
    #[error("block {index} is {len} bytes, expected {expected} (even, non-zero, all equal)")]
    BlockSize {
        index: usize,
        len: usize,
        expected: usize,
    },
    #[error("slot {slot} has {blocks} blocks, expected {expected} of {block_size} bytes")]
    SlotShape {
        slot: usize,
        blocks: usize,
        expected: usize,
        block_size: usize,
    },
    #[error("only {have} of {need} needed slots are present")]
    NotEnoughSlots { have: usize, need: usize },
    #[error("slot index {slot} is out of range for {slots} slots")]
    NoSuchSlot { slot: usize, slots: usize },
    #[error("Reed-Solomon codec: {0}")]
    Codec(String),
}

fn codec_err(e: reed_solomon_simd::Error) -> ErasureError {
    ErasureError::Codec(e.to_string())
}

/// Where every block of a coded dataset lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotLayout {
    /// Blocks of the original dataset.
    pub blocks: usize,
    pub block_size: usize,
    pub ec_k: usize,
    pub ec_m: usize,
    /// `blocks` rounded up to a multiple of K.
    pub rounded: usize,
    /// Rows, and blocks per slot.
    pub steps: usize,
}

impl SlotLayout {
    pub fn new(
        blocks: usize,
        block_size: usize,
        params: ErasureParams,
    ) -> Result<Self, ErasureError> {
        let (ec_k, ec_m) = (params.ec_k(), params.ec_m());
        if ec_k > blocks {
            return Err(ErasureError::InsufficientBlocks {
                blocks,
                ec_k,
                min_size: (ec_k as u64).saturating_mul(block_size as u64),
            });
        }
        if block_size == 0 || block_size % 2 == 1 {
            return Err(ErasureError::BlockSize {
                index: 0,
                len: block_size,
                expected: block_size + block_size % 2,
            });
        }
        let rounded = blocks.next_multiple_of(ec_k);
        Ok(SlotLayout {
            blocks,
            block_size,
            ec_k,
            ec_m,
            rounded,
            steps: rounded / ec_k,
        })
    }

    pub fn slots(&self) -> usize {
        self.ec_k + self.ec_m
    }

    /// Blocks per slot.
    pub fn slot_blocks(&self) -> usize {
        self.steps
    }

    /// Bytes per slot: the request's `slotSize`.
    pub fn slot_size(&self) -> u64 {
        (self.steps * self.block_size) as u64
    }

    /// Index in the encoded dataset of block `pos` of slot `slot`.
    pub fn encoded_index(&self, slot: usize, pos: usize) -> usize {
        slot * self.steps + pos
    }

    /// (slot, position in slot) of original block `index`.
    pub fn locate(&self, index: usize) -> (usize, usize) {
        (index / self.steps, index % self.steps)
    }
}

/// One slot's blocks, their digests (leaves of the coded dataset's tree) and the slot tree.
pub struct Slot {
    pub index: usize,
    pub blocks: Vec<Vec<u8>>,
    digests: Vec<Digest>,
    tree: MerkleTree,
}

impl Slot {
    pub fn new(index: usize, blocks: Vec<Vec<u8>>) -> Slot {
        let tree = slot_tree(&blocks);
        let digests = blocks.iter().map(|b| sha256(b)).collect();
        Slot {
            index,
            blocks,
            digests,
            tree,
        }
    }

    pub fn root(&self) -> Digest {
        self.tree.root()
    }

    pub fn root_cid(&self) -> Cid {
        cid_from_digest(SLOT_ROOT_CODEC, &self.root())
    }

    pub fn proof(&self, pos: usize) -> MerkleProof {
        self.tree.proof(pos).expect("position within the slot")
    }

    /// The sha256 of each block, in order (the coded dataset's leaves), hashed once by `new`.
    pub fn digests(&self) -> impl Iterator<Item = Digest> + '_ {
        self.digests.iter().copied()
    }
}

/// The tree over a slot's blocks' cell roots (never empty: a layout has at least one row),
/// so that a proof can sample cells, not whole blocks.
pub fn slot_tree(blocks: &[impl AsRef<[u8]>]) -> MerkleTree {
    MerkleTree::new(blocks.iter().map(|b| cell_root(b.as_ref())).collect())
        .expect("a slot holds at least one block")
}

/// A coded dataset: its layout and all its slots.
pub struct SlotSet {
    pub layout: SlotLayout,
    pub slots: Vec<Slot>,
}

impl SlotSet {
    pub fn roots(&self) -> Vec<Digest> {
        self.slots.iter().map(Slot::root).collect()
    }

    /// The tree over the slot roots; its root is the request's `content.merkleRoot`.
    pub fn verify_tree(&self) -> MerkleTree {
        MerkleTree::new(self.roots()).expect("at least three slots")
    }

    pub fn verify_root(&self) -> Digest {
        self.verify_tree().root()
    }
}

fn check_blocks(blocks: &[impl AsRef<[u8]>]) -> Result<usize, ErasureError> {
    let size = blocks.first().map_or(0, |b| b.as_ref().len());
    for (index, b) in blocks.iter().enumerate() {
        let len = b.as_ref().len();
        if len != size || len == 0 || len % 2 == 1 {
            return Err(ErasureError::BlockSize {
                index,
                len,
                expected: size,
            });
        }
    }
    Ok(size)
}

/// Codes `blocks` (all of one even size: 64 KiB in the node, the last one zero-padded) into
/// `nodes` slots of which any `nodes − tolerance` rebuild every block.
pub fn encode(blocks: &[impl AsRef<[u8]>], params: ErasureParams) -> Result<SlotSet, ErasureError> {
    let block_size = check_blocks(blocks)?;
    let layout = SlotLayout::new(blocks.len(), block_size, params)?;
    let zero = vec![0u8; block_size];
    let original = |i: usize| -> &[u8] { blocks.get(i).map_or(&zero, |b| b.as_ref()) };
    let mut slots: Vec<Vec<Vec<u8>>> = (0..layout.ec_k)
        .map(|s| {
            (0..layout.steps)
                .map(|pos| original(layout.encoded_index(s, pos)).to_vec())
                .collect()
        })
        .collect();
    let mut parity: Vec<Vec<Vec<u8>>> = vec![Vec::with_capacity(layout.steps); layout.ec_m];
    for row in 0..layout.steps {
        let shards = (0..layout.ec_k).map(|s| original(layout.encoded_index(s, row)));
        let recovery =
            reed_solomon_simd::encode(layout.ec_k, layout.ec_m, shards).map_err(codec_err)?;
        for (j, shard) in recovery.into_iter().enumerate() {
            parity[j].push(shard);
        }
    }
    slots.extend(parity);
    Ok(SlotSet {
        layout,
        slots: slots
            .into_iter()
            .enumerate()
            .map(|(i, b)| Slot::new(i, b))
            .collect(),
    })
}

/// Rebuilds every slot from those present (`slots[i]` is slot i's blocks, if held); at least
/// K must be present. Returns all slots, present ones as given.
pub fn reconstruct(
    layout: &SlotLayout,
    slots: &[Option<Vec<Vec<u8>>>],
) -> Result<Vec<Vec<Vec<u8>>>, ErasureError> {
    let n = layout.slots();
    if slots.len() != n {
        return Err(ErasureError::NoSuchSlot {
            slot: slots.len(),
            slots: n,
        });
    }
    for (slot, s) in slots.iter().enumerate() {
        if let Some(blocks) = s {
            if blocks.len() != layout.steps || blocks.iter().any(|b| b.len() != layout.block_size) {
                return Err(ErasureError::SlotShape {
                    slot,
                    blocks: blocks.len(),
                    expected: layout.steps,
                    block_size: layout.block_size,
                });
            }
        }
    }
    let have = slots.iter().filter(|s| s.is_some()).count();
    if have < layout.ec_k {
        return Err(ErasureError::NotEnoughSlots {
            have,
            need: layout.ec_k,
        });
    }
    let (k, m) = (layout.ec_k, layout.ec_m);
    let mut out: Vec<Vec<Vec<u8>>> = slots
        .iter()
        .map(|s| {
            s.clone()
                .unwrap_or_else(|| Vec::with_capacity(layout.steps))
        })
        .collect();
    let data_missing = slots[..k].iter().any(Option::is_none);
    let parity_missing = slots[k..].iter().any(Option::is_none);
    for row in 0..layout.steps {
        let mut data: Vec<Vec<u8>> = Vec::with_capacity(k);
        if data_missing {
            let originals = (0..k).filter_map(|i| slots[i].as_ref().map(|s| (i, &s[row])));
            let recovery = (0..m).filter_map(|j| slots[k + j].as_ref().map(|s| (j, &s[row])));
            let mut restored =
                reed_solomon_simd::decode(k, m, originals, recovery).map_err(codec_err)?;
            for (i, s) in slots[..k].iter().enumerate() {
                data.push(match s {
                    Some(blocks) => blocks[row].clone(),
                    None => restored
                        .remove(&i)
                        .ok_or_else(|| ErasureError::Codec(format!("shard {i} not restored")))?,
                });
            }
            for (i, s) in slots[..k].iter().enumerate() {
                if s.is_none() {
                    out[i].push(data[i].clone());
                }
            }
        }
        if parity_missing {
            let shards: Vec<&[u8]> = if data_missing {
                data.iter().map(Vec::as_slice).collect()
            } else {
                (0..k)
                    .map(|i| slots[i].as_ref().expect("present")[row].as_slice())
                    .collect()
            };
            let recovery = reed_solomon_simd::encode(k, m, shards).map_err(codec_err)?;
            for (j, shard) in recovery.into_iter().enumerate() {
                if slots[k + j].is_none() {
                    out[k + j].push(shard);
                }
            }
        }
    }
    Ok(out)
}

/// Rebuilds one lost slot from the others (repair onto a new host).
pub fn repair_slot(
    layout: &SlotLayout,
    slots: &[Option<Vec<Vec<u8>>>],
    lost: usize,
) -> Result<Slot, ErasureError> {
    if lost >= layout.slots() {
        return Err(ErasureError::NoSuchSlot {
            slot: lost,
            slots: layout.slots(),
        });
    }
    let mut all = reconstruct(layout, slots)?;
    Ok(Slot::new(lost, all.swap_remove(lost)))
}

/// The original dataset's blocks (without the zero blocks rounding added) from any K slots.
pub fn decode_dataset(
    layout: &SlotLayout,
    slots: &[Option<Vec<Vec<u8>>>],
) -> Result<Vec<Vec<u8>>, ErasureError> {
    let all = reconstruct(layout, slots)?;
    Ok(all
        .into_iter()
        .take(layout.ec_k)
        .flatten()
        .take(layout.blocks)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn blocks(n: usize, size: usize, seed: u8) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                (0..size)
                    .map(|j| (i * 31 + j * 7) as u8 ^ seed)
                    .collect::<Vec<u8>>()
            })
            .collect()
    }

    fn params(nodes: u64, tolerance: u64) -> ErasureParams {
        ErasureParams::new(nodes, tolerance).unwrap()
    }

    #[test]
    fn layout_is_archivists() {
        // 10 blocks, K = 3, M = 2: rounded 12, 4 rows, 20 encoded blocks, 4 per slot.
        let l = SlotLayout::new(10, 64, params(5, 2)).unwrap();
        assert_eq!((l.rounded, l.steps, l.slots()), (12, 4, 5));
        assert_eq!(l.slot_size(), 4 * 64);
        assert_eq!(l.locate(9), (2, 1));
        assert_eq!(
            l.encoded_index(3, 2),
            14,
            "parity 0 of row 2 is rounded + 2"
        );
        let err = SlotLayout::new(2, 64, params(5, 2)).unwrap_err();
        assert_eq!(
            err,
            ErasureError::InsufficientBlocks {
                blocks: 2,
                ec_k: 3,
                min_size: 192
            }
        );
    }

    #[test]
    fn data_slots_are_runs_of_the_original_blocks() {
        let bs = blocks(10, 64, 1);
        let set = encode(&bs, params(5, 2)).unwrap();
        assert_eq!(set.slots.len(), 5);
        assert_eq!(set.slots[0].blocks, bs[0..4]);
        assert_eq!(set.slots[2].blocks[..2], bs[8..10]);
        assert_eq!(
            set.slots[2].blocks[2],
            vec![0u8; 64],
            "rounding pads with zeros"
        );
        let root = set.slots[1].root();
        let p = set.slots[1].proof(3);
        assert!(
            p.verify(&crate::proofs::cell_root(&bs[7]), &root),
            "a slot tree's leaves are its blocks' cell roots"
        );
        assert_eq!(set.slots[1].root_cid().codec(), SLOT_ROOT_CODEC);
        let hashed: Vec<_> = set.slots[3].blocks.iter().map(|b| sha256(b)).collect();
        assert_eq!(set.slots[3].digests().collect::<Vec<_>>(), hashed);
    }

    #[test]
    fn full_size_blocks_survive_losing_tolerance_slots() {
        let bs = blocks(7, neverust_content::BLOCK_SIZE, 3);
        let set = encode(&bs, params(4, 2)).unwrap();
        let held: Vec<Option<Vec<Vec<u8>>>> = set
            .slots
            .iter()
            .map(|s| (s.index % 2 == 1).then(|| s.blocks.clone()))
            .collect();
        assert_eq!(decode_dataset(&set.layout, &held).unwrap(), bs);
    }

    #[test]
    fn refuses_too_few_slots_and_bad_shapes() {
        let set = encode(&blocks(6, 32, 0), params(3, 1)).unwrap();
        let mut held: Vec<_> = set.slots.iter().map(|s| Some(s.blocks.clone())).collect();
        held[0] = None;
        held[2] = None;
        assert_eq!(
            reconstruct(&set.layout, &held).unwrap_err(),
            ErasureError::NotEnoughSlots { have: 1, need: 2 }
        );
        held[2] = Some(vec![vec![0; 32]]);
        assert!(matches!(
            reconstruct(&set.layout, &held),
            Err(ErasureError::SlotShape { slot: 2, .. })
        ));
        assert!(matches!(
            encode(&[vec![0u8; 32], vec![0u8; 30]], params(3, 1)),
            Err(ErasureError::BlockSize { index: 1, .. })
        ));
    }

    fn coding_case() -> impl Strategy<Value = (u64, u64, usize, Vec<bool>)> {
        (1u64..=4)
            .prop_flat_map(|m| (Just(m), m.max(2)..=m.max(2) + 4))
            .prop_flat_map(|(m, k)| {
                let n = (k + m) as usize;
                (
                    Just(k + m),
                    Just(m),
                    k as usize..k as usize * 5,
                    proptest::sample::subsequence((0..n).collect::<Vec<_>>(), m as usize),
                )
            })
            .prop_map(|(nodes, m, blocks, lost)| {
                let mut mask = vec![false; nodes as usize];
                for i in lost {
                    mask[i] = true;
                }
                (nodes, m, blocks, mask)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Any `nodes − tolerance` slots give back every original block, and every lost slot
        /// is rebuilt identical (same blocks, same root).
        #[test]
        fn any_k_slots_rebuild_everything((nodes, tolerance, n, lost) in coding_case(), seed: u8) {
            let bs = blocks(n, 64, seed);
            let set = encode(&bs, params(nodes, tolerance)).unwrap();
            let held: Vec<Option<Vec<Vec<u8>>>> = set.slots.iter()
                .map(|s| (!lost[s.index]).then(|| s.blocks.clone()))
                .collect();
            prop_assert_eq!(decode_dataset(&set.layout, &held).unwrap(), bs);
            for (i, _) in lost.iter().enumerate().filter(|(_, l)| **l) {
                let slot = repair_slot(&set.layout, &held, i).unwrap();
                prop_assert_eq!(&slot.blocks, &set.slots[i].blocks);
                prop_assert_eq!(slot.root(), set.slots[i].root());
            }
        }
    }
}
