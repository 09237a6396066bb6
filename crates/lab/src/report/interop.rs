//! The `interop` section: a mixed cluster's Archivist nodes beside its Neverust nodes, as
//! one table per question (idle cost, uploads, transfers each way) and a chart of transfer
//! speed per direction.

use crate::results::InteropResult;

use super::html::{self, bytes, figure, mib, ms, num, paragraph, ratio, table, Cell, Section};
use super::plots::{self, BarGroup, BarPanel, Chart};

const ERRORS_SHOWN: usize = 10;

pub fn interop(r: Option<&InteropResult>) -> Option<Section> {
    let r = r?;
    if let Some(why) = &r.skipped {
        return Some(Section::skipped("interop", "Archivist interop", why));
    }
    let idle = table(
        &[
            "implementation",
            "nodes",
            "idle RSS mean (MiB)",
            "idle CPU mean (% of a core)",
        ],
        r.kinds
            .iter()
            .map(|k| {
                vec![
                    k.implementation.as_str().into(),
                    k.nodes.into(),
                    mib(k.idle.rss_mean_bytes).into(),
                    num(k.idle.cpu_mean_percent, 2).into(),
                ]
            })
            .collect(),
    );
    let upload_rows = r
        .sizes
        .iter()
        .flat_map(|s| {
            s.uploads.iter().map(move |u| -> Vec<Cell> {
                vec![
                    bytes(s.size_bytes).into(),
                    u.implementation.as_str().into(),
                    u.latency.count.into(),
                    ms(u.latency.p50).into(),
                    num(u.throughput_mib_s, 1).into(),
                ]
            })
        })
        .collect();
    let uploads = table(
        &["size", "uploaded to", "count", "p50 (ms)", "MiB/s"],
        upload_rows,
    );
    let transfer_rows = r
        .sizes
        .iter()
        .flat_map(|s| {
            s.transfers.iter().map(move |t| -> Vec<Cell> {
                vec![
                    bytes(s.size_bytes).into(),
                    format!("{} → {}", t.from, t.to).into(),
                    t.count.into(),
                    Cell::zero_expected(t.count - t.verified),
                    ms(t.latency.p50).into(),
                    num(t.throughput_mib_s, 1).into(),
                ]
            })
        })
        .collect();
    let transfers = table(
        &[
            "size",
            "uploaded to → read through",
            "count",
            "not identical",
            "p50 (ms)",
            "MiB/s",
        ],
        transfer_rows,
    );
    let ratios = r
        .sizes
        .iter()
        .filter_map(|s| {
            let of = |kind: &str| s.uploads.iter().find(|u| u.implementation == kind);
            let (n, a) = (of("neverust")?, of("archivist")?);
            (a.throughput_mib_s > 0.0).then(|| {
                format!(
                    "{}: Neverust uploads at {} the speed of Archivist",
                    bytes(s.size_bytes),
                    ratio(n.throughput_mib_s / a.throughput_mib_s)
                )
            })
        })
        .collect::<Vec<_>>();
    let directions: Vec<String> = r
        .sizes
        .first()
        .map(|s| {
            s.transfers
                .iter()
                .map(|t| format!("{} → {}", t.from, t.to))
                .collect()
        })
        .unwrap_or_default();
    let chart = plots::bar_chart(BarPanel {
        chart: Chart::new("Transfer speed per direction", "dataset size", "MiB/s"),
        labels: r.sizes.iter().map(|s| bytes(s.size_bytes)).collect(),
        groups: directions
            .iter()
            .enumerate()
            .map(|(i, d)| {
                BarGroup::new(
                    d.clone(),
                    plots::palette(i),
                    r.sizes
                        .iter()
                        .map(|s| s.transfers.get(i).map_or(0.0, |t| t.throughput_mib_s))
                        .collect(),
                )
            })
            .collect(),
    });
    let body = paragraph(
        "Archivist and Neverust nodes of one cluster on one machine, in the same run. \
         Transfers are reads through a node that did not hold the dataset, checked byte for byte.",
    ) + &idle
        + &uploads
        + &paragraph(&ratios.join("; "))
        + &transfers
        + &figure(
            "plot-interop-transfers",
            "MiB/s of a network read, per direction (uploaded to → read through) and dataset size.",
            chart,
        )
        + &html::errors("Interop errors", &r.errors, ERRORS_SHOWN);
    Some(Section::new("interop", "Archivist interop", body))
}
