//! The `reconcile` section: set reconciliation beside blockexc's want-haves and presences,
//! two nodes at each set size and difference, a partition healing across a swarm, and
//! real nodes fetching one dataset at once; the targets beside what was measured.

use crate::results::{MethodCost, ReconcileResult};

use super::html::{self, bytes, figure, kv_table, num, paragraph, ratio, table, Cell, Section};
use super::plots::{self, BarGroup, BarPanel, Chart};

const ERRORS_SHOWN: usize = 10;
/// Targets: want-have bytes / reconciliation bytes at 1 % of 10^5 blocks, and the same for
/// the time until the difference is known.
const TARGET_BYTES: f64 = 10.0;
const TARGET_TIME: f64 = 5.0;

fn percent(share: f64) -> String {
    format!("{} %", num(share * 100.0, 1))
}

fn size(n: u64) -> String {
    match n {
        1_000_000 => "10^6".into(),
        100_000 => "10^5".into(),
        10_000 => "10^4".into(),
        n => n.to_string(),
    }
}

fn correct(ok: bool) -> Cell {
    Cell::zero_expected(usize::from(!ok))
}

fn cost_cells(c: &MethodCost) -> Vec<Cell> {
    vec![
        bytes(c.bytes).into(),
        c.round_trips.to_string().into(),
        num(c.wall_ms, 1).into(),
        num(c.cpu_ms, 1).into(),
    ]
}

fn method_row(name: &str, c: &MethodCost, ok: bool) -> Vec<Cell> {
    let mut row: Vec<Cell> = vec![name.into()];
    row.extend(cost_cells(c));
    row.push(correct(ok));
    row
}

pub fn reconcile(r: Option<&ReconcileResult>) -> Option<Section> {
    let r = r?;
    let target = r
        .pairs
        .iter()
        .find(|p| p.set_size == 100_000 && (p.difference_share - 0.01).abs() < 1e-9);
    let summary = kv_table(vec![
        (
            "bytes, want-have / reconciliation, 1 % of 10^5 blocks",
            target
                .map_or(html::MISSING.into(), |p| {
                    format!(
                        "{} (target ≥ {})",
                        ratio(p.bytes_ratio),
                        ratio(TARGET_BYTES)
                    )
                })
                .into(),
        ),
        (
            "time to a known difference, want-have / reconciliation, 1 % of 10^5",
            target
                .map_or(html::MISSING.into(), |p| {
                    format!("{} (target ≥ {})", ratio(p.time_ratio), ratio(TARGET_TIME))
                })
                .into(),
        ),
        (
            "pairs whose difference was wrong",
            Cell::zero_expected(r.pairs.iter().filter(|p| !p.correct).count()),
        ),
        ("repetitions per pair (medians shown)", r.repetitions.into()),
    ]);
    let rows = r
        .pairs
        .iter()
        .map(|p| {
            let mut row: Vec<Cell> = vec![
                size(p.set_size).into(),
                percent(p.difference_share).into(),
                p.difference.into(),
            ];
            row.extend(cost_cells(&p.reconcile));
            row.extend(cost_cells(&p.plain));
            row.push(ratio(p.bytes_ratio).into());
            row.push(ratio(p.time_ratio).into());
            row.push(ratio(p.cpu_ratio).into());
            row.push(correct(p.correct));
            row
        })
        .collect();
    let pairs = table(
        &[
            "blocks held",
            "differ",
            "difference",
            "reconciliation bytes",
            "round trips",
            "ms",
            "CPU ms",
            "want-have bytes",
            "round trips",
            "ms",
            "CPU ms",
            "bytes ratio",
            "time ratio",
            "CPU ratio",
            "wrong",
        ],
        rows,
    );
    let labels: Vec<String> = r
        .pairs
        .iter()
        .map(|p| format!("{} · {}", size(p.set_size), percent(p.difference_share)))
        .collect();
    let ratios = plots::bar_panels(vec![
        BarPanel {
            chart: Chart::new(
                "Bytes on the wire, want-have ÷ reconciliation",
                "blocks held · share differing",
                "ratio (×)",
            ),
            labels: labels.clone(),
            groups: vec![BarGroup::new(
                "bytes ratio",
                plots::palette(0),
                r.pairs.iter().map(|p| p.bytes_ratio).collect(),
            )],
        },
        BarPanel {
            chart: Chart::new(
                "Time until both know the difference, want-have ÷ reconciliation",
                "blocks held · share differing",
                "ratio (×)",
            ),
            labels,
            groups: vec![BarGroup::new(
                "time ratio",
                plots::palette(1),
                r.pairs.iter().map(|p| p.time_ratio).collect(),
            )],
        },
    ]);
    let mut body = paragraph(
        "Two in-process hosts on loopback (TCP, Noise, yamux, the node's network layer and \
         reconciliation service) each hold N blocks of a 2N-block dataset, as two downloads \
         halfway would, the given share of their blocks differing; each must learn which blocks \
         the other holds that it lacks. Reconciliation: one /neverust/reconcile/1.0.0 session, \
         which tells both sides. Want-have: each side sends a blockexc want-have for every block \
         it lacks (4096 to a message, pipelined) and gets a presence for each, in Archivist's \
         wire format. Sets are index lists (no block data moves), drawn from the run's seed; \
         every answer is checked against the true difference. Bytes count both directions with \
         their length prefixes; CPU is the benchmark process's, which runs both hosts.",
    ) + &summary
        + &pairs
        + &figure(
            "plot-reconcile-ratios",
            "How many times more bytes and time want-haves took than reconciliation, per set \
             size and difference (medians).",
            ratios,
        );
    if let Some(h) = &r.heal {
        body += &paragraph(&format!(
            "Partition heal: {} hosts in two groups of a {}-block dataset (half of it held by \
             all, 1 % more by each group, 0.5 % more by each host) meet; every host learns from \
             every host of the other group what it lacks, all exchanges at once ({} sessions, \
             each telling both sides; want-haves go both ways). Time until the last knows.",
            h.nodes, h.dataset_blocks, h.sessions
        ));
        body += &table(
            &["method", "bytes", "round trips", "ms", "CPU ms", "wrong"],
            vec![
                method_row("reconciliation", &h.reconcile, h.correct),
                method_row("want-have", &h.plain, h.correct),
            ],
        );
        body += &kv_table(vec![
            (
                "bytes, want-have / reconciliation",
                ratio(h.bytes_ratio).into(),
            ),
            (
                "time, want-have / reconciliation",
                ratio(h.time_ratio).into(),
            ),
        ]);
    }
    if let Some(s) = &r.swarm {
        body += &paragraph(&format!(
            "Swarm: {} node processes started for this part, all connected to each other; one \
             holds a {} dataset and {} fetch it at once through their APIs, first with \
             reconciliation, then with --reconcile false. Control bytes are what every node \
             wrote, from its metrics: wantlist messages (block requests included), presences, \
             reconciliation sessions. With reconciliation, downloaders learn which blocks the \
             others already hold and fetch from them too.",
            s.downloaders + 1,
            bytes(s.dataset_bytes),
            s.downloaders
        ));
        let rows = s
            .runs
            .iter()
            .map(|run| {
                vec![
                    run.method.as_str().into(),
                    num(run.seconds, 2).into(),
                    format!("{}/{}", run.verified, s.downloaders).into(),
                    bytes(run.wantlist_bytes).into(),
                    bytes(run.presence_bytes).into(),
                    bytes(run.reconcile_bytes).into(),
                    bytes(run.wantlist_bytes + run.presence_bytes + run.reconcile_bytes).into(),
                    run.blocks_from_seed.into(),
                    run.blocks_from_peers.into(),
                ]
            })
            .collect();
        body += &table(
            &[
                "method",
                "seconds",
                "copies verified",
                "wantlists",
                "presences",
                "reconciliation",
                "control bytes",
                "blocks from the holder",
                "blocks from other downloaders",
            ],
            rows,
        );
        let errors: Vec<String> = s.runs.iter().flat_map(|r| r.errors.clone()).collect();
        body += &html::errors("Swarm errors", &errors, ERRORS_SHOWN);
    }
    body += &html::errors("Reconcile errors", &r.errors, ERRORS_SHOWN);
    Some(Section::new("reconcile", "Set reconciliation", body))
}
