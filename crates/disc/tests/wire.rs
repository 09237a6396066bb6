//! Wire formats pinned: golden bytes of every message, written by hand from the field
//! numbers of archivist-dht's Nim coders (`messages_encoding.nim`, `providers_encoding.nim`
//! at d228343), round-trip properties, and bounded fuzz runs of every decoder of untrusted
//! bytes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use libp2p::identity::Keypair;
use neverust_disc::messages::Message;
use neverust_disc::packet::Packet;
use neverust_disc::spr::signing_key_of;
use neverust_disc::{Config, NodeId, Protocol, Spr};
use proptest::prelude::*;

fn golden(message: Message, hex_bytes: &str) {
    let bytes = hex::decode(hex_bytes.split_whitespace().collect::<String>()).unwrap();
    assert_eq!(hex::encode(message.encode(&[1])), hex::encode(&bytes));
    assert_eq!(Message::decode(&bytes).unwrap(), (vec![1], message));
}

// Every golden is: kind byte | 0a 01 01 (field 1, request id = 01) | 12 LEN (field 2, body)
// | body.

#[test]
fn golden_ping() {
    // body: 08 01 (1: enr-seq varint 1)
    golden(Message::Ping { enr_seq: 1 }, "01 0a0101 1202 0801");
    // A zero is still written: Nim reads it with getRequiredField.
    golden(Message::Ping { enr_seq: 0 }, "01 0a0101 1202 0800");
}

#[test]
fn golden_pong() {
    // body: 08 01 (1: enr-seq) | 12 09 (2: ip) {0a 01 01 (1: family byte, IPv4 = 1) |
    // 12 04 7f000001 (2: address)} | 1a 02 1388 (3: port 5000, 2 bytes big-endian)
    golden(
        Message::Pong {
            enr_seq: 1,
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 5000,
        },
        "02 0a0101 1211 0801 1209 0a0101 12047f000001 1a021388",
    );
    // IPv6 is family 0 with 16 bytes.
    golden(
        Message::Pong {
            enr_seq: 2,
            ip: "::1".parse().unwrap(),
            port: 1,
        },
        "02 0a0101 121d 0802 1215 0a0100 1210 00000000000000000000000000000001 1a020001",
    );
}

#[test]
fn golden_find_node() {
    // body: 0a 02 0100 (1: distance 256 as 2 bytes BE) | 0a 02 00ff (1: distance 255)
    golden(
        Message::FindNode {
            distances: vec![256, 255],
        },
        "03 0a0101 1208 0a020100 0a0200ff",
    );
}

#[test]
fn golden_find_node_fast() {
    // body: 0a 20 <32-byte target>; kind 0x83
    golden(
        Message::FindNodeFast {
            target: NodeId([0x11; 32]),
        },
        &format!("83 0a0101 1222 0a20 {}", "11".repeat(32)),
    );
}

#[test]
fn golden_nodes() {
    // body: 08 01 (1: total) — an empty answer has no field 2
    golden(
        Message::Nodes {
            total: 1,
            records: vec![],
        },
        "04 0a0101 1202 0801",
    );
    // body: 08 02 (1: total 2) | 12 02 aabb (2: one record's envelope bytes)
    golden(
        Message::Nodes {
            total: 2,
            records: vec![vec![0xaa, 0xbb]],
        },
        "04 0a0101 1206 0802 1202aabb",
    );
}

#[test]
fn golden_talk() {
    // body: 0a 01 70 (1: protocol "p") | 12 01 72 (2: request "r")
    golden(
        Message::TalkReq {
            protocol: b"p".to_vec(),
            request: b"r".to_vec(),
        },
        "05 0a0101 1206 0a0170 120172",
    );
    // body: 12 00 (2: empty response; field 1 is unused)
    golden(
        Message::TalkResp { response: vec![] },
        "06 0a0101 1202 1200",
    );
}

#[test]
fn golden_add_provider() {
    // body: 0a 20 <32-byte content id> (1) | 12 02 ccdd (2: provider SPR envelope)
    golden(
        Message::AddProvider {
            content: NodeId([0x22; 32]),
            provider: vec![0xcc, 0xdd],
        },
        &format!("0b 0a0101 1226 0a20 {} 1202ccdd", "22".repeat(32)),
    );
}

#[test]
fn golden_get_providers() {
    // body: 0a 20 <32-byte content id>
    golden(
        Message::GetProviders {
            content: NodeId([0x33; 32]),
        },
        &format!("0c 0a0101 1222 0a20 {}", "33".repeat(32)),
    );
}

#[test]
fn golden_providers() {
    // body: 08 01 (1: total) | 12 01 01 (2: one provider SPR envelope)
    golden(
        Message::Providers {
            total: 1,
            providers: vec![vec![0x01]],
        },
        "0d 0a0101 1205 0801 120101",
    );
}

#[test]
fn decoder_refusals() {
    assert!(Message::decode(&[]).is_err());
    assert!(
        Message::decode(&[0x07, 0x0a, 0x01, 0x01, 0x12, 0x00]).is_err(),
        "regtopic"
    );
    // A request id of 9 bytes.
    let long = hex::decode("010a09010203040506070809 1202 0801".replace(' ', "")).unwrap();
    assert!(Message::decode(&long).is_err());
    // A 31-byte content id.
    let short = format!("0c 0a0101 1221 0a1f {}", "33".repeat(31)).replace(' ', "");
    assert!(Message::decode(&hex::decode(short).unwrap()).is_err());
}

fn any_message() -> impl Strategy<Value = Message> {
    let bytes = || proptest::collection::vec(any::<u8>(), 0..64);
    let records = || proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..5);
    let id = || any::<[u8; 32]>().prop_map(NodeId);
    prop_oneof![
        any::<u64>().prop_map(|enr_seq| Message::Ping { enr_seq }),
        (any::<u64>(), any::<IpAddr>(), any::<u16>())
            .prop_map(|(enr_seq, ip, port)| Message::Pong { enr_seq, ip, port }),
        proptest::collection::vec(any::<u16>(), 0..8)
            .prop_map(|distances| Message::FindNode { distances }),
        id().prop_map(|target| Message::FindNodeFast { target }),
        (any::<u32>(), records()).prop_map(|(total, records)| Message::Nodes { total, records }),
        (bytes(), bytes()).prop_map(|(protocol, request)| Message::TalkReq { protocol, request }),
        bytes().prop_map(|response| Message::TalkResp { response }),
        (id(), bytes()).prop_map(|(content, provider)| Message::AddProvider { content, provider }),
        id().prop_map(|content| Message::GetProviders { content }),
        (any::<u32>(), records())
            .prop_map(|(total, providers)| Message::Providers { total, providers }),
    ]
}

proptest! {
    #[test]
    fn every_message_round_trips(
        message in any_message(),
        request_id in proptest::collection::vec(any::<u8>(), 0..=8),
    ) {
        let bytes = message.encode(&request_id);
        prop_assert_eq!(Message::decode(&bytes).unwrap(), (request_id, message));
    }
}

/// Bounded fuzz runs (bolero drives them with random inputs under `cargo test`; the same
/// targets run under libFuzzer with `cargo bolero test`): decoders of untrusted bytes return
/// errors, never panic, and allocate at most in proportion to their input.
#[test]
fn fuzz_message_decoder() {
    bolero::check!()
        .with_iterations(20_000)
        .for_each(|bytes: &[u8]| {
            if let Ok((id, message)) = Message::decode(bytes) {
                let again = Message::decode(&message.encode(&id)).expect("re-decodes");
                assert_eq!(again, (id, message));
            }
        });
}

#[test]
fn fuzz_packet_decoder() {
    let local = NodeId([0x42; 32]);
    bolero::check!()
        .with_iterations(20_000)
        .for_each(|bytes: &[u8]| {
            if let Ok(packet) = Packet::decode(&local, bytes) {
                let _ = packet.authdata();
                assert_eq!(packet.encode(&local), bytes);
            }
        });
}

#[test]
fn fuzz_spr_decoder() {
    bolero::check!()
        .with_iterations(5_000)
        .for_each(|bytes: &[u8]| {
            let _ = Spr::decode(bytes);
        });
}

/// The whole receive path of the core (packet, session, message, protocol) on arbitrary
/// datagrams, including well-formed packets masked for this node with arbitrary contents.
#[test]
fn fuzz_protocol_core_on_arbitrary_datagrams() {
    let keypair = Keypair::generate_secp256k1();
    let record = Spr::sign(&keypair, vec!["/ip4/127.0.0.1/udp/9000".parse().unwrap()]).unwrap();
    let local = record.node_id();
    let mut core = Protocol::new(
        signing_key_of(&keypair).unwrap(),
        record.clone(),
        record,
        Config::default(),
        1,
    );
    let from: SocketAddr = "127.0.0.1:9001".parse().unwrap();
    let now = Instant::now();
    bolero::check!()
        .with_type::<(u8, Vec<u8>, Vec<u8>)>()
        .with_iterations(10_000)
        .for_each(|input| {
            let (flag, authdata, message) = input;
            core.handle_datagram(now, from, message);
            // A correctly masked header with arbitrary authdata and message.
            let mut header = b"discv5".to_vec();
            header.extend_from_slice(&1u16.to_be_bytes());
            header.push(flag % 3);
            header.extend_from_slice(&[0; 12]);
            header.extend_from_slice(&(authdata.len() as u16).to_be_bytes());
            header.extend_from_slice(authdata);
            let iv = [3u8; 16];
            neverust_disc::crypto::mask_header(&local, &iv, &mut header);
            let mut datagram = iv.to_vec();
            datagram.extend_from_slice(&header);
            datagram.extend_from_slice(message);
            core.handle_datagram(now, from, &datagram);
            while core.poll_output().is_some() {}
        });
}

/// A record served by a real Archivist node (`GET /api/archivist/v1/spr`, archivist-node
/// 90b7fff built locally, started with `--disc-port=18790 --nat=extip:127.0.0.1`); its
/// `/debug/info` reported the node id below, which pins node id = keccak256(peer id bytes).
#[test]
fn archivist_node_record() {
    let spr = Spr::from_text(
        "spr:CiUIAhIhAkWftxa8AjPA4FJUkLrdN4JamazyojvKd1rWkNMhVDmKEgIDARo8CicAJQgCEiECRZ-3FrwCM8DgUlSQut03glqZrPKiO8p3WtaQ0yFUOYoQj9bE2AYaCwoJBH8AAAGRAklmKkYwRAIgF1zpYEYP60fj_VoiO8c2-3yyItP2pp7_o2t_slK-_O0CIHlsboen_kuMnSx8Q3AmasJBJq7hvlAMifQ2uHr0BCFv",
    )
    .unwrap();
    assert_eq!(
        spr.peer_id().to_string(),
        "16Uiu2HAkz7TN4zGgsRbraEMbQZVP9JmEj4hRyc6dbNhNYiczDa97"
    );
    assert_eq!(
        spr.node_id().to_string(),
        "244a3482a3ad7b7afe7cbd1cb11ad5cf1f654e23d4d2d106c402adb534df2bf4"
    );
    // The record `/spr` serves is `dhtRecord` as signed at start (seq = Unix time); the one
    // the node uses in handshakes is a re-signed copy whose seq was bumped past it.
    assert_eq!(spr.seq(), 1796287247);
    assert_eq!(spr.udp_address(), Some("127.0.0.1:18790".parse().unwrap()));
}
