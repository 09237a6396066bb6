//! Store errors, carrying the quota figures, CID or path involved, and the error that caused
//! them as their source.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("Not enough storage quota: storing {needed} more bytes would exceed the quota of {max} bytes (used: {used})")]
    QuotaExceeded { needed: u64, used: u64, max: u64 },
    #[error("cannot open the block database at {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    /// The directories given do not make the store they once made (none given, tiers
    /// reordered or left out): refused rather than losing blocks.
    #[error("cannot open the block store at {path}: {reason}")]
    Layout { path: PathBuf, reason: String },
    #[error("block database error while {doing}: {source}")]
    Db {
        doing: &'static str,
        #[source]
        source: redb::Error,
    },
    /// A file of the store (a segment, its directory, a tier marker) could not be used.
    #[error("I/O error while {doing} ({}): {source}", path.display())]
    Io {
        doing: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start a thread writing upload blocks: {source}")]
    WriterThread {
        #[source]
        source: std::io::Error,
    },
    #[error("a thread writing upload blocks panicked")]
    WriterPanicked,
    #[error("no persistent tier {tier}")]
    NoTier { tier: usize },
    #[error("stored record for {what} is corrupt")]
    Corrupt { what: String },
    #[error("bad tier list: {0}")]
    Tiers(#[from] crate::tiers::TierSpecError),
}

impl StoreError {
    pub(crate) fn db(doing: &'static str) -> impl FnOnce(redb::Error) -> StoreError {
        move |source| StoreError::Db { doing, source }
    }

    pub(crate) fn io(
        doing: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io {
            doing,
            path,
            source,
        }
    }
}
