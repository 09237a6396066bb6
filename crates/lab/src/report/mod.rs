//! The benchmark report: one self-contained HTML page (inline style, inline SVG charts,
//! nothing fetched) drawn from a run's `Results`, written next to its `results.json`.
//!
//! Sections appear only for the scenarios that ran, so a partial run gives a short but
//! truthful report rather than empty charts.

mod axis;
mod cache;
mod faults;
mod html;
mod interop;
mod marketplace;
mod overview;
pub mod plots;
mod reconcile;
mod resources;
mod scale;
mod scenarios;
mod visualizer;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::results::Results;

const TITLE: &str = "Neverust benchmark report";

/// The report as a complete HTML page.
pub fn render_html(results: &Results) -> String {
    let sections: Vec<html::Section> = [
        Some(overview::baseline(&results.baseline)),
        overview::cluster(results.cluster.as_ref()),
        scenarios::upload(results.upload.as_ref()),
        scenarios::exchange(results.exchange.as_ref()),
        scenarios::throughput(results.throughput.as_ref()),
        interop::interop(results.interop.as_ref()),
        cache::cache(results.cache.as_ref()),
        reconcile::reconcile(results.reconcile.as_ref()),
        scenarios::stress(results.stress.as_ref()),
        scale::scale(results.scale.as_ref()),
        faults::chaos(results.chaos.as_ref()),
        marketplace::marketplace(results.marketplace.as_ref()),
        resources::resources(&results.resources),
        visualizer::visualizer(results.visualizer.as_ref()),
        Some(overview::explanations()),
    ]
    .into_iter()
    .flatten()
    .collect();
    html::page(TITLE, &overview::header(results), &sections)
}

/// Writes `results.json` (pretty) and `report.html` into `dir`, creating it, and returns
/// the report's path.
pub fn write_report(results: &Results, dir: &Path) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(results).map_err(io::Error::other)?;
    fs::write(dir.join("results.json"), json)?;
    let report = dir.join("report.html");
    fs::write(&report, render_html(results))?;
    Ok(report)
}
