//! Who plays what in `marketplace`, and whom it kills: rules without I/O.
//!
//! A host takes at most one slot of a request and never one of its own requests, so each
//! request needs `slots` marketplace nodes besides its client, and one more to take over
//! the slot of a host that dies. The ledger fails a request once more than `tolerance` of
//! its slots were freed over its life, so the kills never take more than that from any
//! request, however the hosts' slots overlap.

use std::collections::BTreeSet;

use crate::results::SlotHolder;

/// A request as the kills see it: whose it is and who holds its slots.
#[derive(Debug, Clone)]
pub struct Placed {
    pub client: usize,
    pub holders: Vec<SlotHolder>,
}

/// One host to kill, and the slots (request, slot index) that die with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kill {
    pub node: usize,
    pub losses: Vec<(usize, u64)>,
}

/// The fewest marketplace nodes the scenario runs on: a client, `slots` hosts and a spare.
pub fn min_nodes(slots: u64) -> usize {
    slots as usize + 2
}

/// The clients among `marketplace` (in the order given, which the caller shuffles): up to
/// `max`, leaving `slots + 1` nodes that are no client, so that every request finds hosts
/// and a spare that can be killed or take over; None when there are too few nodes.
pub fn clients(marketplace: &[usize], max: usize, slots: u64) -> Option<Vec<usize>> {
    if marketplace.len() < min_nodes(slots) {
        return None;
    }
    let n = max.min(marketplace.len() - (slots as usize + 1)).max(1);
    Some(marketplace[..n].to_vec())
}

/// The hosts to kill, distinct, in the order of the requests: for each request, hosts of
/// its slots until it has lost `tolerance` of them. A host is never a client (a client keeps
/// its dataset and its purchase), and is killed only if no request it holds a slot of
/// would lose more than `tolerance` slots or be left without a live node to repair onto
/// (one that is neither its client nor already one of its hosts).
pub fn victims(marketplace: &[usize], requests: &[Placed], tolerance: u64) -> Vec<Kill> {
    let clients: BTreeSet<usize> = requests.iter().map(|r| r.client).collect();
    let mut lost = vec![0u64; requests.len()];
    let mut dead: BTreeSet<usize> = BTreeSet::new();
    let mut kills = Vec::new();
    let held_by = |node: usize| -> Vec<(usize, u64)> {
        requests
            .iter()
            .enumerate()
            .flat_map(|(r, p)| {
                p.holders
                    .iter()
                    .filter(move |h| h.node == node)
                    .map(move |h| (r, h.slot_index))
            })
            .collect()
    };
    let has_spare = |r: &Placed, dead: &BTreeSet<usize>| {
        marketplace
            .iter()
            .any(|n| *n != r.client && !dead.contains(n) && !r.holders.iter().any(|h| h.node == *n))
    };
    for (r, request) in requests.iter().enumerate() {
        for holder in &request.holders {
            if lost[r] >= tolerance {
                break;
            }
            let node = holder.node;
            if node == 0 || clients.contains(&node) || dead.contains(&node) {
                continue;
            }
            let losses = held_by(node);
            let mut after = dead.clone();
            after.insert(node);
            let allowed = losses
                .iter()
                .all(|(q, _)| lost[*q] < tolerance && has_spare(&requests[*q], &after));
            if !allowed {
                continue;
            }
            for (q, _) in &losses {
                lost[*q] += 1;
            }
            dead = after;
            kills.push(Kill { node, losses });
        }
    }
    kills
}

/// Who holds slot `slot_index` of `request` now, among `holdings` (node, the slots it
/// lists), other than `dead`.
/// Whether `node` lists slot `slot_index` of `request` among its own.
pub fn holds(
    holdings: &[(usize, Vec<crate::client::HeldSlot>)],
    request: &str,
    slot_index: u64,
    node: usize,
) -> bool {
    holdings.iter().any(|(n, slots)| {
        *n == node
            && slots
                .iter()
                .any(|s| s.request == request && s.slot_index == slot_index)
    })
}

pub fn holder_of(
    holdings: &[(usize, Vec<crate::client::HeldSlot>)],
    request: &str,
    slot_index: u64,
    dead: usize,
) -> Option<usize> {
    holdings
        .iter()
        .filter(|(node, _)| *node != dead)
        .find(|(_, slots)| {
            slots
                .iter()
                .any(|s| s.request == request && s.slot_index == slot_index)
        })
        .map(|(node, _)| *node)
}

/// The holders of `request`'s slots among `holdings`, by slot index.
pub fn holders(
    holdings: &[(usize, Vec<crate::client::HeldSlot>)],
    request: &str,
) -> Vec<SlotHolder> {
    let mut out: Vec<SlotHolder> = holdings
        .iter()
        .flat_map(|(node, slots)| {
            slots
                .iter()
                .filter(|s| s.request == request)
                .map(|s| SlotHolder {
                    node: *node,
                    slot_index: s.slot_index,
                })
        })
        .collect();
    out.sort_by_key(|h| (h.slot_index, h.node));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::HeldSlot;

    fn placed(client: usize, hosts: &[usize]) -> Placed {
        Placed {
            client,
            holders: SlotHolder::in_slot_order(hosts),
        }
    }

    #[test]
    fn clients_leave_hosts_and_a_spare() {
        assert_eq!(clients(&[1, 2, 3, 4], 3, 3), None);
        assert_eq!(clients(&[5, 1, 2, 3, 4], 3, 3), Some(vec![5]));
        assert_eq!(clients(&[6, 5, 1, 2, 3, 4], 3, 3), Some(vec![6, 5]));
        assert_eq!(
            clients(&(1..=16).collect::<Vec<_>>(), 3, 3).unwrap().len(),
            3
        );
    }

    #[test]
    fn one_host_per_request_never_a_client_and_distinct() {
        let nodes: Vec<usize> = (1..=7).collect();
        // Client 1's slots on 2, 4, 5; client 2's on 1, 5, 6; client 3's on 4, 6, 7.
        let requests = vec![
            placed(1, &[2, 4, 5]),
            placed(2, &[1, 5, 6]),
            placed(3, &[4, 6, 7]),
        ];
        let kills = victims(&nodes, &requests, 1);
        // 2 is a client; 4 holds slots of requests 0 and 2, so killing it takes one slot
        // of each; request 1 then loses 5 or 6, which would take a second slot of 0 or 2,
        // so it is left whole.
        assert_eq!(
            kills,
            vec![Kill {
                node: 4,
                losses: vec![(0, 1), (2, 0)]
            }]
        );
        let mut per_request = [0; 3];
        for k in &kills {
            assert!(![1, 2, 3].contains(&k.node));
            for (r, _) in &k.losses {
                per_request[*r] += 1;
            }
        }
        assert!(per_request.iter().all(|&n| n <= 1));
    }

    #[test]
    fn disjoint_hosts_lose_one_each() {
        let nodes: Vec<usize> = (1..=12).collect();
        let requests = vec![placed(1, &[4, 5, 6]), placed(2, &[7, 8, 9])];
        let kills = victims(&nodes, &requests, 1);
        let killed: Vec<usize> = kills.iter().map(|k| k.node).collect();
        assert_eq!(killed, vec![4, 7]);
    }

    #[test]
    fn a_request_without_a_spare_loses_nothing() {
        // Client 1, hosts 2, 3 and 4, and 5 to repair onto: one host may die. Without 5,
        // the lost slot would have nowhere to go.
        let requests = vec![placed(1, &[2, 3, 4])];
        assert_eq!(victims(&[1, 2, 3, 4, 5], &requests, 1).len(), 1);
        assert!(victims(&[1, 2, 3, 4], &requests, 1).is_empty());
        // A request that did not start has no holders and loses nothing.
        assert!(victims(&[1, 2, 3, 4, 5], &[placed(1, &[])], 1).is_empty());
        // Tolerance 0: nothing may be lost.
        assert!(victims(&[1, 2, 3, 4, 5], &requests, 0).is_empty());
    }

    #[test]
    fn finds_who_holds_a_slot_now() {
        let held = |r: &str, i| HeldSlot {
            request: r.into(),
            slot_index: i,
        };
        let holdings = vec![
            (2, vec![held("0xa", 0)]),
            (3, vec![held("0xa", 1), held("0xb", 1)]),
            (4, vec![held("0xa", 2)]),
        ];
        assert_eq!(holder_of(&holdings, "0xa", 1, 9), Some(3));
        assert_eq!(holder_of(&holdings, "0xa", 1, 3), None);
        assert_eq!(holder_of(&holdings, "0xb", 0, 9), None);
        assert!(holds(&holdings, "0xa", 1, 3), "a node holds its own slot");
        assert!(!holds(&holdings, "0xa", 1, 9));
        let h = holders(&holdings, "0xa");
        assert_eq!(
            h.iter().map(|h| (h.node, h.slot_index)).collect::<Vec<_>>(),
            vec![(2, 0), (3, 1), (4, 2)]
        );
    }
}
