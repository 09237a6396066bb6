//! Identifiers in Archivist's DHT key space and the distances between them.
//!
//! A node's id is keccak256 of its libp2p peer id bytes (archivist-dht `node.nim`, not the
//! keccak256 of the uncompressed public key that Ethereum's discv5 uses), and a content key
//! is keccak256 of the CID bytes (archivist-node `discovery.nim`). Distances are XOR, and the
//! "log distance" of FINDNODE is the bit length of the XOR (0 for the same id, 256 at most).
//!
//! This module holds no state and does no I/O.

use std::fmt;

use libp2p::PeerId;
use sha3::{Digest, Keccak256};

/// A 256-bit id in the DHT key space, big-endian as on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub [u8; 32]);

impl NodeId {
    /// The id of the node whose libp2p peer id this is.
    pub fn from_peer_id(peer_id: &PeerId) -> Self {
        NodeId(keccak256(&peer_id.to_bytes()))
    }

    /// The DHT key under which providers of a CID (given as its binary form) are stored.
    pub fn for_content(cid_bytes: &[u8]) -> Self {
        NodeId(keccak256(cid_bytes))
    }

    /// XOR distance, comparable as a big-endian number.
    pub fn distance(&self, other: &NodeId) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = self.0[i] ^ other.0[i];
        }
        out
    }

    /// Bit length of the XOR distance: 0 when equal, 256 when the first bit differs.
    pub fn log_distance(&self, other: &NodeId) -> u16 {
        let mut leading_zeros = 0u16;
        for i in 0..32 {
            let x = self.0[i] ^ other.0[i];
            if x == 0 {
                leading_zeros += 8;
            } else {
                leading_zeros += x.leading_zeros() as u16;
                break;
            }
        }
        256 - leading_zeros
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

pub(crate) fn keccak256(bytes: &[u8]) -> [u8; 32] {
    Keccak256::digest(bytes).into()
}

/// How many log distances one FINDNODE of a lookup asks for (Archivist's
/// `LookupRequestLimit`).
pub const LOOKUP_DISTANCES: usize = 3;

/// The log distances a lookup for `target` asks node `dest` for: the distance of the target
/// from `dest`, then its neighbours above and below, as Archivist's `lookupDistances` does.
pub fn lookup_distances(target: &NodeId, dest: &NodeId) -> Vec<u16> {
    let td = target.log_distance(dest);
    let mut out = vec![td];
    let mut i = 1u16;
    while out.len() < LOOKUP_DISTANCES {
        if td + i < 256 {
            out.push(td + i);
        }
        if td > i {
            out.push(td - i);
        }
        i += 1;
    }
    out.truncate(LOOKUP_DISTANCES);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_distance_is_bit_length_of_xor() {
        let a = NodeId([0; 32]);
        assert_eq!(a.log_distance(&a), 0);
        let mut b = [0u8; 32];
        b[31] = 1;
        assert_eq!(a.log_distance(&NodeId(b)), 1);
        b[31] = 0x80;
        assert_eq!(a.log_distance(&NodeId(b)), 8);
        let mut c = [0u8; 32];
        c[0] = 0x80;
        assert_eq!(a.log_distance(&NodeId(c)), 256);
    }

    #[test]
    fn lookup_distances_follow_archivist() {
        let a = NodeId([0; 32]);
        let mut b = [0u8; 32];
        b[0] = 0x80;
        assert_eq!(lookup_distances(&a, &NodeId(b)), vec![256, 255, 254]);
        b[0] = 0x01;
        assert_eq!(lookup_distances(&a, &NodeId(b)), vec![249, 250, 248]);
        assert_eq!(lookup_distances(&a, &a), vec![0, 1, 2]);
    }

    #[test]
    fn keccak_of_empty_input_is_the_known_constant() {
        // keccak256("") — the well-known Ethereum constant.
        assert_eq!(
            NodeId::for_content(b"").to_string(),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }
}
