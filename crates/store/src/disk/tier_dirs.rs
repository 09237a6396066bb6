//! The store's persistent tiers as directories of segment files, and the segment ids that
//! name a segment across them: a global id carries its tier in its top byte.

use std::path::Path;
use std::sync::atomic::AtomicU64;

use crate::segments::Segments;
use crate::StoreError;

/// One directory of segment files: a persistent tier.
pub(super) struct DiskTier {
    pub(super) dir: std::path::PathBuf,
    pub(super) segments: Segments,
    pub(super) capacity: u64,
    /// Live blocks and payload bytes on this tier, as of the last commit.
    pub(super) blocks: AtomicU64,
    pub(super) bytes: AtomicU64,
}

/// Where a persistent tier is and how much it should hold.
#[derive(Clone, Debug)]
pub(crate) struct TierDir {
    pub dir: std::path::PathBuf,
    pub capacity: u64,
}

/// Top byte of a segment id: the tier whose directory holds the segment file.
const TIER_SHIFT: u32 = 56;

pub(super) fn global_segment(tier: usize, local: u64) -> u64 {
    ((tier as u64) << TIER_SHIFT) | local
}

/// (tier, segment number within the tier's directory)
pub(super) fn split_segment(id: u64) -> (usize, u64) {
    ((id >> TIER_SHIFT) as usize, id & ((1 << TIER_SHIFT) - 1))
}

/// Each tier directory remembers its position, so a reordered `--tier` list (which would
/// make the index point into the wrong directories) is refused instead of losing blocks.
pub(super) fn check_tier_marker(dir: &Path, tier: usize) -> Result<(), StoreError> {
    let path = dir.join("TIER");
    let expected = format!("neverust tier {tier}\n");
    match std::fs::read_to_string(&path) {
        Ok(found) if found == expected => Ok(()),
        Ok(found) => Err(StoreError::Layout {
            reason: format!(
                "this directory was tier {} and is now given as tier {tier}: tiers must keep their order",
                found.trim().trim_start_matches("neverust tier ")
            ),
            path,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&path, expected).map_err(StoreError::io("writing the tier marker", &path))
        }
        Err(e) => Err(StoreError::io("reading the tier marker", path)(e)),
    }
}
