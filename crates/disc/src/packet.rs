//! The discv5 packet: `masking-iv || masked-header || message`, with the header masked by
//! AES-128-CTR under the destination's id (discv5 wire spec, which Archivist follows byte for
//! byte at this layer).
//!
//! `header = "discv5" || version (u16 BE, 1) || flag (u8) || nonce (12) || authdata-size (u16
//! BE) || authdata`, where authdata is the source id for an ordinary message, `id-nonce (16)
//! || enr-seq (u64 BE)` for WHOAREYOU, and `src-id || sig-size || eph-key-size || signature
//! || ephemeral-key || [record]` for a handshake.
//!
//! Decoding checks sizes before it allocates, so every allocation is bounded by the datagram;
//! it does not decrypt messages or check signatures (the session layer does).

use crate::crypto::{mask_header, GCM_TAG_SIZE};
use crate::node_id::NodeId;

pub const PROTOCOL_ID: &[u8; 6] = b"discv5";
pub const VERSION: u16 = 1;
pub const IV_SIZE: usize = 16;
pub const NONCE_SIZE: usize = 12;
pub const ID_NONCE_SIZE: usize = 16;
pub const STATIC_HEADER_SIZE: usize = 6 + 2 + 1 + NONCE_SIZE + 2;
const WHOAREYOU_AUTHDATA_SIZE: usize = ID_NONCE_SIZE + 8;
const HANDSHAKE_AUTHDATA_HEAD: usize = 32 + 1 + 1;
/// The smallest packet is a WHOAREYOU.
pub const MIN_PACKET_SIZE: usize = IV_SIZE + STATIC_HEADER_SIZE + WHOAREYOU_AUTHDATA_SIZE;
/// The largest UDP payload over IPv4; nothing larger can arrive in one datagram.
pub const MAX_PACKET_SIZE: usize = 65_507;

pub type Nonce = [u8; NONCE_SIZE];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    Message = 0,
    Whoareyou = 1,
    Handshake = 2,
}

/// What went wrong reading a datagram as a packet for us.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PacketError {
    #[error("packet of {len} bytes is outside {MIN_PACKET_SIZE}..={MAX_PACKET_SIZE}")]
    Size { len: usize },
    #[error("not a discv5 packet for this node (protocol id mismatch after unmasking)")]
    ProtocolId,
    #[error("unsupported protocol version {0}")]
    Version(u16),
    #[error("unknown packet flag {0}")]
    Flag(u8),
    #[error("authdata of {declared} bytes does not fit in the {available} bytes left")]
    AuthdataSize { declared: usize, available: usize },
    #[error("{flag:?} packet with {authdata} bytes of authdata and {message} bytes of message")]
    Shape {
        flag: Flag,
        authdata: usize,
        message: usize,
    },
}

/// The unmasked header of a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub flag: Flag,
    pub nonce: Nonce,
    pub authdata: Vec<u8>,
}

/// The authdata of each kind of packet, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authdata {
    Message {
        src: NodeId,
    },
    Whoareyou {
        id_nonce: [u8; ID_NONCE_SIZE],
        enr_seq: u64,
    },
    Handshake {
        src: NodeId,
        signature: Vec<u8>,
        ephemeral_key: Vec<u8>,
        /// The sender's signed peer record, when our WHOAREYOU said we had an older one.
        record: Option<Vec<u8>>,
    },
}

impl Authdata {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Authdata::Message { src } => src.0.to_vec(),
            Authdata::Whoareyou { id_nonce, enr_seq } => {
                let mut out = id_nonce.to_vec();
                out.extend_from_slice(&enr_seq.to_be_bytes());
                out
            }
            Authdata::Handshake {
                src,
                signature,
                ephemeral_key,
                record,
            } => {
                let mut out = src.0.to_vec();
                out.push(signature.len() as u8);
                out.push(ephemeral_key.len() as u8);
                out.extend_from_slice(signature);
                out.extend_from_slice(ephemeral_key);
                if let Some(record) = record {
                    out.extend_from_slice(record);
                }
                out
            }
        }
    }

    fn flag(&self) -> Flag {
        match self {
            Authdata::Message { .. } => Flag::Message,
            Authdata::Whoareyou { .. } => Flag::Whoareyou,
            Authdata::Handshake { .. } => Flag::Handshake,
        }
    }
}

/// A whole packet with its header unmasked; `message` is still encrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub iv: [u8; IV_SIZE],
    pub header: Header,
    pub message: Vec<u8>,
}

impl Packet {
    pub fn new(iv: [u8; IV_SIZE], nonce: Nonce, authdata: &Authdata, message: Vec<u8>) -> Self {
        Packet {
            iv,
            header: Header {
                flag: authdata.flag(),
                nonce,
                authdata: authdata.encode(),
            },
            message,
        }
    }

    /// `static-header || authdata`, unmasked.
    pub fn header_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(STATIC_HEADER_SIZE + self.header.authdata.len());
        out.extend_from_slice(PROTOCOL_ID);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.push(self.header.flag as u8);
        out.extend_from_slice(&self.header.nonce);
        out.extend_from_slice(&(self.header.authdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.header.authdata);
        out
    }

    /// `masking-iv || header`: the associated data of the message's AES-GCM, and for a
    /// WHOAREYOU the challenge data that both sides feed to the key derivation.
    pub fn authenticated_data(&self) -> Vec<u8> {
        let mut out = self.iv.to_vec();
        out.extend_from_slice(&self.header_bytes());
        out
    }

    /// The datagram, with the header masked for `dest`.
    pub fn encode(&self, dest: &NodeId) -> Vec<u8> {
        let mut header = self.header_bytes();
        mask_header(dest, &self.iv, &mut header);
        let mut out = Vec::with_capacity(IV_SIZE + header.len() + self.message.len());
        out.extend_from_slice(&self.iv);
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.message);
        out
    }

    /// Reads a datagram addressed to `local` (whose id masks the header).
    pub fn decode(local: &NodeId, bytes: &[u8]) -> Result<Packet, PacketError> {
        if !(MIN_PACKET_SIZE..=MAX_PACKET_SIZE).contains(&bytes.len()) {
            return Err(PacketError::Size { len: bytes.len() });
        }
        let iv: [u8; IV_SIZE] = bytes[..IV_SIZE].try_into().expect("length checked");
        let rest = &bytes[IV_SIZE..];
        // CTR is a stream: unmask the static header first, then as much authdata as it
        // declares, as one keystream over a copy of exactly those bytes.
        let mut static_header = [0u8; STATIC_HEADER_SIZE];
        static_header.copy_from_slice(&rest[..STATIC_HEADER_SIZE]);
        mask_header(local, &iv, &mut static_header);
        if &static_header[..6] != PROTOCOL_ID {
            return Err(PacketError::ProtocolId);
        }
        let version = u16::from_be_bytes([static_header[6], static_header[7]]);
        if version != VERSION {
            return Err(PacketError::Version(version));
        }
        let flag = match static_header[8] {
            0 => Flag::Message,
            1 => Flag::Whoareyou,
            2 => Flag::Handshake,
            other => return Err(PacketError::Flag(other)),
        };
        let nonce: Nonce = static_header[9..21].try_into().expect("12 bytes");
        let authdata_size = u16::from_be_bytes([static_header[21], static_header[22]]) as usize;
        let available = rest.len() - STATIC_HEADER_SIZE;
        if authdata_size > available {
            return Err(PacketError::AuthdataSize {
                declared: authdata_size,
                available,
            });
        }
        let header_len = STATIC_HEADER_SIZE + authdata_size;
        let mut header = rest[..header_len].to_vec();
        mask_header(local, &iv, &mut header);
        let authdata = header.split_off(STATIC_HEADER_SIZE);
        let message = rest[header_len..].to_vec();

        let shape_ok = match flag {
            Flag::Message => authdata.len() == 32 && message.len() >= GCM_TAG_SIZE,
            Flag::Whoareyou => authdata.len() == WHOAREYOU_AUTHDATA_SIZE && message.is_empty(),
            Flag::Handshake => {
                authdata.len() >= HANDSHAKE_AUTHDATA_HEAD
                    && authdata.len()
                        >= HANDSHAKE_AUTHDATA_HEAD + authdata[32] as usize + authdata[33] as usize
                    && message.len() >= GCM_TAG_SIZE
            }
        };
        if !shape_ok {
            return Err(PacketError::Shape {
                flag,
                authdata: authdata.len(),
                message: message.len(),
            });
        }
        Ok(Packet {
            iv,
            header: Header {
                flag,
                nonce,
                authdata,
            },
            message,
        })
    }

    /// The parsed authdata (its shape was checked by [`Packet::decode`]).
    pub fn authdata(&self) -> Authdata {
        let a = &self.header.authdata;
        match self.header.flag {
            Flag::Message => Authdata::Message {
                src: NodeId(a[..32].try_into().expect("checked size")),
            },
            Flag::Whoareyou => Authdata::Whoareyou {
                id_nonce: a[..ID_NONCE_SIZE].try_into().expect("checked size"),
                enr_seq: u64::from_be_bytes(a[ID_NONCE_SIZE..].try_into().expect("checked size")),
            },
            Flag::Handshake => {
                let sig_end = HANDSHAKE_AUTHDATA_HEAD + a[32] as usize;
                let key_end = sig_end + a[33] as usize;
                Authdata::Handshake {
                    src: NodeId(a[..32].try_into().expect("checked size")),
                    signature: a[HANDSHAKE_AUTHDATA_HEAD..sig_end].to_vec(),
                    ephemeral_key: a[sig_end..key_end].to_vec(),
                    record: (a.len() > key_end).then(|| a[key_end..].to_vec()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Packets from the discv5 wire spec's test vectors ("Packet Encodings" section of
    //! ethereum/devp2p discv5/discv5-wire-test-vectors.md), read with node B's id. Their
    //! handshake uses the spec's raw 33-byte key and 64-byte signature, which this layer
    //! carries as opaque bytes.

    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    use k256::ecdsa::{Signature, SigningKey, VerifyingKey};
    use k256::PublicKey;

    use super::*;
    use crate::crypto::{decrypt_message, derive_keys, ecdh, id_proof_hash};

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.split_whitespace().collect::<String>()).unwrap()
    }
    fn id(s: &str) -> NodeId {
        NodeId(h(s).try_into().unwrap())
    }
    const NODE_A: &str = "aaaa8419e9f49d0083561b48287df592939a8d19947d8c0ef88f2a4856a69fbb";
    const NODE_B: &str = "bbbb9d047f0488c0b5a93c1c3f2d8bafc7c8ff337024a55434a0d0555de64db9";
    const NODE_A_KEY: &str = "eef77acb6c6a6eebc5b363a475ac583ec7eccdb42b6481424c60f59aa326547f";
    const NODE_B_KEY: &str = "66fb62bfbd66b9177a138c1e5cddbe4f7c30c343e94e68df8769459cb1cde628";

    #[test]
    fn spec_whoareyou_packet() {
        let bytes = h(
            "00000000000000000000000000000000088b3d434277464933a1ccc59f5967ad
                       1d6035f15e528627dde75cd68292f9e6c27d6b66c8100a873fcbaed4e16b8d",
        );
        let packet = Packet::decode(&id(NODE_B), &bytes).unwrap();
        assert_eq!(packet.header.flag, Flag::Whoareyou);
        assert_eq!(packet.header.nonce.to_vec(), h("0102030405060708090a0b0c"));
        assert_eq!(
            packet.authdata(),
            Authdata::Whoareyou {
                id_nonce: h("0102030405060708090a0b0c0d0e0f10").try_into().unwrap(),
                enr_seq: 0
            }
        );
        assert_eq!(
            packet.authenticated_data(),
            h("000000000000000000000000000000006469736376350001010102030405060708090a0b0c00180102030405060708090a0b0c0d0e0f100000000000000000")
        );
        assert_eq!(packet.encode(&id(NODE_B)), bytes);
        assert_eq!(
            Packet::decode(&id(NODE_A), &bytes),
            Err(PacketError::ProtocolId)
        );
    }

    #[test]
    fn spec_ping_message_packet() {
        let bytes = h(
            "00000000000000000000000000000000088b3d4342774649325f313964a39e55
                       ea96c005ad52be8c7560413a7008f16c9e6d2f43bbea8814a546b7409ce783d3
                       4c4f53245d08dab84102ed931f66d1492acb308fa1c6715b9d139b81acbdcc",
        );
        let packet = Packet::decode(&id(NODE_B), &bytes).unwrap();
        assert_eq!(packet.authdata(), Authdata::Message { src: id(NODE_A) });
        assert_eq!(packet.header.nonce, [0xff; 12]);
        let pt = decrypt_message(
            &[0; 16],
            &packet.header.nonce,
            &packet.message,
            &packet.authenticated_data(),
        )
        .unwrap();
        // The spec's RLP ping: kind 1, [req-id 0x00000001, enr-seq 2].
        assert_eq!(pt, h("01c6840000000102"));
        assert_eq!(packet.encode(&id(NODE_B)), bytes);
    }

    #[test]
    fn spec_handshake_packet() {
        let bytes = h(
            "00000000000000000000000000000000088b3d4342774649305f313964a39e55
                       ea96c005ad521d8c7560413a7008f16c9e6d2f43bbea8814a546b7409ce783d3
                       4c4f53245d08da4bb252012b2cba3f4f374a90a75cff91f142fa9be3e0a5f3ef
                       268ccb9065aeecfd67a999e7fdc137e062b2ec4a0eb92947f0d9a74bfbf44dfb
                       a776b21301f8b65efd5796706adff216ab862a9186875f9494150c4ae06fa4d1
                       f0396c93f215fa4ef524f1eadf5f0f4126b79336671cbcf7a885b1f8bd2a5d83
                       9cf8",
        );
        let challenge = h("000000000000000000000000000000006469736376350001010102030405060708090a0b0c00180102030405060708090a0b0c0d0e0f100000000000000001");
        let packet = Packet::decode(&id(NODE_B), &bytes).unwrap();
        let Authdata::Handshake {
            src,
            signature,
            ephemeral_key,
            record,
        } = packet.authdata()
        else {
            panic!("not a handshake");
        };
        assert_eq!(src, id(NODE_A));
        assert_eq!(record, None);
        assert_eq!(
            ephemeral_key,
            h("039a003ba6517b473fa0cd74aefe99dadfdb34627f90fec6362df85803908f53a5")
        );
        // The spec's id signature (raw r‖s over the id-proof hash) by node A.
        let a_key = SigningKey::from_slice(&h(NODE_A_KEY)).unwrap();
        let hash = id_proof_hash(&challenge, &ephemeral_key, &id(NODE_B));
        let sig = Signature::from_slice(&signature).unwrap();
        VerifyingKey::from(&a_key)
            .verify_prehash(&hash, &sig)
            .unwrap();
        // Node B derives the session and reads the ping.
        let b_key = SigningKey::from_slice(&h(NODE_B_KEY)).unwrap();
        let eph = PublicKey::from_sec1_bytes(&ephemeral_key).unwrap();
        let keys = derive_keys(&ecdh(&b_key, &eph), &src, &id(NODE_B), &challenge);
        assert_eq!(
            keys.initiator_key.to_vec(),
            h("4f9fac6de7567d1e3b1241dffe90f662")
        );
        let pt = decrypt_message(
            &keys.initiator_key,
            &packet.header.nonce,
            &packet.message,
            &packet.authenticated_data(),
        )
        .unwrap();
        assert_eq!(pt, h("01c6840000000101"));
        assert_eq!(packet.encode(&id(NODE_B)), bytes);
    }

    #[test]
    fn masking_round_trip_and_rejections() {
        let auth = Authdata::Handshake {
            src: id(NODE_A),
            signature: vec![7; 70],
            ephemeral_key: vec![9; 37],
            record: Some(vec![1, 2, 3]),
        };
        let packet = Packet::new([5; 16], [6; 12], &auth, vec![0xee; 40]);
        let bytes = packet.encode(&id(NODE_B));
        let back = Packet::decode(&id(NODE_B), &bytes).unwrap();
        assert_eq!(back, packet);
        assert_eq!(back.authdata(), auth);
        // Masked: the protocol id does not appear in clear.
        assert_ne!(&bytes[16..22], PROTOCOL_ID);
        assert_eq!(
            Packet::decode(&id(NODE_B), &bytes[..40]),
            Err(PacketError::Size { len: 40 })
        );
        // A handshake whose declared signature size runs past the authdata.
        let mut bad = Packet::new([5; 16], [6; 12], &auth, vec![0xee; 40]);
        bad.header.authdata[32] = 200;
        assert!(matches!(
            Packet::decode(&id(NODE_B), &bad.encode(&id(NODE_B))),
            Err(PacketError::Shape { .. })
        ));
    }
}
