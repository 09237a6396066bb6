//! The page's files, embedded in the binary so the visualizer works offline and from a
//! container with nothing beside the binary: our own page (crates/lab/viz-web/src) and d3
//! from npm (crates/lab/viz-web/node_modules, see build.rs).
//!
//! Only with the `viz-page` feature: d3 makes the build need npm, which a binary that only
//! runs nodes (the node's image) has no use for. Without it there are no files at all,
//! since the page is nothing without d3.

/// Whether this binary carries the page.
pub const EMBEDDED: bool = cfg!(feature = "viz-page");

#[cfg(not(feature = "viz-page"))]
const FILES: &[(&str, &[u8], &str)] = &[];

#[cfg(feature = "viz-page")]
const FILES: &[(&str, &[u8], &str)] = &[
    (
        "index.html",
        include_bytes!("../../viz-web/src/index.html"),
        "text/html; charset=utf-8",
    ),
    (
        "app.js",
        include_bytes!("../../viz-web/src/app.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "edges.js",
        include_bytes!("../../viz-web/src/edges.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "style.css",
        include_bytes!("../../viz-web/src/style.css"),
        "text/css; charset=utf-8",
    ),
    (
        "d3.min.js",
        include_bytes!("../../viz-web/node_modules/d3/dist/d3.min.js"),
        "text/javascript; charset=utf-8",
    ),
];

/// A file's bytes and content type.
pub fn get(name: &str) -> Option<(&'static [u8], &'static str)> {
    FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, body, mime)| (*body, *mime))
}

#[cfg(all(test, feature = "viz-page"))]
mod tests {
    #[test]
    fn the_page_and_d3_are_embedded() {
        let (html, mime) = super::get("index.html").unwrap();
        assert!(mime.starts_with("text/html"));
        let html = std::str::from_utf8(html).unwrap();
        for f in ["app.js", "edges.js", "style.css", "d3.min.js"] {
            assert!(html.contains(f), "index.html does not load {f}");
            assert!(super::get(f).is_some());
        }
        // Nothing fetched from elsewhere: the page works offline.
        assert!(!html.contains("http://") && !html.contains("https://"));
        let d3 = std::str::from_utf8(super::get("d3.min.js").unwrap().0).unwrap();
        assert!(d3.contains("forceSimulation"));
        assert!(super::get("../Cargo.toml").is_none());
    }
}
