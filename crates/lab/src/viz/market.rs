//! The storage marketplace in a visualizer frame: which nodes hold slots of which storage
//! request, and whose request it is. Hosts say what they hold (`GET /sales/slots`), clients
//! which requests they made (`GET /storage/purchases`); a request is drawn only while some
//! node that answers lists a slot of it. No I/O: `poll` asks, this groups.

use serde::{Deserialize, Serialize};

use super::snapshot::VizNode;
use crate::client::HeldSlot;

/// What a marketplace node said of the market in one poll.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeMarket {
    pub slots: Vec<HeldSlot>,
    /// The ids of the requests it made (`0x…`), whatever their state.
    pub purchases: Vec<String>,
}

/// A storage request some node holds slots of.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct VizRequest {
    pub id: String,
    /// The node (its id in the frame) that lists the request among its purchases, when one
    /// of the nodes that answered does.
    pub client: Option<String>,
    /// Who holds which slot, by slot index.
    pub hosts: Vec<VizHost>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct VizHost {
    pub node: String,
    pub slot_index: u64,
}

/// The requests the answering nodes hold slots of, by id.
pub fn requests(nodes: &[VizNode]) -> Vec<VizRequest> {
    let up = || nodes.iter().filter(|n| n.up);
    let mut out: Vec<VizRequest> = Vec::new();
    for n in up() {
        for s in &n.slots {
            let host = VizHost {
                node: n.id.clone(),
                slot_index: s.slot_index,
            };
            match out.iter_mut().find(|r| r.id == s.request) {
                Some(r) => r.hosts.push(host),
                None => out.push(VizRequest {
                    id: s.request.clone(),
                    client: None,
                    hosts: vec![host],
                }),
            }
        }
    }
    for r in &mut out {
        r.hosts
            .sort_by(|a, b| a.slot_index.cmp(&b.slot_index).then(a.node.cmp(&b.node)));
        r.client = up()
            .find(|n| n.purchases.contains(&r.id))
            .map(|n| n.id.clone());
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, up: bool, slots: &[(&str, u64)], purchases: &[&str]) -> VizNode {
        VizNode {
            id: id.into(),
            up,
            slots: slots
                .iter()
                .map(|(r, i)| HeldSlot {
                    request: r.to_string(),
                    slot_index: *i,
                })
                .collect(),
            purchases: purchases.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn hosts_grouped_by_request_with_the_client_that_made_it() {
        let nodes = vec![
            node("c", true, &[("0xb", 0)], &["0xa", "0xold"]),
            node("h1", true, &[("0xa", 2), ("0xb", 1)], &[]),
            node("h2", true, &[("0xa", 0)], &[]),
            // A host that stopped answering holds nothing anyone can see.
            node("dead", false, &[("0xa", 1)], &["0xb"]),
        ];
        let r = requests(&nodes);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0].id, "0xa");
        assert_eq!(r[0].client.as_deref(), Some("c"));
        let hosts: Vec<(&str, u64)> = r[0]
            .hosts
            .iter()
            .map(|h| (h.node.as_str(), h.slot_index))
            .collect();
        assert_eq!(hosts, vec![("h2", 0), ("h1", 2)]);
        assert_eq!(r[1].id, "0xb");
        assert_eq!(r[1].client, None, "its client does not answer");
        assert_eq!(r[1].hosts.len(), 2);
        assert!(requests(&[node("c", true, &[], &["0xa"])]).is_empty());
    }
}
