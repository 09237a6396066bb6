//! The `marketplace` section: storage requests filled by marketplace hosts, a host of each
//! killed, the lost slot repaired elsewhere; a table of totals, one row per request, and
//! charts of the times per request and of the validators' proof outcomes.

use crate::results::{MarketRequest, MarketplaceResult};

use super::html::{self, bytes, figure, kv_table, num, paragraph, table, Cell, Section};
use super::plots::{self, BarGroup, BarPanel, Chart};

const ERRORS_SHOWN: usize = 10;

pub fn marketplace(r: Option<&MarketplaceResult>) -> Option<Section> {
    let r = r?;
    if let Some(why) = &r.skipped {
        return Some(Section::skipped("marketplace", "Marketplace", why));
    }
    let requests = r.requests.len();
    let lost = r.requests.iter().filter(|q| q.lost.is_some()).count();
    let restarts: Vec<String> = r.restart_seconds.iter().map(|s| num(*s, 2)).collect();
    let totals = kv_table(vec![
        ("marketplace nodes", r.marketplace_nodes.into()),
        ("hosts offering storage", r.hosts.into()),
        (
            "each request",
            format!(
                "{} on {} hosts, any {} of which rebuild it",
                bytes(r.dataset_bytes),
                r.slots,
                r.slots.saturating_sub(r.tolerance)
            )
            .into(),
        ),
        (
            "requests started",
            format!("{} of {requests}", r.started).into(),
        ),
        ("killed slot hosts", html::list(&r.killed).into()),
        (
            "lost slots repaired",
            format!("{} of {lost}", r.repaired).into(),
        ),
        (
            "lost slots kept by their restarted host",
            format!("{} of {lost}", r.kept).into(),
        ),
        (
            "datasets not readable",
            Cell::zero_expected(requests.saturating_sub(r.downloadable)),
        ),
        ("proofs verified", r.proofs.verified.into()),
        ("proofs missed", r.proofs.missed.into()),
        ("proofs invalid", r.proofs.invalid.into()),
        (
            "slots filled / repaired / rebuilt",
            format!(
                "{} / {} / {}",
                r.slots_filled, r.slots_repaired, r.slots_rebuilt
            )
            .into(),
        ),
        ("restart (s)", html::list(&restarts).into()),
    ]);
    let rows = r.requests.iter().map(row).collect();
    let per_request = table(
        &[
            "client",
            "request",
            "accepted (s)",
            "to started (s)",
            "slot: host",
            "lost (slot: host)",
            "repair (s)",
            "repaired by",
            "state",
            "read through",
        ],
        rows,
    );
    let body = paragraph(
        "Every marketplace node offers storage; each client asks for its dataset to be \
         stored on hosts other than itself and proven every proof period. Once the purchases \
         started, one host of each request was killed with -9 (never a client, and never \
         more than a request tolerates); the repair time runs from the kill until another \
         host lists the slot as its own, or, on a cluster whose launcher restarts killed \
         nodes, until the host itself lists it again, back before it missed a proof. Datasets are read back through a node other than \
         their client, checked byte for byte; proofs are the validators' counts.",
    ) + &totals
        + &per_request
        + &figure(
            "plot-marketplace",
            "Seconds per request until the client accepted it, until it started, and until \
             the slot lost with its host was held again; proofs the validators verified, \
             marked missed and found invalid meanwhile.",
            chart(r),
        )
        + &html::errors("Marketplace errors", &r.errors, ERRORS_SHOWN);
    Some(Section::new("marketplace", "Marketplace", body))
}

fn seconds(v: Option<f64>) -> Cell {
    v.map_or_else(|| html::MISSING.to_string(), |s| num(s, 1))
        .into()
}

/// `0x1234…abcd`: enough of a request id to tell requests apart.
fn short_id(id: &str) -> String {
    if id.len() > 12 {
        format!("{}…{}", &id[..6], &id[id.len() - 4..])
    } else {
        id.to_string()
    }
}

fn row(q: &MarketRequest) -> Vec<Cell> {
    let holders: Vec<String> = q
        .holders
        .iter()
        .map(|h| format!("{}: {}", h.slot_index, h.node))
        .collect();
    let lost = q.lost.as_ref();
    vec![
        format!("node {}", q.client).into(),
        q.request_id
            .as_deref()
            .map_or(html::MISSING.into(), short_id)
            .into(),
        seconds(q.accepted_s),
        seconds(q.started_s),
        html::list(&holders).into(),
        lost.map_or(html::MISSING.into(), |l| {
            format!("{}: {}", l.slot_index, l.node)
        })
        .into(),
        seconds(lost.and_then(|l| l.repair_s)),
        lost.and_then(|l| l.repaired_by.map(|n| (n, l.kept())))
            .map_or(html::MISSING.into(), |(n, kept)| {
                if kept {
                    format!("node {n} (itself, restarted)")
                } else {
                    format!("node {n}")
                }
            })
            .into(),
        q.state.as_str().into(),
        match (q.reader, q.downloaded) {
            (Some(n), true) => format!("node {n}: identical"),
            (Some(n), false) => format!("node {n}: NOT readable"),
            (None, _) => html::MISSING.into(),
        }
        .into(),
    ]
}

/// Nothing when no request was made: zero proofs of nothing are not a figure.
fn chart(r: &MarketplaceResult) -> Option<String> {
    if r.requests.is_empty() {
        return None;
    }
    let times = |f: fn(&MarketRequest) -> Option<f64>| -> Vec<f64> {
        r.requests
            .iter()
            .map(|q| f(q).unwrap_or(f64::NAN))
            .collect()
    };
    let proofs = [r.proofs.verified, r.proofs.missed, r.proofs.invalid];
    plots::bar_panels(vec![
        BarPanel {
            chart: Chart::new("Times per request", "client", "seconds"),
            labels: r
                .requests
                .iter()
                .map(|q| format!("node {}", q.client))
                .collect(),
            groups: vec![
                BarGroup::new("accepted", plots::palette(0), times(|q| q.accepted_s)),
                BarGroup::new("to started", plots::palette(1), times(|q| q.started_s)),
                BarGroup::new(
                    "repair",
                    plots::palette(2),
                    times(|q| q.lost.as_ref().and_then(|l| l.repair_s)),
                ),
            ],
        },
        BarPanel {
            chart: Chart::new("Proofs by outcome (validators)", "outcome", "proofs"),
            labels: vec!["verified".into(), "missed".into(), "invalid".into()],
            groups: vec![BarGroup {
                name: "proofs".into(),
                values: proofs.iter().map(|&p| p as f64).collect(),
                colors: vec![plots::OK_GREEN, plots::palette(1), plots::FAIL_RED],
            }],
        },
    ])
}
