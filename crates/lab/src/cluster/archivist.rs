//! Archivist nodes in a native cluster (`--archivist-bin PATH --archivist-every K`), so one
//! run measures a mixed network and sets Archivist's figures beside Neverust's.
//!
//! An Archivist node differs from ours in how it is started and joined, not in how it is
//! used: the same REST API serves uploads and downloads. It joins Archivist's DHT through the
//! bootstrap's record (`--bootstrap-node=spr:…`; our nodes take part in that DHT), and finds
//! content there: Neverust nodes announce their datasets in it and look Archivist's up in it,
//! then blocks flow over `/archivist/blockexc/1.0.0`. Nobody is told to connect by hand. The
//! Archivist binary is the user's: nothing here builds or ships it.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::topology::cluster_file::NodeEntry;

/// Which nodes of the cluster run Archivist, and from which binary.
#[derive(Debug, Clone)]
pub struct ArchivistNodes {
    pub binary: PathBuf,
    /// Node i (i ≥ 1) runs Archivist when `i % every == 0`.
    pub every: usize,
}

impl ArchivistNodes {
    pub fn runs(&self, index: usize) -> bool {
        index > 0 && self.every > 0 && index.is_multiple_of(self.every)
    }
}

/// The arguments of an Archivist node on this entry's ports: listening on `bind` only,
/// announcing `bind` (no NAT discovery), metrics on the TCP side of its discovery port.
pub fn args(
    entry: &NodeEntry,
    bind: IpAddr,
    log_level: &str,
    bootstrap_spr: Option<&str>,
) -> Vec<OsString> {
    // Archivist's option parser takes `--flag=value` only.
    let mut data_dir = OsString::from("--data-dir=");
    data_dir.push(&entry.data_dir);
    let mut args: Vec<OsString> = vec![
        data_dir,
        format!("--listen-addrs=/ip4/{bind}/tcp/{}", entry.listen_port).into(),
        format!("--nat=extip:{bind}").into(),
        format!("--disc-port={}", entry.disc_port).into(),
        format!("--api-bindaddr={bind}").into(),
        format!("--api-port={}", entry.api_port).into(),
        "--metrics".into(),
        format!("--metrics-address={bind}").into(),
        format!("--metrics-port={}", entry.disc_port).into(),
        format!("--log-level={}", log_level.to_ascii_uppercase()).into(),
    ];
    if let Some(spr) = bootstrap_spr {
        args.push(format!("--bootstrap-node={spr}").into());
    }
    args
}

/// Archivist refuses a data directory others can read (it holds the node's key).
pub fn prepare_data_dir(entry: &NodeEntry) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(&entry.data_dir)?;
    std::fs::set_permissions(&entry.data_dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kth_node_but_the_bootstrap_runs_archivist() {
        let a = ArchivistNodes {
            binary: "archivist".into(),
            every: 4,
        };
        let which: Vec<usize> = (0..13).filter(|&i| a.runs(i)).collect();
        assert_eq!(which, vec![4, 8, 12]);
        let none = ArchivistNodes { every: 0, ..a };
        assert!(!(0..13).any(|i| none.runs(i)));
    }
}
