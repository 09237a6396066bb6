//! The node's libp2p identity: a secp256k1 key (as Archivist uses) created once and kept in
//! the data dir, so a restarted node keeps its peer id; and its signed peer record (SPR).
//!
//! This module does not listen or dial; it only owns the key and what is signed with it.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use libp2p::core::PeerRecord;
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};

const KEY_FILE: &str = "node.key";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    #[error("cannot read or write the node key at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the node key at {path} is not a valid libp2p key: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot sign the peer record: {0}")]
    Signing(String),
}

#[derive(Clone)]
pub struct Identity {
    keypair: Keypair,
    peer_id: PeerId,
}

impl Identity {
    /// Loads the key from `data_dir`, creating (and persisting) a new one on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, IdentityError> {
        let path = data_dir.join(KEY_FILE);
        let io = |source| IdentityError::Io {
            path: path.clone(),
            source,
        };
        let keypair = match std::fs::read(&path) {
            Ok(bytes) => {
                Keypair::from_protobuf_encoding(&bytes).map_err(|e| IdentityError::Corrupt {
                    path: path.clone(),
                    reason: e.to_string(),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let keypair = Keypair::generate_secp256k1();
                let encoded = keypair
                    .to_protobuf_encoding()
                    .map_err(|e| IdentityError::Signing(e.to_string()))?;
                write_private(&path, &encoded).map_err(io)?;
                keypair
            }
            Err(e) => return Err(io(e)),
        };
        let peer_id = keypair.public().to_peer_id();
        Ok(Identity { keypair, peer_id })
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    pub fn keypair(&self) -> &Keypair {
        &self.keypair
    }

    /// The signed peer record in Archivist's text form: `spr:` + unpadded base64url of the
    /// standard libp2p envelope.
    pub fn spr(&self, addrs: Vec<Multiaddr>) -> Result<String, IdentityError> {
        let record = PeerRecord::new_interop(&self.keypair, addrs)
            .map_err(|e| IdentityError::Signing(e.to_string()))?;
        let bytes = record.into_signed_envelope().into_protobuf_encoding();
        Ok(format!(
            "spr:{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        ))
    }
}

/// Whether a record names a UDP address: a DHT node's record (Archivist's `/spr`, and ours
/// when the node takes part in Archivist's DHT), which a DHT can be joined through.
pub fn names_udp(spr: &str) -> bool {
    decode_spr(spr).is_ok_and(|(_, addrs)| {
        addrs.iter().any(|a| {
            a.iter()
                .any(|p| matches!(p, libp2p::multiaddr::Protocol::Udp(_)))
        })
    })
}

/// The record in a `/spr` answer: text when asked for it, `{"spr": "spr:..."}` otherwise.
pub fn spr_from_body(body: &str) -> String {
    serde_json::from_str::<crate::api::answers::SprAnswer>(body)
        .map(|a| a.spr)
        .unwrap_or_else(|_| body.trim().to_string())
}

/// Reads a signed peer record in Archivist's text form, checking its signature.
pub fn decode_spr(spr: &str) -> Result<(PeerId, Vec<Multiaddr>), String> {
    let b64 = spr
        .trim()
        .strip_prefix("spr:")
        .ok_or("a signed peer record starts with spr:")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64.trim_end_matches('='))
        .map_err(|e| format!("not base64url: {e}"))?;
    let envelope = libp2p::core::SignedEnvelope::from_protobuf_encoding(&bytes)
        .map_err(|e| format!("not a signed envelope: {e}"))?;
    let record = PeerRecord::from_signed_envelope_interop(envelope)
        .or_else(|_| {
            let envelope = libp2p::core::SignedEnvelope::from_protobuf_encoding(&bytes)
                .expect("decoded above");
            PeerRecord::from_signed_envelope(envelope)
        })
        .map_err(|e| format!("not a valid peer record: {e}"))?;
    Ok((record.peer_id(), record.addresses().to_vec()))
}

/// Writes the key atomically (temp file + rename) and readable by the owner only, so a crash
/// mid-write never leaves a truncated key that would change the node's peer id.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_record_naming_a_udp_port_is_a_dht_record() {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::load_or_create(dir.path()).unwrap();
        let record = |addr: &str| id.spr(vec![addr.parse().unwrap()]).unwrap();
        assert!(names_udp(&record("/ip4/127.0.0.1/udp/8090")));
        assert!(!names_udp(&record("/ip4/127.0.0.1/tcp/8070")));
        assert!(!names_udp("spr:garbage"));
    }

    #[test]
    fn key_survives_reload_and_spr_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let first = Identity::load_or_create(dir.path()).unwrap();
        let second = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(first.peer_id(), second.peer_id());

        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/8070".parse().unwrap();
        let spr = first.spr(vec![addr.clone()]).unwrap();
        let b64 = spr.strip_prefix("spr:").expect("spr: prefix");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .unwrap();
        let envelope = libp2p::core::SignedEnvelope::from_protobuf_encoding(&bytes).unwrap();
        let record = PeerRecord::from_signed_envelope_interop(envelope).unwrap();
        assert_eq!(record.peer_id(), first.peer_id());
        assert_eq!(record.addresses(), std::slice::from_ref(&addr));
        assert_eq!(decode_spr(&spr).unwrap(), (first.peer_id(), vec![addr]));
        assert!(decode_spr("spr:AAAA").is_err());
        assert!(decode_spr("nonsense").is_err());
    }

    #[test]
    fn corrupt_key_is_an_error_not_a_new_identity() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), b"not a key").unwrap();
        let err = Identity::load_or_create(dir.path()).err().unwrap();
        assert!(matches!(err, IdentityError::Corrupt { .. }), "{err}");
    }
}
