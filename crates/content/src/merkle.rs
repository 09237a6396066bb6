//! Archivist's dataset Merkle tree over sha256 block digests, and its inclusion proofs.
//!
//! Inner node = sha256(left ‖ right ‖ key), key 1 on the bottom layer, 0 above; an odd last
//! node is paired with 32 zero bytes and keyed 3 (bottom) or 2 (above). The bottom layer is
//! always compressed, so even a one-leaf tree is hashed once.

use prost::Message;
use sha2::{Digest as _, Sha256};

use crate::cids::{cid_from_digest, Digest};
use crate::codec;
use crate::error::ContentError;
use cid::Cid;

const KEY_NONE: u8 = 0;
const KEY_BOTTOM: u8 = 1;
const KEY_ODD: u8 = 2;
const ZERO: Digest = [0u8; 32];
/// 2^64 leaves would need a 64-deep path; anything longer is not a real proof.
const MAX_PATH: usize = 64;

fn compress(left: &Digest, right: &Digest, key: u8) -> Digest {
    let mut h = Sha256::new();
    h.update(left);
    h.update(right);
    h.update([key]);
    h.finalize().into()
}

pub struct MerkleTree {
    layers: Vec<Vec<Digest>>,
}

impl MerkleTree {
    pub fn new(leaves: Vec<Digest>) -> Result<Self, ContentError> {
        if leaves.is_empty() {
            return Err(ContentError::EmptyTree);
        }
        let mut layers = vec![leaves];
        let mut bottom = true;
        loop {
            let xs = layers.last().expect("at least the leaves");
            if !bottom && xs.len() == 1 {
                break;
            }
            let base = if bottom { KEY_BOTTOM } else { KEY_NONE };
            let mut ys: Vec<Digest> = xs
                .chunks_exact(2)
                .map(|pair| compress(&pair[0], &pair[1], base))
                .collect();
            if xs.len() % 2 == 1 {
                ys.push(compress(&xs[xs.len() - 1], &ZERO, base + KEY_ODD));
            }
            layers.push(ys);
            bottom = false;
        }
        Ok(MerkleTree { layers })
    }

    pub fn root(&self) -> Digest {
        self.layers.last().expect("non-empty")[0]
    }

    pub fn root_cid(&self) -> Cid {
        cid_from_digest(codec::DATASET_ROOT, &self.root())
    }

    pub fn leaves_count(&self) -> usize {
        self.layers[0].len()
    }

    pub fn leaf(&self, index: usize) -> Option<Digest> {
        self.layers[0].get(index).copied()
    }

    pub fn proof(&self, index: usize) -> Result<MerkleProof, ContentError> {
        let leaves = self.leaves_count();
        if index >= leaves {
            return Err(ContentError::IndexOutOfRange { index, leaves });
        }
        let depth = self.layers.len() - 1;
        let mut path = Vec::with_capacity(depth);
        let (mut k, mut m) = (index, leaves);
        for layer in &self.layers[..depth] {
            let j = k ^ 1;
            path.push(if j < m { layer[j] } else { ZERO });
            k >>= 1;
            m = (m + 1) >> 1;
        }
        Ok(MerkleProof {
            index: index as u64,
            nleaves: leaves as u64,
            path,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleProof {
    pub index: u64,
    pub nleaves: u64,
    pub path: Vec<Digest>,
}

#[derive(Clone, PartialEq, Message)]
struct ProofPb {
    #[prost(uint64, optional, tag = "1")]
    mcodec: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    index: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    nleaves: Option<u64>,
    #[prost(message, repeated, tag = "4")]
    path: Vec<PathNodePb>,
}

#[derive(Clone, PartialEq, Message)]
struct PathNodePb {
    #[prost(bytes = "vec", optional, tag = "1")]
    hash: Option<Vec<u8>>,
}

impl MerkleProof {
    /// Archivist's proof encoding: 1 mcodec, 2 index, 3 nleaves, 4 repeated {1: node}.
    pub fn encode(&self) -> Vec<u8> {
        ProofPb {
            mcodec: Some(codec::SHA2_256),
            index: Some(self.index),
            nleaves: Some(self.nleaves),
            path: self
                .path
                .iter()
                .map(|h| PathNodePb {
                    hash: Some(h.to_vec()),
                })
                .collect(),
        }
        .encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ContentError> {
        let bad = |reason: String| ContentError::Decode {
            what: "Merkle proof",
            reason,
        };
        let pb = ProofPb::decode(bytes).map_err(|e| bad(e.to_string()))?;
        if pb.mcodec != Some(codec::SHA2_256) {
            return Err(bad(format!("hash codec {:?} is not sha2-256", pb.mcodec)));
        }
        if pb.path.len() > MAX_PATH {
            return Err(bad(format!("path of {} nodes is too long", pb.path.len())));
        }
        let index = pb.index.unwrap_or(0);
        let nleaves = pb.nleaves.unwrap_or(0);
        if index >= nleaves {
            return Err(bad(format!("index {index} is not below nleaves {nleaves}")));
        }
        let path = pb
            .path
            .into_iter()
            .map(|n| {
                n.hash
                    .unwrap_or_default()
                    .try_into()
                    .map_err(|v: Vec<u8>| bad(format!("path node of {} bytes", v.len())))
            })
            .collect::<Result<Vec<Digest>, _>>()?;
        Ok(MerkleProof {
            index,
            nleaves,
            path,
        })
    }

    pub fn reconstruct_root(&self, leaf: &Digest) -> Digest {
        let (mut j, mut m) = (self.index, self.nleaves);
        let mut h = *leaf;
        let mut base = KEY_BOTTOM;
        for p in &self.path {
            h = if j & 1 == 1 {
                compress(p, &h, base)
            } else if j == m - 1 {
                compress(&h, p, base + KEY_ODD)
            } else {
                compress(&h, p, base)
            };
            base = KEY_NONE;
            j >>= 1;
            m = (m + 1) >> 1;
        }
        h
    }

    pub fn verify(&self, leaf: &Digest, root: &Digest) -> bool {
        self.nleaves > 0
            && self.index < self.nleaves
            && self.path.len() == expected_depth(self.nleaves)
            && &self.reconstruct_root(leaf) == root
    }
}

/// Number of layers above the leaves for a tree of `n` leaves.
fn expected_depth(n: u64) -> usize {
    let mut depth = 1;
    let mut m = n.div_ceil(2);
    while m > 1 {
        m = m.div_ceil(2);
        depth += 1;
    }
    depth
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cids::sha256;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Digest> {
        (0..n).map(|i| sha256(&(i as u64).to_le_bytes())).collect()
    }

    #[test]
    fn one_leaf_is_hashed_once_with_the_odd_bottom_key() {
        let l = leaves(1);
        let t = MerkleTree::new(l.clone()).unwrap();
        assert_eq!(t.root(), compress(&l[0], &ZERO, 3));
        assert_eq!(t.proof(0).unwrap().path, vec![ZERO]);
    }

    #[test]
    fn three_leaves_follow_the_keys() {
        let l = leaves(3);
        let a = compress(&l[0], &l[1], 1);
        let b = compress(&l[2], &ZERO, 3);
        assert_eq!(MerkleTree::new(l).unwrap().root(), compress(&a, &b, 0));
    }

    #[test]
    fn empty_trees_and_bad_indices_are_errors() {
        assert!(MerkleTree::new(vec![]).is_err());
        assert!(MerkleTree::new(leaves(3)).unwrap().proof(3).is_err());
    }

    proptest! {
        #[test]
        fn every_proof_verifies_and_any_flipped_bit_breaks_it(n in 1usize..300, pick in any::<prop::sample::Index>(), bit in 0usize..256) {
            let l = leaves(n);
            let tree = MerkleTree::new(l.clone()).unwrap();
            let root = tree.root();
            for (i, leaf) in l.iter().enumerate() {
                let p = tree.proof(i).unwrap();
                prop_assert!(p.verify(leaf, &root));
                prop_assert_eq!(MerkleProof::decode(&p.encode()).unwrap(), p);
            }
            let i = pick.index(n);
            let p = tree.proof(i).unwrap();
            let flip = |d: &Digest| { let mut d = *d; d[bit / 8] ^= 1 << (bit % 8); d };
            prop_assert!(!p.verify(&flip(&l[i]), &root));
            prop_assert!(!p.verify(&l[i], &flip(&root)));
            for k in 0..p.path.len() {
                let mut q = p.clone();
                q.path[k] = flip(&q.path[k]);
                prop_assert!(!q.verify(&l[i], &root));
            }
        }

        #[test]
        fn decoding_junk_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = MerkleProof::decode(&bytes);
        }
    }
}
