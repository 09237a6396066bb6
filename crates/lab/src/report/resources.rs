//! The resources section: memory and CPU of every node over the whole run, coloured by
//! the node's mode so a misbehaving kind of node stands out among many.

use plotters::style::RGBColor;

use crate::results::NodeResources;

use super::html::{self, figure, Section};
use super::plots::{self, BarGroup, BarPanel, Chart, LineChart, Series};

/// More lines than this turn the charts into a solid blot without telling more.
const MAX_NODES: usize = 100;

const GREY: RGBColor = RGBColor(130, 130, 130);

fn mode_color(mode: &str) -> RGBColor {
    match mode {
        "bootstrap" => RGBColor(214, 39, 40),
        "altruistic" => RGBColor(31, 119, 180),
        "marketplace" => RGBColor(148, 103, 189),
        _ => GREY,
    }
}

pub fn resources(nodes: &[NodeResources]) -> Option<Section> {
    if nodes.is_empty() {
        return None;
    }
    let shown = &nodes[..nodes.len().min(MAX_NODES)];
    // Lines are drawn in order; the single bootstrap line would vanish under the others.
    let mut layered: Vec<&NodeResources> = shown.iter().collect();
    layered.sort_by_key(|n| n.mode == "bootstrap");
    let note = if nodes.len() > shown.len() {
        format!(
            "{} nodes sampled; the charts show the first {}.",
            nodes.len(),
            shown.len()
        )
    } else {
        format!("{} nodes sampled.", nodes.len())
    };
    let colours = "Red: bootstrap node, blue: altruistic, purple: marketplace.";
    let rss = over_time(
        Chart::new("Memory per node", "time since start (s)", "RSS (MiB)"),
        &layered,
        |n| n.rss_bytes.iter().map(|b| *b as f64 / html::MIB).collect(),
    );
    let cpu = over_time(
        Chart::new("CPU per node", "time since start (s)", "CPU (% of a core)"),
        &layered,
        |n| n.cpu_percent.clone(),
    );
    let body = html::paragraph(&note)
        + &figure(
            "plot-resources-rss",
            &format!("Resident memory of each node over the run. {colours}"),
            rss,
        )
        + &figure(
            "plot-resources-cpu",
            &format!("CPU use of each node over the run. {colours}"),
            cpu,
        )
        + &figure(
            "plot-resources-bars",
            &format!("Peak memory and mean CPU of each node. {colours}"),
            per_node_bars(shown),
        );
    Some(Section::new("resources", "Resources", body))
}

/// One thin line per node; only the first node of each mode gets a legend entry.
fn over_time(
    chart: Chart,
    nodes: &[&NodeResources],
    values: impl Fn(&NodeResources) -> Vec<f64>,
) -> Option<String> {
    let mut seen: Vec<&str> = Vec::new();
    let series = nodes
        .iter()
        .map(|n| {
            let first_of_mode = !seen.contains(&n.mode.as_str());
            if first_of_mode {
                seen.push(&n.mode);
            }
            let points = n.t_s.iter().copied().zip(values(n)).collect();
            Series::new(mode_name(&n.mode), mode_color(&n.mode), points).thin(first_of_mode)
        })
        .collect();
    let mut spec = LineChart::new(chart, series);
    spec.legend_at = plots::LegendAt::UpperLeft;
    plots::line_chart(&spec)
}

fn mode_name(mode: &str) -> &str {
    if mode.is_empty() {
        "unknown"
    } else {
        mode
    }
}

fn per_node_bars(nodes: &[NodeResources]) -> Option<String> {
    let labels: Vec<String> = nodes.iter().map(|n| n.index.to_string()).collect();
    let colors: Vec<RGBColor> = nodes.iter().map(|n| mode_color(&n.mode)).collect();
    // A node without samples gets NaN, which draws no bar rather than a fake zero.
    let max_rss = nodes
        .iter()
        .map(|n| {
            n.rss_bytes
                .iter()
                .max()
                .map_or(f64::NAN, |b| *b as f64 / html::MIB)
        })
        .collect();
    let mean_cpu = nodes.iter().map(|n| mean(&n.cpu_percent)).collect();
    plots::bar_panels(vec![
        BarPanel {
            chart: Chart::new("Peak memory per node", "node index", "max RSS (MiB)"),
            labels: labels.clone(),
            groups: vec![BarGroup {
                name: "max RSS".into(),
                values: max_rss,
                colors: colors.clone(),
            }],
        },
        BarPanel {
            chart: Chart::new("Mean CPU per node", "node index", "mean CPU (% of a core)"),
            labels,
            groups: vec![BarGroup {
                name: "mean CPU".into(),
                values: mean_cpu,
                colors,
            }],
        },
    ])
}

/// Mean of the finite values, NaN when there is none.
fn mean(values: &[f64]) -> f64 {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        f64::NAN
    } else {
        finite.iter().sum::<f64>() / finite.len() as f64
    }
}
