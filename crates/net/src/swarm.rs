//! The one libp2p swarm of a node and the task that drives it.
//!
//! Transports: TCP with Noise, multiplexed by yamux or mplex (Archivist nodes speak only
//! mplex). Behaviours: identify (learns listen addresses and each peer's mode from its agent
//! string), Kademlia (peer discovery and provider records for content routing), ping (finds
//! dead connections) and a stream behaviour that hands blockexc streams to the engine. Only
//! this task touches the `Swarm`; everything else sends it a [`Command`] and, when it needs an
//! answer, waits on a oneshot. Connection events go out on a broadcast channel.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::upgrade::Version;
use libp2p::core::ConnectedPoint;
use libp2p::identity::Keypair;
use libp2p::kad::store::{MemoryStore, RecordStore};
use libp2p::kad::{self, GetProvidersOk, QueryId, QueryResult};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{
    identify, noise, ping, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm, Transport,
};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::announce::{Announcements, Offer, ANNOUNCES_IN_FLIGHT, ANNOUNCES_WAITING};
use crate::metrics::NetMetrics;

pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/neverust/kad/1.0.0");
const IDENTIFY_PROTOCOL: &str = "/archivist/id/1.0.0";

#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    kad: kad::Behaviour<MemoryStore>,
    ping: ping::Behaviour,
    stream: libp2p_stream::Behaviour,
}

#[derive(Clone, Debug)]
pub struct SwarmConfig {
    pub listen: Multiaddr,
    /// Identify's agent string: `neverust/<version> (<mode>)`; peers read our mode from it.
    pub agent: String,
    pub idle_timeout: Duration,
    pub provider_ttl: Duration,
    pub reprovide_interval: Duration,
    pub random_walk_interval: Duration,
    /// How many closest peers keep each provider record this node announces.
    pub dht_replication: std::num::NonZeroUsize,
}

#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub peer_id: PeerId,
    pub addrs: Vec<Multiaddr>,
    pub connected: bool,
    pub agent: Option<String>,
}

#[derive(Clone, Debug)]
pub enum ConnectionEvent {
    Connected(PeerId),
    Disconnected(PeerId),
}

pub(crate) enum Command {
    Dial {
        peer: Option<PeerId>,
        addrs: Vec<Multiaddr>,
        reply: oneshot::Sender<Result<PeerId, String>>,
    },
    Disconnect(PeerId),
    Provide(kad::RecordKey),
    Unprovide(kad::RecordKey),
    FindProviders {
        key: kad::RecordKey,
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    Peers(oneshot::Sender<Vec<PeerInfo>>),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwarmError {
    #[error("cannot build the libp2p transport: {0}")]
    Transport(String),
    #[error("cannot listen for libp2p on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
}

pub(crate) struct SwarmParts {
    pub commands: mpsc::Sender<Command>,
    pub events: broadcast::Sender<ConnectionEvent>,
    pub control: libp2p_stream::Control,
    pub listen_addrs: ListenAddrs,
}

/// The addresses the swarm listens on, kept current by the swarm task: listening on
/// 0.0.0.0 reports one address per interface, and interfaces come and go.
pub(crate) type ListenAddrs = Arc<RwLock<Vec<Multiaddr>>>;

pub(crate) async fn spawn(
    keypair: Keypair,
    config: SwarmConfig,
    metrics: NetMetrics,
) -> Result<SwarmParts, SwarmError> {
    let mut swarm = build(keypair, &config)?;
    swarm
        .listen_on(config.listen.clone())
        .map_err(|e| SwarmError::Listen {
            addr: config.listen.clone(),
            reason: e.to_string(),
        })?;
    // Wait for the listener so callers (SPR, /debug/info) see the real port.
    // Later interfaces of a wildcard listener arrive through the swarm task.
    let mut listen_addrs = Vec::new();
    while listen_addrs.is_empty() {
        match swarm.select_next_some().await {
            SwarmEvent::NewListenAddr { address, .. } => listen_addrs.push(address),
            SwarmEvent::ListenerError { error, .. }
            | SwarmEvent::ListenerClosed {
                reason: Err(error), ..
            } => {
                return Err(SwarmError::Listen {
                    addr: config.listen.clone(),
                    reason: error.to_string(),
                })
            }
            _ => {}
        }
    }
    let control = swarm.behaviour().stream.new_control();
    let (commands, rx) = mpsc::channel(256);
    let (events, _) = broadcast::channel(1024);
    let listen_addrs: ListenAddrs = Arc::new(RwLock::new(listen_addrs));
    let driver = Driver {
        swarm,
        commands: rx,
        events: events.clone(),
        metrics,
        pending_dials: HashMap::new(),
        pending_anon_dials: HashMap::new(),
        lookups: HashMap::new(),
        agents: HashMap::new(),
        addrs: HashMap::new(),
        listen_addrs: listen_addrs.clone(),
        announcements: Announcements::new(ANNOUNCES_IN_FLIGHT, ANNOUNCES_WAITING),
    };
    tokio::spawn(driver.run());
    Ok(SwarmParts {
        commands,
        events,
        control,
        listen_addrs,
    })
}

fn build(keypair: Keypair, config: &SwarmConfig) -> Result<Swarm<Behaviour>, SwarmError> {
    let agent = config.agent.clone();
    let mut kad_config = kad::Config::new(KAD_PROTOCOL);
    kad_config
        .set_query_timeout(Duration::from_secs(10))
        .set_provider_record_ttl(Some(config.provider_ttl))
        .set_provider_publication_interval(Some(config.reprovide_interval))
        .set_periodic_bootstrap_interval(Some(config.random_walk_interval))
        .set_replication_factor(config.dht_replication);
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(|key| {
            let noise = noise::Config::new(key)?;
            let mux = libp2p::core::upgrade::SelectUpgrade::new(
                yamux::Config::default(),
                libp2p_mplex::Config::default(),
            );
            Ok(
                tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                    .upgrade(Version::V1Lazy)
                    .authenticate(noise)
                    .multiplex(mux)
                    .timeout(Duration::from_secs(20))
                    .boxed(),
            )
        })
        .map_err(|e| SwarmError::Transport(e.to_string()))?
        .with_behaviour(|key| {
            let peer_id = key.public().to_peer_id();
            let mut kad =
                kad::Behaviour::with_config(peer_id, MemoryStore::new(peer_id), kad_config);
            // Loopback and private addresses never get "confirmed external", so Kademlia
            // would stay a client forever: every node serves the DHT.
            kad.set_mode(Some(kad::Mode::Server));
            Behaviour {
                identify: identify::Behaviour::new(
                    identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                        .with_agent_version(agent),
                ),
                kad,
                ping: ping::Behaviour::default(),
                stream: libp2p_stream::Behaviour::new(),
            }
        })
        .map_err(|e| SwarmError::Transport(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    Ok(swarm)
}

struct Lookup {
    found: HashSet<PeerId>,
    reply: Option<oneshot::Sender<Vec<PeerId>>>,
}

struct Driver {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<ConnectionEvent>,
    metrics: NetMetrics,
    pending_dials: HashMap<PeerId, Vec<oneshot::Sender<Result<PeerId, String>>>>,
    pending_anon_dials: HashMap<ConnectionId, oneshot::Sender<Result<PeerId, String>>>,
    lookups: HashMap<QueryId, Lookup>,
    agents: HashMap<PeerId, String>,
    addrs: HashMap<PeerId, Vec<Multiaddr>>,
    listen_addrs: ListenAddrs,
    announcements: Announcements<QueryId>,
}

impl Driver {
    async fn run(mut self) {
        loop {
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => return,
                },
                event = self.swarm.select_next_some() => self.on_event(event),
            }
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Dial { peer, addrs, reply } => self.dial(peer, addrs, reply),
            Command::Disconnect(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::Provide(key) => self.announce(key),
            Command::Unprovide(key) => {
                self.announcements.cancel(&key);
                self.metrics
                    .dht_announcements_waiting
                    .set(self.announcements.waiting() as i64);
                self.swarm.behaviour_mut().kad.stop_providing(&key);
            }
            Command::FindProviders { key, reply } => {
                self.metrics.dht_lookups.inc();
                let id = self.swarm.behaviour_mut().kad.get_providers(key);
                self.lookups.insert(
                    id,
                    Lookup {
                        found: HashSet::new(),
                        reply: Some(reply),
                    },
                );
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.peers());
            }
        }
    }

    fn announce(&mut self, key: kad::RecordKey) {
        if let Offer::Full(key) = self.announcements.offer(key) {
            let local = *self.swarm.local_peer_id();
            let addrs = self.listen_addrs.read().expect("listen addrs lock").clone();
            let record = kad::ProviderRecord::new(key, local, addrs);
            if let Err(e) = self
                .swarm
                .behaviour_mut()
                .kad
                .store_mut()
                .add_provider(record)
            {
                tracing::warn!("cannot record a provider entry: {e}");
            }
        }
        self.start_announcements();
    }

    fn start_announcements(&mut self) {
        while let Some(key) = self.announcements.next() {
            match self.swarm.behaviour_mut().kad.start_providing(key.clone()) {
                Ok(id) => {
                    self.metrics.dht_announcements.inc();
                    self.announcements.started(id, key);
                }
                Err(e) => tracing::warn!("cannot record a provider entry: {e}"),
            }
        }
        self.metrics
            .dht_announcements_waiting
            .set(self.announcements.waiting() as i64);
    }

    fn dial(
        &mut self,
        peer: Option<PeerId>,
        addrs: Vec<Multiaddr>,
        reply: oneshot::Sender<Result<PeerId, String>>,
    ) {
        // A /p2p/ suffix names the peer even when the caller did not.
        let peer = peer.or_else(|| addrs.iter().find_map(peer_of));
        match peer {
            Some(peer) if self.swarm.is_connected(&peer) => {
                let _ = reply.send(Ok(peer));
            }
            Some(peer) => {
                for a in &addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer, a.clone());
                }
                let opts = DialOpts::peer_id(peer).addresses(addrs).build();
                match self.swarm.dial(opts) {
                    Ok(()) => self.pending_dials.entry(peer).or_default().push(reply),
                    Err(e) => {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
            None => {
                let Some(addr) = addrs.into_iter().next() else {
                    let _ = reply.send(Err("no address to dial".into()));
                    return;
                };
                let opts = DialOpts::unknown_peer_id().address(addr).build();
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.pending_anon_dials.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
        }
    }

    fn peers(&mut self) -> Vec<PeerInfo> {
        let connected: HashSet<PeerId> = self.swarm.connected_peers().copied().collect();
        let mut known: HashMap<PeerId, Vec<Multiaddr>> = self.addrs.clone();
        for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
            for entry in bucket.iter() {
                let addrs = known.entry(*entry.node.key.preimage()).or_default();
                for a in entry.node.value.iter() {
                    if !addrs.contains(a) {
                        addrs.push(a.clone());
                    }
                }
            }
        }
        for p in &connected {
            known.entry(*p).or_default();
        }
        let mut peers: Vec<PeerInfo> = known
            .into_iter()
            .map(|(peer_id, addrs)| PeerInfo {
                connected: connected.contains(&peer_id),
                agent: self.agents.get(&peer_id).cloned(),
                peer_id,
                addrs,
            })
            .collect();
        peers.sort_by_key(|p| p.peer_id);
        peers
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                if let Some(reply) = self.pending_anon_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                for reply in self.pending_dials.remove(&peer_id).unwrap_or_default() {
                    let _ = reply.send(Ok(peer_id));
                }
                if let ConnectedPoint::Dialer { address, .. } = endpoint {
                    self.remember_addr(peer_id, address);
                }
                if num_established.get() == 1 {
                    self.metrics.peers_connected.inc();
                    let _ = self.events.send(ConnectionEvent::Connected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.metrics.peers_connected.dec();
                let _ = self.events.send(ConnectionEvent::Disconnected(peer_id));
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id,
                connection_id,
                error,
            } => {
                if let Some(reply) = self.pending_anon_dials.remove(&connection_id) {
                    let _ = reply.send(Err(error.to_string()));
                }
                if let Some(peer) = peer_id {
                    if !self.swarm.is_connected(&peer) {
                        for reply in self.pending_dials.remove(&peer).unwrap_or_default() {
                            let _ = reply.send(Err(error.to_string()));
                        }
                    }
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                let mut addrs = self.listen_addrs.write().expect("listen addrs lock");
                if !addrs.contains(&address) {
                    addrs.push(address);
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs
                    .write()
                    .expect("listen addrs lock")
                    .retain(|a| a != &address);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                self.agents.insert(peer_id, info.agent_version);
                if info.protocols.contains(&KAD_PROTOCOL) {
                    for addr in info.listen_addrs {
                        if is_dialable(&addr) {
                            self.swarm
                                .behaviour_mut()
                                .kad
                                .add_address(&peer_id, addr.clone());
                            self.remember_addr(peer_id, addr);
                        }
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result: QueryResult::GetProviders(result),
                step,
                ..
            })) => self.on_providers(id, result, step.last),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result: QueryResult::StartProviding(_),
                step,
                ..
            })) if step.last && self.announcements.finished(&id) => self.start_announcements(),
            _ => {}
        }
    }

    fn on_providers(&mut self, id: QueryId, result: kad::GetProvidersResult, last: bool) {
        let local = *self.swarm.local_peer_id();
        let Some(lookup) = self.lookups.get_mut(&id) else {
            return;
        };
        if let Ok(GetProvidersOk::FoundProviders { providers, .. }) = result {
            for p in providers {
                if p != local && lookup.found.insert(p) {
                    self.metrics.dht_providers_found.inc();
                    // The provider's addresses live in the query only while it runs, so
                    // dial now; the engine's stream then rides this connection.
                    if !self.swarm.is_connected(&p) {
                        let _ = self.swarm.dial(p);
                    }
                }
            }
        }
        // The first answer naming providers ends the lookup. Waiting for the walk to finish
        // means waiting for its slowest peer: behind a partition or a dead node that is the
        // whole query timeout, while the providers already found could be serving. A peer's
        // answer lists every provider it holds, and downloads look up again beside the
        // transfer, so later providers still join.
        if last || !lookup.found.is_empty() {
            let lookup = self.lookups.remove(&id).expect("present above");
            if let Some(reply) = lookup.reply {
                let _ = reply.send(lookup.found.into_iter().collect());
            }
            if let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                q.finish();
            }
        }
    }

    fn remember_addr(&mut self, peer: PeerId, addr: Multiaddr) {
        let addr = strip_p2p(addr);
        let list = self.addrs.entry(peer).or_default();
        if !list.contains(&addr) {
            list.push(addr);
        }
    }
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

fn strip_p2p(addr: Multiaddr) -> Multiaddr {
    addr.into_iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect()
}

/// An unspecified address (0.0.0.0) in a peer's listen list is not somewhere to dial.
fn is_dialable(addr: &Multiaddr) -> bool {
    !addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}
