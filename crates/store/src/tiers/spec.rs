//! Tier specs as given on the command line (`--tier KIND[:DIR]:SIZE[:EMULATION]`), parsed
//! and validated before anything touches a disk.
//!
//! `memory:2GiB`, `nvme:/mnt/nvme:100GiB`, `hdd:/mnt/hdd:10TiB:latency=8ms,bw=150MB/s`.
//! The kind of a persistent tier (nvme, ssd, hdd) is only its label: the order of the list
//! (fastest first) is what places blocks. Emulation settings slow this tier's reads down for
//! the lab; nothing is emulated unless given. This module only parses: it creates no
//! directory and checks no free space.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// What a tier is. The persistent kinds differ only in name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TierKind {
    Memory,
    Nvme,
    Ssd,
    Hdd,
}

impl TierKind {
    pub fn name(self) -> &'static str {
        match self {
            TierKind::Memory => "memory",
            TierKind::Nvme => "nvme",
            TierKind::Ssd => "ssd",
            TierKind::Hdd => "hdd",
        }
    }

    pub fn is_persistent(self) -> bool {
        self != TierKind::Memory
    }
}

impl fmt::Display for TierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Device-speed emulation for the lab: every read served by the tier waits this long
/// (latency per read, plus its bytes at the bandwidth, reads sharing that bandwidth).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Emulation {
    pub emulated_read_latency: Option<Duration>,
    /// Bytes per second.
    pub emulated_read_bandwidth: Option<u64>,
}

impl Emulation {
    pub fn is_none(&self) -> bool {
        self.emulated_read_latency.is_none() && self.emulated_read_bandwidth.is_none()
    }
}

/// One `--tier` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierSpec {
    pub kind: TierKind,
    /// Where a persistent tier keeps its segments (`DIR/segments`); `None` for memory.
    pub dir: Option<PathBuf>,
    /// Bytes of block payload the tier should hold; migration keeps it at or below this.
    pub capacity: u64,
    pub emulation: Emulation,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TierSpecError {
    #[error("tier `{spec}`: unknown kind `{kind}` (expected memory, nvme, ssd or hdd)")]
    UnknownKind { spec: String, kind: String },
    #[error("tier `{spec}`: a {kind} tier needs a directory ({kind}:DIR:SIZE)")]
    MissingDir { spec: String, kind: TierKind },
    #[error("tier `{spec}`: a memory tier takes no directory (memory:SIZE)")]
    MemoryWithDir { spec: String },
    #[error("tier `{spec}`: missing size (KIND:DIR:SIZE, or memory:SIZE)")]
    MissingSize { spec: String },
    #[error("tier `{spec}`: bad size `{size}` (expected e.g. 512MiB, 100GiB, 1TiB, 2GB)")]
    BadSize { spec: String, size: String },
    #[error("tier `{spec}`: size must be more than 0")]
    ZeroSize { spec: String },
    #[error("tier `{spec}`: bad emulation `{setting}`: {why}")]
    BadEmulation {
        spec: String,
        setting: String,
        why: String,
    },
    #[error("no tier keeps blocks durably: give at least one nvme, ssd or hdd tier")]
    NoPersistentTier,
    #[error("the memory tier must come first (tiers are listed fastest first), found at position {position}")]
    MemoryNotFirst { position: usize },
    #[error("more than one memory tier")]
    TwoMemoryTiers,
    #[error("two tiers use the directory {dir}")]
    DuplicateDir { dir: PathBuf },
}

impl FromStr for TierSpec {
    type Err = TierSpecError;

    fn from_str(spec: &str) -> Result<Self, TierSpecError> {
        let owned = || spec.to_string();
        let (kind_text, rest) = spec.split_once(':').unwrap_or((spec, ""));
        let kind = match kind_text {
            "memory" | "mem" => TierKind::Memory,
            "nvme" => TierKind::Nvme,
            "ssd" => TierKind::Ssd,
            "hdd" => TierKind::Hdd,
            other => {
                return Err(TierSpecError::UnknownKind {
                    spec: owned(),
                    kind: other.into(),
                })
            }
        };
        // Split from the right: a directory may itself contain ':'.
        let mut rest = rest;
        let mut emulation = Emulation::default();
        if let Some((head, last)) = rest.rsplit_once(':') {
            if last.contains('=') {
                emulation = parse_emulation(spec, last)?;
                rest = head;
            }
        } else if rest.contains('=') {
            return Err(TierSpecError::MissingSize { spec: owned() });
        }
        let (dir, size) = match rest.rsplit_once(':') {
            Some((dir, size)) => (Some(dir), size),
            None => (None, rest),
        };
        // `ssd:/mnt/ssd`: a directory and no size, not a size that does not parse.
        let dir_without_size = dir.is_none() && kind.is_persistent() && parse_size(size).is_none();
        if size.is_empty() || dir_without_size {
            return Err(TierSpecError::MissingSize { spec: owned() });
        }
        let capacity = parse_size(size).ok_or_else(|| TierSpecError::BadSize {
            spec: owned(),
            size: size.into(),
        })?;
        if capacity == 0 {
            return Err(TierSpecError::ZeroSize { spec: owned() });
        }
        let dir = match (kind, dir) {
            (TierKind::Memory, None) => None,
            (TierKind::Memory, Some(_)) => {
                return Err(TierSpecError::MemoryWithDir { spec: owned() })
            }
            (_, Some(d)) if !d.is_empty() => Some(PathBuf::from(d)),
            (kind, _) => {
                return Err(TierSpecError::MissingDir {
                    spec: owned(),
                    kind,
                })
            }
        };
        Ok(TierSpec {
            kind,
            dir,
            capacity,
            emulation,
        })
    }
}

impl fmt::Display for TierSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(dir) = &self.dir {
            write!(f, ":{}", dir.display())?;
        }
        write!(f, ":{}B", self.capacity)?;
        let mut sep = ':';
        if let Some(l) = self.emulation.emulated_read_latency {
            write!(f, "{sep}latency={}ns", l.as_nanos())?;
            sep = ',';
        }
        if let Some(bw) = self.emulation.emulated_read_bandwidth {
            write!(f, "{sep}bw={bw}B/s")?;
        }
        Ok(())
    }
}

/// Checks a whole `--tier` list: at most one memory tier and only first, at least one
/// persistent tier, no directory used twice. An empty list is valid (no tiers: the plain
/// single-directory store).
pub fn validate(tiers: &[TierSpec]) -> Result<(), TierSpecError> {
    if tiers.is_empty() {
        return Ok(());
    }
    let memory: Vec<usize> = (0..tiers.len())
        .filter(|&i| tiers[i].kind == TierKind::Memory)
        .collect();
    if memory.len() > 1 {
        return Err(TierSpecError::TwoMemoryTiers);
    }
    if let Some(&i) = memory.first().filter(|&&i| i != 0) {
        return Err(TierSpecError::MemoryNotFirst { position: i + 1 });
    }
    if !tiers.iter().any(|t| t.kind.is_persistent()) {
        return Err(TierSpecError::NoPersistentTier);
    }
    let mut seen = std::collections::HashSet::new();
    for dir in tiers.iter().filter_map(|t| t.dir.as_ref()) {
        // Spelling differences (trailing '/', "./") must not hide a duplicate.
        let key: PathBuf = dir.components().collect();
        if !seen.insert(key) {
            return Err(TierSpecError::DuplicateDir { dir: dir.clone() });
        }
    }
    Ok(())
}

/// `123`, `4KiB`, `512MiB`, `1.5GiB`, `2GB`, `1TiB` (binary units with `i`, decimal without).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" | "kB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        "T" | "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return None,
    };
    let bytes = number * scale as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// `500ns`, `80us` (or `µs`), `8ms`, `1s`, `1.5ms`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let nanos_per = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => return None,
    };
    let nanos = number * nanos_per;
    (nanos.is_finite() && nanos >= 0.0).then(|| Duration::from_nanos(nanos as u64))
}

/// `latency=80us,bw=3GB/s`.
fn parse_emulation(spec: &str, text: &str) -> Result<Emulation, TierSpecError> {
    let bad = |setting: &str, why: &str| TierSpecError::BadEmulation {
        spec: spec.into(),
        setting: setting.into(),
        why: why.into(),
    };
    let mut e = Emulation::default();
    for setting in text.split(',').filter(|s| !s.is_empty()) {
        let (key, value) = setting
            .split_once('=')
            .ok_or_else(|| bad(setting, "expected key=value"))?;
        match key {
            "latency" => {
                e.emulated_read_latency = Some(
                    parse_duration(value)
                        .ok_or_else(|| bad(setting, "expected a duration like 80us or 8ms"))?,
                )
            }
            "bw" => {
                let per_sec = value
                    .strip_suffix("/s")
                    .and_then(parse_size)
                    .filter(|&b| b > 0)
                    .ok_or_else(|| bad(setting, "expected a rate like 500MB/s or 3GB/s"))?;
                e.emulated_read_bandwidth = Some(per_sec);
            }
            _ => return Err(bad(setting, "known settings are latency and bw")),
        }
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<TierSpec, TierSpecError> {
        s.parse()
    }

    #[test]
    fn the_issue_examples_parse() {
        let m = parse("memory:2GiB").unwrap();
        assert_eq!(
            (m.kind, m.dir, m.capacity),
            (TierKind::Memory, None, 2 << 30)
        );
        let n = parse("nvme:/mnt/nvme:100GiB").unwrap();
        assert_eq!(n.dir.as_deref(), Some(std::path::Path::new("/mnt/nvme")));
        assert_eq!(n.capacity, 100 << 30);
        assert!(n.emulation.is_none());
        let s = parse("ssd:/mnt/ssd:1TiB:latency=200us,bw=500MB/s").unwrap();
        assert_eq!(s.capacity, 1 << 40);
        assert_eq!(
            s.emulation.emulated_read_latency,
            Some(Duration::from_micros(200))
        );
        assert_eq!(s.emulation.emulated_read_bandwidth, Some(500_000_000));
        let h = parse("hdd:/mnt/hdd:10TiB:latency=8ms,bw=150MB/s").unwrap();
        assert_eq!(
            h.emulation.emulated_read_latency,
            Some(Duration::from_millis(8))
        );
        let dir_with_colon = parse("hdd:/mnt/a:b:1GB").unwrap();
        assert_eq!(dir_with_colon.dir.unwrap(), PathBuf::from("/mnt/a:b"));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let cases = [
            ("tape:/x:1GiB", "unknown kind `tape`"),
            ("ssd:1TiB", "needs a directory"),
            ("ssd::1TiB", "needs a directory"),
            ("memory:/x:1GiB", "takes no directory"),
            ("ssd:/x:0", "more than 0"),
            ("memory:0GiB", "more than 0"),
            ("ssd:/x:lots", "bad size `lots`"),
            ("ssd:/x:", "missing size"),
            ("ssd:/mnt/ssd", "missing size (KIND:DIR:SIZE"),
            ("memory", "missing size"),
            ("ssd:/x:1GiB:latency=fast", "bad emulation `latency=fast`"),
            ("ssd:/x:1GiB:iops=5", "known settings are latency and bw"),
            ("ssd:/x:1GiB:bw=0MB/s", "expected a rate"),
        ];
        for (spec, expected) in cases {
            let err = parse(spec).expect_err(spec).to_string();
            assert!(err.contains(expected), "{spec}: {err}");
            assert!(err.contains(spec), "the message names the spec: {err}");
        }
    }

    #[test]
    fn lists_are_validated_as_a_whole() {
        let list = |specs: &[&str]| -> Vec<TierSpec> {
            specs.iter().map(|s| s.parse().unwrap()).collect()
        };
        assert!(validate(&[]).is_ok());
        assert!(validate(&list(&["memory:1GiB", "nvme:/a:1GiB", "hdd:/b:1TiB"])).is_ok());
        assert_eq!(
            validate(&list(&["memory:1GiB"])),
            Err(TierSpecError::NoPersistentTier)
        );
        assert_eq!(
            validate(&list(&["ssd:/a:1GiB", "memory:1GiB"])),
            Err(TierSpecError::MemoryNotFirst { position: 2 })
        );
        assert_eq!(
            validate(&list(&["memory:1GiB", "memory:1GiB", "ssd:/a:1GiB"])),
            Err(TierSpecError::TwoMemoryTiers)
        );
        assert_eq!(
            validate(&list(&["ssd:/a:1GiB", "hdd:/a/:1GiB"])),
            Err(TierSpecError::DuplicateDir { dir: "/a/".into() })
        );
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("1.5KiB"), Some(1536));
        assert_eq!(parse_size("3GB"), Some(3_000_000_000));
        assert_eq!(parse_size("3gb"), None);
        assert_eq!(parse_duration("80us"), Some(Duration::from_micros(80)));
        assert_eq!(parse_duration("1.5ms"), Some(Duration::from_micros(1500)));
        assert_eq!(parse_duration("5"), None);
    }

    #[test]
    fn display_parses_back() {
        for s in ["memory:2GiB", "ssd:/mnt/ssd:1TiB:latency=200us,bw=500MB/s"] {
            let spec = parse(s).unwrap();
            assert_eq!(parse(&spec.to_string()).unwrap(), spec);
        }
    }
}
