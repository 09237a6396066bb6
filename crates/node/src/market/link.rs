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

use super::ledger_copy::{CopyError, LedgerCopy};
use super::wire::{self, Answer, Ask, WireError, PROTOCOL};

/// How long an action the keeper accepted may take to come back through the follow stream.
const ECHO_TIMEOUT: Duration = Duration::from_secs(30);
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two submissions of one action.
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

    /// Signs `action` and has it sequenced; returns once this node's copy holds it, with
    /// what it did.
    pub async fn act(&self, action: Action) -> Result<Outcome, ActError> {
        let signed = SignedAction::sign(&self.key, unix_now(), action);
        match self.keeper_peer().await? {
            None => self
                .copy
                .blocking(move |c| c.apply(signed))
                .await
                .map(|a| a.outcome.clone())
                .map_err(|e| match e {
                    CopyError::Refused(e) => ActError::Refused(e.to_string()),
                    e => ActError::Copy(e.to_string()),
                }),
            Some(peer) => self.submit(peer, signed).await,
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

    async fn submit(&self, keeper: PeerId, signed: SignedAction) -> Result<Outcome, ActError> {
        let line = signed.to_json();
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
                wire::write(&mut stream, &Ask::Submit).await?;
                wire::write_line(&mut stream, &line).await?;
                wire::read::<Answer>(&mut stream).await
            };
            match answer.await {
                Ok(Answer::Submitted { seq }) => break seq,
                Ok(Answer::Refused { error }) => return Err(ActError::Refused(error)),
                Ok(other) => {
                    return Err(ActError::Unreachable(format!(
                        "unexpected answer {other:?}"
                    )))
                }
                Err(_) if attempt < SUBMIT_ATTEMPTS => {
                    // Spread out, so the parties whose streams were dropped together do
                    // not arrive together again.
                    let jitter = Duration::from_millis(rand::random::<u64>() % 100);
                    let backoff = (RESUBMIT_DELAY * attempt).min(BACKOFF_CAP);
                    tokio::time::sleep(backoff + jitter).await
                }
                Err(e) => return Err(ActError::Unreachable(e.to_string())),
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
        tokio::time::timeout(ECHO_TIMEOUT, echo)
            .await
            .unwrap_or_else(|_| {
                Err(ActError::Unreachable(format!(
                    "entry {seq} was sequenced but did not arrive within {ECHO_TIMEOUT:?}"
                )))
            })
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
            Ask::Submit => {
                let line = wire::read_line(&mut stream).await?;
                let answer = match copy.blocking(move |c| c.apply_line(line)).await {
                    Ok(applied) => Answer::Submitted { seq: applied.seq },
                    // Sent again after a dropped stream: it is that entry.
                    Err(CopyError::Refused(LedgerError::Replayed { seq })) => {
                        Answer::Submitted { seq }
                    }
                    Err(e) => Answer::Refused {
                        error: e.to_string(),
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

/// Lines read from the log at a time for a follower.
const LINES_PER_READ: usize = 32;

/// Sends the config, then every entry from `from` on, as long as the follower listens.
async fn stream_log(
    copy: &Arc<LedgerCopy>,
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
        // Subscribed before reading, so nothing applied meanwhile passes unheard.
        while next < copy.entries() {
            let lines = copy
                .blocking(move |c| c.lines_from(next, LINES_PER_READ))
                .await
                .map_err(std::io::Error::other)?;
            for line in lines {
                wire::write_entry(stream, next, &line).await?;
                next += 1;
            }
        }
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
        let (seq, line) = wire::read_entry(&mut stream)
            .await
            .map_err(|e| e.to_string())?;
        if seq < copy.entries() {
            continue;
        }
        if seq > copy.entries() {
            return Err(format!(
                "entry {seq} arrived before entry {}",
                copy.entries()
            ));
        }
        copy.blocking(move |c| c.apply_line(line))
            .await
            .map_err(|e| format!("the keeper's entry {seq} does not apply here: {e}"))?;
    }
}
