//! The visualizer's page embeds d3 from npm (crates/lab/viz-web). Without its
//! node_modules a binary with the page (feature `viz-page`) cannot be built: say how to
//! get them, or how to build without the page, instead of a bare "file not found" from
//! include_bytes!.

use std::path::Path;

fn main() {
    let d3 = Path::new("viz-web/node_modules/d3/dist/d3.min.js");
    println!("cargo:rerun-if-changed={}", d3.display());
    println!("cargo:rerun-if-changed=viz-web/package-lock.json");
    if std::env::var_os("CARGO_FEATURE_VIZ_PAGE").is_some() && !d3.exists() {
        panic!(
            "\n\nThe visualizer page needs d3 from npm, and {} is missing.\n\
             Run `npm ci` in crates/lab/viz-web (scripts/setup.sh does it), or build\n\
             without the page: `cargo build -p neverust --no-default-features`.\n\n",
            d3.display()
        );
    }
}
