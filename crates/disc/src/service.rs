//! The DHT on a tokio UDP socket: one task owns the socket and the [`Protocol`] core, feeds
//! it datagrams and timer ticks, sends what it returns, and answers the async
//! [`DiscoveryHandle`] through a command channel.
//!
//! The task ends when every handle is dropped. It holds no lock; all state is the core's.
//! This module decides nothing about the protocol itself.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol as Proto;
use libp2p::{Multiaddr, PeerId};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::node_id::NodeId;
use crate::protocol::{Config, Outcome, Output, Protocol, ProtocolError, QueryId};
use crate::spr::{signing_key_of, Spr, SprError};

/// Everything [`Discovery::start_with`] needs.
#[derive(Clone)]
pub struct ServiceConfig {
    /// The node's libp2p key; it must be secp256k1 (Archivist's DHT has no other scheme).
    pub keypair: Keypair,
    /// Where the UDP socket binds (port 0 picks one).
    pub bind: SocketAddr,
    /// The addresses our provider record lists: where peers download from (libp2p TCP).
    pub provider_addrs: Vec<Multiaddr>,
    /// The IPv4 address our DHT record announces; by default the bind address, or when that
    /// is unspecified the first IPv4 of `provider_addrs`, else 127.0.0.1.
    pub announce_ip: Option<Ipv4Addr>,
    pub protocol: Config,
}

impl ServiceConfig {
    pub fn new(keypair: Keypair, bind: SocketAddr, provider_addrs: Vec<Multiaddr>) -> Self {
        ServiceConfig {
            keypair,
            bind,
            provider_addrs,
            announce_ip: None,
            protocol: Config::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("the DHT needs a secp256k1 key (peer {0})")]
    KeyType(PeerId),
    #[error("cannot bind the DHT's UDP socket to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot sign our records: {0}")]
    Record(#[from] SprError),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    #[error("bootstrap record {text:?} is unusable: {source}")]
    BootstrapRecord { text: String, source: SprError },
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("the DHT service has stopped")]
    Stopped,
}

pub struct Discovery;

impl Discovery {
    /// Starts the DHT on `bind`, announcing `provider_addrs` as where our content is.
    pub async fn start(
        keypair: Keypair,
        bind: SocketAddr,
        provider_addrs: Vec<Multiaddr>,
    ) -> Result<DiscoveryHandle, StartError> {
        Self::start_with(ServiceConfig::new(keypair, bind, provider_addrs)).await
    }

    pub async fn start_with(config: ServiceConfig) -> Result<DiscoveryHandle, StartError> {
        let peer_id = config.keypair.public().to_peer_id();
        let key = signing_key_of(&config.keypair).ok_or(StartError::KeyType(peer_id))?;
        let socket = UdpSocket::bind(config.bind)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.bind,
                source,
            })?;
        let local_addr = socket.local_addr().map_err(|source| StartError::Bind {
            addr: config.bind,
            source,
        })?;
        let ip = config
            .announce_ip
            .or(match local_addr.ip() {
                IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
                _ => None,
            })
            .or_else(|| {
                config
                    .provider_addrs
                    .iter()
                    .find_map(|a| match a.iter().next() {
                        Some(Proto::Ip4(ip)) if !ip.is_unspecified() => Some(ip),
                        _ => None,
                    })
            })
            .unwrap_or(Ipv4Addr::LOCALHOST);
        let dht_addr = Multiaddr::empty()
            .with(Proto::Ip4(ip))
            .with(Proto::Udp(local_addr.port()));
        let record = Spr::sign(&config.keypair, vec![dht_addr])?;
        let provider_record = Spr::sign(&config.keypair, config.provider_addrs.clone())?;
        let mut protocol = Protocol::new(
            key,
            record.clone(),
            provider_record.clone(),
            config.protocol,
            rand::random(),
        );
        protocol.start_maintenance(Instant::now());
        let (commands, rx) = mpsc::channel(64);
        tokio::spawn(run(protocol, socket, rx));
        tracing::info!(%local_addr, spr = %record.to_text(), "DHT started");
        Ok(DiscoveryHandle {
            commands,
            record,
            provider_record,
            local_addr,
        })
    }
}

/// The async API of a running DHT; clones share it.
#[derive(Clone)]
pub struct DiscoveryHandle {
    commands: mpsc::Sender<(Command, Reply)>,
    record: Spr,
    provider_record: Spr,
    local_addr: SocketAddr,
}

enum Command {
    Bootstrap(Spr),
    Lookup(NodeId),
    FindProviders(NodeId),
    AddProvider(NodeId),
}

type Reply = oneshot::Sender<Result<Outcome, QueryError>>;

impl DiscoveryHandle {
    /// Our DHT record in text form (`spr:…`), what other nodes bootstrap from.
    pub fn local_spr(&self) -> String {
        self.record.to_text()
    }

    /// Our provider record in text form, what ADDPROVIDER announces.
    pub fn provider_spr(&self) -> String {
        self.provider_record.to_text()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn peer_id(&self) -> PeerId {
        self.record.peer_id()
    }

    /// Joins the DHT through the node whose record this is (`spr:…`, e.g. an Archivist
    /// node's `/api/archivist/v1/spr`); returns the routing table's size afterwards.
    pub async fn bootstrap(&self, spr: &str) -> Result<usize, QueryError> {
        let record = Spr::from_text(spr).map_err(|source| QueryError::BootstrapRecord {
            text: spr.to_string(),
            source,
        })?;
        match self.ask(Command::Bootstrap(record)).await? {
            Outcome::Bootstrapped { table_size } => Ok(table_size),
            other => unreachable!("bootstrap finished with {other:?}"),
        }
    }

    /// The closest nodes to `target` that answered.
    pub async fn closest_nodes(&self, target: NodeId) -> Result<Vec<Spr>, QueryError> {
        match self.ask(Command::Lookup(target)).await? {
            Outcome::Closest(nodes) => Ok(nodes),
            other => unreachable!("lookup finished with {other:?}"),
        }
    }

    /// Providers of a CID (its binary form) other than this node, with their addresses.
    pub async fn find_providers(
        &self,
        cid_bytes: &[u8],
    ) -> Result<Vec<(PeerId, Vec<Multiaddr>)>, QueryError> {
        let content = NodeId::for_content(cid_bytes);
        match self.ask(Command::FindProviders(content)).await? {
            Outcome::Providers(records) => Ok(records
                .into_iter()
                .filter(|r| r.peer_id() != self.peer_id())
                .map(|r| (r.peer_id(), r.addresses().to_vec()))
                .collect()),
            other => unreachable!("provider lookup finished with {other:?}"),
        }
    }

    /// Announces this node as a provider of a CID; returns how many nodes were told.
    pub async fn add_provider(&self, cid_bytes: &[u8]) -> Result<usize, QueryError> {
        let content = NodeId::for_content(cid_bytes);
        match self.ask(Command::AddProvider(content)).await? {
            Outcome::Announced { nodes } => Ok(nodes),
            other => unreachable!("announcement finished with {other:?}"),
        }
    }

    async fn ask(&self, command: Command) -> Result<Outcome, QueryError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send((command, tx))
            .await
            .map_err(|_| QueryError::Stopped)?;
        rx.await.map_err(|_| QueryError::Stopped)?
    }
}

/// The service task.
async fn run(
    mut protocol: Protocol,
    socket: UdpSocket,
    mut commands: mpsc::Receiver<(Command, Reply)>,
) {
    let mut buf = vec![0u8; crate::packet::MAX_PACKET_SIZE];
    let mut waiting: HashMap<QueryId, Reply> = HashMap::new();
    loop {
        while let Some(output) = protocol.poll_output() {
            match output {
                Output::Send { to, datagram } => {
                    if let Err(e) = socket.send_to(&datagram, to).await {
                        tracing::debug!(%to, error = %e, "DHT send failed");
                    }
                }
                Output::Done { query, outcome } => {
                    if let Some(reply) = waiting.remove(&query) {
                        let _ = reply.send(Ok(outcome));
                    }
                }
            }
        }
        let deadline = protocol.poll_timeout();
        let sleep =
            tokio::time::sleep_until(deadline.map(tokio::time::Instant::from_std).unwrap_or_else(
                || tokio::time::Instant::now() + std::time::Duration::from_secs(3600),
            ));
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, from)) => protocol.handle_datagram(Instant::now(), from, &buf[..n]),
                Err(e) => tracing::debug!(error = %e, "DHT receive failed"),
            },
            command = commands.recv() => {
                let Some((command, reply)) = command else { break };
                let now = Instant::now();
                let started = match command {
                    Command::Bootstrap(record) => protocol.bootstrap(now, record),
                    Command::Lookup(target) => protocol.lookup(now, target),
                    Command::FindProviders(content) => protocol.find_providers(now, content),
                    Command::AddProvider(content) => protocol.add_provider(now, content),
                };
                match started {
                    Ok(id) => {
                        waiting.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            _ = sleep => protocol.handle_timeout(Instant::now()),
        }
    }
}
