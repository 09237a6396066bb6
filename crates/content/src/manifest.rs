//! The dataset manifest, encoded exactly as Archivist's coder writes it.
//!
//! prost with `optional` fields reproduces Archivist's bytes: fields in tag order, and zero
//! values still written (nim-libp2p's protobuf writer never elides them). The `version`
//! field carries nim-libp2p's `CidVersion` ordinal, where CIDv1 is 2.

use cid::Cid;
use prost::Message;

use crate::cids::{cid_from_digest, sha256};
use crate::codec;
use crate::error::ContentError;
use crate::BLOCK_SIZE;

/// nim-libp2p's `CidVersion` enum: CIDvIncorrect, CIDv0, CIDv1, CIDvReserved.
pub const WIRE_CID_V1: u32 = 2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub tree_cid: Cid,
    pub block_size: u32,
    pub dataset_size: u64,
    pub codec: u64,
    pub hcodec: u64,
    pub version: u32,
    pub erasure: Option<ErasureInfo>,
    pub filename: Option<String>,
    pub mimetype: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErasureInfo {
    pub ec_k: u32,
    pub ec_m: u32,
    pub original_tree_cid: Cid,
    pub original_dataset_size: u64,
    pub protected_strategy: u32,
    pub verification: Option<VerificationInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerificationInfo {
    pub verify_root: Cid,
    pub slot_roots: Vec<Cid>,
    pub cell_size: u32,
    pub verifiable_strategy: u32,
}

#[derive(Clone, PartialEq, Message)]
struct ManifestPb {
    #[prost(message, optional, tag = "1")]
    header: Option<HeaderPb>,
}

#[derive(Clone, PartialEq, Message)]
struct HeaderPb {
    #[prost(bytes = "vec", optional, tag = "1")]
    tree_cid: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "2")]
    block_size: Option<u32>,
    #[prost(uint64, optional, tag = "3")]
    dataset_size: Option<u64>,
    #[prost(uint64, optional, tag = "4")]
    codec: Option<u64>,
    #[prost(uint64, optional, tag = "5")]
    hcodec: Option<u64>,
    #[prost(uint32, optional, tag = "6")]
    version: Option<u32>,
    #[prost(message, optional, tag = "7")]
    erasure: Option<ErasurePb>,
    #[prost(string, optional, tag = "8")]
    filename: Option<String>,
    #[prost(string, optional, tag = "9")]
    mimetype: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct ErasurePb {
    #[prost(uint32, optional, tag = "1")]
    ec_k: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    ec_m: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "3")]
    original_tree_cid: Option<Vec<u8>>,
    #[prost(uint64, optional, tag = "4")]
    original_dataset_size: Option<u64>,
    #[prost(uint32, optional, tag = "5")]
    protected_strategy: Option<u32>,
    #[prost(message, optional, tag = "6")]
    verification: Option<VerificationPb>,
}

#[derive(Clone, PartialEq, Message)]
struct VerificationPb {
    #[prost(bytes = "vec", optional, tag = "1")]
    verify_root: Option<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    slot_roots: Vec<Vec<u8>>,
    #[prost(uint32, optional, tag = "3")]
    cell_size: Option<u32>,
    #[prost(uint32, optional, tag = "4")]
    verifiable_strategy: Option<u32>,
}

fn decode_err(reason: impl Into<String>) -> ContentError {
    ContentError::Decode {
        what: "manifest",
        reason: reason.into(),
    }
}

fn cid_field(bytes: Option<Vec<u8>>, field: &str) -> Result<Cid, ContentError> {
    let bytes = bytes.ok_or_else(|| decode_err(format!("{field} is missing")))?;
    Cid::try_from(bytes.as_slice()).map_err(|e| decode_err(format!("{field}: {e}")))
}

impl Manifest {
    /// A plain (not erasure-coded) dataset, as Archivist's `node.store` describes an upload.
    pub fn new_dataset(
        tree_cid: Cid,
        dataset_size: u64,
        filename: Option<String>,
        mimetype: Option<String>,
    ) -> Self {
        Manifest {
            tree_cid,
            block_size: BLOCK_SIZE as u32,
            dataset_size,
            codec: codec::BLOCK,
            hcodec: codec::SHA2_256,
            version: WIRE_CID_V1,
            erasure: None,
            filename,
            mimetype,
        }
    }

    pub fn blocks_count(&self) -> u64 {
        if self.block_size == 0 {
            return 0;
        }
        self.dataset_size.div_ceil(self.block_size as u64)
    }

    pub fn encode(&self) -> Vec<u8> {
        let erasure = self.erasure.as_ref().map(|e| ErasurePb {
            ec_k: Some(e.ec_k),
            ec_m: Some(e.ec_m),
            original_tree_cid: Some(e.original_tree_cid.to_bytes()),
            original_dataset_size: Some(e.original_dataset_size),
            protected_strategy: Some(e.protected_strategy),
            verification: e.verification.as_ref().map(|v| VerificationPb {
                verify_root: Some(v.verify_root.to_bytes()),
                slot_roots: v.slot_roots.iter().map(|c| c.to_bytes()).collect(),
                cell_size: Some(v.cell_size),
                verifiable_strategy: Some(v.verifiable_strategy),
            }),
        });
        ManifestPb {
            header: Some(HeaderPb {
                tree_cid: Some(self.tree_cid.to_bytes()),
                block_size: Some(self.block_size),
                dataset_size: Some(self.dataset_size),
                codec: Some(self.codec),
                hcodec: Some(self.hcodec),
                version: Some(self.version),
                erasure,
                filename: self.filename.clone(),
                mimetype: self.mimetype.clone(),
            }),
        }
        .encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ContentError> {
        let pb = ManifestPb::decode(bytes).map_err(|e| decode_err(e.to_string()))?;
        let h = pb.header.ok_or_else(|| decode_err("header is missing"))?;
        let erasure = match h.erasure {
            None => None,
            Some(e) => Some(ErasureInfo {
                ec_k: e.ec_k.unwrap_or(0),
                ec_m: e.ec_m.unwrap_or(0),
                original_tree_cid: cid_field(e.original_tree_cid, "originalTreeCid")?,
                original_dataset_size: e.original_dataset_size.unwrap_or(0),
                protected_strategy: e.protected_strategy.unwrap_or(0),
                verification: match e.verification {
                    None => None,
                    Some(v) => Some(VerificationInfo {
                        verify_root: cid_field(v.verify_root, "verifyRoot")?,
                        slot_roots: v
                            .slot_roots
                            .into_iter()
                            .map(|b| cid_field(Some(b), "slotRoots"))
                            .collect::<Result<_, _>>()?,
                        cell_size: v.cell_size.unwrap_or(0),
                        verifiable_strategy: v.verifiable_strategy.unwrap_or(0),
                    }),
                },
            }),
        };
        let block_size = h.block_size.unwrap_or(0);
        if block_size == 0 {
            return Err(decode_err("blockSize is zero"));
        }
        Ok(Manifest {
            tree_cid: cid_field(h.tree_cid, "treeCid")?,
            block_size,
            dataset_size: h.dataset_size.unwrap_or(0),
            codec: h.codec.unwrap_or(0),
            hcodec: h.hcodec.unwrap_or(0),
            version: h.version.unwrap_or(0),
            erasure,
            filename: h.filename.filter(|f| !f.is_empty()),
            mimetype: h.mimetype.filter(|m| !m.is_empty()),
        })
    }

    pub fn cid(&self) -> Cid {
        cid_from_digest(codec::MANIFEST, &sha256(&self.encode()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cids::block_cid;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(size in any::<u64>(), name in proptest::option::of("[a-z.]{1,20}"), mime in proptest::option::of("[a-z]{1,8}/[a-z]{1,8}"), seed in any::<u64>()) {
            let tree = cid_from_digest(codec::DATASET_ROOT, &sha256(&seed.to_le_bytes()));
            let m = Manifest::new_dataset(tree, size, name, mime);
            prop_assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
        }

        #[test]
        fn decoding_junk_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Manifest::decode(&bytes);
        }
    }

    #[test]
    fn erasure_info_round_trips() {
        let c = block_cid(b"x");
        let mut m = Manifest::new_dataset(c, 10, None, None);
        m.erasure = Some(ErasureInfo {
            ec_k: 3,
            ec_m: 2,
            original_tree_cid: c,
            original_dataset_size: 9,
            protected_strategy: 1,
            verification: Some(VerificationInfo {
                verify_root: c,
                slot_roots: vec![c, c],
                cell_size: 2048,
                verifiable_strategy: 0,
            }),
        });
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
    }
}
