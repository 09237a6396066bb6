//! Joining the network through a bootstrap node.
//!
//! `--bootstrap-node` names the bootstrap's REST API (`HOST:PORT`, as the seed's compose
//! files do): we ask it for its signed peer record and dial the addresses in it. A raw SPR
//! (`spr:...`) or a multiaddr with `/p2p/<id>` is accepted too. The bootstrap may start after
//! us (containers start in any order), so joining retries with backoff until it succeeds.

use std::net::IpAddr;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use neverust_net::Network;

use crate::api::answers::{self, AnswerError, DebugInfo};
use crate::identity::{decode_spr, names_udp, spr_from_body};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootstrapTarget {
    Api { host: String, port: u16 },
    Spr(String),
    Multiaddr(Multiaddr),
}

impl BootstrapTarget {
    /// Parses the flag's value; the error names what was expected.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.starts_with("spr:") {
            decode_spr(s)?;
            return Ok(BootstrapTarget::Spr(s.to_string()));
        }
        if s.starts_with('/') {
            let addr: Multiaddr = s
                .parse()
                .map_err(|e| format!("invalid multiaddr {s:?}: {e}"))?;
            return Ok(BootstrapTarget::Multiaddr(addr));
        }
        let s = s.strip_prefix("http://").unwrap_or(s).trim_end_matches('/');
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("expected HOST:PORT, spr:... or a multiaddr, got {s:?}"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("invalid port {port:?} in {s:?}"))?;
        if host.is_empty() || port == 0 {
            return Err(format!("expected HOST:PORT, got {s:?}"));
        }
        Ok(BootstrapTarget::Api {
            host: host.trim_matches(['[', ']']).to_string(),
            port,
        })
    }
}

/// Dials the bootstrap until connected; returns its peer id.
pub async fn join(net: Network, target: BootstrapTarget) -> PeerId {
    let mut delay = Duration::from_millis(250);
    loop {
        match try_join(&net, &target).await {
            Ok(peer) => {
                tracing::info!(%peer, "connected to the bootstrap node");
                return peer;
            }
            Err(e) => {
                tracing::warn!("cannot join the bootstrap node yet ({e}); retrying in {delay:?}")
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

async fn try_join(net: &Network, target: &BootstrapTarget) -> Result<PeerId, String> {
    let (peer, addrs, spr) = match target {
        BootstrapTarget::Spr(spr) => {
            let (peer, mut addrs) = decode_spr(spr)?;
            addrs.retain(|a| tcp_port(a).is_some());
            (Some(peer), addrs, Some(spr.clone()))
        }
        BootstrapTarget::Multiaddr(a) => (None, vec![a.clone()], None),
        BootstrapTarget::Api { host, port } => {
            let (peer, addrs, spr) = fetch_spr(host, *port).await?;
            (Some(peer), addrs, Some(spr))
        }
    };
    // The bootstrap's record names its DHT's UDP address when it takes part in
    // Archivist's DHT (Archivist nodes always do): we join that DHT through it.
    let dht_joined = match (net.archivist_dht(), &spr) {
        (Some(dht), Some(spr)) if names_udp(spr) => match dht.join(spr).await {
            Ok(table) => {
                tracing::info!(table, "joined Archivist's DHT through the bootstrap node");
                true
            }
            // Without a TCP address the DHT is the only way in: try again later.
            Err(e) if addrs.is_empty() => return Err(format!("joining Archivist's DHT: {e}")),
            Err(e) => {
                tracing::warn!(error = %e, "cannot join Archivist's DHT through the bootstrap node");
                false
            }
        },
        _ => false,
    };
    match (peer, addrs.is_empty()) {
        // A bare DHT record: content is found through the DHT, peers dialled as found.
        (Some(peer), true) if dht_joined => Ok(peer),
        (_, true) => Err("the bootstrap's record names no TCP address to dial".into()),
        (peer, false) => net.dial(peer, addrs).await.map_err(|e| e.to_string()),
    }
}

/// The bootstrap's peer id, the TCP addresses to dial it at, and its record as text.
async fn fetch_spr(host: &str, port: u16) -> Result<(PeerId, Vec<Multiaddr>, String), String> {
    let base = format!("http://{host}:{port}/api/archivist/v1");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let spr = spr_from_body(&get(&client, &format!("{base}/spr")).await?);
    let (peer, mut addrs) = decode_spr(&spr)?;
    addrs.retain(|a| tcp_port(a).is_some());
    if addrs.is_empty() {
        // Archivist's `/spr` is its discovery record, which names its UDP port only; the
        // TCP addresses it listens on are in `/debug/info`. The peer id still comes from the
        // signed record, and the dial checks it.
        let url = format!("{base}/debug/info");
        addrs = debug_info_addrs(&get(&client, &url).await?).map_err(|e| format!("{url}: {e}"))?;
    }
    // The record lists the addresses the bootstrap sees itself on; the host we reached its
    // API through (a container name, say) is reachable from here, so try it first.
    if let Some(ip) = resolve(host, port).await {
        let ports: Vec<u16> = addrs.iter().filter_map(tcp_port).collect();
        for p in ports.into_iter().rev() {
            let a = Multiaddr::empty()
                .with(Protocol::from(ip))
                .with(Protocol::Tcp(p));
            if !addrs.contains(&a) {
                addrs.insert(0, a);
            }
        }
    }
    addrs.retain(|a| !is_unspecified(a));
    if addrs.is_empty() {
        return Err(format!("{base} names no TCP address to dial"));
    }
    Ok((peer, addrs, spr))
}

async fn get(client: &reqwest::Client, url: &str) -> Result<String, String> {
    client
        .get(url)
        .header("Accept", "text/plain")
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| format!("GET {url}: {e}"))?
        .text()
        .await
        .map_err(|e| format!("GET {url}: {e}"))
}

/// The TCP multiaddrs in a `/debug/info` answer's `addrs` (Archivist's and ours alike).
fn debug_info_addrs(body: &str) -> Result<Vec<Multiaddr>, AnswerError> {
    let info: DebugInfo = answers::decode(body)?;
    Ok(info
        .addrs
        .iter()
        .filter_map(|a| a.parse::<Multiaddr>().ok())
        .filter(|a| tcp_port(a).is_some())
        .collect())
}

async fn resolve(host: &str, port: u16) -> Option<IpAddr> {
    tokio::net::lookup_host((host, port))
        .await
        .ok()?
        .map(|a| a.ip())
        .find(|ip| ip.is_ipv4())
}

fn tcp_port(a: &Multiaddr) -> Option<u16> {
    a.iter().find_map(|p| match p {
        Protocol::Tcp(port) => Some(port),
        _ => None,
    })
}

fn is_unspecified(a: &Multiaddr) -> bool {
    a.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archivist_answers_are_read() {
        assert_eq!(spr_from_body("{\"spr\": \"spr:abc\"}"), "spr:abc");
        assert_eq!(spr_from_body("spr:abc\n"), "spr:abc");
        let node =
            r#"{"nodeId": "ab", "peerId": "16Uiu2", "record": "", "address": null, "seen": false}"#;
        let info = format!(
            r#"{{"id": "16Uiu2", "addrs": ["/ip4/127.0.0.1/tcp/8570", "/ip4/127.0.0.1/udp/8590", "junk"],
                "repo": "", "spr": "", "announceAddresses": [],
                "table": {{"localNode": {node}, "nodes": []}}}}"#
        );
        assert_eq!(
            debug_info_addrs(&info).unwrap(),
            vec!["/ip4/127.0.0.1/tcp/8570".parse::<Multiaddr>().unwrap()]
        );
        assert!(debug_info_addrs("not json").is_err());
        let e = debug_info_addrs(r#"{"id": "16Uiu2"}"#).unwrap_err();
        assert!(e.to_string().contains("`addrs`"), "{e}");
    }

    #[test]
    fn targets_parse_in_all_three_forms() {
        assert_eq!(
            BootstrapTarget::parse("bootstrap:8080").unwrap(),
            BootstrapTarget::Api {
                host: "bootstrap".into(),
                port: 8080
            }
        );
        assert!(matches!(
            BootstrapTarget::parse("/ip4/127.0.0.1/tcp/8070").unwrap(),
            BootstrapTarget::Multiaddr(_)
        ));
        for bad in [
            "bootstrap",
            "host:0",
            ":80",
            "host:port",
            "/not/a/multiaddr",
            "spr:zzz",
        ] {
            assert!(
                BootstrapTarget::parse(bad).is_err(),
                "{bad} should be refused"
            );
        }
    }
}
