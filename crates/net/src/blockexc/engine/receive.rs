//! What arrives from peers: blocks checked against their CID and proof before any
//! download sees them, then routed to whoever waits.

use libp2p::PeerId;
use neverust_content::{digest_of, verify_block, MerkleProof};

use super::{key_of, Engine, WantEvent};
use crate::blockexc::message::{BlockAddress, BlockDelivery};

impl Engine {
    /// Checks a delivery and hands it to whoever waits for it; returns the bytes accepted.
    pub(super) fn on_delivery(&self, peer: PeerId, d: BlockDelivery) -> u64 {
        let key = *key_of(&d.address);
        if !self.is_wanted(&key) {
            self.metrics.unwanted_blocks.inc();
            return 0;
        }
        match check_delivery(&d) {
            Ok(nleaves) => {
                let len = d.data.len() as u64;
                let labels = self.metrics.mode_labels();
                self.metrics.blocks_received.get_or_create(&labels).inc();
                self.metrics
                    .bytes_received
                    .get_or_create(&labels)
                    .inc_by(len);
                self.ledgers
                    .lock()
                    .expect("ledgers lock")
                    .on_received(&peer, len);
                self.route(
                    key,
                    WantEvent::Block {
                        peer,
                        address: d.address,
                        cid: d.cid,
                        data: d.data,
                        proof: d.proof,
                        nleaves,
                    },
                );
                len
            }
            Err(e) => {
                tracing::debug!(%peer, address = %d.address, "refused a delivery: {e}");
                self.offence(peer, e.reason());
                self.route(
                    key,
                    WantEvent::Invalid {
                        peer,
                        address: d.address,
                    },
                );
                0
            }
        }
    }
}

/// Why a delivered block was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("the bytes do not hash to the block's CID")]
    BadHash,
    #[error("the Merkle proof does not lead to the tree root at the index asked for")]
    BadProof,
}

impl DeliveryError {
    /// Its `reason` label in `neverust_misbehaviour_total`.
    pub fn reason(self) -> &'static str {
        match self {
            DeliveryError::BadHash => "bad_hash",
            DeliveryError::BadProof => "bad_proof",
        }
    }
}

/// The receiver's checks: the bytes hash to the CID, and a dataset block's proof leads from
/// that CID to the tree root at the index asked for. Returns the proof's leaf count.
pub fn check_delivery(d: &BlockDelivery) -> Result<Option<u64>, DeliveryError> {
    use DeliveryError::{BadHash, BadProof};
    verify_block(&d.cid, &d.data).map_err(|_| BadHash)?;
    match &d.address {
        BlockAddress::Cid(cid) if *cid == d.cid => Ok(None),
        BlockAddress::Cid(_) => Err(BadHash),
        BlockAddress::Leaf { tree, index } => {
            let proof = d.proof.as_ref().ok_or(BadProof)?;
            let proof = MerkleProof::decode(proof).map_err(|_| BadProof)?;
            let leaf = digest_of(&d.cid).map_err(|_| BadHash)?;
            let root = digest_of(tree).map_err(|_| BadProof)?;
            if proof.index == *index && proof.verify(&leaf, &root) {
                Ok(Some(proof.nleaves))
            } else {
                Err(BadProof)
            }
        }
    }
}
