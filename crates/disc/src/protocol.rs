//! The sans-I/O protocol core: answers requests, tracks our own requests and runs queries
//! (iterative lookups toward a key, then GETPROVIDERS or ADDPROVIDER at the closest nodes).
//!
//! Callers feed it datagrams ([`Protocol::handle_datagram`]) and the time
//! ([`Protocol::handle_timeout`] at [`Protocol::poll_timeout`]), start queries, and drain
//! [`Protocol::poll_output`] for datagrams to send and finished queries. Behaviour follows
//! archivist-dht's `protocol.nim`: lookups ask [`ALPHA`] nodes at a time for the three log
//! distances around the target, keep the [`BUCKET_SIZE`] closest, and verify every returned
//! record (signature, a UDP address, the distance asked for); FINDNODE answers list only
//! nodes that were seen, in NODES messages of at most three records; ADDPROVIDER is never
//! answered; GETPROVIDERS is answered with one PROVIDERS message.
//!
//! Maintenance, once [`Protocol::start_maintenance`] is called: every `revalidate_interval`
//! the least recently seen node of a random bucket is pinged (dropped when it keeps failing,
//! its record re-fetched when its PONG announces a newer one), and every `refresh_interval`
//! without a lookup a random id is looked up, as Archivist's `revalidateLoop`/`refreshLoop`.
//!
//! Bounded: pending requests, queries, candidates per query, records read per response and
//! the provider store all have caps; a query also ends at its deadline with what it has.
//! No sockets, no clock, no tasks.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k256::ecdsa::SigningKey;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::messages::{Message, RequestId};
use crate::node_id::{lookup_distances, NodeId};
use crate::providers::{ProviderStore, MAX_PROVIDERS_PER_KEY};
use crate::routing::{RoutingTable, BUCKET_SIZE};
use crate::session::{Contact, Received, SessionLayer, SessionLimits};
use crate::spr::Spr;

/// Lookup concurrency (Archivist's `Alpha`).
pub const ALPHA: usize = 3;
/// Records read from the NODES answers to one FINDNODE (`FindNodeResultLimit`).
pub const FIND_NODE_RESULT_LIMIT: usize = 16;
/// Records per NODES message we send (`MaxNodesPerMessage`).
pub const MAX_NODES_PER_MESSAGE: usize = 3;
/// Records we answer a FINDNODEFAST with (`FindNodeFastResultLimit`).
pub const FIND_NODE_FAST_LIMIT: usize = 6;
/// NODES messages awaited for one FINDNODE: enough for the result limit.
const MAX_NODES_MESSAGES: u32 = FIND_NODE_RESULT_LIMIT.div_ceil(MAX_NODES_PER_MESSAGE) as u32;
/// Provider records read from one PROVIDERS answer.
pub const PROVIDERS_READ_LIMIT: usize = 64;
/// Candidates a lookup remembers (the closest are asked; the rest are spares).
const MAX_CANDIDATES: usize = 4 * BUCKET_SIZE;

#[derive(Clone, Debug)]
pub struct Config {
    /// How long to wait for a response (Archivist's `ResponseTimeout`).
    pub request_timeout: Duration,
    /// A query ends at this deadline with what it found.
    pub query_timeout: Duration,
    pub max_pending_requests: usize,
    pub max_queries: usize,
    /// Provider records stored for others, in all.
    pub max_provider_records: usize,
    pub provider_ttl: Duration,
    pub sessions: SessionLimits,
    pub revalidate_interval: Duration,
    pub refresh_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            request_timeout: Duration::from_secs(1),
            query_timeout: Duration::from_secs(30),
            max_pending_requests: 1024,
            max_queries: 64,
            max_provider_records: 50_000,
            provider_ttl: Duration::from_secs(24 * 3600),
            sessions: SessionLimits::default(),
            revalidate_interval: Duration::from_secs(10),
            refresh_interval: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    #[error("{running} queries are running, the limit")]
    TooManyQueries { running: usize },
    #[error("the bootstrap record names no IPv4 + UDP address (peer {0})")]
    UnusableBootstrap(libp2p::PeerId),
}

pub type QueryId = u64;

/// What a finished query found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The closest nodes to the target that answered, closest first.
    Closest(Vec<Spr>),
    /// Joined through a bootstrap node; the routing table now holds this many nodes.
    Bootstrapped { table_size: usize },
    /// Provider records of the content, ours included when we store one.
    Providers(Vec<Spr>),
    /// ADDPROVIDER went to this many nodes (and the record is also stored here).
    Announced { nodes: usize },
}

#[derive(Debug)]
#[non_exhaustive]
pub enum Output {
    Send { to: SocketAddr, datagram: Vec<u8> },
    Done { query: QueryId, outcome: Outcome },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Lookup,
    Bootstrap,
    FindProviders,
    AddProvider,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asked {
    No,
    Waiting,
    Answered,
    Failed,
}

struct Candidate {
    record: Spr,
    asked: Asked,
}

struct Query {
    kind: Kind,
    target: NodeId,
    deadline: Instant,
    /// Sorted by distance to the target.
    candidates: Vec<Candidate>,
    seen: HashSet<NodeId>,
    /// GETPROVIDERS requests still out, once the lookup is over.
    providers_pending: Option<usize>,
    providers: Vec<Spr>,
}

#[derive(Clone, Copy, Debug)]
enum Purpose {
    FindNode(QueryId),
    GetProviders(QueryId),
    Ping,
}

/// The query id of requests that belong to no query (maintenance).
const NO_QUERY: QueryId = QueryId::MAX;

struct Pending {
    deadline: Instant,
    purpose: Purpose,
    distances: Vec<u16>,
    /// NODES answers: how many are announced, how many came, their records.
    nodes_total: u32,
    nodes_seen: u32,
    records: Vec<Vec<u8>>,
}

enum Answer {
    Nodes(Vec<Vec<u8>>),
    Providers(Vec<Vec<u8>>),
    Pong { enr_seq: u64 },
    Failed,
}

pub struct Protocol {
    config: Config,
    record: Spr,
    provider_record: Spr,
    session: SessionLayer,
    table: RoutingTable,
    providers: ProviderStore,
    pending: HashMap<(NodeId, RequestId), Pending>,
    queries: HashMap<QueryId, Query>,
    next_query: QueryId,
    out: VecDeque<Output>,
    rng: StdRng,
    next_provider_expiry: Option<Instant>,
    next_revalidate: Option<Instant>,
    next_refresh: Option<Instant>,
    last_lookup: Option<Instant>,
}

impl Protocol {
    /// `record` is this node's DHT record (it must name the UDP address we answer on);
    /// `provider_record` is what ADDPROVIDER announces (the addresses peers download from).
    pub fn new(
        key: SigningKey,
        record: Spr,
        provider_record: Spr,
        config: Config,
        seed: u64,
    ) -> Self {
        Protocol {
            session: SessionLayer::new(key, record.clone(), config.sessions),
            table: RoutingTable::new(record.node_id()),
            providers: ProviderStore::new(config.max_provider_records, config.provider_ttl),
            config,
            record,
            provider_record,
            pending: HashMap::new(),
            queries: HashMap::new(),
            next_query: 0,
            out: VecDeque::new(),
            rng: StdRng::seed_from_u64(seed),
            next_provider_expiry: None,
            next_revalidate: None,
            next_refresh: None,
            last_lookup: None,
        }
    }

    /// Starts the periodic revalidation and refresh (module docs).
    pub fn start_maintenance(&mut self, now: Instant) {
        self.next_revalidate = Some(now + self.config.revalidate_interval);
        self.next_refresh = Some(now + self.config.refresh_interval);
    }

    pub fn local_record(&self) -> &Spr {
        &self.record
    }

    pub fn provider_record(&self) -> &Spr {
        &self.provider_record
    }

    pub fn table(&self) -> &RoutingTable {
        &self.table
    }

    /// Adds a node we trust to start from; it is never evicted.
    pub fn add_bootstrap(&mut self, record: Spr) -> Result<(), ProtocolError> {
        if record.udp_address().is_none() {
            return Err(ProtocolError::UnusableBootstrap(record.peer_id()));
        }
        self.table.protect(record.node_id());
        self.table.insert(record, false);
        Ok(())
    }

    /// Joins through `record`: adds it, then looks up our own id to fill the table.
    pub fn bootstrap(&mut self, now: Instant, record: Spr) -> Result<QueryId, ProtocolError> {
        self.add_bootstrap(record)?;
        self.start(now, Kind::Bootstrap, self.record.node_id())
    }

    /// Finds the closest nodes to `target` that answer.
    pub fn lookup(&mut self, now: Instant, target: NodeId) -> Result<QueryId, ProtocolError> {
        self.start(now, Kind::Lookup, target)
    }

    /// Finds providers of the content key (see [`NodeId::for_content`]).
    pub fn find_providers(
        &mut self,
        now: Instant,
        content: NodeId,
    ) -> Result<QueryId, ProtocolError> {
        self.start(now, Kind::FindProviders, content)
    }

    /// Announces our provider record for the content key to the closest nodes.
    pub fn add_provider(
        &mut self,
        now: Instant,
        content: NodeId,
    ) -> Result<QueryId, ProtocolError> {
        self.start(now, Kind::AddProvider, content)
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Protocol::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let requests = self.pending.values().map(|p| p.deadline);
        let queries = self.queries.values().map(|q| q.deadline);
        requests
            .chain(queries)
            .chain(self.session.next_expiry())
            .chain(self.next_provider_expiry)
            .chain(self.next_revalidate)
            .chain(self.next_refresh)
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.session.expire(now);
        if self.next_provider_expiry.is_some_and(|at| at <= now) {
            self.providers.expire(now);
            self.next_provider_expiry = Some(now + Duration::from_secs(60));
        }
        let expired: Vec<_> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            let pending = self.pending.remove(&key).expect("listed above");
            // A FINDNODE whose later NODES messages were lost still counts what came.
            let answer = if pending.nodes_seen > 0 {
                Answer::Nodes(pending.records)
            } else {
                Answer::Failed
            };
            self.complete(now, key.0, pending.purpose, &pending.distances, answer);
        }
        let late: Vec<_> = self
            .queries
            .iter()
            .filter(|(_, q)| q.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            // An announcement out of time still goes to the nodes that answered so far.
            if self
                .queries
                .get(&id)
                .is_some_and(|q| q.kind == Kind::AddProvider)
            {
                self.lookup_done(now, id);
            } else {
                self.finish(now, id);
            }
        }
        self.maintain(now);
    }

    fn maintain(&mut self, now: Instant) {
        if self.next_revalidate.is_some_and(|at| at <= now) {
            self.next_revalidate = Some(now + self.config.revalidate_interval);
            let pick = self.rng.next_u32() as usize;
            if let Some(record) = self.table.least_recently_seen(pick) {
                let ping = Message::Ping {
                    enr_seq: self.record.seq(),
                };
                self.request(now, &record, ping, Purpose::Ping, Vec::new());
            }
        }
        if self.next_refresh.is_some_and(|at| at <= now) {
            self.next_refresh = Some(now + self.config.refresh_interval);
            let idle = self
                .last_lookup
                .is_none_or(|at| now.duration_since(at) >= self.config.refresh_interval);
            if idle && !self.table.is_empty() {
                let mut target = [0u8; 32];
                self.rng.fill_bytes(&mut target);
                let _ = self.lookup(now, NodeId(target));
            }
        }
    }

    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        match self.session.receive(now, &mut self.rng, from, datagram) {
            Received::Message {
                src,
                addr,
                plaintext,
                record,
            } => {
                if let Some(record) = record {
                    // Only a record naming the address it came from is worth routing to.
                    if record.udp_address() == Some(addr) {
                        self.table.insert(record, true);
                    }
                }
                if let Ok((request_id, message)) = Message::decode(&plaintext) {
                    self.on_message(now, src, addr, request_id, message);
                }
            }
            Received::Undecryptable { src, addr, nonce } => {
                let known = self.table.get(&src).map(|e| e.record.clone());
                if let Some((to, datagram)) =
                    self.session
                        .challenge(now, &mut self.rng, src, addr, nonce, known.as_ref())
                {
                    self.out.push_back(Output::Send { to, datagram });
                }
            }
            Received::Datagrams(datagrams) => {
                for (to, datagram) in datagrams {
                    self.out.push_back(Output::Send { to, datagram });
                }
            }
            Received::Dropped(reason) => tracing::trace!(%from, reason, "dropped a datagram"),
        }
    }

    fn on_message(
        &mut self,
        now: Instant,
        src: NodeId,
        addr: SocketAddr,
        request_id: RequestId,
        message: Message,
    ) {
        if message.is_response() {
            self.on_response(now, src, request_id, message);
            return;
        }
        let responses = match message {
            Message::Ping { .. } => vec![Message::Pong {
                enr_seq: self.record.seq(),
                ip: addr.ip(),
                port: addr.port(),
            }],
            Message::FindNode { distances } => {
                let records = if distances.contains(&0) {
                    vec![self.record.clone()]
                } else if distances.iter().any(|d| *d > 256) {
                    Vec::new()
                } else {
                    self.table.at_distances(&distances, FIND_NODE_RESULT_LIMIT)
                };
                nodes_messages(&records)
            }
            Message::FindNodeFast { target } => {
                let records: Vec<Spr> = self
                    .table
                    .closest(&target, FIND_NODE_FAST_LIMIT, true)
                    .into_iter()
                    .map(|e| e.record)
                    .collect();
                nodes_messages(&records)
            }
            Message::TalkReq { .. } => vec![Message::TalkResp {
                response: Vec::new(),
            }],
            Message::AddProvider { content, provider } => {
                if let Ok(record) = Spr::decode(&provider) {
                    self.providers.add(now, content, record);
                    self.next_provider_expiry
                        .get_or_insert(now + Duration::from_secs(60));
                }
                Vec::new()
            }
            Message::GetProviders { content } => {
                let mut providers = self.providers.get(now, &content);
                providers.truncate(MAX_PROVIDERS_PER_KEY);
                vec![Message::Providers {
                    total: 1,
                    providers: providers.iter().map(|r| r.bytes().to_vec()).collect(),
                }]
            }
            _ => Vec::new(),
        };
        for response in responses {
            let plaintext = response.encode(&request_id);
            if let Some((to, datagram)) =
                self.session
                    .send_response(now, &mut self.rng, src, addr, &plaintext)
            {
                self.out.push_back(Output::Send { to, datagram });
            }
        }
    }

    fn on_response(&mut self, now: Instant, src: NodeId, request_id: RequestId, message: Message) {
        let key = (src, request_id);
        let Some(pending) = self.pending.get_mut(&key) else {
            tracing::trace!(?src, "unsolicited or late response");
            return;
        };
        let answer = match (pending.purpose, message) {
            (Purpose::FindNode(_), Message::Nodes { total, records }) => {
                if pending.nodes_seen == 0 {
                    pending.nodes_total = total.clamp(1, MAX_NODES_MESSAGES);
                }
                pending.nodes_seen += 1;
                let room = FIND_NODE_RESULT_LIMIT.saturating_sub(pending.records.len());
                pending.records.extend(records.into_iter().take(room));
                if pending.nodes_seen < pending.nodes_total {
                    return;
                }
                Answer::Nodes(std::mem::take(&mut pending.records))
            }
            (Purpose::GetProviders(_), Message::Providers { providers, .. }) => {
                Answer::Providers(providers.into_iter().take(PROVIDERS_READ_LIMIT).collect())
            }
            (Purpose::Ping, Message::Pong { enr_seq, .. }) => Answer::Pong { enr_seq },
            _ => Answer::Failed,
        };
        let pending = self.pending.remove(&key).expect("found above");
        self.complete(now, src, pending.purpose, &pending.distances, answer);
    }

    /// A request of ours ended (answered or not): update the table and its query.
    fn complete(
        &mut self,
        now: Instant,
        from: NodeId,
        purpose: Purpose,
        distances: &[u16],
        answer: Answer,
    ) {
        if matches!(answer, Answer::Failed) {
            self.table.mark_failed(&from);
        } else {
            self.table.mark_seen(&from);
        }
        let ok = !matches!(answer, Answer::Failed);
        match purpose {
            Purpose::FindNode(qid) => {
                let found = match answer {
                    Answer::Nodes(records) => self.verify_nodes(from, distances, records),
                    _ => Vec::new(),
                };
                for record in &found {
                    self.table.insert(record.clone(), false);
                }
                let Some(query) = self.queries.get_mut(&qid) else {
                    return;
                };
                if let Some(c) = query
                    .candidates
                    .iter_mut()
                    .find(|c| c.record.node_id() == from)
                {
                    c.asked = if ok { Asked::Answered } else { Asked::Failed };
                }
                for record in found {
                    if query.seen.insert(record.node_id()) {
                        insert_candidate(query, record);
                    }
                }
            }
            Purpose::GetProviders(qid) => {
                let Some(query) = self.queries.get_mut(&qid) else {
                    return;
                };
                if let Answer::Providers(list) = answer {
                    for bytes in list {
                        let Ok(record) = Spr::decode(&bytes) else {
                            continue;
                        };
                        if !query
                            .providers
                            .iter()
                            .any(|p| p.peer_id() == record.peer_id())
                            && query.providers.len() < PROVIDERS_READ_LIMIT
                        {
                            query.providers.push(record);
                        }
                    }
                }
                if let Some(n) = query.providers_pending.as_mut() {
                    *n = n.saturating_sub(1);
                }
            }
            Purpose::Ping => {
                let stale = self.table.get(&from).and_then(|e| match answer {
                    Answer::Pong { enr_seq } if enr_seq > e.record.seq() => Some(e.record.clone()),
                    _ => None,
                });
                if let Some(record) = stale {
                    // Its record changed: ask the node for it (distance 0 is itself).
                    let ask = Message::FindNode { distances: vec![0] };
                    self.request(now, &record, ask, Purpose::FindNode(NO_QUERY), vec![0]);
                }
                return;
            }
        }
        let qid = match purpose {
            Purpose::FindNode(q) | Purpose::GetProviders(q) => q,
            Purpose::Ping => return,
        };
        self.advance(now, qid);
    }

    /// The usable records of a NODES answer from `from` (Archivist's `verifyNodesRecords`).
    fn verify_nodes(&self, from: NodeId, distances: &[u16], records: Vec<Vec<u8>>) -> Vec<Spr> {
        let mut out: Vec<Spr> = Vec::new();
        for bytes in records.into_iter().take(FIND_NODE_RESULT_LIMIT) {
            let Ok(record) = Spr::decode(&bytes) else {
                continue;
            };
            let id = record.node_id();
            if record.udp_address().is_none()
                || id == self.record.node_id()
                || !distances.contains(&id.log_distance(&from))
                || out.iter().any(|r| r.node_id() == id)
            {
                continue;
            }
            out.push(record);
        }
        out
    }

    fn start(
        &mut self,
        now: Instant,
        kind: Kind,
        target: NodeId,
    ) -> Result<QueryId, ProtocolError> {
        if self.queries.len() >= self.config.max_queries {
            return Err(ProtocolError::TooManyQueries {
                running: self.queries.len(),
            });
        }
        let id = self.next_query;
        self.next_query += 1;
        self.last_lookup = Some(now);
        let mut query = Query {
            kind,
            target,
            deadline: now + self.config.query_timeout,
            candidates: Vec::new(),
            seen: HashSet::from([self.record.node_id()]),
            providers_pending: None,
            providers: Vec::new(),
        };
        for entry in self.table.closest(&target, BUCKET_SIZE, false) {
            query.seen.insert(entry.record.node_id());
            insert_candidate(&mut query, entry.record);
        }
        self.queries.insert(id, query);
        self.advance(now, id);
        Ok(id)
    }

    /// Sends what a query can send now, and finishes it when nothing is left to wait for.
    fn advance(&mut self, now: Instant, qid: QueryId) {
        let Some(query) = self.queries.get(&qid) else {
            return;
        };
        if let Some(pending) = query.providers_pending {
            if pending == 0 {
                self.finish(now, qid);
            }
            return;
        }
        let target = query.target;
        // The closest nodes not known to have failed: a silent node does not end a lookup.
        let closest: Vec<&Candidate> = query
            .candidates
            .iter()
            .filter(|c| c.asked != Asked::Failed)
            .take(BUCKET_SIZE)
            .collect();
        let waiting = closest.iter().filter(|c| c.asked == Asked::Waiting).count();
        let to_ask: Vec<Spr> = closest
            .iter()
            .filter(|c| c.asked == Asked::No)
            .take(ALPHA.saturating_sub(waiting))
            .map(|c| c.record.clone())
            .collect();
        if waiting == 0 && to_ask.is_empty() {
            self.lookup_done(now, qid);
            return;
        }
        for record in to_ask {
            let distances = lookup_distances(&target, &record.node_id());
            let message = Message::FindNode {
                distances: distances.clone(),
            };
            let sent = self.request(now, &record, message, Purpose::FindNode(qid), distances);
            let query = self.queries.get_mut(&qid).expect("still running");
            if let Some(c) = query
                .candidates
                .iter_mut()
                .find(|c| c.record.node_id() == record.node_id())
            {
                c.asked = if sent { Asked::Waiting } else { Asked::Failed };
            }
        }
        // Requests that could not be sent may have left nothing to wait for.
        let query = self.queries.get(&qid).expect("still running");
        if !query.candidates.iter().any(|c| c.asked == Asked::Waiting) {
            self.advance(now, qid);
        }
    }

    fn lookup_done(&mut self, now: Instant, qid: QueryId) {
        let query = self.queries.get_mut(&qid).expect("running");
        let closest: Vec<Spr> = query
            .candidates
            .iter()
            .filter(|c| c.asked == Asked::Answered)
            .take(BUCKET_SIZE)
            .map(|c| c.record.clone())
            .collect();
        match query.kind {
            Kind::Lookup | Kind::Bootstrap => self.finish(now, qid),
            Kind::FindProviders => {
                query.providers = self.providers.get(now, &query.target);
                query.providers_pending = Some(0);
                let target = query.target;
                let mut sent = 0;
                for record in &closest {
                    let message = Message::GetProviders { content: target };
                    if self.request(now, record, message, Purpose::GetProviders(qid), Vec::new()) {
                        sent += 1;
                    }
                }
                self.queries
                    .get_mut(&qid)
                    .expect("running")
                    .providers_pending = Some(sent);
                if sent == 0 {
                    self.finish(now, qid);
                }
            }
            Kind::AddProvider => {
                let target = query.target;
                let announce = Message::AddProvider {
                    content: target,
                    provider: self.provider_record.bytes().to_vec(),
                };
                for record in &closest {
                    // Never answered: no pending entry, just the datagrams.
                    let request_id = self.request_id();
                    if let Some(contact) = Contact::of(record) {
                        let plaintext = announce.encode(&request_id);
                        for (to, datagram) in
                            self.session.send(now, &mut self.rng, &contact, plaintext)
                        {
                            self.out.push_back(Output::Send { to, datagram });
                        }
                    }
                }
                self.providers
                    .add(now, target, self.provider_record.clone());
                self.next_provider_expiry
                    .get_or_insert(now + Duration::from_secs(60));
                self.queries.remove(&qid);
                self.out.push_back(Output::Done {
                    query: qid,
                    outcome: Outcome::Announced {
                        nodes: closest.len(),
                    },
                });
            }
        }
    }

    /// Ends a query with what it has, dropping its outstanding requests' bookkeeping.
    fn finish(&mut self, now: Instant, qid: QueryId) {
        let Some(query) = self.queries.remove(&qid) else {
            return;
        };
        self.pending.retain(|_, p| match p.purpose {
            Purpose::FindNode(q) | Purpose::GetProviders(q) => q != qid,
            Purpose::Ping => true,
        });
        let closest: Vec<Spr> = query
            .candidates
            .iter()
            .filter(|c| c.asked == Asked::Answered)
            .take(BUCKET_SIZE)
            .map(|c| c.record.clone())
            .collect();
        let outcome = match query.kind {
            Kind::Lookup => Outcome::Closest(closest),
            Kind::Bootstrap => Outcome::Bootstrapped {
                table_size: self.table.len(),
            },
            Kind::FindProviders => {
                let mut providers = query.providers;
                if providers.is_empty() {
                    providers = self.providers.get(now, &query.target);
                }
                Outcome::Providers(providers)
            }
            Kind::AddProvider => Outcome::Announced { nodes: 0 },
        };
        self.out.push_back(Output::Done {
            query: qid,
            outcome,
        });
    }

    fn request_id(&mut self) -> RequestId {
        let mut id = vec![0u8; 8];
        self.rng.fill_bytes(&mut id);
        id
    }

    /// Sends a request that expects an answer; false when it cannot be tracked.
    fn request(
        &mut self,
        now: Instant,
        to: &Spr,
        message: Message,
        purpose: Purpose,
        distances: Vec<u16>,
    ) -> bool {
        let Some(contact) = Contact::of(to) else {
            return false;
        };
        if self.pending.len() >= self.config.max_pending_requests {
            return false;
        }
        let request_id = self.request_id();
        let plaintext = message.encode(&request_id);
        for (addr, datagram) in self.session.send(now, &mut self.rng, &contact, plaintext) {
            self.out.push_back(Output::Send { to: addr, datagram });
        }
        self.pending.insert(
            (contact.id, request_id),
            Pending {
                deadline: now + self.config.request_timeout,
                purpose,
                distances,
                nodes_total: 1,
                nodes_seen: 0,
                records: Vec::new(),
            },
        );
        true
    }
}

/// Inserts by distance to the query's target, keeping at most [`MAX_CANDIDATES`] (a spare
/// far away is dropped before any node we asked).
fn insert_candidate(query: &mut Query, record: Spr) {
    let target = query.target;
    let d = record.node_id().distance(&target);
    let at = query
        .candidates
        .partition_point(|c| c.record.node_id().distance(&target) <= d);
    query.candidates.insert(
        at,
        Candidate {
            record,
            asked: Asked::No,
        },
    );
    if query.candidates.len() > MAX_CANDIDATES {
        if let Some(pos) = query.candidates.iter().rposition(|c| c.asked == Asked::No) {
            query.candidates.remove(pos);
        }
    }
}

/// NODES answers: at most three records each, `total` saying how many messages; an empty
/// answer is still one message (as Archivist sends it).
fn nodes_messages(records: &[Spr]) -> Vec<Message> {
    if records.is_empty() {
        return vec![Message::Nodes {
            total: 1,
            records: Vec::new(),
        }];
    }
    let total = records.len().div_ceil(MAX_NODES_PER_MESSAGE) as u32;
    records
        .chunks(MAX_NODES_PER_MESSAGE)
        .map(|chunk| Message::Nodes {
            total,
            records: chunk.iter().map(|r| r.bytes().to_vec()).collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! The core without sockets: a simulated network delivers datagrams between cores, and
    //! time only moves when the test moves it.

    use libp2p::identity::Keypair;

    use super::*;
    use crate::spr::signing_key_of;

    struct Sim {
        nodes: Vec<Protocol>,
        addrs: Vec<SocketAddr>,
        done: Vec<(usize, QueryId, Outcome)>,
        /// Nodes whose datagrams vanish (a node that went away).
        silent: HashSet<usize>,
    }

    impl Sim {
        fn new(n: usize) -> Self {
            let mut nodes = Vec::new();
            let mut addrs = Vec::new();
            for i in 0..n {
                let keypair = Keypair::generate_secp256k1();
                let addr: SocketAddr = format!("127.0.0.1:{}", 20_000 + i).parse().unwrap();
                let ma = format!("/ip4/127.0.0.1/udp/{}", addr.port())
                    .parse()
                    .unwrap();
                let record = Spr::sign(&keypair, vec![ma]).unwrap();
                let provider = Spr::sign(
                    &keypair,
                    vec![format!("/ip4/127.0.0.1/tcp/{}", 30_000 + i)
                        .parse()
                        .unwrap()],
                )
                .unwrap();
                nodes.push(Protocol::new(
                    signing_key_of(&keypair).unwrap(),
                    record,
                    provider,
                    Config::default(),
                    i as u64,
                ));
                addrs.push(addr);
            }
            Sim {
                nodes,
                addrs,
                done: Vec::new(),
                silent: HashSet::new(),
            }
        }

        /// Delivers datagrams until the network is quiet.
        fn run(&mut self, now: Instant) {
            loop {
                let mut moved = false;
                for i in 0..self.nodes.len() {
                    while let Some(out) = self.nodes[i].poll_output() {
                        moved = true;
                        match out {
                            Output::Send { to, datagram } => {
                                let Some(j) = self.addrs.iter().position(|a| *a == to) else {
                                    continue;
                                };
                                if self.silent.contains(&j) || self.silent.contains(&i) {
                                    continue;
                                }
                                let from = self.addrs[i];
                                self.nodes[j].handle_datagram(now, from, &datagram);
                            }
                            Output::Done { query, outcome } => self.done.push((i, query, outcome)),
                        }
                    }
                }
                if !moved {
                    return;
                }
            }
        }

        fn outcome(&mut self, node: usize, query: QueryId) -> Outcome {
            let pos = self
                .done
                .iter()
                .position(|(n, q, _)| *n == node && *q == query)
                .expect("query finished");
            self.done.remove(pos).2
        }

        fn bootstrap_all_through_0(&mut self, now: Instant) {
            let boot = self.nodes[0].local_record().clone();
            for i in 1..self.nodes.len() {
                let q = self.nodes[i].bootstrap(now, boot.clone()).unwrap();
                self.run(now);
                assert!(matches!(self.outcome(i, q), Outcome::Bootstrapped { .. }));
            }
        }
    }

    #[test]
    fn providers_are_found_across_the_network() {
        let now = Instant::now();
        let mut sim = Sim::new(12);
        sim.bootstrap_all_through_0(now);
        // The bootstrap node saw everyone's handshake.
        assert_eq!(sim.nodes[0].table().len(), 11);

        let content = NodeId::for_content(b"some cid");
        let q = sim.nodes[3].add_provider(now, content).unwrap();
        sim.run(now);
        let Outcome::Announced { nodes } = sim.outcome(3, q) else {
            panic!()
        };
        assert!(nodes >= 1);

        let q = sim.nodes[11].find_providers(now, content).unwrap();
        sim.run(now);
        let Outcome::Providers(found) = sim.outcome(11, q) else {
            panic!()
        };
        assert_eq!(found, vec![sim.nodes[3].provider_record().clone()]);
        assert!(sim
            .nodes
            .iter()
            .all(|n| n.poll_timeout().is_none_or(|t| t > now)));
    }

    #[test]
    fn silent_nodes_time_out_and_queries_still_finish() {
        let now = Instant::now();
        let mut sim = Sim::new(6);
        sim.bootstrap_all_through_0(now);
        sim.silent.insert(0);
        let q = sim.nodes[5]
            .find_providers(now, NodeId::for_content(b"x"))
            .unwrap();
        sim.run(now);
        assert!(sim.done.is_empty(), "waiting for the silent bootstrap node");
        let deadline = sim.nodes[5].poll_timeout().unwrap();
        assert!(deadline <= now + Duration::from_secs(1));
        // Time passes; every request to the silent node times out.
        for step in 1..=5 {
            let t = now + Duration::from_secs(step);
            for node in &mut sim.nodes {
                node.handle_timeout(t);
            }
            sim.run(t);
        }
        assert_eq!(sim.outcome(5, q), Outcome::Providers(vec![]));
    }

    #[test]
    fn revalidation_pings_and_drops_nodes_that_went_away() {
        let start = Instant::now();
        let mut sim = Sim::new(4);
        sim.bootstrap_all_through_0(start);
        for node in &mut sim.nodes {
            node.start_maintenance(start);
        }
        let gone = sim.nodes[2].local_record().node_id();
        assert!(sim.nodes[0].table().get(&gone).is_some());
        sim.silent.insert(2);
        let interval = Config::default().revalidate_interval;
        let mut now = start;
        for _ in 0..40 {
            now += interval;
            for node in &mut sim.nodes {
                node.handle_timeout(now);
            }
            sim.run(now);
            // Pings that got no PONG time out a second later.
            now += Duration::from_secs(1);
            for node in &mut sim.nodes {
                node.handle_timeout(now);
            }
            sim.run(now);
        }
        assert!(
            sim.nodes[0].table().get(&gone).is_none(),
            "silent node dropped"
        );
        let alive = sim.nodes[1].local_record().node_id();
        assert!(sim.nodes[0].table().get(&alive).is_some_and(|e| e.seen));
        // Refresh lookups ran (no query was started by hand) and finished.
        assert!(sim
            .nodes
            .iter()
            .all(|n| n.last_lookup.is_some_and(|t| t > start)));
        assert!(sim.nodes.iter().all(|n| n.queries.is_empty()));
    }

    #[test]
    fn nodes_answers_are_verified() {
        let sim = Sim::new(4);
        let core = &sim.nodes[0];
        let from = sim.nodes[1].local_record().node_id();
        let good = sim.nodes[2].local_record().clone();
        let d = good.node_id().log_distance(&from);
        let records = vec![
            good.bytes().to_vec(),
            good.bytes().to_vec(),                           // duplicate
            core.local_record().bytes().to_vec(),            // ourselves
            vec![1, 2, 3],                                   // garbage
            sim.nodes[0].provider_record().bytes().to_vec(), // no UDP address
        ];
        assert_eq!(core.verify_nodes(from, &[d], records.clone()), vec![good]);
        let wrong = if d == 256 { 255 } else { d + 1 };
        assert!(core.verify_nodes(from, &[wrong], records).is_empty());
    }

    #[test]
    fn requests_answered_as_archivist_does() {
        let now = Instant::now();
        let mut sim = Sim::new(8);
        sim.bootstrap_all_through_0(now);
        // FINDNODE for all distances at once is answered in NODES messages of three records,
        // and the asker collects all of them.
        let all: Vec<u16> = (1..=256).collect();
        let node0 = sim.nodes[0].local_record().clone();
        assert!(sim.nodes[1].request(
            now,
            &node0,
            Message::FindNode {
                distances: all.clone()
            },
            Purpose::FindNode(999),
            all,
        ));
        sim.run(now);
        assert!(
            sim.nodes[1].pending.is_empty(),
            "all NODES messages arrived"
        );
        assert_eq!(sim.nodes[1].table().len(), 7);
        // Query limits are enforced: with a node that never answers, lookups keep running.
        let mut core = Sim::new(1).nodes.remove(0);
        core.add_bootstrap(node0).unwrap();
        let limit = Config::default().max_queries;
        for _ in 0..limit {
            core.lookup(now, NodeId([9; 32])).unwrap();
        }
        assert_eq!(
            core.lookup(now, NodeId([9; 32])),
            Err(ProtocolError::TooManyQueries { running: limit })
        );
        // They end at their deadline even if nothing ever answers.
        core.handle_timeout(now + Config::default().query_timeout);
        assert!(core.queries.is_empty() && core.pending.is_empty());
    }
}
