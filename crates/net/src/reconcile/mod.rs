//! `/neverust/reconcile/1.0.0`: two peers learn which blocks of a dataset each holds that
//! the other lacks without sending their sets, by the rateless IBLT of
//! [`neverust_reconcile`]. Beside blockexc on every connection between Neverust nodes;
//! a peer that does not speak it (an Archivist node) fails the stream's negotiation and
//! the caller keeps to blockexc's wantlists and presences.
//!
//! A session, initiator I and responder R, over one stream:
//!
//! ```text
//! I → R  Open { tree, |I|, key }
//! R → I  Accept { |R|, wants }  then  Set(runs of R)            when that is the cheaper
//!                                or  Symbols(batch of R's set)   otherwise
//! I → R  More(n)   ← R: Symbols(next n)                          until I decodes
//! I → R  Done { you_lack: runs }   (what I holds and R lacks, when R wants it)
//! ```
//!
//! The difference is at least ||I| − |R||, so R sends its set as runs when those cost
//! less than the symbols that floor would take: an empty side, a whole dataset (one run),
//! or sets of very different sizes. Otherwise the first batch is sized from that floor,
//! and each `More` doubles what was sent. Both sides bound the session: the initiator's
//! [`Reconciler`] cuts off a peer past its symbol and byte budget or whose symbols never
//! decode; the responder refuses requests past the same budget; every read has a timeout
//! and the whole session a deadline. A peer that breaks a rule is counted in
//! `neverust_misbehaviour_total` and struck like a blockexc offender.

pub mod frame;
pub mod holdings;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::io::BufReader;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use neverust_content::Cid;
use neverust_reconcile::{Encoder, HashKey, Limits, Progress, Reconciler, SessionError};
use tokio::sync::Semaphore;

use crate::blockexc::{Engine, WantEvent};
use crate::metrics::NetMetrics;
use frame::{Accept, Body, Done, FrameError, Open, Runs, RunsError};
pub use holdings::{Holdings, NodeHoldings, PartialDatasets, PartialGuard};

pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/neverust/reconcile/1.0.0");

/// How long one message may take to arrive.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whole session may take.
const SESSION_LIMIT: Duration = Duration::from_secs(60);
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// Sessions this node answers at once; more are refused with a reason.
const MAX_RESPONDING: usize = 32;
/// Bytes per item of the difference that coded symbols cost (1.35 symbols of about 23
/// bytes): what runs are weighed against.
const SYMBOL_BYTES_PER_ITEM: u64 = 32;
const MIN_BATCH: u64 = 64;
/// Tries at opening a session whose stream the peer dropped, and the pause before the next.
const OPEN_ATTEMPTS: u32 = 4;
const RETRY_DELAY: Duration = Duration::from_millis(20);

/// What a session found, from the initiator's side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Indices the peer holds and we lack, sorted.
    pub peer_has: Vec<u64>,
    /// Indices we hold and the peer lacks, sorted.
    pub peer_lacks: Vec<u64>,
    /// How many indices the peer holds.
    pub peer_len: u64,
    /// The peer is downloading the tree too: it will hold more later.
    pub peer_downloading: bool,
    pub stats: SessionStats,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Request/answer exchanges: the opening and each `More`.
    pub round_trips: u32,
    pub symbols: u64,
    /// The peer sent its set as runs rather than coded symbols.
    pub by_runs: bool,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReconcileError {
    #[error("the peer does not speak {PROTOCOL}")]
    Unsupported,
    #[error("cannot open a reconciliation stream: {0}")]
    Open(String),
    #[error("the peer sent nothing for {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("the stream ended mid-session")]
    Ended,
    #[error("the peer aborted the session: {0}")]
    Aborted(String),
    #[error("the peer broke the protocol: {0}")]
    Protocol(&'static str),
    #[error("the peer's coded symbols were refused: {0}")]
    Session(#[from] SessionError),
    #[error("the peer's index runs were refused: {0}")]
    Runs(#[from] RunsError),
}

impl ReconcileError {
    /// The misbehaviour this error shows, if the peer is to blame.
    fn offence(&self) -> Option<&'static str> {
        match self {
            ReconcileError::Protocol(_) | ReconcileError::Runs(_) => Some("reconcile_protocol"),
            ReconcileError::Frame(FrameError::TooLarge { .. }) => Some("oversize"),
            ReconcileError::Frame(FrameError::Malformed(_) | FrameError::NoBody) => {
                Some("malformed")
            }
            ReconcileError::Session(
                SessionError::TooManySymbols { .. } | SessionError::TooManyBytes { .. },
            ) => Some("reconcile_limit"),
            ReconcileError::Session(SessionError::Inconsistent { .. }) => {
                Some("reconcile_inconsistent")
            }
            ReconcileError::Session(_) => Some("malformed"),
            _ => None,
        }
    }

    fn from_io(e: std::io::Error) -> Self {
        ReconcileError::Frame(e.into())
    }
}

/// The misbehaviour reasons this protocol adds to blockexc's.
pub const MISBEHAVIOUR_REASONS: [&str; 3] = [
    "reconcile_protocol",
    "reconcile_limit",
    "reconcile_inconsistent",
];

/// Runs sessions with peers: answers those they open, opens ours.
pub struct Reconcile {
    control: Mutex<libp2p_stream::Control>,
    holdings: Arc<dyn Holdings>,
    engine: Arc<Engine>,
    limits: Limits,
    responding: Arc<Semaphore>,
    metrics: NetMetrics,
}

impl Reconcile {
    pub(crate) fn start(
        mut control: libp2p_stream::Control,
        holdings: Arc<dyn Holdings>,
        engine: Arc<Engine>,
        metrics: NetMetrics,
    ) -> Arc<Reconcile> {
        let mut incoming = control
            .accept(PROTOCOL)
            .expect("reconciliation is registered once per swarm");
        let service = Arc::new(Reconcile {
            control: Mutex::new(control),
            holdings,
            engine,
            limits: Limits::default(),
            responding: Arc::new(Semaphore::new(MAX_RESPONDING)),
            metrics,
        });
        let s = Arc::downgrade(&service);
        tokio::spawn(async move {
            while let Some((peer, stream)) = incoming.next().await {
                let Some(service) = s.upgrade() else { return };
                tokio::spawn(service.respond(peer, stream));
            }
        });
        service
    }

    /// Reconciles our holdings of `tree` with `peer`'s.
    pub async fn initiate(&self, peer: PeerId, tree: Cid) -> Result<Reconciled, ReconcileError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.initiate_once(peer, tree).await {
                // libp2p-stream drops an inbound stream when the peer's acceptor is not
                // ready for it that instant (a burst of sessions): it reads as a stream
                // closed under us. A session has no effect until it ends, so it is safe
                // to open again.
                Err(ReconcileError::Frame(FrameError::Io(_)) | ReconcileError::Ended)
                    if attempt < OPEN_ATTEMPTS =>
                {
                    tokio::time::sleep(RETRY_DELAY * attempt).await;
                }
                result => return result,
            }
        }
    }

    async fn initiate_once(&self, peer: PeerId, tree: Cid) -> Result<Reconciled, ReconcileError> {
        let mut control = self.control.lock().expect("control lock").clone();
        let stream =
            match tokio::time::timeout(OPEN_TIMEOUT, control.open_stream(peer, PROTOCOL)).await {
                Ok(Ok(s)) => s,
                Ok(Err(libp2p_stream::OpenStreamError::UnsupportedProtocol(_))) => {
                    return Err(ReconcileError::Unsupported)
                }
                Ok(Err(e)) => return Err(ReconcileError::Open(e.to_string())),
                Err(_) => return Err(ReconcileError::Open("timed out".into())),
            };
        let result =
            match tokio::time::timeout(SESSION_LIMIT, self.run_initiator(stream, tree)).await {
                Ok(r) => r,
                Err(_) => Err(ReconcileError::Timeout(SESSION_LIMIT)),
            };
        self.account(peer, "initiator", result.as_ref().map(|r| &r.stats));
        result
    }

    async fn run_initiator(
        &self,
        stream: libp2p::Stream,
        tree: Cid,
    ) -> Result<Reconciled, ReconcileError> {
        let (read, mut write) = stream.split();
        let mut read = BufReader::new(read);
        let ours = self.holdings.held(&tree);
        let key: [u8; 16] = rand::random();
        let mut stats = SessionStats::default();
        let open = Open {
            tree: tree.to_bytes(),
            set_len: ours.len() as u64,
            key: key.to_vec(),
        };
        stats.bytes_sent += send(&mut write, Body::Open(open)).await?;
        stats.round_trips = 1;
        let accept = match receive(&mut read, &mut stats).await? {
            Body::Accept(a) => a,
            _ => return Err(out_of_turn()),
        };
        // Our own coded symbols for the batch the peer is computing now, computed at the
        // same time: the two encodings overlap instead of following each other.
        let first = first_batch(
            (ours.len() as u64).abs_diff(accept.set_len),
            self.limits.max_batch,
        );
        let preparing = (!ours.is_empty() && accept.set_len > 0).then(|| {
            let ours = ours.clone();
            tokio::task::spawn_blocking(move || {
                let mut encoder = Encoder::new(HashKey(key), ours);
                encoder.prepare(first as usize);
                encoder
            })
        });
        let (peer_has, peer_lacks) = match receive(&mut read, &mut stats).await? {
            Body::Set(runs) => {
                stats.by_runs = true;
                let theirs = runs.indices(accept.set_len)?;
                if theirs.len() as u64 != accept.set_len {
                    return Err(ReconcileError::Protocol(
                        "its set is not the size it announced",
                    ));
                }
                split(&ours, &theirs)
            }
            Body::Symbols(first) => {
                let encoder = match preparing {
                    Some(p) => p.await.expect("encoding does not panic"),
                    None => Encoder::new(HashKey(key), ours.iter().copied()),
                };
                let mut session =
                    Reconciler::with_encoder(HashKey(key), &self.limits, encoder, accept.set_len);
                let mut batch = first;
                loop {
                    // Decoding subtracts our own symbols and peels: CPU work, kept off the
                    // async workers (a busy worker delays accepting streams, and libp2p
                    // drops inbound streams nobody takes at once).
                    let (s, progress) = tokio::task::spawn_blocking(move || {
                        let progress = session.receive(&batch);
                        (session, progress)
                    })
                    .await
                    .expect("decoding does not panic");
                    session = s;
                    match progress? {
                        Progress::Done(d) => {
                            stats.symbols = session.symbols_received();
                            break (d.theirs_only, d.ours_only);
                        }
                        Progress::NeedMore { received } if received >= session.symbol_limit() => {
                            return Err(SessionError::TooManySymbols {
                                received,
                                limit: session.symbol_limit(),
                            }
                            .into());
                        }
                        Progress::NeedMore { received } => {
                            let more = received
                                .clamp(MIN_BATCH, self.limits.max_batch as u64)
                                .min(session.symbol_limit() - received);
                            stats.bytes_sent += send(&mut write, Body::More(more)).await?;
                            stats.round_trips += 1;
                            // Our symbols for that batch while the peer computes its own.
                            let preparing = tokio::task::spawn_blocking(move || {
                                session.prepare(more as usize);
                                session
                            });
                            let next = receive(&mut read, &mut stats).await;
                            session = preparing.await.expect("encoding does not panic");
                            batch = match next? {
                                Body::Symbols(b) => b,
                                _ => return Err(out_of_turn()),
                            };
                        }
                    }
                }
            }
            _ => return Err(out_of_turn()),
        };
        let done = Done {
            you_lack: accept.wants.then(|| Runs::of(&peer_lacks)),
        };
        stats.bytes_sent += send(&mut write, Body::Done(done)).await?;
        let _ = write.close().await;
        Ok(Reconciled {
            peer_has,
            peer_lacks,
            peer_len: accept.set_len,
            peer_downloading: accept.wants,
            stats,
        })
    }

    async fn respond(self: Arc<Self>, peer: PeerId, stream: libp2p::Stream) {
        let (read, mut write) = stream.split();
        let Ok(_permit) = self.responding.clone().try_acquire_owned() else {
            let _ = frame::write(&mut write, Body::Abort("busy".into())).await;
            return;
        };
        let mut read = BufReader::new(read);
        let result = match tokio::time::timeout(
            SESSION_LIMIT,
            self.run_responder(peer, &mut read, &mut write),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(ReconcileError::Timeout(SESSION_LIMIT)),
        };
        if let Err(e) = &result {
            let _ = frame::write(&mut write, Body::Abort(e.to_string())).await;
        }
        let _ = write.close().await;
        self.account(peer, "responder", result.as_ref());
    }

    async fn run_responder<R, W>(
        &self,
        peer: PeerId,
        read: &mut R,
        write: &mut W,
    ) -> Result<SessionStats, ReconcileError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut stats = SessionStats::default();
        let open = match receive(read, &mut stats).await? {
            Body::Open(o) => o,
            _ => return Err(out_of_turn()),
        };
        let tree = Cid::try_from(open.tree.as_slice())
            .map_err(|_| ReconcileError::Protocol("its tree is not a CID"))?;
        let key: [u8; 16] = open
            .key
            .as_slice()
            .try_into()
            .map_err(|_| ReconcileError::Protocol("its key is not 16 bytes"))?;
        let held = self.holdings.held(&tree);
        let wants = self.holdings.downloading(&tree);
        let ours = held.len() as u64;
        stats.bytes_sent += send(
            write,
            Body::Accept(Accept {
                set_len: ours,
                wants,
            }),
        )
        .await?;
        let floor = ours.abs_diff(open.set_len);
        let runs = Runs::of(&held);
        let done = if ours == 0
            || open.set_len == 0
            || runs.wire_len() as u64 <= floor.saturating_mul(SYMBOL_BYTES_PER_ITEM)
        {
            stats.by_runs = true;
            stats.bytes_sent += send(write, Body::Set(runs)).await?;
            match receive(read, &mut stats).await? {
                Body::Done(d) => d,
                _ => return Err(out_of_turn()),
            }
        } else {
            let budget = self.limits.symbol_limit(ours, open.set_len);
            // The set until the first batch, then its encoder.
            let mut encoder: Result<Encoder<u64>, Vec<u64>> = Err(held);
            let mut n = first_batch(floor, self.limits.max_batch);
            loop {
                // Off the async workers: a batch of a large set takes milliseconds.
                let e = std::mem::replace(&mut encoder, Err(Vec::new()));
                let (e, batch) = tokio::task::spawn_blocking(move || {
                    let mut e = e.unwrap_or_else(|held| Encoder::new(HashKey(key), held));
                    let mut batch = Vec::new();
                    e.encode_next(n as usize, &mut batch);
                    (e, batch)
                })
                .await
                .expect("encoding does not panic");
                encoder = Ok(e);
                stats.symbols += n;
                stats.bytes_sent += send(write, Body::Symbols(batch)).await?;
                match receive(read, &mut stats).await? {
                    Body::More(m) if m == 0 || m > self.limits.max_batch as u64 => {
                        return Err(ReconcileError::Protocol(
                            "it asked for a batch out of bounds",
                        ))
                    }
                    Body::More(m) if stats.symbols + m > budget => {
                        return Err(ReconcileError::Protocol(
                            "it asked past the session's budget",
                        ))
                    }
                    Body::More(m) => {
                        stats.round_trips += 1;
                        n = m;
                    }
                    Body::Done(d) => break d,
                    _ => return Err(out_of_turn()),
                }
            }
        };
        if let (true, Some(runs)) = (wants, done.you_lack) {
            let lacking = runs.indices(open.set_len)?;
            if !lacking.is_empty() {
                self.engine.route(
                    tree,
                    WantEvent::Holds {
                        peer,
                        indices: lacking.into(),
                    },
                );
            }
        }
        Ok(stats)
    }

    fn account(
        &self,
        peer: PeerId,
        role: &'static str,
        result: Result<&SessionStats, &ReconcileError>,
    ) {
        let outcome = match result {
            Ok(stats) => {
                for (direction, n) in [
                    ("sent", stats.bytes_sent),
                    ("received", stats.bytes_received),
                ] {
                    self.metrics
                        .reconcile_bytes
                        .get_or_create(&crate::metrics::DirectionLabels { direction })
                        .inc_by(n);
                }
                "ok"
            }
            Err(ReconcileError::Unsupported) => "unsupported",
            Err(e) => {
                tracing::debug!(%peer, role, "reconciliation failed: {e}");
                match e.offence() {
                    Some(reason) => {
                        self.engine.offence(peer, reason);
                        "misbehaviour"
                    }
                    None => "failed",
                }
            }
        };
        self.metrics
            .reconcile_sessions
            .get_or_create(&crate::metrics::SessionLabels { role, outcome })
            .inc();
    }
}

/// The responder's first batch: the difference is at least `floor`, and 1.35 symbols an
/// item decode it; a margin spares a round trip for small differences.
fn first_batch(floor: u64, max_batch: usize) -> u64 {
    (floor + floor / 2 + MIN_BATCH).min(max_batch as u64)
}

async fn send<W: AsyncWrite + Unpin>(write: &mut W, body: Body) -> Result<u64, ReconcileError> {
    frame::write(write, body)
        .await
        .map_err(ReconcileError::from_io)
}

async fn receive<R: AsyncRead + Unpin>(
    read: &mut R,
    stats: &mut SessionStats,
) -> Result<Body, ReconcileError> {
    match tokio::time::timeout(READ_TIMEOUT, frame::read(read)).await {
        Err(_) => Err(ReconcileError::Timeout(READ_TIMEOUT)),
        Ok(Err(e)) => Err(e.into()),
        Ok(Ok(None)) => Err(ReconcileError::Ended),
        Ok(Ok(Some((Body::Abort(reason), _)))) => Err(ReconcileError::Aborted(reason)),
        Ok(Ok(Some((body, wire)))) => {
            stats.bytes_received += wire;
            Ok(body)
        }
    }
}

fn out_of_turn() -> ReconcileError {
    ReconcileError::Protocol("it sent a message out of turn")
}

/// (theirs − ours, ours − theirs) of two sorted distinct lists.
fn split(ours: &[u64], theirs: &[u64]) -> (Vec<u64>, Vec<u64>) {
    let (mut only_theirs, mut only_ours) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < ours.len() || j < theirs.len() {
        match (ours.get(i), theirs.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                only_ours.push(*a);
                i += 1;
            }
            (Some(_), Some(b)) | (None, Some(b)) => {
                only_theirs.push(*b);
                j += 1;
            }
            (Some(a), None) => {
                only_ours.push(*a);
                i += 1;
            }
            (None, None) => unreachable!(),
        }
    }
    (only_theirs, only_ours)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn split_is_the_two_sided_difference() {
        assert_eq!(
            split(&[1, 2, 3, 7], &[2, 3, 4, 9]),
            (vec![4, 9], vec![1, 7])
        );
        assert_eq!(split(&[], &[5]), (vec![5], vec![]));
        assert_eq!(split(&[5], &[]), (vec![], vec![5]));
    }
}
