//! The JSON bodies the API answers with, as types: the handlers build them, and the lab,
//! the visualizer and the tests read them back with the same definitions, so a renamed
//! or retyped field breaks the build or fails loudly at the reader instead of turning
//! into a default somewhere downstream.
//!
//! Names, casing and `null`s follow Archivist's `openapi.yaml` (`crates/node/openapi.yaml`
//! mirrors it). The lab reads Archivist nodes' answers with these types too, so everything
//! only Neverust serves is an `Option` that an Archivist answer leaves out; fields both
//! serve are required. This module does no I/O and knows nothing of the node's state.

use serde::{Deserialize, Serialize};

/// `GET /peerid` in its JSON form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerIdAnswer {
    pub id: String,
}

/// `GET /spr` in its JSON form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SprAnswer {
    pub spr: String,
}

/// A manifest as Archivist's `ManifestItem` shows it. An absent file name or MIME type is
/// `null`, as Archivist serialises an empty option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestItem {
    pub tree_cid: String,
    pub dataset_size: u64,
    pub block_size: u64,
    pub filename: Option<String>,
    pub mimetype: Option<String>,
    pub protected: bool,
}

/// A dataset: `POST /data/{cid}/network`, `GET /data/{cid}/network/manifest`, and each
/// entry of `GET /data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataItem {
    pub cid: String,
    pub manifest: ManifestItem,
}

/// `GET /data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataList {
    pub content: Vec<DataItem>,
}

/// `GET /space`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Space {
    pub total_blocks: u64,
    pub quota_max_bytes: u64,
    pub quota_used_bytes: u64,
    pub quota_reserved_bytes: u64,
    /// Neverust only, on a tiered node; absent (not `null`) otherwise, so the answer of a
    /// single-store node is exactly Archivist's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiers: Option<Vec<Tier>>,
}

/// One tier of a tiered store (Neverust only), fastest first in every list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tier {
    /// memory, nvme, ssd or hdd.
    pub tier: String,
    /// `null` for the memory tier.
    pub dir: Option<String>,
    /// Reads are slowed down to a device's speed (lab only).
    pub emulated: bool,
    pub blocks: u64,
    pub bytes: u64,
    pub capacity_bytes: u64,
    pub hits: u64,
    pub misses: u64,
    pub promotions: u64,
    pub demotions: u64,
}

/// A node of the DHT's routing table in `/debug/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableNode {
    pub node_id: String,
    pub peer_id: String,
    pub record: String,
    /// Neverust always names one (a multiaddr, `""` when it knows none); Archivist writes
    /// `null` for a node whose address it does not know.
    pub address: Option<String>,
    /// Archivist: seen recently; Neverust: a live connection is open.
    pub seen: bool,
    /// Neverust only: the peer's libp2p agent version, once identified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeersTable {
    pub local_node: TableNode,
    pub nodes: Vec<TableNode>,
}

/// The software answering, under `archivist` in `/debug/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub version: String,
    pub revision: String,
}

/// `GET /debug/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DebugInfo {
    pub id: String,
    pub addrs: Vec<String>,
    pub repo: String,
    /// `""` until the node has a record.
    pub spr: String,
    pub announce_addresses: Vec<String>,
    pub table: PeersTable,
    /// Archivist names its version here; forks of it name the key after themselves, so a
    /// reader does not insist on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archivist: Option<Version>,
    /// Neverust only: `altruistic` or `marketplace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Neverust only: peers with an open libp2p connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_peers: Option<u64>,
    /// Neverust only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marketplace: Option<Marketplace>,
    /// Neverust only: datasets being fetched from the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downloads: Option<Vec<Download>>,
    /// Neverust only: `disk`, `memory` or `tiered`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Neverust only, and `null` (not absent) on a node without tiers: that is how the
    /// answer has always looked, and `openapi.yaml` declares it nullable.
    #[serde(default)]
    pub tiers: Option<Vec<Tier>>,
}

/// The exchange's prices and what this node counts per peer (Neverust only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Marketplace {
    pub price_per_byte: u64,
    /// `null`: no limit.
    pub credit_limit: Option<u64>,
    pub ledgers: Vec<Ledger>,
}

/// Cumulative exchange with one peer, as this node counts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ledger {
    pub peer_id: String,
    pub blocks_sent: u64,
    pub bytes_sent: u64,
    pub blocks_received: u64,
    pub bytes_received: u64,
    pub refused: u64,
}

/// A dataset being fetched from the network (Neverust only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Download {
    pub cid: String,
    pub blocks_done: u64,
    pub blocks_total: u64,
}

/// Why an answer could not be read: the JSON path of the field at fault and what was
/// wrong with it (`table.nodes[2].seen: invalid type: string "yes", expected a boolean`).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct AnswerError {
    pub path: String,
    pub message: String,
}

/// Reads an answer, naming the field at fault when it does not fit `T`.
pub fn decode<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, AnswerError> {
    let mut de = serde_json::Deserializer::from_str(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| AnswerError {
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tier() -> Tier {
        Tier {
            tier: "memory".into(),
            dir: None,
            emulated: false,
            blocks: 4,
            bytes: 262144,
            capacity_bytes: 1048576,
            hits: 30,
            misses: 10,
            promotions: 4,
            demotions: 0,
        }
    }

    fn node(seen: bool, agent: Option<&str>) -> TableNode {
        TableNode {
            node_id: "16UiuA".into(),
            peer_id: "16UiuA".into(),
            record: "".into(),
            address: Some("/ip4/127.0.0.1/tcp/8070".into()),
            seen,
            agent: agent.map(String::from),
        }
    }

    fn neverust_info(tiers: Option<Vec<Tier>>) -> DebugInfo {
        DebugInfo {
            id: "16UiuA".into(),
            addrs: vec!["/ip4/127.0.0.1/tcp/8070".into()],
            repo: "/data".into(),
            spr: "spr:abc".into(),
            announce_addresses: vec!["/ip4/127.0.0.1/tcp/8070".into()],
            table: PeersTable {
                local_node: node(false, None),
                nodes: vec![node(true, Some("neverust/0.1.0"))],
            },
            archivist: Some(Version {
                version: "0.1.0".into(),
                revision: "neverust".into(),
            }),
            mode: Some("marketplace".into()),
            connected_peers: Some(1),
            marketplace: Some(Marketplace {
                price_per_byte: 1,
                credit_limit: None,
                ledgers: vec![Ledger {
                    peer_id: "16UiuB".into(),
                    blocks_sent: 1,
                    bytes_sent: 2,
                    blocks_received: 3,
                    bytes_received: 4,
                    refused: 5,
                }],
            }),
            downloads: Some(vec![Download {
                cid: "zDvZ".into(),
                blocks_done: 1,
                blocks_total: 2,
            }]),
            store: Some("disk".into()),
            tiers,
        }
    }

    /// The exact shape of every answer, as the handlers built it with `json!` before these
    /// types existed: names, casing and nulls are Archivist's contract.
    #[test]
    fn answers_keep_their_wire_shape() {
        let info = serde_json::to_value(neverust_info(None)).unwrap();
        let local = json!({"nodeId": "16UiuA", "peerId": "16UiuA", "record": "",
            "address": "/ip4/127.0.0.1/tcp/8070", "seen": false});
        let mut seen = local.clone();
        seen["seen"] = json!(true);
        seen["agent"] = json!("neverust/0.1.0");
        assert_eq!(
            info,
            json!({
                "id": "16UiuA",
                "addrs": ["/ip4/127.0.0.1/tcp/8070"],
                "repo": "/data",
                "spr": "spr:abc",
                "announceAddresses": ["/ip4/127.0.0.1/tcp/8070"],
                "table": {"localNode": local, "nodes": [seen]},
                "archivist": {"version": "0.1.0", "revision": "neverust"},
                "mode": "marketplace",
                "connectedPeers": 1,
                "marketplace": {"pricePerByte": 1, "creditLimit": null, "ledgers": [
                    {"peerId": "16UiuB", "blocksSent": 1, "bytesSent": 2,
                     "blocksReceived": 3, "bytesReceived": 4, "refused": 5}
                ]},
                "downloads": [{"cid": "zDvZ", "blocksDone": 1, "blocksTotal": 2}],
                "store": "disk",
                "tiers": null,
            })
        );
        let space = Space {
            total_blocks: 1,
            quota_max_bytes: 2,
            quota_used_bytes: 3,
            quota_reserved_bytes: 4,
            tiers: None,
        };
        assert_eq!(
            serde_json::to_value(&space).unwrap(),
            json!({"totalBlocks": 1, "quotaMaxBytes": 2, "quotaUsedBytes": 3, "quotaReservedBytes": 4})
        );
        let tiered = Space {
            tiers: Some(vec![tier()]),
            ..space
        };
        assert_eq!(
            serde_json::to_value(&tiered).unwrap()["tiers"],
            json!([{"tier": "memory", "dir": null, "emulated": false, "blocks": 4,
                "bytes": 262144, "capacityBytes": 1048576, "hits": 30, "misses": 10,
                "promotions": 4, "demotions": 0}])
        );
        let item = DataItem {
            cid: "zDvZ".into(),
            manifest: ManifestItem {
                tree_cid: "zDzS".into(),
                dataset_size: 5,
                block_size: 65536,
                filename: None,
                mimetype: Some("text/plain".into()),
                protected: false,
            },
        };
        assert_eq!(
            serde_json::to_value(DataList {
                content: vec![item]
            })
            .unwrap(),
            json!({"content": [{"cid": "zDvZ", "manifest": {"treeCid": "zDzS",
                "datasetSize": 5, "blockSize": 65536, "filename": null,
                "mimetype": "text/plain", "protected": false}}]})
        );
        assert_eq!(
            serde_json::to_string(&PeerIdAnswer { id: "16U".into() }).unwrap(),
            r#"{"id":"16U"}"#
        );
        assert_eq!(
            serde_json::to_string(&SprAnswer {
                spr: "spr:x".into()
            })
            .unwrap(),
            r#"{"spr":"spr:x"}"#
        );
    }

    #[test]
    fn answers_read_back_as_written() {
        for info in [neverust_info(None), neverust_info(Some(vec![tier()]))] {
            let text = serde_json::to_string(&info).unwrap();
            assert_eq!(decode::<DebugInfo>(&text).unwrap(), info);
        }
    }

    /// Archivist's `/debug/info` (as its REST API writes it): none of Neverust's fields, a
    /// node of unknown address as `null`, and its own extra keys.
    #[test]
    fn an_archivist_answer_is_read() {
        let body = r#"{
            "id": "16UiuArch",
            "addrs": ["/ip4/127.0.0.1/tcp/8070"],
            "repo": "/data/archivist",
            "spr": "",
            "announceAddresses": [],
            "table": {
                "localNode": {"nodeId": "ab01", "peerId": "16UiuArch", "record": "spr:x",
                    "address": "127.0.0.1:8090", "seen": false},
                "nodes": [{"nodeId": "cd02", "peerId": "16UiuB", "record": "spr:y",
                    "address": null, "seen": true}]
            },
            "archivist": {"version": "v0.2.0", "revision": "abc", "contracts": "def"}
        }"#;
        let info: DebugInfo = decode(body).unwrap();
        assert_eq!(info.id, "16UiuArch");
        assert_eq!(info.table.nodes[0].address, None);
        assert!(info.table.nodes[0].seen);
        assert_eq!(
            (info.mode, info.marketplace, info.tiers),
            (None, None, None)
        );
    }

    #[test]
    fn a_bad_field_is_named() {
        let e = decode::<DebugInfo>(r#"{"id": "x"}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `addrs`"), "{e}");
        let mut info = serde_json::to_value(neverust_info(None)).unwrap();
        info["table"]["nodes"][0]["seen"] = json!("yes");
        let e = decode::<DebugInfo>(&info.to_string()).unwrap_err();
        assert_eq!(e.path, "table.nodes[0].seen", "{e}");
        info["table"]["nodes"][0]["seen"] = json!(true);
        info["connectedPeers"] = json!("many");
        let e = decode::<DebugInfo>(&info.to_string()).unwrap_err();
        assert_eq!(e.path, "connectedPeers", "{e}");
    }
}
