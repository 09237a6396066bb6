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
pub mod ui;
pub mod viz;

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
