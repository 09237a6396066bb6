//! CIDs as Archivist builds them: CIDv1, a multicodec from [`crate::codec`], sha2-256.

use cid::Cid;
use multihash::Multihash;
use sha2::{Digest as _, Sha256};

use crate::codec;
use crate::error::ContentError;

pub type Digest = [u8; 32];

pub fn sha256(data: &[u8]) -> Digest {
    Sha256::digest(data).into()
}

/// A CIDv1 whose multihash wraps `digest` as is (for roots: the bytes are not hashed again).
pub fn cid_from_digest(codec: u64, digest: &Digest) -> Cid {
    let mh = Multihash::<64>::wrap(codec::SHA2_256, digest).expect("32 bytes fit in 64");
    Cid::new_v1(codec, mh)
}

/// A CID as Archivist prints it: nim-libp2p renders CIDv1 in base58btc (`z...`), where the
/// `cid` crate's `Display` would use base32. Every CID the API shows goes through here.
pub fn cid_string(cid: &Cid) -> String {
    cid.to_string_of_base(cid::multibase::Base::Base58Btc)
        .unwrap_or_else(|_| cid.to_string())
}

pub fn block_cid(data: &[u8]) -> Cid {
    cid_from_digest(codec::BLOCK, &sha256(data))
}

pub fn digest_of(cid: &Cid) -> Result<Digest, ContentError> {
    let mh = cid.hash();
    if mh.code() != codec::SHA2_256 || mh.digest().len() != 32 {
        return Err(ContentError::UnsupportedHash {
            cid: cid_string(cid),
            code: mh.code(),
        });
    }
    let mut d = [0u8; 32];
    d.copy_from_slice(mh.digest());
    Ok(d)
}

/// Parses a CID as clients send it in API paths; only sha2-256 CIDs are accepted, since
/// they are the only ones this node can verify.
pub fn parse_cid(s: &str) -> Result<Cid, ContentError> {
    let cid = Cid::try_from(s).map_err(|e| ContentError::InvalidCid {
        given: s.chars().take(120).collect(),
        reason: e.to_string(),
    })?;
    digest_of(&cid)?;
    Ok(cid)
}

pub fn verify_block(cid: &Cid, data: &[u8]) -> Result<(), ContentError> {
    if digest_of(cid)? == sha256(data) {
        Ok(())
    } else {
        Err(ContentError::BlockMismatch {
            cid: cid_string(cid),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_cids_print_as_base58btc_and_parse_back() {
        let cid = block_cid(b"hello");
        let s = cid_string(&cid);
        assert!(s.starts_with('z'), "{s}");
        assert_eq!(
            parse_cid(&cid.to_string()).unwrap(),
            cid,
            "base32 is accepted too"
        );
        assert_eq!(parse_cid(&s).unwrap(), cid);
        assert_eq!(cid.codec(), codec::BLOCK);
        verify_block(&cid, b"hello").unwrap();
        assert!(verify_block(&cid, b"hellO").is_err());
    }

    #[test]
    fn junk_and_foreign_hashes_are_refused() {
        assert!(parse_cid("not-a-cid").is_err());
        assert!(parse_cid("").is_err());
        let identity = Cid::new_v1(0x55, Multihash::<64>::wrap(0x00, b"abc").unwrap());
        assert!(parse_cid(&cid_string(&identity)).is_err());
    }
}
