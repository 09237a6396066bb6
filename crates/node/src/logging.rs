//! Logging: a `tracing` subscriber whose level can be changed at run time, as Archivist's
//! `POST /debug/chronicles/loglevel` does.

use std::sync::OnceLock;

use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Registry;

type ReloadHandle = reload::Handle<EnvFilter, Registry>;

static HANDLE: OnceLock<ReloadHandle> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogLevelError {
    #[error("invalid log level {given:?}: expected one of TRACE, DEBUG, INFO, NOTICE, WARN, ERROR, FATAL")]
    Invalid { given: String },
    #[error("logging is not initialised in this process")]
    NotInitialised,
}

/// Maps Archivist's (chronicles) level names onto tracing's; case-insensitive.
pub fn parse_level(given: &str) -> Result<&'static str, LogLevelError> {
    Ok(match given.trim().to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" | "notice" => "info",
        "warn" | "warning" => "warn",
        "error" | "fatal" => "error",
        "off" | "none" => "off",
        _ => {
            return Err(LogLevelError::Invalid {
                given: given.to_string(),
            })
        }
    })
}

fn filter_for(level: &str) -> EnvFilter {
    // Our crates at the asked level; chatty dependencies stay at warn unless tracing.
    let deps = if level == "trace" { "debug" } else { "warn" };
    EnvFilter::new(format!(
        "{deps},neverust={level},neverust_node={level},neverust_net={level},neverust_store={level},neverust_content={level}"
    ))
}

/// Installs the global subscriber (stderr); a second call in the same process is a no-op.
pub fn init(level: &str) -> Result<(), LogLevelError> {
    let level = parse_level(level)?;
    let (filter, handle) = reload::Layer::new(filter_for(level));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    if tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .is_ok()
    {
        let _ = HANDLE.set(handle);
    }
    Ok(())
}

pub fn set_level(given: &str) -> Result<(), LogLevelError> {
    let level = parse_level(given)?;
    let handle = HANDLE.get().ok_or(LogLevelError::NotInitialised)?;
    handle
        .reload(filter_for(level))
        .map_err(|_| LogLevelError::NotInitialised)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chronicles_names_map_and_junk_is_refused() {
        assert_eq!(parse_level("NOTICE").unwrap(), "info");
        assert_eq!(parse_level("Fatal").unwrap(), "error");
        assert!(parse_level("LOUD").is_err());
    }
}
