//! The live network visualizer (`neverust viz`, and `neverust cluster` unless `--no-viz`):
//! a D3 force graph of the nodes and the libp2p connections they report, pushed to the
//! browser over a WebSocket every 2 s.
//!
//! `poll` learns the nodes from a source (cluster.json or Prometheus) and asks each one,
//! `snapshot` turns their answers into one frame (no I/O, tested alone), `market` groups
//! the slots marketplace nodes hold by storage request, `server` serves
//! the page and pushes frames, `assets` holds the embedded page, `shot` takes the picture
//! for the bench report. The page (crates/lab/viz-web) only draws what a frame says.

pub mod assets;
pub mod market;
pub mod poll;
pub mod server;
pub mod shot;
pub mod snapshot;

pub use poll::Source;
pub use server::{bind, Viz, VizError, INTERVAL};
