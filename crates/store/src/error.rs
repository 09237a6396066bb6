//! Store errors, carrying the quota figures, CID or path involved.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("Not enough storage quota: storing {needed} more bytes would exceed the quota of {max} bytes (used: {used})")]
    QuotaExceeded { needed: u64, used: u64, max: u64 },
    #[error("cannot open the block database at {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("block database error while {doing}: {reason}")]
    Db { doing: &'static str, reason: String },
    #[error("stored record for {what} is corrupt")]
    Corrupt { what: String },
    #[error("{0}")]
    Io(String),
    #[error("bad tier list: {0}")]
    Tiers(#[from] crate::tiers::TierSpecError),
}

impl StoreError {
    pub(crate) fn db(doing: &'static str) -> impl FnOnce(redb::Error) -> StoreError {
        move |e| StoreError::Db {
            doing,
            reason: e.to_string(),
        }
    }
}
