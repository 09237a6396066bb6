//! A cluster this machine does not run (Compose containers, Kubernetes pods), found from
//! its bootstrap's API address, so that `neverust bench --cluster http://HOST:PORT` can
//! load it.
//!
//! The bootstrap's `/debug/info` lists every peer it knows with the address the peer
//! announced; deployed nodes announce their own address (they listen on it, never on a
//! wildcard that would announce loopback too), and each serves its API on the same port as
//! the bootstrap (8080 in Compose and Kubernetes). Each node found is asked for its own
//! `/debug/info`, which must name the peer the bootstrap listed. The lab can load such a
//! cluster but not break it: it has no processes to kill or restart, no network namespaces
//! to move them into, and no /proc to sample; those scenarios are refused (see
//! `bench::Scenario::needs_local_nodes`).

use std::net::IpAddr;
use std::path::PathBuf;

use crate::client::{ClientError, NodeClient};
use crate::topology::cluster_file::{ClusterFile, NodeEntry};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    #[error("--cluster {url}: expected the bootstrap's API address as http://HOST:PORT")]
    BadUrl { url: String },
    #[error("the bootstrap at {url} does not answer: {source}")]
    Bootstrap {
        url: String,
        #[source]
        source: ClientError,
    },
    #[error("the bootstrap at {url} knows no peer with an address: is the cluster up?")]
    NoPeers { url: String },
    #[error("peers {first} and {second} both announce {host}: a deployed cluster has one node per address, each with its API on the bootstrap's port (for a cluster of this machine, pass its cluster.json)")]
    SharedAddress {
        host: String,
        first: String,
        second: String,
    },
    #[error("the bootstrap at {url} lists no TCP address of its own in /debug/info `addrs`")]
    NoTcpAddress { url: String },
    #[error("the bootstrap at {url} names no `mode` in /debug/info: is it a Neverust node?")]
    NoMode { url: String },
    #[error("{count} node(s) listed by the bootstrap do not answer on their API: {detail}")]
    Unreachable { count: usize, detail: String },
}

/// `http://HOST:PORT` → (host, port); brackets kept off an IPv6 host.
fn parse_url(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("http://")?.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

/// Host and TCP port of a multiaddr such as `/ip4/172.25.1.3/tcp/8070`.
fn host_of(multiaddr: &str) -> Option<(String, u16)> {
    let parts: Vec<&str> = multiaddr.split('/').collect();
    let host = match parts.get(1)? {
        &"ip4" | &"ip6" | &"dns" | &"dns4" | &"dns6" => parts.get(2)?.to_string(),
        _ => return None,
    };
    let tcp = parts.iter().position(|p| *p == "tcp")?;
    let port = parts.get(tcp + 1)?.parse().ok()?;
    if host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified()) {
        return None;
    }
    Some((host, port))
}

fn url_for(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("http://[{host}]:{port}")
    } else {
        format!("http://{host}:{port}")
    }
}

/// Numeric for addresses (so 172.25.1.10 follows 172.25.1.9), by name otherwise.
fn order_key(host: &str) -> (u8, Vec<u8>, String) {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => (0, ip.octets().to_vec(), String::new()),
        Ok(IpAddr::V6(ip)) => (1, ip.octets().to_vec(), String::new()),
        Err(_) => (2, Vec::new(), host.to_string()),
    }
}

fn entry(index: usize, mode: &str, peer_id: String, host: String, api: u16, p2p: u16) -> NodeEntry {
    NodeEntry {
        index,
        role: if index == 0 { "bootstrap" } else { mode }.into(),
        mode: mode.into(),
        // No process on this machine.
        pid: 0,
        peer_id,
        api_url: url_for(&host, api),
        host,
        api_port: api,
        listen_port: p2p,
        disc_port: 0,
        data_dir: PathBuf::new(),
        log_file: PathBuf::new(),
        netns: None,
        implementation: Default::default(),
    }
}

/// Every node of the cluster whose bootstrap's API is at `url`: the bootstrap is node 0,
/// the others follow in address order (Compose's node1, node2, ... in its scheme).
pub async fn discover(url: &str) -> Result<Vec<NodeEntry>, RemoteError> {
    let (boot_host, api_port) =
        parse_url(url).ok_or_else(|| RemoteError::BadUrl { url: url.into() })?;
    let bootstrap = NodeClient::new(url_for(&boot_host, api_port));
    let info = bootstrap
        .debug_info()
        .await
        .map_err(|source| RemoteError::Bootstrap {
            url: url.into(),
            source,
        })?;
    let boot_p2p = info
        .addrs
        .iter()
        .find_map(|a| host_of(a))
        .ok_or_else(|| RemoteError::NoTcpAddress { url: url.into() })?
        .1;
    let mode = info
        .mode
        .clone()
        .ok_or_else(|| RemoteError::NoMode { url: url.into() })?;
    let mut peers: Vec<(String, u16, String)> = Vec::new();
    for node in &info.table.nodes {
        // A peer whose address is unknown or not a TCP multiaddr cannot be reached.
        let Some((host, p2p)) = node.address.as_deref().and_then(host_of) else {
            continue;
        };
        if let Some(other) = peers.iter().find(|p| p.0 == host) {
            return Err(RemoteError::SharedAddress {
                host,
                first: other.2.clone(),
                second: node.peer_id.clone(),
            });
        }
        peers.push((host, p2p, node.peer_id.clone()));
    }
    if peers.is_empty() {
        return Err(RemoteError::NoPeers { url: url.into() });
    }
    peers.sort_by_key(|p| order_key(&p.0));
    let checks = peers.iter().map(|(host, _, id)| async move {
        let info = NodeClient::new(url_for(host, api_port)).debug_info().await;
        match info {
            Ok(i) if i.id != *id => Err(format!("{host}:{api_port} is {} rather than {id}", i.id)),
            Ok(i) => i.mode.ok_or_else(|| {
                format!("{host}:{api_port} names no `mode` in /debug/info: is it a Neverust node?")
            }),
            Err(e) => Err(e.to_string()),
        }
    });
    let answers = futures::future::join_all(checks).await;
    let failed: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    if !failed.is_empty() {
        let detail: Vec<&str> = failed.iter().take(5).map(|s| s.as_str()).collect();
        return Err(RemoteError::Unreachable {
            count: failed.len(),
            detail: detail.join("; "),
        });
    }
    let mut nodes = vec![entry(0, &mode, info.id, boot_host, api_port, boot_p2p)];
    for (i, ((host, p2p, id), mode)) in peers.into_iter().zip(answers).enumerate() {
        let mode = mode.expect("failures returned above");
        nodes.push(entry(i + 1, &mode, id, host, api_port, p2p));
    }
    Ok(nodes)
}

/// The `cluster.json` of a remote cluster: `bench` keeps it beside the report and attaches
/// the cluster from it.
pub fn file(nodes: Vec<NodeEntry>) -> ClusterFile {
    ClusterFile {
        version: 1,
        launcher_pid: 0,
        started_at: crate::now_rfc3339(),
        restart: false,
        ready_seconds: 0.0,
        prometheus: None,
        nodes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_multiaddrs() {
        assert_eq!(
            parse_url("http://10.0.0.1:8080/"),
            Some(("10.0.0.1".into(), 8080))
        );
        assert_eq!(
            parse_url("http://neverust-bootstrap:8080"),
            Some(("neverust-bootstrap".into(), 8080))
        );
        assert_eq!(parse_url("http://[::1]:9080"), Some(("::1".into(), 9080)));
        assert_eq!(parse_url("cluster.json"), None);
        assert_eq!(parse_url("http://host"), None);
        assert_eq!(parse_url("http://host:99999"), None);
        assert_eq!(
            host_of("/ip4/172.25.1.3/tcp/8070"),
            Some(("172.25.1.3".into(), 8070))
        );
        assert_eq!(host_of("/ip4/0.0.0.0/tcp/8070"), None);
        assert_eq!(host_of("/ip4/1.2.3.4/udp/8090"), None);
        assert_eq!(host_of(""), None);
        let mut hosts = vec!["172.25.1.10", "172.25.1.9", "172.25.2.1"];
        hosts.sort_by_key(|h| order_key(h));
        assert_eq!(hosts, vec!["172.25.1.9", "172.25.1.10", "172.25.2.1"]);
        assert_eq!(url_for("::1", 80), "http://[::1]:80");
    }
}
