//! A picture of the visualizer for the bench report: a visualizer started beside the
//! cluster for a moment, photographed by headless Chromium (Debian's `chromium`).
//!
//! Cheap and optional: one poll, one browser launch; without Chromium the report says
//! why there is no picture, and the bench goes on.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::{server, Source, Viz};
use crate::results::VisualizerShot;

pub const FILE_NAME: &str = "visualizer.png";
const LIMIT: Duration = Duration::from_secs(40);

#[derive(Debug, thiserror::Error)]
pub enum ShotError {
    #[error("running {chromium}: {source}")]
    Spawn {
        chromium: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{chromium} took longer than {LIMIT:?} to take the screenshot")]
    Timeout { chromium: PathBuf },
    #[error("{chromium} exited with {status} and wrote no screenshot: {stderr}")]
    Failed {
        chromium: PathBuf,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// Chromium: `$NEVERUST_CHROMIUM`, else the first of the usual names on the PATH.
pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NEVERUST_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .find_map(|name| crate::on_path(name))
}

/// Loads `url` in headless Chromium and writes a PNG of the window to `out`.
pub async fn screenshot(chromium: &Path, url: &str, out: &Path) -> Result<(), ShotError> {
    // A profile of its own: a user's running Chromium (or another screenshot) holds the
    // default one locked.
    let profile = std::env::temp_dir().join(format!("neverust-chromium-{}", std::process::id()));
    let mut screenshot_arg = std::ffi::OsString::from("--screenshot=");
    screenshot_arg.push(out);
    let mut profile_arg = std::ffi::OsString::from("--user-data-dir=");
    profile_arg.push(&profile);
    let _ = std::fs::remove_file(out);
    let child = tokio::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .args(["--no-first-run", "--window-size=1400,900"])
        // Virtual time runs the page's scripts (first fetch, layout) before the picture.
        .arg("--virtual-time-budget=5000")
        .arg(profile_arg)
        .arg(screenshot_arg)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ShotError::Spawn {
            chromium: chromium.to_path_buf(),
            source,
        })?;
    let result = tokio::time::timeout(LIMIT, child.wait_with_output()).await;
    let _ = std::fs::remove_dir_all(&profile);
    let output = result
        .map_err(|_| ShotError::Timeout {
            chromium: chromium.to_path_buf(),
        })?
        .map_err(|source| ShotError::Spawn {
            chromium: chromium.to_path_buf(),
            source,
        })?;
    if out.is_file() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(ShotError::Failed {
        chromium: chromium.to_path_buf(),
        status: output.status,
        stderr: stderr.lines().rev().take(3).collect::<Vec<_>>().join(" / "),
    })
}

/// The visualizer of the cluster in `cluster_file`, photographed into `dir`; what the
/// picture shows, or why there is none.
pub async fn for_report(cluster_file: &Path, dir: &Path) -> VisualizerShot {
    let mut shot = VisualizerShot::default();
    let Some(chromium) = chromium() else {
        shot.note = Some("no picture: Chromium is not installed (Debian package `chromium`; scripts/setup.sh installs it)".into());
        return shot;
    };
    let listener = match server::bind("127.0.0.1:0".parse().expect("an address")).await {
        Ok(l) => l,
        Err(e) => {
            shot.note = Some(format!("no picture: {e}"));
            return shot;
        }
    };
    let mut viz = Viz::start(
        listener,
        Source::ClusterFile(cluster_file.to_path_buf()),
        server::INTERVAL,
    );
    // Two polls, so the picture has speeds and traffic on its edges.
    let first = viz.snapshot_after(0).await.map_or(0, |s| s.seq);
    let Some(snapshot) = viz.snapshot_after(first).await else {
        shot.note = Some("no picture: the visualizer made no snapshot".into());
        return shot;
    };
    shot.nodes = snapshot.nodes.len();
    shot.active_nodes = snapshot.stats.active_nodes;
    shot.edges = snapshot.edges.len();
    let out = dir.join(FILE_NAME);
    match screenshot(&chromium, &viz.url(), &out).await {
        Ok(()) => shot.png = Some(out),
        Err(e) => shot.note = Some(format!("no picture: {e}")),
    }
    shot
}
