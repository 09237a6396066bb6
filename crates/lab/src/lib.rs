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
/// places that show an error to the user themselves. A cause the text already ends with is
/// not repeated: some errors (a client's `{url}: {source}`, blockexc's wire errors) print
/// their source in their own message as well as giving it as their source.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.ends_with(&next) {
            text = format!("{text}: {next}");
        }
        cause = c.source();
    }
    text
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("{what}: {source}")]
    struct Repeats {
        what: &'static str,
        #[source]
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("fetching")]
    struct Outer(#[source] Repeats);

    /// A cause its error already printed is said once; the others each add a step.
    #[test]
    fn a_cause_already_printed_is_not_repeated() {
        let io = std::io::Error::other("connection refused");
        let e = Outer(Repeats {
            what: "http://127.0.0.1:8080",
            source: io,
        });
        assert_eq!(
            super::error_chain(&e),
            "fetching: http://127.0.0.1:8080: connection refused"
        );
    }
}
