//! Identifiers: client/host addresses, request, slot, availability and reservation ids, nonces.
//!
//! Request and slot ids are derived as Archivist derives them (archivist/contracts/requests.nim:
//! `id(request) = keccak256(abi.encode(request))`, `slotId(requestId, index) =
//! keccak256(abi.encode(requestId, index))`), with the Solidity ABI encoding written out in
//! [`crate::request::StorageRequest::abi_encode`]. Addresses are 20-byte Ethereum addresses:
//! for a secp256k1 key (what Archivist nodes use) exactly Ethereum's derivation; for other
//! libp2p key types the same hash over the key's protobuf encoding (documented, not Ethereum).

use std::fmt;

use libp2p_identity::PublicKey;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha3::{Digest as _, Keccak256};

pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// Formats and parses a fixed-size id as `0x`-prefixed lowercase hex (openapi.yaml `Id`).
fn to_hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

fn from_hex0x<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    let v = hex::decode(s).ok()?;
    v.try_into().ok()
}

macro_rules! fixed_id {
    ($(#[$m:meta])* $name:ident, $n:expr) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; $n]);

        impl $name {
            pub fn to_hex(&self) -> String {
                to_hex0x(&self.0)
            }

            /// Parses hex with or without the `0x` prefix.
            pub fn from_hex(s: &str) -> Option<Self> {
                from_hex0x::<$n>(s).map(Self)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::from_hex(&s).ok_or_else(|| {
                    serde::de::Error::custom(concat!("not a hex ", stringify!($name)))
                })
            }
        }
    };
}

fixed_id!(
    /// A 20-byte Ethereum-style address: who a request belongs to, who holds a slot.
    Address,
    20
);
fixed_id!(
    /// keccak256 of the ABI-encoded storage request.
    RequestId,
    32
);
fixed_id!(
    /// keccak256 of the ABI-encoded (request id, slot index).
    SlotId,
    32
);
fixed_id!(
    /// Random bytes making two otherwise equal requests distinct.
    Nonce,
    32
);
fixed_id!(
    /// A host's availability (archivist/sales/reservations.nim `AvailabilityId`).
    AvailabilityId,
    32
);
fixed_id!(
    /// A host's reservation of part of an availability for one slot.
    ReservationId,
    32
);

impl Address {
    /// Ethereum's address of a secp256k1 key: the last 20 bytes of keccak256 of the
    /// uncompressed point without its 0x04 prefix. Other key types hash their protobuf form.
    pub fn of(key: &PublicKey) -> Address {
        let digest = match key.clone().try_into_secp256k1() {
            Ok(k) => keccak256(&k.to_bytes_uncompressed()[1..]),
            Err(_) => keccak256(&key.encode_protobuf()),
        };
        let mut a = [0u8; 20];
        a.copy_from_slice(&digest[12..]);
        Address(a)
    }
}

impl SlotId {
    /// `keccak256(abi.encode(requestId, uint64 slotIndex))`: two 32-byte words.
    pub fn new(request: &RequestId, slot_index: u64) -> SlotId {
        let mut buf = [0u8; 64];
        buf[..32].copy_from_slice(&request.0);
        buf[56..].copy_from_slice(&slot_index.to_be_bytes());
        SlotId(keccak256(&buf))
    }
}

/// A slot named by its request and index; its [`SlotId`] is derived from both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotRef {
    pub request_id: RequestId,
    pub slot_index: u64,
}

impl SlotRef {
    pub fn id(&self) -> SlotId {
        SlotId::new(&self.request_id, self.slot_index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keccak_of_empty_is_ethereums() {
        assert_eq!(
            hex::encode(keccak256(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    #[test]
    fn ethereum_address_of_a_known_secp256k1_key() {
        // Private key 1: the generator point, whose address is well known.
        let mut sk = [0u8; 32];
        sk[31] = 1;
        let sk = libp2p_identity::secp256k1::SecretKey::try_from_bytes(sk).unwrap();
        let kp = libp2p_identity::secp256k1::Keypair::from(sk);
        let pk = PublicKey::from(kp.public().clone());
        assert_eq!(
            Address::of(&pk).to_hex(),
            "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"
        );
    }

    #[test]
    fn slot_id_hashes_two_words() {
        let r = RequestId([7u8; 32]);
        let mut buf = vec![7u8; 32];
        buf.extend_from_slice(&[0u8; 31]);
        buf.push(3);
        assert_eq!(SlotId::new(&r, 3).0, keccak256(&buf));
        assert_ne!(SlotId::new(&r, 3), SlotId::new(&r, 4));
    }

    #[test]
    fn hex_round_trip_with_and_without_prefix() {
        let id = RequestId([0xab; 32]);
        assert_eq!(RequestId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(RequestId::from_hex(&hex::encode(id.0)), Some(id));
        assert_eq!(RequestId::from_hex("0x12"), None);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<RequestId>(&json).unwrap(), id);
    }
}
