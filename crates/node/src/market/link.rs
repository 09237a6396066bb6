//! The link between this node and the market's one order of actions, the seam where a chain
//! would plug in: the node without a bootstrap node keeps the ledger (sequences every
//! action it is sent and streams the log to followers), every other marketplace node follows
//! it into its own copy and sends it what it does.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::PeerId;
use neverust_market::ledger::{Action, LedgerError, Outcome, SignedAction};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use super::ledger_copy::{Applied, CopyError, LedgerCopy};
use super::wire::{self, Answer, Ask, WireError, PROTOCOL};

/// How long an action the keeper accepted may take to come back through the follow stream.
const ECHO_TIMEOUT: Duration = Duration::from_secs(30);
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an action is signed again after the ledger's clock passed it. The clock counts
/// whole seconds, so a submission that takes longer than the rest of its second to be
/// applied while another party acts is stale: on a loaded keeper most of them. A budget of
/// time rather than of tries keeps a host proving however busy the keeper is.
const STALE_BUDGET: Duration = Duration::from_secs(10);
/// The longest wait between two signings.
const BACKOFF_CAP: Duration = Duration::from_millis(500);
const REFOLLOW_DELAY: Duration = Duration::from_secs(1);
const SUBMIT_ATTEMPTS: u32 = 10;
const RESUBMIT_DELAY: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum ActError {
    #[error("the market refused the action: {0}")]
    Refused(String),
    #[error("cannot reach the market's ledger keeper: {0}")]
    Unreachable(String),
    #[error("the market's ledger: {0}")]
    Copy(String),
    #[error("the action is the ledger's entry {0} already")]
    Duplicate(u64),
}

pub struct LedgerLink {
    pub copy: Arc<LedgerCopy>,
    key: Keypair,
    control: libp2p_stream::Control,
    /// `None` when this node keeps the ledger; else the keeper, once the bootstrap node
    /// (which keeps it) has been reached.
    keeper: Option<watch::Receiver<Option<PeerId>>>,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl LedgerLink {
    /// Keeps the ledger (`keeper: None`) or follows `keeper`'s: either way starts the task
    /// that serves or follows the log.
    pub fn start(
        copy: Arc<LedgerCopy>,
        key: Keypair,
        mut control: libp2p_stream::Control,
        keeper: Option<watch::Receiver<Option<PeerId>>>,
    ) -> Arc<Self> {
        match keeper.clone() {
            None => {
                let mut incoming = control
                    .accept(PROTOCOL)
                    .expect("the market protocol is registered once");
                let serving = copy.clone();
                tokio::spawn(async move {
                    while let Some((peer, stream)) = incoming.next().await {
                        tokio::spawn(serve(serving.clone(), peer, stream));
                    }
                });
            }
            Some(mut known) => {
                let (copy, control) = (copy.clone(), control.clone());
                tokio::spawn(async move {
                    let Ok(Some(peer)) = known.wait_for(Option::is_some).await.map(|p| *p) else {
                        return;
                    };
                    follow_forever(copy, control, peer).await
                });
            }
        }
        Arc::new(LedgerLink {
            copy,
            key,
            control,
            keeper,
        })
    }

    pub fn is_keeper(&self) -> bool {
        self.keeper.is_none()
    }

    /// Signs `action` (at the ledger's time or later) and has it sequenced; returns once
    /// this node's copy holds it, with what it did.
    pub async fn act(&self, action: Action) -> Result<Outcome, ActError> {
        let first = tokio::time::Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let at = unix_now().max(self.copy.read(|l| l.books().now));
            let signed = SignedAction::sign(&self.key, at, action.clone());
            let result = match self.keeper_peer().await? {
                None => apply_here(&self.copy, signed)
                    .await
                    .map(|r| r.map(|a| a.outcome.clone())),
                Some(peer) => self.submit(peer, signed).await,
            };
            match result {
                Err(Stale) if first.elapsed() < STALE_BUDGET => {
                    // Spread out, so parties that acted in the same round do not collide again.
                    let jitter = Duration::from_millis(rand::random::<u64>() % 100);
                    let backoff = (Duration::from_millis(100) * attempt).min(BACKOFF_CAP);
                    tokio::time::sleep(backoff + jitter).await
                }
                Err(Stale) => return Err(ActError::Refused("the ledger's clock is ahead".into())),
                Ok(r) => return r,
            }
        }
    }

    /// `Ok(None)` when this node keeps the ledger.
    async fn keeper_peer(&self) -> Result<Option<PeerId>, ActError> {
        let Some(known) = &self.keeper else {
            return Ok(None);
        };
        let mut known = known.clone();
        let waited = async { known.wait_for(Option::is_some).await.map(|p| *p) };
        match tokio::time::timeout(ECHO_TIMEOUT, waited).await {
            Ok(Ok(peer)) => Ok(peer),
            _ => Err(ActError::Unreachable(
                "the bootstrap node, which keeps the ledger, has not been reached".into(),
            )),
        }
    }

    async fn submit(
        &self,
        keeper: PeerId,
        signed: SignedAction,
    ) -> Result<Result<Outcome, ActError>, Stale> {
        // Listening before sending, so the echo cannot pass unheard.
        let mut events = self.copy.subscribe();
        // libp2p-stream drops an inbound stream whose acceptor is busy that instant, which
        // reads here as a closed stream: the same signed action is sent again, and the
        // keeper answers a copy it already sequenced with that entry's number.
        let mut attempt = 0;
        let seq = loop {
            attempt += 1;
            let answer = async {
                let mut stream = open(&self.control, keeper).await?;
                let ask = Ask::Submit {
                    action: Box::new(signed.clone()),
                };
                wire::write(&mut stream, &ask).await?;
                wire::read::<Answer>(&mut stream).await
            };
            match answer.await {
                Ok(Answer::Submitted { seq }) => break seq,
                Ok(Answer::Refused { stale: true, .. }) => return Err(Stale),
                Ok(Answer::Refused { error, .. }) => return Ok(Err(ActError::Refused(error))),
                Ok(other) => {
                    return Ok(Err(ActError::Unreachable(format!(
                        "unexpected answer {other:?}"
                    ))))
                }
                Err(_) if attempt < SUBMIT_ATTEMPTS => {
                    // Spread out, so the parties whose streams were dropped together do
                    // not arrive together again.
                    let jitter = Duration::from_millis(rand::random::<u64>() % 100);
                    let backoff = (RESUBMIT_DELAY * attempt).min(BACKOFF_CAP);
                    tokio::time::sleep(backoff + jitter).await
                }
                Err(e) => return Ok(Err(ActError::Unreachable(e.to_string()))),
            }
        };
        let echo = async {
            loop {
                match events.recv().await {
                    Ok(a) if a.seq == seq => return Ok(a.outcome.clone()),
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {
                        return Err(ActError::Copy(format!(
                            "entry {seq} was applied unheard; the books have it"
                        )))
                    }
                    Err(RecvError::Closed) => {
                        return Err(ActError::Copy("the ledger copy closed".into()))
                    }
                }
            }
        };
        Ok(tokio::time::timeout(ECHO_TIMEOUT, echo)
            .await
            .unwrap_or_else(|_| {
                Err(ActError::Unreachable(format!(
                    "entry {seq} was sequenced but did not arrive within {ECHO_TIMEOUT:?}"
                )))
            }))
    }
}

/// The ledger's clock was past the action's time.
struct Stale;

async fn apply_here(
    copy: &Arc<LedgerCopy>,
    signed: SignedAction,
) -> Result<Result<Arc<Applied>, ActError>, Stale> {
    let copy = copy.clone();
    let applied = tokio::task::spawn_blocking(move || copy.apply(signed))
        .await
        .map_err(|e| e.to_string());
    match applied {
        Ok(Ok(a)) => Ok(Ok(a)),
        Ok(Err(CopyError::Refused(LedgerError::ClockWentBack { .. }))) => Err(Stale),
        Ok(Err(CopyError::Duplicate { seq })) => Ok(Err(ActError::Duplicate(seq))),
        Ok(Err(CopyError::Refused(e))) => Ok(Err(ActError::Refused(e.to_string()))),
        Ok(Err(e)) => Ok(Err(ActError::Copy(e.to_string()))),
        Err(e) => Ok(Err(ActError::Copy(e))),
    }
}

async fn open(control: &libp2p_stream::Control, peer: PeerId) -> Result<libp2p::Stream, WireError> {
    let mut control = control.clone();
    match tokio::time::timeout(OPEN_TIMEOUT, control.open_stream(peer, PROTOCOL)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(std::io::Error::other(e.to_string()).into()),
        Err(_) => {
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "opening a market stream").into())
        }
    }
}

/// The keeper's side of one stream.
async fn serve(copy: Arc<LedgerCopy>, peer: PeerId, mut stream: libp2p::Stream) {
    let result = async {
        match wire::read::<Ask>(&mut stream).await? {
            Ask::Submit { action } => {
                let answer = match apply_here(&copy, *action).await {
                    Ok(Err(ActError::Duplicate(seq))) => Answer::Submitted { seq },
                    Err(Stale) => Answer::Refused {
                        error: "the ledger's clock is past the action's time".into(),
                        stale: true,
                    },
                    Ok(Ok(applied)) => Answer::Submitted { seq: applied.seq },
                    Ok(Err(e)) => Answer::Refused {
                        error: e.to_string(),
                        stale: false,
                    },
                };
                wire::write(&mut stream, &answer).await
            }
            Ask::Follow { from } => stream_log(&copy, &mut stream, from).await,
        }
    };
    if let Err(e) = result.await {
        tracing::debug!(%peer, "market stream ended: {e}");
    }
}

/// Sends the config, then every entry from `from` on, as long as the follower listens.
async fn stream_log(
    copy: &LedgerCopy,
    stream: &mut libp2p::Stream,
    from: u64,
) -> Result<(), WireError> {
    wire::write(
        stream,
        &Answer::Config {
            config: copy.config(),
        },
    )
    .await?;
    let mut events = copy.subscribe();
    let mut next = from;
    loop {
        for action in copy.entries_from(next) {
            let entry = wire::EntryOut {
                seq: next,
                action: &action,
            };
            wire::write(stream, &entry).await?;
            next += 1;
        }
        // Wait for something new; what arrives is read from the kept log above, in order.
        match events.recv().await {
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return Ok(()),
        }
    }
}

async fn follow_forever(copy: Arc<LedgerCopy>, control: libp2p_stream::Control, keeper: PeerId) {
    loop {
        match follow(&copy, &control, keeper).await {
            Ok(()) => {}
            Err(e) => tracing::debug!(%keeper, "following the market ledger: {e}"),
        }
        tokio::time::sleep(REFOLLOW_DELAY).await;
    }
}

async fn follow(
    copy: &Arc<LedgerCopy>,
    control: &libp2p_stream::Control,
    keeper: PeerId,
) -> Result<(), String> {
    let mut stream = open(control, keeper).await.map_err(|e| e.to_string())?;
    let from = copy.entries();
    wire::write(&mut stream, &Ask::Follow { from })
        .await
        .map_err(|e| e.to_string())?;
    match wire::read::<Answer>(&mut stream)
        .await
        .map_err(|e| e.to_string())?
    {
        Answer::Config { config } if config == copy.config() => {}
        Answer::Config { config } => {
            tracing::warn!(
                "the market ledger's keeper runs another config: starting the copy over"
            );
            copy.reset(config).map_err(|e| e.to_string())?;
            return Ok(());
        }
        other => return Err(format!("expected the config, got {other:?}")),
    }
    loop {
        let (seq, action) = match wire::read::<Answer>(&mut stream)
            .await
            .map_err(|e| e.to_string())?
        {
            Answer::Entry { seq, action } => (seq, action),
            other => return Err(format!("expected an entry, got {other:?}")),
        };
        if seq < copy.entries() {
            continue;
        }
        if seq > copy.entries() {
            return Err(format!(
                "entry {seq} arrived before entry {}",
                copy.entries()
            ));
        }
        let c = copy.clone();
        tokio::task::spawn_blocking(move || c.apply(*action))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("the keeper's entry {seq} does not apply here: {e}"))?;
    }
}
