//! Archivist's blockexc messages: typed values for the engine, and their exact wire bytes.
//!
//! The wire side is a set of private prost structs with `optional` fields so that every
//! field is written even when it holds a zero value, as nim-libp2p's protobuf writer does;
//! that is what makes our bytes equal to an Archivist node's. Decoding is tolerant of
//! missing fields (Archivist's decoder is too) but refuses CIDs that do not parse and
//! prices wider than a UInt256. This module never looks at block contents: hashes and
//! proofs are checked by the engine, which knows what it asked for.

use bytes::Bytes;
use neverust_content::{cid_string, Cid};
use prost::Message as _;

/// Archivist refuses length-prefixed messages above 100 MiB.
pub const MAX_MESSAGE_SIZE: usize = 100 * 1024 * 1024;
/// A price is a big-endian UInt256.
pub const MAX_PRICE_BYTES: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlockAddress {
    /// A block of a dataset, by the dataset's tree root and its index; delivered with a proof.
    Leaf { tree: Cid, index: u64 },
    /// A block by its own CID (manifests).
    Cid(Cid),
}

impl std::fmt::Display for BlockAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlockAddress::Leaf { tree, index } => write!(f, "{}[{index}]", cid_string(tree)),
            BlockAddress::Cid(cid) => f.write_str(&cid_string(cid)),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WantType {
    #[default]
    Block,
    Have,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantEntry {
    pub address: BlockAddress,
    pub priority: i32,
    pub cancel: bool,
    pub want: WantType,
    pub send_dont_have: bool,
}

impl WantEntry {
    pub fn block(address: BlockAddress) -> Self {
        WantEntry {
            address,
            priority: 1,
            cancel: false,
            want: WantType::Block,
            send_dont_have: true,
        }
    }

    pub fn cancel(address: BlockAddress) -> Self {
        WantEntry {
            cancel: true,
            send_dont_have: false,
            ..WantEntry::block(address)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Wantlist {
    pub entries: Vec<WantEntry>,
    pub full: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockDelivery {
    pub cid: Cid,
    pub data: Bytes,
    pub address: BlockAddress,
    /// The encoded Merkle proof; Archivist sends it for leaf addresses only.
    pub proof: Option<Bytes>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    Have,
    DontHave,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockPresence {
    pub address: BlockAddress,
    pub presence: Presence,
    /// Big-endian UInt256, at most 32 bytes; empty means free.
    pub price: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Message {
    pub wantlist: Wantlist,
    pub payload: Vec<BlockDelivery>,
    pub presences: Vec<BlockPresence>,
    pub pending_bytes: u64,
    /// AccountMessage.address: an Ethereum address payments go to (unused here).
    pub account: Vec<u8>,
    /// StateChannelUpdate.update: a signed payment-channel state (unused here).
    pub payment: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    #[error("malformed blockexc message: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("blockexc message has an invalid CID in {field}: {reason}")]
    BadCid { field: &'static str, reason: String },
    #[error("block presence price of {0} bytes is wider than a UInt256")]
    BadPrice(usize),
    #[error("blockexc message of {len} bytes is over the {max} byte limit")]
    TooLarge { len: u64, max: usize },
    #[error("blockexc stream failed: {0}")]
    Io(#[from] std::io::Error),
}

impl Message {
    /// Want-have entries, dont-have asked for, for blocks `indices` of `tree`: how a peer
    /// learns which of them another holds without reconciliation.
    pub fn want_haves(tree: Cid, indices: &[u64]) -> Message {
        let entries = indices
            .iter()
            .map(|&index| WantEntry {
                want: WantType::Have,
                ..WantEntry::block(BlockAddress::Leaf { tree, index })
            })
            .collect();
        Message {
            wantlist: Wantlist {
                entries,
                full: false,
            },
            ..Message::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.wantlist.entries.is_empty() && self.payload.is_empty() && self.presences.is_empty()
    }

    pub fn encode(&self) -> Vec<u8> {
        self.to_pb().encode_to_vec()
    }

    /// Length prefix and body in one buffer, each block's bytes copied once: this is what
    /// goes on a stream, and deliveries are the hot path.
    pub fn encode_framed(&self) -> Vec<u8> {
        let pb = self.to_pb();
        let len = pb.encoded_len();
        let mut out = super::codec::length_prefix(len, len);
        pb.encode(&mut out).expect("a Vec grows as needed");
        out
    }

    fn to_pb(&self) -> MessagePb {
        MessagePb {
            wantlist: Some(WantlistPb {
                entries: self.wantlist.entries.iter().map(entry_pb).collect(),
                full: Some(self.wantlist.full),
            }),
            payload: self.payload.iter().map(delivery_pb).collect(),
            presences: self.presences.iter().map(presence_pb).collect(),
            pending_bytes: Some(self.pending_bytes),
            account: Some(AccountPb {
                address: Some(self.account.clone()),
            }),
            payment: Some(PaymentPb {
                update: Some(self.payment.clone()),
            }),
        }
    }

    /// Decodes one message body (without its length prefix). Block payloads share `bytes`.
    pub fn decode(bytes: Bytes) -> Result<Message, WireError> {
        let pb = MessagePb::decode(bytes)?;
        let wl = pb.wantlist.unwrap_or_default();
        Ok(Message {
            wantlist: Wantlist {
                entries: wl
                    .entries
                    .into_iter()
                    .map(entry_from_pb)
                    .collect::<Result<_, _>>()?,
                full: wl.full.unwrap_or(false),
            },
            payload: pb
                .payload
                .into_iter()
                .map(delivery_from_pb)
                .collect::<Result<_, _>>()?,
            presences: pb
                .presences
                .into_iter()
                .map(presence_from_pb)
                .collect::<Result<_, _>>()?,
            pending_bytes: pb.pending_bytes.unwrap_or(0),
            account: pb.account.and_then(|a| a.address).unwrap_or_default(),
            payment: pb.payment.and_then(|p| p.update).unwrap_or_default(),
        })
    }
}

fn address_pb(a: &BlockAddress) -> AddressPb {
    match a {
        BlockAddress::Leaf { tree, index } => AddressPb {
            leaf: Some(true),
            tree_cid: Some(tree.to_bytes()),
            index: Some(*index),
            cid: None,
        },
        BlockAddress::Cid(cid) => AddressPb {
            leaf: Some(false),
            tree_cid: None,
            index: None,
            cid: Some(cid.to_bytes()),
        },
    }
}

fn entry_pb(e: &WantEntry) -> EntryPb {
    EntryPb {
        address: Some(address_pb(&e.address)),
        priority: Some(e.priority),
        cancel: Some(e.cancel),
        want_type: Some(match e.want {
            WantType::Block => 0,
            WantType::Have => 1,
        }),
        send_dont_have: Some(e.send_dont_have),
    }
}

fn delivery_pb(d: &BlockDelivery) -> DeliveryPb {
    let leaf = matches!(d.address, BlockAddress::Leaf { .. });
    DeliveryPb {
        cid: Some(d.cid.to_bytes().into()),
        data: Some(d.data.clone()),
        address: Some(address_pb(&d.address)),
        proof: if leaf { d.proof.clone() } else { None },
    }
}

fn presence_pb(p: &BlockPresence) -> PresencePb {
    PresencePb {
        address: Some(address_pb(&p.address)),
        kind: Some(match p.presence {
            Presence::Have => 0,
            Presence::DontHave => 1,
        }),
        price: Some(p.price.clone()),
    }
}

fn cid_from(bytes: Option<&[u8]>, field: &'static str) -> Result<Cid, WireError> {
    Cid::try_from(bytes.unwrap_or_default()).map_err(|e| WireError::BadCid {
        field,
        reason: e.to_string(),
    })
}

fn address_from_pb(a: Option<AddressPb>, field: &'static str) -> Result<BlockAddress, WireError> {
    let a = a.unwrap_or_default();
    if a.leaf.unwrap_or(false) {
        Ok(BlockAddress::Leaf {
            tree: cid_from(a.tree_cid.as_deref(), field)?,
            index: a.index.unwrap_or(0),
        })
    } else {
        Ok(BlockAddress::Cid(cid_from(a.cid.as_deref(), field)?))
    }
}

fn entry_from_pb(e: EntryPb) -> Result<WantEntry, WireError> {
    Ok(WantEntry {
        address: address_from_pb(e.address, "wantlist entry address")?,
        priority: e.priority.unwrap_or(0),
        cancel: e.cancel.unwrap_or(false),
        // Archivist only defines 0 and 1; anything else is read as the default, a block.
        want: if e.want_type == Some(1) {
            WantType::Have
        } else {
            WantType::Block
        },
        send_dont_have: e.send_dont_have.unwrap_or(false),
    })
}

fn delivery_from_pb(d: DeliveryPb) -> Result<BlockDelivery, WireError> {
    let address = address_from_pb(d.address, "delivery address")?;
    let proof = match address {
        BlockAddress::Leaf { .. } => d.proof,
        BlockAddress::Cid(_) => None,
    };
    Ok(BlockDelivery {
        cid: cid_from(d.cid.as_deref(), "delivery cid")?,
        data: d.data.unwrap_or_default(),
        address,
        proof,
    })
}

fn presence_from_pb(p: PresencePb) -> Result<BlockPresence, WireError> {
    let price = p.price.unwrap_or_default();
    if price.len() > MAX_PRICE_BYTES {
        return Err(WireError::BadPrice(price.len()));
    }
    Ok(BlockPresence {
        address: address_from_pb(p.address, "presence address")?,
        presence: if p.kind == Some(1) {
            Presence::DontHave
        } else {
            Presence::Have
        },
        price,
    })
}

#[derive(Clone, PartialEq, prost::Message)]
struct MessagePb {
    #[prost(message, optional, tag = "1")]
    wantlist: Option<WantlistPb>,
    #[prost(message, repeated, tag = "3")]
    payload: Vec<DeliveryPb>,
    #[prost(message, repeated, tag = "4")]
    presences: Vec<PresencePb>,
    #[prost(uint64, optional, tag = "5")]
    pending_bytes: Option<u64>,
    #[prost(message, optional, tag = "6")]
    account: Option<AccountPb>,
    #[prost(message, optional, tag = "7")]
    payment: Option<PaymentPb>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct WantlistPb {
    #[prost(message, repeated, tag = "1")]
    entries: Vec<EntryPb>,
    #[prost(bool, optional, tag = "2")]
    full: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EntryPb {
    #[prost(message, optional, tag = "1")]
    address: Option<AddressPb>,
    #[prost(int32, optional, tag = "2")]
    priority: Option<i32>,
    #[prost(bool, optional, tag = "3")]
    cancel: Option<bool>,
    #[prost(uint32, optional, tag = "4")]
    want_type: Option<u32>,
    #[prost(bool, optional, tag = "5")]
    send_dont_have: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AddressPb {
    #[prost(bool, optional, tag = "1")]
    leaf: Option<bool>,
    #[prost(bytes = "vec", optional, tag = "2")]
    tree_cid: Option<Vec<u8>>,
    #[prost(uint64, optional, tag = "3")]
    index: Option<u64>,
    #[prost(bytes = "vec", optional, tag = "4")]
    cid: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct DeliveryPb {
    #[prost(bytes = "bytes", optional, tag = "1")]
    cid: Option<Bytes>,
    #[prost(bytes = "bytes", optional, tag = "2")]
    data: Option<Bytes>,
    #[prost(message, optional, tag = "3")]
    address: Option<AddressPb>,
    #[prost(bytes = "bytes", optional, tag = "4")]
    proof: Option<Bytes>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PresencePb {
    #[prost(message, optional, tag = "1")]
    address: Option<AddressPb>,
    #[prost(uint32, optional, tag = "2")]
    kind: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "3")]
    price: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AccountPb {
    #[prost(bytes = "vec", optional, tag = "1")]
    address: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PaymentPb {
    #[prost(bytes = "vec", optional, tag = "1")]
    update: Option<Vec<u8>>,
}
