//! blockexc messages on the wire: exact bytes against scripts/golden_content.py (an
//! independent Python writer following Archivist's Nim coder), round trips, and a bounded
//! fuzz of the decoders.

use bytes::Bytes;
use neverust_content::{block_cid, parse_cid, sha256, MerkleTree};
use neverust_net::blockexc::codec::read_frame;
use neverust_net::blockexc::{
    BlockAddress, BlockDelivery, BlockPresence, Message, Presence, WantEntry, WantType, Wantlist,
};
use proptest::prelude::*;
use serde_json::Value;

fn golden() -> Value {
    let all: Value =
        serde_json::from_str(include_str!("../../content/tests/golden/content.json")).unwrap();
    all["blockexc"].clone()
}

fn cid(g: &Value, key: &str) -> neverust_content::Cid {
    parse_cid(g[key].as_str().unwrap()).unwrap()
}

fn check(msg: &Message, hex_bytes: &Value) {
    let want = hex::decode(hex_bytes.as_str().unwrap()).unwrap();
    assert_eq!(hex::encode(msg.encode()), hex::encode(&want));
    assert_eq!(&Message::decode(Bytes::from(want)).unwrap(), msg);
}

#[test]
fn wantlists_match_archivist_bytes() {
    let g = golden();
    let tree = cid(&g, "tree_cid");
    let msg = Message {
        wantlist: Wantlist {
            entries: vec![
                WantEntry::block(BlockAddress::Leaf { tree, index: 1 }),
                WantEntry {
                    want: WantType::Have,
                    send_dont_have: false,
                    ..WantEntry::block(BlockAddress::Cid(cid(&g, "manifest_cid")))
                },
                WantEntry::cancel(BlockAddress::Leaf { tree, index: 0 }),
            ],
            full: false,
        },
        ..Message::default()
    };
    check(&msg, &g["wantlist"]);
}

#[test]
fn deliveries_match_archivist_bytes() {
    let g = golden();
    let tree = MerkleTree::new(vec![sha256(&[0]), sha256(&[1])]).unwrap();
    assert_eq!(tree.root_cid(), cid(&g, "tree_cid"));
    let small = Bytes::from_static(b"hello blockexc");
    let msg = Message {
        payload: vec![
            BlockDelivery {
                cid: block_cid(&[1]),
                data: Bytes::from_static(&[1]),
                address: BlockAddress::Leaf {
                    tree: tree.root_cid(),
                    index: 1,
                },
                proof: Some(tree.proof(1).unwrap().encode().into()),
            },
            BlockDelivery {
                cid: cid(&g, "small_cid"),
                data: small,
                address: BlockAddress::Cid(cid(&g, "small_cid")),
                proof: None,
            },
        ],
        ..Message::default()
    };
    check(&msg, &g["deliveries"]);
    for d in &msg.payload {
        neverust_net::blockexc::check_delivery(d).unwrap();
    }
}

#[test]
fn presences_match_archivist_bytes() {
    let g = golden();
    let msg = Message {
        presences: vec![
            BlockPresence {
                address: BlockAddress::Leaf {
                    tree: cid(&g, "tree_cid"),
                    index: 0,
                },
                presence: Presence::Have,
                price: vec![3, 0, 0],
            },
            BlockPresence {
                address: BlockAddress::Cid(cid(&g, "manifest_cid")),
                presence: Presence::DontHave,
                price: vec![],
            },
        ],
        pending_bytes: 1234,
        account: vec![0xab; 20],
        ..Message::default()
    };
    check(&msg, &g["presences"]);
}

fn arb_address() -> impl Strategy<Value = BlockAddress> {
    (any::<[u8; 8]>(), any::<u64>(), any::<bool>()).prop_map(|(seed, index, leaf)| {
        let c = block_cid(&seed);
        if leaf {
            BlockAddress::Leaf { tree: c, index }
        } else {
            BlockAddress::Cid(c)
        }
    })
}

fn arb_message() -> impl Strategy<Value = Message> {
    let entry = (
        arb_address(),
        any::<i32>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(address, priority, cancel, have, sdh)| WantEntry {
            address,
            priority,
            cancel,
            want: if have {
                WantType::Have
            } else {
                WantType::Block
            },
            send_dont_have: sdh,
        });
    let delivery = (
        arb_address(),
        proptest::collection::vec(any::<u8>(), 0..300),
        any::<bool>(),
    )
        .prop_map(|(address, data, with_proof)| BlockDelivery {
            cid: block_cid(&data),
            proof: (with_proof && matches!(address, BlockAddress::Leaf { .. }))
                .then(|| Bytes::from_static(b"proof")),
            data: data.into(),
            address,
        });
    let presence = (
        arb_address(),
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..=32),
    )
        .prop_map(|(address, have, price)| BlockPresence {
            address,
            presence: if have {
                Presence::Have
            } else {
                Presence::DontHave
            },
            price,
        });
    (
        proptest::collection::vec(entry, 0..5),
        any::<bool>(),
        proptest::collection::vec(delivery, 0..3),
        proptest::collection::vec(presence, 0..4),
        any::<u64>(),
        proptest::collection::vec(any::<u8>(), 0..21),
    )
        .prop_map(
            |(entries, full, payload, presences, pending_bytes, account)| Message {
                wantlist: Wantlist { entries, full },
                payload,
                presences,
                pending_bytes,
                account,
                payment: vec![],
            },
        )
}

proptest! {
    #[test]
    fn every_message_round_trips(msg in arb_message()) {
        let bytes = msg.encode();
        prop_assert_eq!(Message::decode(Bytes::from(bytes)).unwrap(), msg);
    }
}

/// A bounded fuzz run (bolero drives it with random inputs under `cargo test`; the same
/// target runs under libFuzzer with `cargo bolero test`): decoders of untrusted bytes return
/// errors, never panic, and whatever decodes re-encodes to something that decodes the same.
#[test]
fn fuzz_message_decoder() {
    bolero::check!()
        .with_iterations(20_000)
        .for_each(|bytes: &[u8]| {
            if let Ok(msg) = Message::decode(Bytes::copy_from_slice(bytes)) {
                let again = Message::decode(Bytes::from(msg.encode())).expect("re-decodes");
                assert_eq!(again, msg);
            }
            let mut cursor = futures::io::Cursor::new(bytes.to_vec());
            let _ = futures::executor::block_on(read_frame(&mut cursor, 4096));
        });
}
