//! `marketplace`: storage bought and sold between the cluster's marketplace nodes, and a
//! host lost. Every marketplace node offers storage; a few of them (up to three) each upload
//! a dataset and ask for it to be stored on 3 hosts, any 2 of which rebuild it (tolerance
//! 1), every slot proven every proof period. Once the purchases have started, one host of
//! each request is killed with -9 (never a client, never the bootstrap, and never more than
//! a request tolerates), and the time until another host holds its slot again is the
//! repair time. Every dataset must still be readable, byte for byte, through a node that is
//! not its client. Proofs the validators verified and marked missed meanwhile come from
//! their counters. The killed hosts are restarted at the end.
//!
//! The cluster's nodes run with short proof periods (`ClusterSpec::proof_period`), so a
//! dead host is noticed within seconds; a cluster with fewer than five marketplace nodes
//! skips the scenario and says why.

mod count;
mod plan;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use neverust_market::request::{AvailabilityParams, StorageRequestParams};
use neverust_market::states::{Lifecycle, PurchaseState};

use super::payload::Stored;
use super::{short_error, upload_new, BenchError, Ctx};
use crate::client::{HeldSlot, NodeClient};
use crate::results::{Event, LostSlot, MarketRequest, MarketplaceResult};
use crate::topology::cluster_file::{Implementation, NodeEntry};
use count::Counters;
use plan::Placed;

const MAX_CLIENTS: usize = 3;
const SLOTS: u64 = 3;
const TOLERANCE: u64 = 1;
/// Each host's offer: room for a slot of every request and a repair, at any profile.
const AVAILABILITY_BYTES: u64 = 256 * 1024 * 1024;
const AVAILABILITY_SECONDS: u64 = 3600;
/// Requests outlive the scenario, so a request never ends while it is measured.
const REQUEST_SECONDS: u64 = 600;
const EXPIRY_SECONDS: u64 = 120;
const UPLOAD_LIMIT: Duration = Duration::from_secs(60);
/// Until a host's terms have reached each client's copy of the ledger.
const ACCEPT_LIMIT: Duration = Duration::from_secs(60);
const START_LIMIT: Duration = Duration::from_secs(120);
/// Until every slot of a started request shows on its host's `/sales/slots`.
const HOLDERS_LIMIT: Duration = Duration::from_secs(30);
const REPAIR_LIMIT: Duration = Duration::from_secs(120);
const READ_LIMIT: Duration = Duration::from_secs(60);
const RESTART_LIMIT: Duration = Duration::from_secs(30);
/// Until the validators verified as many proofs as the started requests have slots.
const PROOFS_LIMIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(250);

pub async fn run(
    ctx: &mut Ctx,
    live: &Arc<Mutex<Vec<NodeEntry>>>,
) -> Result<MarketplaceResult, BenchError> {
    let mut marketplace: Vec<usize> = ctx
        .cluster
        .entries()
        .iter()
        .filter(|e| e.mode == "marketplace" && e.implementation == Implementation::Neverust)
        .map(|e| e.index)
        .collect();
    let mut out = MarketplaceResult {
        marketplace_nodes: marketplace.len(),
        dataset_bytes: ctx.profile.market_file,
        slots: SLOTS,
        tolerance: TOLERANCE,
        ..Default::default()
    };
    // Which nodes are clients is the seed's choice, so a run can be replayed.
    ctx.shuffle(&mut marketplace);
    let Some(clients) = plan::clients(&marketplace, MAX_CLIENTS, SLOTS) else {
        let why = format!(
            "the cluster has {} marketplace nodes, and a request of {SLOTS} slots needs {} (a client, {SLOTS} hosts and one to repair onto): start it with more --nodes or a smaller --marketplace-every",
            marketplace.len(),
            plan::min_nodes(SLOTS)
        );
        ctx.ui.say(format!("marketplace: skipped: {why}"));
        out.skipped = Some(why);
        return Ok(out);
    };
    marketplace.sort();
    let clients_of = ctx.cluster.clients().to_vec();
    let before = counters(&clients_of, &(0..clients_of.len()).collect::<Vec<_>>()).await;

    out.hosts = offer(ctx, &marketplace, &mut out.errors).await;
    let datasets = upload(ctx, &clients, &mut out.errors).await;
    ctx.ui.say(format!(
        "marketplace: {} hosts offer storage; {} clients ask for {} MiB each on {SLOTS} hosts",
        out.hosts,
        datasets.len(),
        ctx.profile.market_file >> 20
    ));
    let asked = join_all(
        datasets
            .iter()
            .map(|d| buy(clients_of[d.origin].clone(), d.cid.clone())),
    )
    .await;
    let mut requests: Vec<MarketRequest> = Vec::new();
    for (d, bought) in datasets.iter().zip(asked) {
        if let Some(e) = &bought.error {
            out.errors
                .push(format!("node {}'s request for {}: {e}", d.origin, d.cid));
        }
        requests.push(MarketRequest {
            client: d.origin,
            cid: d.cid.clone(),
            request_id: bought.id,
            accepted_s: bought.accepted_s,
            started_s: bought.started_s,
            ..Default::default()
        });
    }
    out.started = requests.iter().filter(|r| r.started_s.is_some()).count();
    ctx.ui.say(format!(
        "marketplace: {} of {} purchases started",
        out.started,
        requests.len()
    ));

    locate(&clients_of, &marketplace, &mut requests).await;
    let placed: Vec<Placed> = requests
        .iter()
        .map(|r| Placed {
            client: r.client,
            holders: r.holders.clone(),
        })
        .collect();
    let kills = plan::victims(&marketplace, &placed, TOLERANCE);
    let mut killed_at: BTreeMap<usize, Instant> = BTreeMap::new();
    let mut killed_t: BTreeMap<usize, f64> = BTreeMap::new();
    for k in &kills {
        ctx.cluster.kill9(k.node).await?;
        killed_at.insert(k.node, Instant::now());
        killed_t.insert(k.node, ctx.t());
        out.killed.push(k.node);
        // One slot per request at most: the tolerance is 1.
        for (r, slot) in &k.losses {
            requests[*r].lost = Some(LostSlot {
                node: k.node,
                slot_index: *slot,
                ..Default::default()
            });
        }
        let detail = format!(
            "node {} (kill -9), holding {} slots",
            k.node,
            k.losses.len()
        );
        out.events.push(event(ctx, "kill", detail));
    }
    if !kills.is_empty() {
        ctx.ui.say(format!(
            "marketplace: killed slot hosts {:?}; waiting for their slots to be repaired",
            out.killed
        ));
    }
    await_repairs(&clients_of, &marketplace, &killed_at, &mut requests).await;
    for r in &mut requests {
        let Some(lost) = &r.lost else { continue };
        match (lost.repair_s, lost.repaired_by) {
            (Some(s), Some(by)) if lost.kept() => {
                out.kept += 1;
                let detail = format!(
                    "slot {} of node {}'s request stayed with node {by}: restarted by its launcher, it held the slot again after {s:.1} s",
                    lost.slot_index, r.client
                );
                let t_s = killed_t.get(&lost.node).map_or(ctx.t(), |t| t + s);
                out.events.push(Event {
                    t_s,
                    kind: "kept".into(),
                    detail,
                });
            }
            (Some(s), Some(by)) => {
                out.repaired += 1;
                let detail = format!(
                    "slot {} of node {}'s request, lost with node {}, held by node {by} after {s:.1} s",
                    lost.slot_index, r.client, lost.node
                );
                // When it was seen, not when this loop runs.
                let t_s = killed_t.get(&lost.node).map_or(ctx.t(), |t| t + s);
                out.events.push(Event {
                    t_s,
                    kind: "repaired".into(),
                    detail,
                });
            }
            _ => out.errors.push(format!(
                "slot {} of node {}'s request, lost with node {}, was not held by another host within {REPAIR_LIMIT:?}",
                lost.slot_index, r.client, lost.node
            )),
        }
    }

    read_back(ctx, &datasets, &killed_at, &mut requests, &mut out.errors).await;
    final_states(ctx, &mut requests, &mut out.errors).await;
    out.downloadable = requests.iter().filter(|r| r.downloaded).count();
    let readable: Vec<usize> = (0..clients_of.len())
        .filter(|n| !killed_at.contains_key(n))
        .collect();
    let counted = await_proofs(&clients_of, &readable, &before, out.started as u64 * SLOTS).await;
    out.proofs = counted.proofs;
    (out.slots_filled, out.slots_repaired, out.slots_rebuilt) =
        (counted.filled, counted.repaired, counted.rebuilt);

    for &node in killed_at.keys() {
        let took = ctx.cluster.restart(node, RESTART_LIMIT).await?;
        out.restart_seconds.push(took.as_secs_f64());
        let detail = format!("node {node} back after {:.2} s", took.as_secs_f64());
        out.events.push(event(ctx, "restart", detail));
    }
    *live.lock().expect("live list") = ctx.cluster.entries();
    out.requests = requests;

    ctx.checks.uploads_acknowledged += datasets.len();
    ctx.checks.downloads_verified += out.downloadable;
    ctx.checks.acknowledged_lost += datasets.len() - out.downloadable;
    ctx.checks.errors += out.errors.len();
    for e in &out.errors {
        ctx.ui.say(format!("marketplace: {e}"));
    }
    ctx.ui.say(format!(
        "marketplace: {} started, {} of {} lost slots repaired ({} kept by their restarted host), {} of {} datasets read back; validators verified {} proofs, marked {} missed, {} invalid",
        out.started,
        out.repaired + out.kept,
        out.requests.iter().filter(|r| r.lost.is_some()).count(),
        out.kept,
        out.downloadable,
        datasets.len(),
        out.proofs.verified,
        out.proofs.missed,
        out.proofs.invalid
    ));
    Ok(out)
}

fn event(ctx: &Ctx, kind: &str, detail: String) -> Event {
    Event {
        t_s: ctx.t(),
        kind: kind.into(),
        detail,
    }
}

/// Every marketplace node offers storage; how many were accepted.
async fn offer(ctx: &Ctx, marketplace: &[usize], errors: &mut Vec<String>) -> usize {
    let terms = AvailabilityParams {
        total_size: AVAILABILITY_BYTES,
        duration: AVAILABILITY_SECONDS,
        min_price_per_byte_per_second: 1,
        total_collateral: 1_000_000_000_000,
        enabled: None,
        until: None,
    };
    let offers = join_all(
        marketplace
            .iter()
            .map(|&n| ctx.cluster.client(n).post_availability(&terms)),
    )
    .await;
    let mut ok = 0;
    for (n, r) in marketplace.iter().zip(offers) {
        match r {
            Ok(()) => ok += 1,
            Err(e) => errors.push(format!("node {n}'s availability: {}", short_error(&e))),
        }
    }
    ok
}

/// Each client's fresh dataset, acknowledged.
async fn upload(ctx: &Ctx, clients: &[usize], errors: &mut Vec<String>) -> Vec<Stored> {
    let mut stored = Vec::new();
    for &c in clients {
        let client = ctx.cluster.client(c);
        match upload_new(client, c, ctx.seed(), ctx.profile.market_file, UPLOAD_LIMIT).await {
            Ok((s, _)) => stored.push(s),
            Err(e) => errors.push(short_error(&e)),
        }
    }
    stored
}

/// One client's request, as far as it got.
#[derive(Default)]
struct Bought {
    id: Option<String>,
    accepted_s: Option<f64>,
    started_s: Option<f64>,
    error: Option<String>,
}

/// Asks `client` to store `cid` until it accepts, then waits until the purchase started.
async fn buy(client: NodeClient, cid: String) -> Bought {
    let params = StorageRequestParams {
        duration: REQUEST_SECONDS,
        price_per_byte_per_second: 1,
        proof_probability: 1,
        nodes: Some(SLOTS),
        tolerance: Some(TOLERANCE),
        collateral_per_byte: 1,
        expiry: EXPIRY_SECONDS,
    };
    let mut out = Bought::default();
    let asked = Instant::now();
    let id = loop {
        match client.request_storage(&cid, &params).await {
            Ok(id) => break id,
            // No host's terms in the client's copy of the ledger yet.
            Err(e) if e.status() == Some(422) && asked.elapsed() < ACCEPT_LIMIT => {
                tokio::time::sleep(POLL).await
            }
            Err(e) => {
                out.error = Some(format!("not accepted: {}", short_error(&e)));
                return out;
            }
        }
    };
    let accepted = Instant::now();
    out.accepted_s = Some((accepted - asked).as_secs_f64());
    out.id = Some(id.clone());
    let mut last = String::from("not asked");
    while accepted.elapsed() < START_LIMIT {
        match client.purchase_state(&id).await {
            Ok(PurchaseState::Started) => {
                out.started_s = Some(accepted.elapsed().as_secs_f64());
                return out;
            }
            Ok(
                s @ (PurchaseState::Failed
                | PurchaseState::Cancelled
                | PurchaseState::Errored
                | PurchaseState::Finished),
            ) => {
                out.error = Some(format!("purchase {id} ended {}", s.name()));
                return out;
            }
            Ok(s) => last = s.name().to_string(),
            Err(e) => last = short_error(&e),
        }
        tokio::time::sleep(POLL).await;
    }
    out.error = Some(format!(
        "purchase {id} not started within {START_LIMIT:?} (last: {last})"
    ));
    out
}

/// The slots `nodes` list as theirs, per node; a node that does not answer lists none.
async fn holdings(clients: &[NodeClient], nodes: &[usize]) -> Vec<(usize, Vec<HeldSlot>)> {
    let lists = join_all(nodes.iter().map(|&n| clients[n].held_slots())).await;
    nodes
        .iter()
        .zip(lists)
        .map(|(&n, l)| (n, l.unwrap_or_default()))
        .collect()
}

/// Fills in who holds each started request's slots, waiting until all of them show.
async fn locate(clients: &[NodeClient], marketplace: &[usize], requests: &mut [MarketRequest]) {
    let start = Instant::now();
    loop {
        let held = holdings(clients, marketplace).await;
        let mut complete = true;
        for r in requests.iter_mut().filter(|r| r.started_s.is_some()) {
            let id = r.request_id.as_deref().unwrap_or_default();
            r.holders = plan::holders(&held, id);
            complete &= r.holders.len() as u64 == SLOTS;
        }
        if complete || start.elapsed() > HOLDERS_LIMIT {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until each lost slot is held again, noting who and when: another host that
/// repaired it or, on a cluster whose launcher restarts killed nodes, the killed host
/// itself, back before it missed a proof (a node that is down lists nothing).
async fn await_repairs(
    clients: &[NodeClient],
    marketplace: &[usize],
    killed_at: &BTreeMap<usize, Instant>,
    requests: &mut [MarketRequest],
) {
    let start = Instant::now();
    while start.elapsed() < REPAIR_LIMIT {
        let held = holdings(clients, marketplace).await;
        let mut waiting = 0;
        for r in requests.iter_mut() {
            let id = r.request_id.clone().unwrap_or_default();
            let Some(lost) = r.lost.as_mut().filter(|l| l.repaired_by.is_none()) else {
                continue;
            };
            let repaired = plan::holder_of(&held, &id, lost.slot_index, lost.node);
            let kept = plan::holds(&held, &id, lost.slot_index, lost.node);
            match (repaired, kept) {
                (Some(by), _) => lost.repaired_by = Some(by),
                (None, true) => lost.repaired_by = Some(lost.node),
                (None, false) => {
                    waiting += 1;
                    continue;
                }
            }
            lost.repair_s = killed_at.get(&lost.node).map(|t| t.elapsed().as_secs_f64());
        }
        if waiting == 0 {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Reads each dataset back through a live node other than its client.
async fn read_back(
    ctx: &mut Ctx,
    datasets: &[Stored],
    killed_at: &BTreeMap<usize, Instant>,
    requests: &mut [MarketRequest],
    errors: &mut Vec<String>,
) {
    let n = ctx.cluster.len();
    for (d, r) in datasets.iter().zip(requests.iter_mut()) {
        let readers: Vec<usize> = (0..n)
            .filter(|i| *i != d.origin && !killed_at.contains_key(i))
            .collect();
        let reader = readers[ctx.pick(readers.len())];
        r.reader = Some(reader);
        match ctx
            .cluster
            .client(reader)
            .get_network(&d.cid, READ_LIMIT)
            .await
        {
            Ok(f) if f.sha256 == d.sha256 => r.downloaded = true,
            Ok(_) => errors.push(format!(
                "{} read through node {reader}: different bytes",
                d.cid
            )),
            Err(e) => errors.push(format!(
                "{} read through node {reader}: {}",
                d.cid,
                short_error(&e)
            )),
        }
    }
}

/// Each purchase's state at the end; a started one must still be `started`, having lost no
/// more than it tolerates.
async fn final_states(ctx: &Ctx, requests: &mut [MarketRequest], errors: &mut Vec<String>) {
    for r in requests.iter_mut() {
        let client = ctx.cluster.client(r.client);
        r.state = match r.request_id.as_deref() {
            Some(id) => match client.purchase_state(id).await {
                Ok(s) => s.name().to_string(),
                Err(e) => format!("unknown ({})", short_error(&e)),
            },
            None => "not requested".into(),
        };
        if r.started_s.is_some() && r.state != "started" {
            errors.push(format!(
                "node {}'s purchase is {} after losing at most {TOLERANCE} slot",
                r.client, r.state
            ));
        }
    }
}

/// Each node's market counters, by index; nodes that do not answer are left out.
/// The counters' growth since `before`, once the validators verified `expected` proofs (or
/// after [`PROOFS_LIMIT`]): no slot is challenged in the proof period it was filled in, so
/// a scenario that saw its slots filled and kept within seconds would count no proof at all.
async fn await_proofs(
    clients: &[NodeClient],
    nodes: &[usize],
    before: &BTreeMap<usize, Counters>,
    expected: u64,
) -> Counters {
    let start = Instant::now();
    loop {
        let counted = count::between(before, &counters(clients, nodes).await);
        if counted.proofs.verified >= expected || start.elapsed() > PROOFS_LIMIT {
            return counted;
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn counters(clients: &[NodeClient], nodes: &[usize]) -> BTreeMap<usize, Counters> {
    let texts = join_all(nodes.iter().map(|&n| clients[n].metrics())).await;
    nodes
        .iter()
        .zip(texts)
        .filter_map(|(&n, t)| Some((n, Counters::of(&crate::metrics::parse(&t.ok()?)))))
        .collect()
}
