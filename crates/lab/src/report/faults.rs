//! The chaos section: node kills and restarts, and the network partition, each with a
//! timeline that puts operations' outcomes next to the faults that caused them.

use crate::results::{ChaosResult, Event, OpSample, PartitionResult};

use super::html::{self, escape, figure, kv_table, num, Cell, Section};
use super::plots::{self, Chart, LineChart, Mark, Marker, Series};

pub fn chaos(c: Option<&ChaosResult>) -> Option<Section> {
    let c = c?;
    let restarts: Vec<String> = c.restart_seconds.iter().map(|s| num(*s, 2)).collect();
    let mut body = kv_table(vec![
        ("killed nodes", html::list(&c.killed).into()),
        ("acknowledged uploads", c.acknowledged.into()),
        (
            "retrievable through the network",
            c.retrievable_network.into(),
        ),
        ("retrievable from their origin", c.retrievable_origin.into()),
        ("lost", Cell::zero_expected(c.lost)),
        (
            "failed during faults (expected)",
            c.failed_during_faults.into(),
        ),
        ("restart (s)", html::list(&restarts).into()),
    ]);
    body += &figure(
        "plot-chaos-timeline",
        "Operations over time (green: succeeded, red: failed) at their latency; dashed \
         lines mark kills and restarts.",
        timeline("Operations during node faults", &c.events, &c.ops),
    );
    body += &html::errors("Not retrievable after the faults", &c.lost_details, 20);
    if let Some(p) = &c.partition {
        body += &partition(p);
    }
    if let Some(reason) = &c.partition_skipped {
        body += &format!(
            "<p class=\"note\">Partition test skipped: {}</p>\n",
            escape(reason)
        );
    }
    Some(Section::new("chaos", "Chaos", body))
}

fn partition(p: &PartitionResult) -> String {
    let table = kv_table(vec![
        (
            "group sizes (a / b)",
            format!("{} / {}", p.group_a, p.group_b).into(),
        ),
        ("split (s)", num(p.split_seconds, 2).into()),
        (
            "within a group: ok / failed",
            format!("{} / {}", p.within_ok, p.within_failed).into(),
        ),
        (
            "across groups: ok / failed",
            format!("{} / {}", p.across_ok, p.across_failed).into(),
        ),
        (
            "heal (s)",
            p.heal_seconds
                .map_or_else(|| "never, within the limit".to_string(), |h| num(h, 2))
                .into(),
        ),
        ("acknowledged uploads", p.acknowledged.into()),
        ("lost", Cell::zero_expected(p.lost)),
    ]);
    String::from("<h3>Network partition</h3>\n")
        + &table
        + &figure(
            "plot-partition-timeline",
            "Operations within and across the split over time (green: succeeded, red: \
             failed); dashed lines mark the cut, the restore and the heal.",
            timeline("Operations during the partition", &p.events, &p.ops),
        )
}

/// Outcomes as points at their latency, and events as labelled vertical lines.
fn timeline(title: &str, events: &[Event], ops: &[OpSample]) -> Option<String> {
    let outcome = |ok: bool| -> Vec<(f64, f64)> {
        ops.iter()
            .filter(|o| o.ok == ok)
            .map(|o| (o.t_s, o.ms))
            .collect()
    };
    let series = vec![
        Series::new("ok", plots::OK_GREEN, outcome(true)).mark(Mark::Points),
        Series::new("failed", plots::FAIL_RED, outcome(false)).mark(Mark::Points),
    ];
    let mut spec = LineChart::new(
        Chart::new(title, "time since start (s)", "latency (ms)"),
        series,
    );
    spec.markers = events
        .iter()
        .map(|e| Marker {
            x: e.t_s,
            label: e.kind.clone(),
        })
        .collect();
    plots::line_chart(&spec)
}
