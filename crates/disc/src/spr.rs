//! Signed peer records (SPR), Archivist's node and provider records: a libp2p signed
//! envelope (domain `libp2p-peer-record`, payload type `0x0301`) around a `PeerRecord`
//! {peer id, seq, addresses}. On the wire they are the envelope's protobuf bytes; in text,
//! `spr:` + unpadded base64url of the same bytes.
//!
//! A record is a DHT node when it lists an IPv4 address and a UDP port; like archivist-dht's
//! `spr.nim`, the IP is taken from the first `/ip4` address and the port from the first
//! address whose second part is `/udp`.
//!
//! This module verifies signatures and derives ids; it does not decide whom to trust.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use base64::Engine;
use libp2p::core::{PeerRecord, SignedEnvelope};
use libp2p::identity::{Keypair, PublicKey as Libp2pPublicKey};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use sha2::Digest;

use crate::node_id::NodeId;

/// Records larger than this are refused (Archivist's are a few hundred bytes).
pub const MAX_SPR_SIZE: usize = 2048;

/// Verified records kept: a few times the routing table's usual size, at most about 10 MiB.
const VERIFIED_RECORDS: usize = 4096;
static VERIFIED: std::sync::OnceLock<quick_cache::sync::Cache<[u8; 32], Spr>> =
    std::sync::OnceLock::new();

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SprError {
    #[error("a signed peer record of {0} bytes exceeds {MAX_SPR_SIZE}")]
    TooLarge(usize),
    #[error("not a signed envelope: {0}")]
    Envelope(String),
    #[error("not a valid signed peer record: {0}")]
    Record(String),
    #[error("the record's key is not secp256k1 (peer {0})")]
    KeyType(PeerId),
    #[error("text form of a record must be `spr:` + base64url: {0}")]
    Text(String),
    #[error("cannot sign the record: {0}")]
    Signing(String),
}

/// A verified signed peer record with what the DHT derives from it.
#[derive(Clone, Debug)]
pub struct Spr {
    inner: Arc<SprInner>,
}

#[derive(Debug)]
struct SprInner {
    bytes: Vec<u8>,
    peer_id: PeerId,
    node_id: NodeId,
    seq: u64,
    addresses: Vec<Multiaddr>,
    public_key: k256::PublicKey,
}

impl PartialEq for Spr {
    fn eq(&self, other: &Self) -> bool {
        self.inner.bytes == other.inner.bytes
    }
}
impl Eq for Spr {}

impl Spr {
    /// Signs a new record for `keypair` (secp256k1) listing `addresses`; its sequence number
    /// is the current Unix time in seconds, as both nim-libp2p and rust-libp2p choose it.
    pub fn sign(keypair: &Keypair, addresses: Vec<Multiaddr>) -> Result<Spr, SprError> {
        let record = PeerRecord::new_interop(keypair, addresses)
            .map_err(|e| SprError::Signing(e.to_string()))?;
        Spr::decode(&record.into_signed_envelope().into_protobuf_encoding())
    }

    /// Reads and verifies an envelope's bytes. The same records come back in every lookup
    /// (each NODES answer repeats the closest nodes' records), and a signature check costs
    /// tens of microseconds: records already verified are taken from a bounded cache keyed
    /// by the sha256 of their bytes.
    pub fn decode(bytes: &[u8]) -> Result<Spr, SprError> {
        if bytes.len() > MAX_SPR_SIZE {
            return Err(SprError::TooLarge(bytes.len()));
        }
        let digest: [u8; 32] = sha2::Sha256::digest(bytes).into();
        let cache = VERIFIED.get_or_init(|| quick_cache::sync::Cache::new(VERIFIED_RECORDS));
        if let Some(spr) = cache.get(&digest) {
            return Ok(spr);
        }
        let spr = Spr::verify(bytes)?;
        cache.insert(digest, spr.clone());
        Ok(spr)
    }

    fn verify(bytes: &[u8]) -> Result<Spr, SprError> {
        let envelope = SignedEnvelope::from_protobuf_encoding(bytes)
            .map_err(|e| SprError::Envelope(e.to_string()))?;
        let record = PeerRecord::from_signed_envelope_interop(envelope)
            .map_err(|e| SprError::Record(e.to_string()))?;
        let peer_id = record.peer_id();
        // The record was checked to be signed by the key its peer id names; a secp256k1 peer
        // id inlines that key (identity multihash of its protobuf encoding).
        let public_key = secp256k1_key_of(&peer_id).ok_or(SprError::KeyType(peer_id))?;
        Ok(Spr {
            inner: Arc::new(SprInner {
                bytes: bytes.to_vec(),
                node_id: NodeId::from_peer_id(&peer_id),
                peer_id,
                seq: record.seq(),
                addresses: record.addresses().to_vec(),
                public_key,
            }),
        })
    }

    /// Reads the text form `spr:<base64url>`.
    pub fn from_text(text: &str) -> Result<Spr, SprError> {
        let b64 = text
            .trim()
            .strip_prefix("spr:")
            .ok_or_else(|| SprError::Text("missing `spr:` prefix".into()))?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64.trim_end_matches('='))
            .map_err(|e| SprError::Text(e.to_string()))?;
        Spr::decode(&bytes)
    }

    pub fn to_text(&self) -> String {
        format!(
            "spr:{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.inner.bytes)
        )
    }

    /// The envelope's protobuf bytes, as they go on the wire.
    pub fn bytes(&self) -> &[u8] {
        &self.inner.bytes
    }
    pub fn peer_id(&self) -> PeerId {
        self.inner.peer_id
    }
    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }
    pub fn seq(&self) -> u64 {
        self.inner.seq
    }
    pub fn addresses(&self) -> &[Multiaddr] {
        &self.inner.addresses
    }
    pub fn public_key(&self) -> &k256::PublicKey {
        &self.inner.public_key
    }

    /// Where the node listens for the DHT, by archivist-dht's rule (module docs).
    pub fn udp_address(&self) -> Option<SocketAddr> {
        let ip: Ipv4Addr = self
            .inner
            .addresses
            .iter()
            .find_map(|a| match a.iter().next() {
                Some(Protocol::Ip4(ip)) => Some(ip),
                _ => None,
            })?;
        let port = self
            .inner
            .addresses
            .iter()
            .find_map(|a| match a.iter().nth(1) {
                Some(Protocol::Udp(port)) => Some(port),
                _ => None,
            })?;
        Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
    }
}

/// The secp256k1 key inlined in a peer id, if it is one.
pub fn secp256k1_key_of(peer_id: &PeerId) -> Option<k256::PublicKey> {
    let multihash = peer_id.as_ref();
    if multihash.code() != 0 {
        return None;
    }
    let key = Libp2pPublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    let secp = key.try_into_secp256k1().ok()?;
    k256::PublicKey::from_sec1_bytes(&secp.to_bytes()).ok()
}

/// The k256 signing key of a libp2p secp256k1 keypair.
pub fn signing_key_of(keypair: &Keypair) -> Option<k256::ecdsa::SigningKey> {
    let secp = keypair.clone().try_into_secp256k1().ok()?;
    k256::ecdsa::SigningKey::from_slice(&secp.secret().to_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_record_round_trips_and_yields_ids() {
        let keypair = Keypair::generate_secp256k1();
        let addrs: Vec<Multiaddr> = vec![
            "/ip4/127.0.0.1/tcp/8070".parse().unwrap(),
            "/ip4/127.0.0.1/udp/8090".parse().unwrap(),
        ];
        let spr = Spr::sign(&keypair, addrs.clone()).unwrap();
        assert_eq!(spr.peer_id(), keypair.public().to_peer_id());
        assert_eq!(spr.node_id(), NodeId::from_peer_id(&spr.peer_id()));
        assert_eq!(spr.addresses(), addrs.as_slice());
        assert_eq!(spr.udp_address(), Some("127.0.0.1:8090".parse().unwrap()));
        let key = signing_key_of(&keypair).unwrap();
        assert_eq!(
            spr.public_key(),
            &k256::PublicKey::from(key.verifying_key())
        );
        let again = Spr::from_text(&spr.to_text()).unwrap();
        assert_eq!(again, spr);
        assert!(Spr::from_text("spr:AAAA").is_err());
        let mut tampered = spr.bytes().to_vec();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(Spr::decode(&tampered).is_err());
    }

    #[test]
    fn tcp_only_record_has_no_dht_address() {
        let keypair = Keypair::generate_secp256k1();
        let spr = Spr::sign(&keypair, vec!["/ip4/10.0.0.1/tcp/1".parse().unwrap()]).unwrap();
        assert_eq!(spr.udp_address(), None);
    }

    #[test]
    fn ed25519_records_are_refused() {
        let keypair = Keypair::generate_ed25519();
        let record = PeerRecord::new_interop(&keypair, vec![]).unwrap();
        let bytes = record.into_signed_envelope().into_protobuf_encoding();
        assert!(matches!(Spr::decode(&bytes), Err(SprError::KeyType(_))));
    }
}
