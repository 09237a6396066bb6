//! The lab around the node: a native cluster launcher, benchmark scenarios (load, scale,
//! chaos), and the report. It drives nodes only through their REST API, `/metrics` and
//! process signals, exactly as a user would; it never reaches into a node's memory.

pub mod bench;
pub mod client;
pub mod cluster;
pub mod deploy;
pub mod metrics;
pub mod report;
pub mod results;
pub mod sampler;
pub mod topology;
pub mod ui;
pub mod viz;

/// The program `name` on the PATH, if there is one.
pub fn on_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// An error with its causes, `outer: inner: ...`, as anyhow's `{:#}` prints one: for the
/// places that show an error to the user themselves.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    text
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
