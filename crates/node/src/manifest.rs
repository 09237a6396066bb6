//! Manifest blocks as the node reads them, from its store or from the network: one decoding,
//! and one error for a block that does not decode, whichever path found it.

use neverust_content::{cid_string, Cid, ContentError, Manifest};

/// A block stored or fetched under a manifest CID that is no manifest.
#[derive(Debug, thiserror::Error)]
#[error("the manifest block {cid} does not decode: {source}")]
pub struct BadManifest {
    pub cid: String,
    #[source]
    pub source: ContentError,
}

pub fn decode(cid: &Cid, block: &[u8]) -> Result<Manifest, BadManifest> {
    Manifest::decode(block).map_err(|source| BadManifest {
        cid: cid_string(cid),
        source,
    })
}

#[cfg(test)]
mod tests {
    use neverust_content::{cid_from_digest, codec, sha256};

    use super::*;

    /// The message reaches HTTP clients as is (422 locally, 404 from the network routes).
    #[test]
    fn a_block_that_is_no_manifest_is_named_with_why() {
        let cid = cid_from_digest(codec::MANIFEST, &sha256(b"not a manifest"));
        let err = decode(&cid, b"\xff\xff\xff").unwrap_err();
        let expected = format!("the manifest block {} does not decode: ", cid_string(&cid));
        assert!(err.to_string().starts_with(&expected), "{err}");
        let source = std::error::Error::source(&err).expect("the decode error as source");
        assert!(err.to_string().ends_with(&source.to_string()));
    }
}
