//! The cryptographic primitives of the discv5 handshake and packets, in the variant Archivist
//! uses.
//!
//! As in the discv5 wire spec: ECDH on secp256k1 whose result is the compressed shared point
//! (33 bytes); HKDF-SHA256 with the challenge data as salt and
//! `"discovery v5 key agreement" || id-A || id-B` as info giving the initiator and recipient
//! keys; the id-proof hash `sha256("discovery v5 identity proof" || challenge-data ||
//! ephemeral-key || dest-id)`; AES-128-GCM for messages and AES-128-CTR header masking.
//!
//! Where Archivist departs from the spec (archivist-dht `encoding.nim` on nim-libp2p's
//! `crypto.nim`/`secp.nim`): the ephemeral key travels in libp2p's protobuf public-key
//! encoding (37 bytes, not 33), and the id signature is nim-libp2p's secp256k1 signature *of*
//! the id-proof hash — ECDSA over sha256(hash), DER-encoded — not a 64-byte ECDSA signature
//! over the hash itself. [`sign_id_proof`]/[`verify_id_proof`] do Archivist's form; the spec
//! form is only used by the known-answer tests.
//!
//! Pure functions: no keys are stored here and nothing is sent.

use aes::cipher::{KeyIvInit, StreamCipher};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes128Gcm;
use k256::ecdsa::signature::{Signer, Verifier};
use k256::ecdsa::{Signature, SigningKey, VerifyingKey};
use k256::PublicKey;
use sha2::{Digest, Sha256};

use crate::node_id::NodeId;

pub const KEY_AGREEMENT_INFO: &[u8] = b"discovery v5 key agreement";
pub const ID_PROOF_TEXT: &[u8] = b"discovery v5 identity proof";
pub const GCM_TAG_SIZE: usize = 16;

/// An AES-128 key of a session.
pub type AesKey = [u8; 16];

/// The two keys a handshake derives: the initiator writes with `initiator_key` and reads
/// with `recipient_key`; the recipient does the opposite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionKeys {
    pub initiator_key: AesKey,
    pub recipient_key: AesKey,
}

/// ECDH as discv5 defines it: the shared point, compressed (33 bytes).
pub fn ecdh(secret: &SigningKey, public: &PublicKey) -> [u8; 33] {
    let point = (public.to_projective() * **secret.as_nonzero_scalar()).to_affine();
    let shared = PublicKey::from_affine(point).expect("a non-zero scalar times a valid point");
    let encoded = shared.to_sec1_bytes();
    let mut out = [0u8; 33];
    out.copy_from_slice(&encoded);
    out
}

/// HKDF-SHA256 key derivation of the handshake.
pub fn derive_keys(
    shared_secret: &[u8; 33],
    initiator: &NodeId,
    recipient: &NodeId,
    challenge_data: &[u8],
) -> SessionKeys {
    let mut info = Vec::with_capacity(KEY_AGREEMENT_INFO.len() + 64);
    info.extend_from_slice(KEY_AGREEMENT_INFO);
    info.extend_from_slice(&initiator.0);
    info.extend_from_slice(&recipient.0);
    let hkdf = hkdf::Hkdf::<Sha256>::new(Some(challenge_data), shared_secret);
    let mut okm = [0u8; 32];
    hkdf.expand(&info, &mut okm)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    let mut keys = SessionKeys {
        initiator_key: [0; 16],
        recipient_key: [0; 16],
    };
    keys.initiator_key.copy_from_slice(&okm[..16]);
    keys.recipient_key.copy_from_slice(&okm[16..]);
    keys
}

/// `sha256("discovery v5 identity proof" || challenge-data || ephemeral-key || dest-id)`.
pub fn id_proof_hash(challenge_data: &[u8], ephemeral_key: &[u8], dest: &NodeId) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(ID_PROOF_TEXT);
    h.update(challenge_data);
    h.update(ephemeral_key);
    h.update(dest.0);
    h.finalize().into()
}

/// Archivist's id signature: ECDSA (RFC 6979) over sha256(id-proof hash), DER-encoded.
pub fn sign_id_proof(
    key: &SigningKey,
    challenge_data: &[u8],
    ephemeral_key: &[u8],
    dest: &NodeId,
) -> Vec<u8> {
    let hash = id_proof_hash(challenge_data, ephemeral_key, dest);
    // `Signer::sign` hashes its input with SHA-256 first, as nim-libp2p's secp256k1 `sign` does.
    let sig: Signature = key.sign(&hash);
    sig.to_der().as_bytes().to_vec()
}

/// Checks an id signature in Archivist's form (see [`sign_id_proof`]).
pub fn verify_id_proof(
    key: &PublicKey,
    signature_der: &[u8],
    challenge_data: &[u8],
    ephemeral_key: &[u8],
    dest: &NodeId,
) -> bool {
    let Ok(sig) = Signature::from_der(signature_der) else {
        return false;
    };
    let hash = id_proof_hash(challenge_data, ephemeral_key, dest);
    VerifyingKey::from(key).verify(&hash, &sig).is_ok()
}

/// AES-128-GCM encryption of a message; the 16-byte tag is appended.
pub fn encrypt_message(key: &AesKey, nonce: &[u8; 12], plaintext: &[u8], ad: &[u8]) -> Vec<u8> {
    let cipher = Aes128Gcm::new(key.into());
    cipher
        .encrypt(
            nonce.into(),
            Payload {
                msg: plaintext,
                aad: ad,
            },
        )
        .expect("AES-GCM encryption of a bounded message cannot fail")
}

/// AES-128-GCM decryption; `None` when the tag does not verify.
pub fn decrypt_message(
    key: &AesKey,
    nonce: &[u8; 12],
    ciphertext: &[u8],
    ad: &[u8],
) -> Option<Vec<u8>> {
    if ciphertext.len() < GCM_TAG_SIZE {
        return None;
    }
    let cipher = Aes128Gcm::new(key.into());
    cipher
        .decrypt(
            nonce.into(),
            Payload {
                msg: ciphertext,
                aad: ad,
            },
        )
        .ok()
}

/// AES-128-CTR with the first 16 bytes of the destination id as key and the packet's IV:
/// masks (or unmasks: the same operation) a header in place.
pub fn mask_header(dest: &NodeId, iv: &[u8; 16], bytes: &mut [u8]) {
    let key: [u8; 16] = dest.0[..16].try_into().expect("16 of 32 bytes");
    let mut ctr = ctr::Ctr128BE::<aes::Aes128>::new(&key.into(), iv.into());
    ctr.apply_keystream(bytes);
}

/// libp2p's protobuf encoding of a secp256k1 public key (`KeyType` 2, compressed point), which
/// Archivist uses for the ephemeral key of a handshake.
pub fn encode_libp2p_public_key(key: &PublicKey) -> Vec<u8> {
    let point = key.to_sec1_bytes();
    let mut out = Vec::with_capacity(4 + point.len());
    out.extend_from_slice(&[0x08, 0x02, 0x12, point.len() as u8]);
    out.extend_from_slice(&point);
    out
}

/// Reads a public key in libp2p's protobuf encoding (secp256k1 only).
pub fn decode_libp2p_public_key(bytes: &[u8]) -> Option<PublicKey> {
    let point = bytes.strip_prefix(&[0x08, 0x02, 0x12, 0x21])?;
    if point.len() != 33 {
        return None;
    }
    PublicKey::from_sec1_bytes(point).ok()
}

/// A signing key from 32 bytes of randomness, retrying the (astronomically unlikely) bytes
/// that are not a valid scalar.
pub fn random_signing_key(rng: &mut impl rand::RngCore) -> SigningKey {
    loop {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        if let Ok(key) = SigningKey::from_slice(&bytes) {
            return key;
        }
    }
}

#[cfg(test)]
mod tests {
    //! Known answers from the discv5 wire spec's test vectors, "Cryptographic Primitives"
    //! section: ethereum/devp2p, discv5/discv5-wire-test-vectors.md.

    use k256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};

    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }
    fn id(s: &str) -> NodeId {
        NodeId(h(s).try_into().unwrap())
    }
    const SECRET: &str = "fb757dc581730490a1d7a00deea65e9b1936924caaea8f44d476014856b68736";
    const CHALLENGE: &str = "000000000000000000000000000000006469736376350001010102030405060708090a0b0c00180102030405060708090a0b0c0d0e0f100000000000000000";
    const NODE_A: &str = "aaaa8419e9f49d0083561b48287df592939a8d19947d8c0ef88f2a4856a69fbb";
    const NODE_B: &str = "bbbb9d047f0488c0b5a93c1c3f2d8bafc7c8ff337024a55434a0d0555de64db9";

    #[test]
    fn ecdh_vector() {
        let secret = SigningKey::from_slice(&h(SECRET)).unwrap();
        let public = PublicKey::from_sec1_bytes(&h(
            "039961e4c2356d61bedb83052c115d311acb3a96f5777296dcf297351130266231",
        ))
        .unwrap();
        assert_eq!(
            ecdh(&secret, &public).to_vec(),
            h("033b11a2a1f214567e1537ce5e509ffd9b21373247f2a3ff6841f4976f53165e7e")
        );
    }

    #[test]
    fn key_derivation_vector() {
        let ephemeral = SigningKey::from_slice(&h(SECRET)).unwrap();
        let dest = PublicKey::from_sec1_bytes(&h(
            "0317931e6e0840220642f230037d285d122bc59063221ef3226b1f403ddc69ca91",
        ))
        .unwrap();
        let secret = ecdh(&ephemeral, &dest);
        let keys = derive_keys(&secret, &id(NODE_A), &id(NODE_B), &h(CHALLENGE));
        assert_eq!(
            keys.initiator_key.to_vec(),
            h("dccc82d81bd610f4f76d3ebe97a40571")
        );
        assert_eq!(
            keys.recipient_key.to_vec(),
            h("ac74bb8773749920b0d3a8881c173ec5")
        );
    }

    /// The spec's id-nonce signing vector pins [`id_proof_hash`]: the spec signs that hash
    /// directly (64-byte r‖s); Archivist signs sha256 of it, DER-encoded, checked after.
    #[test]
    fn id_signature_vector_and_archivist_form() {
        let key = SigningKey::from_slice(&h(SECRET)).unwrap();
        let eph = h("039961e4c2356d61bedb83052c115d311acb3a96f5777296dcf297351130266231");
        let hash = id_proof_hash(&h(CHALLENGE), &eph, &id(NODE_B));
        let spec_sig: Signature = key.sign_prehash(&hash).unwrap();
        assert_eq!(
            spec_sig.to_bytes().to_vec(),
            h("94852a1e2318c4e5e9d422c98eaf19d1d90d876b29cd06ca7cb7546d0fff7b484fe86c09a064fe72bdbef73ba8e9c34df0cd2b53e9d65528c2c7f336d5dfc6e6")
        );
        VerifyingKey::from(&key)
            .verify_prehash(&hash, &spec_sig)
            .unwrap();

        let der = sign_id_proof(&key, &h(CHALLENGE), &eph, &id(NODE_B));
        assert_eq!(der[0], 0x30, "DER sequence");
        assert!(der.len() <= 72);
        let sha_of_hash: [u8; 32] = Sha256::digest(hash).into();
        let expected: Signature = key.sign_prehash(&sha_of_hash).unwrap();
        assert_eq!(der, expected.to_der().as_bytes());
        let public = PublicKey::from(key.verifying_key());
        assert!(verify_id_proof(
            &public,
            &der,
            &h(CHALLENGE),
            &eph,
            &id(NODE_B)
        ));
        assert!(!verify_id_proof(
            &public,
            &der,
            &h(CHALLENGE),
            &eph,
            &id(NODE_A)
        ));
        assert!(!verify_id_proof(
            &public,
            &der[1..],
            &h(CHALLENGE),
            &eph,
            &id(NODE_B)
        ));
    }

    #[test]
    fn aes_gcm_vector() {
        let key: AesKey = h("9f2d77db7004bf8a1a85107ac686990b").try_into().unwrap();
        let nonce: [u8; 12] = h("27b5af763c446acd2749fe8e").try_into().unwrap();
        let ad = h("93a7400fa0d6a694ebc24d5cf570f65d04215b6ac00757875e3f3a5f42107903");
        let ct = encrypt_message(&key, &nonce, &h("01c20101"), &ad);
        assert_eq!(ct, h("a5d12a2d94b8ccb3ba55558229867dc13bfa3648"));
        assert_eq!(
            decrypt_message(&key, &nonce, &ct, &ad).unwrap(),
            h("01c20101")
        );
        assert!(decrypt_message(&key, &nonce, &ct, b"other ad").is_none());
        assert!(decrypt_message(&key, &nonce, &ct[..10], &ad).is_none());
    }

    #[test]
    fn libp2p_public_key_encoding_round_trips() {
        let key = SigningKey::from_slice(&h(SECRET)).unwrap();
        let public = PublicKey::from(key.verifying_key());
        let encoded = encode_libp2p_public_key(&public);
        assert_eq!(encoded.len(), 37);
        assert_eq!(&encoded[..4], &[0x08, 0x02, 0x12, 0x21]);
        assert_eq!(decode_libp2p_public_key(&encoded), Some(public));
        assert_eq!(decode_libp2p_public_key(&encoded[..36]), None);
    }
}
