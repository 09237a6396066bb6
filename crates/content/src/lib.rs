//! Archivist-compatible content addressing. Pure code, no I/O.
pub mod chunker;
pub mod cids;
pub mod error;
pub mod manifest;
pub mod merkle;

pub use chunker::{BlockAlloc, Chunker, HeapAlloc};
pub use cid::Cid;
pub use cids::{
    block_cid, cid_from_digest, cid_string, digest_of, parse_cid, sha256, verify_block, Digest,
};
pub use error::ContentError;
pub use manifest::Manifest;
pub use merkle::{MerkleProof, MerkleTree};

pub const BLOCK_SIZE: usize = 64 * 1024;

pub mod codec {
    pub const MANIFEST: u64 = 0xCD01;
    pub const BLOCK: u64 = 0xCD02;
    pub const DATASET_ROOT: u64 = 0xCD03;
    pub const SHA2_256: u64 = 0x12;
}
