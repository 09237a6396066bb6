//! Where each node of a native cluster listens: a printed, predictable scheme.
//!
//! Node `i` takes three consecutive ports from `base + 3i` (peer-to-peer TCP, discovery UDP,
//! API); the bootstrap's API keeps the seed's 9080. The default base sits below Linux's
//! ephemeral range (32768+), so outgoing connections never occupy a node's port, and the
//! ports that belong to Prometheus, Grafana and the visualizer are refused outright.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};

pub use crate::topology::ports::BOOTSTRAP_API_PORT;
use crate::topology::ports::{GRAFANA_PORT, PROMETHEUS_PORT, VIZ_PORT};

pub const DEFAULT_BASE_PORT: u16 = 20000;
/// Prometheus, Grafana, the visualizer.
pub const RESERVED: [u16; 3] = [PROMETHEUS_PORT, GRAFANA_PORT, VIZ_PORT];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub listen: u16,
    pub disc: u16,
    pub api: u16,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortError {
    #[error("node {index} would need port {port}, beyond 65535: lower --base-port or --nodes")]
    OutOfRange { index: usize, port: u32 },
    #[error("node {index} would use port {port}, which is reserved for Prometheus, Grafana or the visualizer: choose another --base-port")]
    Reserved { index: usize, port: u16 },
    #[error("port {port} (node {index}, {what}) is already in use: another cluster or program holds it (see `neverust cluster status`, or choose another --base-port)")]
    Busy {
        index: usize,
        port: u16,
        what: &'static str,
    },
}

/// The ports of node `index`. `bootstrap_api` is node 0's API port (None: in the scheme).
pub fn ports(base: u16, bootstrap_api: Option<u16>, index: usize) -> Result<Ports, PortError> {
    let first = base as u32 + 3 * index as u32;
    if first + 2 > u16::MAX as u32 {
        return Err(PortError::OutOfRange {
            index,
            port: first + 2,
        });
    }
    let mut p = Ports {
        listen: first as u16,
        disc: first as u16 + 1,
        api: first as u16 + 2,
    };
    if index == 0 {
        if let Some(api) = bootstrap_api {
            p.api = api;
        }
    }
    for port in [p.listen, p.disc, p.api] {
        if RESERVED.contains(&port) {
            return Err(PortError::Reserved { index, port });
        }
    }
    Ok(p)
}

/// Refuses TCP ports something already listens on (the UDP port is not bound by nodes).
pub fn check_free(index: usize, p: &Ports) -> Result<(), PortError> {
    check_free_tcp(index, p.listen, "peer-to-peer")?;
    check_free_tcp(index, p.api, "API")
}

/// Refuses one more TCP port (an Archivist node's metrics port, say).
pub fn check_free_tcp(index: usize, port: u16, what: &'static str) -> Result<(), PortError> {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
        .map(drop)
        .map_err(|_| PortError::Busy { index, port, what })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_is_collision_free_and_avoids_reserved_ports() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..1000 {
            let p = ports(DEFAULT_BASE_PORT, Some(BOOTSTRAP_API_PORT), i).unwrap();
            for port in [p.listen, p.disc, p.api] {
                assert!(seen.insert(port), "port {port} used twice");
                assert!(!RESERVED.contains(&port));
            }
        }
        assert_eq!(ports(20000, Some(9080), 0).unwrap().api, 9080);
        assert_eq!(
            ports(20000, None, 2).unwrap(),
            Ports {
                listen: 20006,
                disc: 20007,
                api: 20008
            }
        );
    }

    #[test]
    fn bad_bases_are_refused_with_the_node_named() {
        assert_eq!(
            ports(9087, None, 1),
            Err(PortError::Reserved {
                index: 1,
                port: 9090
            })
        );
        assert!(matches!(
            ports(65000, None, 500),
            Err(PortError::OutOfRange { index: 500, .. })
        ));
    }

    #[test]
    fn a_held_port_is_reported_busy() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let p = Ports {
            listen: port,
            disc: 1,
            api: 1,
        };
        assert!(matches!(
            check_free(3, &p),
            Err(PortError::Busy { index: 3, .. })
        ));
    }
}
