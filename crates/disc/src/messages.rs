//! The messages inside packets, in Archivist's encoding: one kind byte, then a protobuf
//! `{1: request-id (bytes, ≤ 8), 2: body (bytes)}` whose body is the kind's own protobuf
//! (archivist-dht `messages_encoding.nim`, `providers_encoding.nim`; the discv5 spec uses RLP
//! here instead).
//!
//! Facts pinned by the golden tests: every field is written even when zero (nim-libp2p's
//! minprotobuf writes what it is given and reads with `getRequiredField`), so the prost
//! structs use `required`; FINDNODE distances are a repeated 2-byte big-endian *bytes* field;
//! PONG's port is 2 bytes big-endian and its IP a nested `{1: family (1 byte: 0 IPv6, 1
//! IPv4), 2: address}`; ids are 32-byte big-endian bytes; signed peer records travel as the
//! bytes of their libp2p envelope, opaque at this layer (the `spr` module verifies them).
//!
//! Pure: no I/O, no signature checks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use prost::Message as _;

use crate::node_id::NodeId;

/// A request id: at most 8 bytes, chosen by the requester and echoed in the response.
pub type RequestId = Vec<u8>;
pub const MAX_REQUEST_ID_SIZE: usize = 8;

pub const KIND_PING: u8 = 0x01;
pub const KIND_PONG: u8 = 0x02;
pub const KIND_FIND_NODE: u8 = 0x03;
pub const KIND_NODES: u8 = 0x04;
pub const KIND_TALK_REQ: u8 = 0x05;
pub const KIND_TALK_RESP: u8 = 0x06;
pub const KIND_ADD_PROVIDER: u8 = 0x0b;
pub const KIND_GET_PROVIDERS: u8 = 0x0c;
pub const KIND_PROVIDERS: u8 = 0x0d;
pub const KIND_FIND_NODE_FAST: u8 = 0x83;

#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    Ping {
        enr_seq: u64,
    },
    Pong {
        enr_seq: u64,
        ip: IpAddr,
        port: u16,
    },
    FindNode {
        distances: Vec<u16>,
    },
    FindNodeFast {
        target: NodeId,
    },
    /// One of `total` NODES messages answering a FINDNODE; `records` are SPR envelopes.
    Nodes {
        total: u32,
        records: Vec<Vec<u8>>,
    },
    TalkReq {
        protocol: Vec<u8>,
        request: Vec<u8>,
    },
    TalkResp {
        response: Vec<u8>,
    },
    /// Store `provider` (an SPR envelope) as a provider of `content`; never answered.
    AddProvider {
        content: NodeId,
        provider: Vec<u8>,
    },
    GetProviders {
        content: NodeId,
    },
    Providers {
        total: u32,
        providers: Vec<Vec<u8>>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageError {
    #[error("empty message")]
    Empty,
    #[error("message kind {0:#04x} is unknown or not implemented")]
    Kind(u8),
    #[error("malformed protobuf in a {kind:#04x} message: {reason}")]
    Protobuf { kind: u8, reason: String },
    #[error("request id of {0} bytes (at most 8)")]
    RequestId(usize),
    #[error("field {field} of a {kind:#04x} message has {len} bytes, expected {expected}")]
    FieldSize {
        kind: u8,
        field: &'static str,
        len: usize,
        expected: &'static str,
    },
}

impl Message {
    pub fn kind(&self) -> u8 {
        match self {
            Message::Ping { .. } => KIND_PING,
            Message::Pong { .. } => KIND_PONG,
            Message::FindNode { .. } => KIND_FIND_NODE,
            Message::FindNodeFast { .. } => KIND_FIND_NODE_FAST,
            Message::Nodes { .. } => KIND_NODES,
            Message::TalkReq { .. } => KIND_TALK_REQ,
            Message::TalkResp { .. } => KIND_TALK_RESP,
            Message::AddProvider { .. } => KIND_ADD_PROVIDER,
            Message::GetProviders { .. } => KIND_GET_PROVIDERS,
            Message::Providers { .. } => KIND_PROVIDERS,
        }
    }

    /// Whether this kind answers a request (and so is matched against pending requests).
    pub fn is_response(&self) -> bool {
        matches!(
            self,
            Message::Pong { .. }
                | Message::Nodes { .. }
                | Message::TalkResp { .. }
                | Message::Providers { .. }
        )
    }

    /// The plaintext of a packet's message: kind byte, then the framed protobuf.
    pub fn encode(&self, request_id: &[u8]) -> Vec<u8> {
        let body = match self {
            Message::Ping { enr_seq } => pb::Ping { enr_seq: *enr_seq }.encode_to_vec(),
            Message::Pong { enr_seq, ip, port } => pb::Pong {
                enr_seq: *enr_seq,
                ip: Some(pb::Ip::from(*ip)),
                port: port.to_be_bytes().to_vec(),
            }
            .encode_to_vec(),
            Message::FindNode { distances } => pb::FindNode {
                distances: distances.iter().map(|d| d.to_be_bytes().to_vec()).collect(),
            }
            .encode_to_vec(),
            Message::FindNodeFast { target } => pb::IdOnly {
                id: target.0.to_vec(),
            }
            .encode_to_vec(),
            Message::Nodes { total, records } => pb::Records {
                total: *total,
                records: records.clone(),
            }
            .encode_to_vec(),
            Message::TalkReq { protocol, request } => pb::TalkReq {
                protocol: protocol.clone(),
                request: request.clone(),
            }
            .encode_to_vec(),
            Message::TalkResp { response } => pb::TalkResp {
                response: response.clone(),
            }
            .encode_to_vec(),
            Message::AddProvider { content, provider } => pb::AddProvider {
                content: content.0.to_vec(),
                provider: provider.clone(),
            }
            .encode_to_vec(),
            Message::GetProviders { content } => pb::IdOnly {
                id: content.0.to_vec(),
            }
            .encode_to_vec(),
            Message::Providers { total, providers } => pb::Records {
                total: *total,
                records: providers.clone(),
            }
            .encode_to_vec(),
        };
        let frame = pb::Frame {
            request_id: request_id.to_vec(),
            body,
        };
        let mut out = Vec::with_capacity(1 + frame.encoded_len());
        out.push(self.kind());
        frame
            .encode(&mut out)
            .expect("a Vec grows to fit the message");
        out
    }

    /// Reads a decrypted message.
    pub fn decode(bytes: &[u8]) -> Result<(RequestId, Message), MessageError> {
        let (&kind, rest) = bytes.split_first().ok_or(MessageError::Empty)?;
        let proto = |e: prost::DecodeError| MessageError::Protobuf {
            kind,
            reason: e.to_string(),
        };
        let frame = pb::Frame::decode(rest).map_err(proto)?;
        if frame.request_id.len() > MAX_REQUEST_ID_SIZE {
            return Err(MessageError::RequestId(frame.request_id.len()));
        }
        let body = frame.body.as_slice();
        let message = match kind {
            KIND_PING => Message::Ping {
                enr_seq: pb::Ping::decode(body).map_err(proto)?.enr_seq,
            },
            KIND_PONG => {
                let pong = pb::Pong::decode(body).map_err(proto)?;
                let ip = pong.ip.unwrap_or_default();
                let ip = ip.to_ip().ok_or(MessageError::FieldSize {
                    kind,
                    field: "ip",
                    len: ip.address.len(),
                    expected: "4 bytes with family 1, 16 with family 0",
                })?;
                Message::Pong {
                    enr_seq: pong.enr_seq,
                    ip,
                    port: u16::from_be_bytes(fixed(kind, "port", &pong.port, "2")?),
                }
            }
            KIND_FIND_NODE => {
                let find = pb::FindNode::decode(body).map_err(proto)?;
                let distances = find
                    .distances
                    .iter()
                    .map(|d| fixed(kind, "distance", d, "2").map(u16::from_be_bytes))
                    .collect::<Result<_, _>>()?;
                Message::FindNode { distances }
            }
            KIND_FIND_NODE_FAST => Message::FindNodeFast {
                target: id_field(kind, "target", body)?,
            },
            KIND_NODES => {
                let nodes = pb::Records::decode(body).map_err(proto)?;
                Message::Nodes {
                    total: nodes.total,
                    records: nodes.records,
                }
            }
            KIND_TALK_REQ => {
                let talk = pb::TalkReq::decode(body).map_err(proto)?;
                Message::TalkReq {
                    protocol: talk.protocol,
                    request: talk.request,
                }
            }
            KIND_TALK_RESP => Message::TalkResp {
                response: pb::TalkResp::decode(body).map_err(proto)?.response,
            },
            KIND_ADD_PROVIDER => {
                let add = pb::AddProvider::decode(body).map_err(proto)?;
                Message::AddProvider {
                    content: NodeId(fixed(kind, "content id", &add.content, "32")?),
                    provider: add.provider,
                }
            }
            KIND_GET_PROVIDERS => Message::GetProviders {
                content: id_field(kind, "content id", body)?,
            },
            KIND_PROVIDERS => {
                let provs = pb::Records::decode(body).map_err(proto)?;
                Message::Providers {
                    total: provs.total,
                    providers: provs.records,
                }
            }
            other => return Err(MessageError::Kind(other)),
        };
        Ok((frame.request_id, message))
    }
}

fn fixed<const N: usize>(
    kind: u8,
    field: &'static str,
    bytes: &[u8],
    expected: &'static str,
) -> Result<[u8; N], MessageError> {
    bytes.try_into().map_err(|_| MessageError::FieldSize {
        kind,
        field,
        len: bytes.len(),
        expected,
    })
}

fn id_field(kind: u8, field: &'static str, body: &[u8]) -> Result<NodeId, MessageError> {
    let msg = pb::IdOnly::decode(body).map_err(|e| MessageError::Protobuf {
        kind,
        reason: e.to_string(),
    })?;
    Ok(NodeId(fixed(kind, field, &msg.id, "32")?))
}

/// The protobuf shapes, field numbers as in archivist-dht's Nim coders.
mod pb {
    use super::*;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Frame {
        #[prost(bytes = "vec", required, tag = "1")]
        pub request_id: Vec<u8>,
        #[prost(bytes = "vec", required, tag = "2")]
        pub body: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Ping {
        #[prost(uint64, required, tag = "1")]
        pub enr_seq: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Pong {
        #[prost(uint64, required, tag = "1")]
        pub enr_seq: u64,
        #[prost(message, optional, tag = "2")]
        pub ip: Option<Ip>,
        #[prost(bytes = "vec", required, tag = "3")]
        pub port: Vec<u8>,
    }

    /// Nim's `IpAddress`: family is its `IpAddressFamily` enum (IPv6 = 0, IPv4 = 1) as one
    /// byte, in a bytes field.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Ip {
        #[prost(bytes = "vec", required, tag = "1")]
        pub family: Vec<u8>,
        #[prost(bytes = "vec", required, tag = "2")]
        pub address: Vec<u8>,
    }

    impl From<IpAddr> for Ip {
        fn from(ip: IpAddr) -> Self {
            match ip {
                IpAddr::V4(v4) => Ip {
                    family: vec![1],
                    address: v4.octets().to_vec(),
                },
                IpAddr::V6(v6) => Ip {
                    family: vec![0],
                    address: v6.octets().to_vec(),
                },
            }
        }
    }

    impl Ip {
        pub fn to_ip(&self) -> Option<IpAddr> {
            match (self.family.as_slice(), self.address.len()) {
                ([1], 4) => {
                    let o: [u8; 4] = self.address.as_slice().try_into().ok()?;
                    Some(IpAddr::V4(Ipv4Addr::from(o)))
                }
                ([0], 16) => {
                    let o: [u8; 16] = self.address.as_slice().try_into().ok()?;
                    Some(IpAddr::V6(Ipv6Addr::from(o)))
                }
                _ => None,
            }
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FindNode {
        #[prost(bytes = "vec", repeated, tag = "1")]
        pub distances: Vec<Vec<u8>>,
    }

    /// FINDNODEFAST's target and GETPROVIDERS' content id: field 1, 32 bytes.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct IdOnly {
        #[prost(bytes = "vec", required, tag = "1")]
        pub id: Vec<u8>,
    }

    /// NODES and PROVIDERS: 1 total (varint), 2 repeated SPR envelopes.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Records {
        #[prost(uint32, required, tag = "1")]
        pub total: u32,
        #[prost(bytes = "vec", repeated, tag = "2")]
        pub records: Vec<Vec<u8>>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TalkReq {
        #[prost(bytes = "vec", required, tag = "1")]
        pub protocol: Vec<u8>,
        #[prost(bytes = "vec", required, tag = "2")]
        pub request: Vec<u8>,
    }

    /// Field 1 is unused: Archivist writes the response as field 2.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TalkResp {
        #[prost(bytes = "vec", required, tag = "2")]
        pub response: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AddProvider {
        #[prost(bytes = "vec", required, tag = "1")]
        pub content: Vec<u8>,
        #[prost(bytes = "vec", required, tag = "2")]
        pub provider: Vec<u8>,
    }
}
