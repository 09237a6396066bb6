//! Errors of content addressing, each carrying what it was about.

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    #[error("invalid CID {given:?}: {reason}")]
    InvalidCid { given: String, reason: String },
    #[error("CID {cid} does not use sha2-256 (multihash code 0x{code:x})")]
    UnsupportedHash { cid: String, code: u64 },
    #[error("block does not match its CID {cid}")]
    BlockMismatch { cid: String },
    #[error("a Merkle tree needs at least one leaf")]
    EmptyTree,
    #[error("leaf index {index} is out of range for a tree of {leaves} leaves")]
    IndexOutOfRange { index: usize, leaves: usize },
    #[error("cannot decode {what}: {reason}")]
    Decode { what: &'static str, reason: String },
}
