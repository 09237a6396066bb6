//! The scale section: how latency, exchange rate and resource use change with the number
//! of nodes, as a table and as curves over the node count.

use crate::results::{ScalePoint, ScaleResult};

use super::html::{self, figure, ms, num, table, Cell, Section};
use super::plots::{self, Chart, LineChart, Mark, Series};

pub fn scale(s: Option<&ScaleResult>) -> Option<Section> {
    let s = s?;
    if s.points.is_empty() {
        return None;
    }
    let mut points: Vec<&ScalePoint> = s.points.iter().collect();
    // Curves must run left to right even if the runner measured sizes out of order.
    points.sort_by_key(|p| p.nodes);
    let body = points_table(&points) + &curves(&points);
    Some(Section::new("scale", "Scale", body))
}

fn points_table(points: &[&ScalePoint]) -> String {
    let headers = [
        "nodes",
        "ready (s)",
        "download p50 (ms)",
        "download p99 (ms)",
        "blocks/s",
        "MiB/s",
        "idle RSS mean (MiB)",
        "loaded RSS mean (MiB)",
        "idle CPU mean (%)",
        "loaded CPU mean (%)",
        "errors",
    ];
    let rows = points
        .iter()
        .map(|p| {
            vec![
                p.nodes.into(),
                num(p.ready_seconds, 2).into(),
                ms(p.download.p50).into(),
                ms(p.download.p99).into(),
                num(p.blocks_per_s, 1).into(),
                num(p.mib_s, 1).into(),
                html::mib(p.idle.rss_mean_bytes).into(),
                html::mib(p.loaded.rss_mean_bytes).into(),
                num(p.idle.cpu_mean_percent, 2).into(),
                num(p.loaded.cpu_mean_percent, 1).into(),
                Cell::zero_expected(p.errors),
            ]
        })
        .collect();
    table(&headers, rows)
}

/// A line with point markers of `value` over the node count.
fn curve(
    name: &str,
    color: usize,
    points: &[&ScalePoint],
    value: impl Fn(&ScalePoint) -> f64,
) -> Series {
    let xy = points.iter().map(|p| (p.nodes as f64, value(p))).collect();
    Series::new(name, plots::palette(color), xy).mark(Mark::LineAndPoints)
}

fn curve_chart(chart: Chart, series: Vec<Series>) -> Option<String> {
    let mut spec = LineChart::new(chart, series);
    spec.legend_at = plots::LegendAt::UpperLeft;
    plots::line_chart(&spec)
}

fn curves(points: &[&ScalePoint]) -> String {
    let x = "nodes";
    let latency = curve_chart(
        Chart::new("Download latency vs nodes", x, "latency (ms)"),
        vec![
            curve("p50", 0, points, |p| p.download.p50),
            curve("p99", 3, points, |p| p.download.p99),
        ],
    );
    let blocks = curve_chart(
        Chart::new("Exchange rate vs nodes", x, "blocks/s"),
        vec![curve("blocks/s", 0, points, |p| p.blocks_per_s)],
    );
    let rss = curve_chart(
        Chart::new("Memory per node vs nodes", x, "RSS mean (MiB)"),
        vec![
            curve("loaded", 1, points, |p| p.loaded.rss_mean_bytes / html::MIB),
            curve("idle", 0, points, |p| p.idle.rss_mean_bytes / html::MIB),
        ],
    );
    let cpu = curve_chart(
        Chart::new("CPU per node vs nodes", x, "CPU mean (% of a core)"),
        vec![
            curve("loaded", 1, points, |p| p.loaded.cpu_mean_percent),
            curve("idle", 0, points, |p| p.idle.cpu_mean_percent),
        ],
    );
    figure(
        "plot-scale-latency",
        "Median and 99th percentile download latency for each cluster size.",
        latency,
    ) + &figure(
        "plot-scale-blocks",
        "Blocks delivered per second by the exchange for each cluster size.",
        blocks,
    ) + &figure(
        "plot-scale-rss",
        "Mean resident memory of a node, idle and under load, for each cluster size.",
        rss,
    ) + &figure(
        "plot-scale-cpu",
        "Mean CPU use of a node, idle and under load, for each cluster size.",
        cpu,
    )
}
