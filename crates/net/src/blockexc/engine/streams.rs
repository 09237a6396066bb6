//! Streams to and from each peer: one writer task per peer owns our outbound stream (and
//! reads it too), and whatever a peer opens to us is read until it ends.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::io::BufReader;
use futures::{AsyncReadExt, FutureExt};
use libp2p::PeerId;
use tokio::sync::mpsc;

use super::{key_of, Engine, WantEvent, OPEN_STREAM_TIMEOUT, PEER_QUEUE, PROTOCOL};
use crate::blockexc::codec::{read_message, write_message};
use crate::blockexc::message::{Message, WireError};
use crate::metrics::KindLabels;

impl Engine {
    /// Queues a message for `peer`, opening our stream to it if needed. Waits when the
    /// peer's queue is full, which is how a slow peer slows down whoever feeds it.
    pub async fn send(self: &Arc<Self>, peer: PeerId, msg: Message) {
        let mut msg = msg;
        // A second try covers a writer that died between lookup and send.
        for _ in 0..2 {
            let tx = {
                let mut senders = self.senders.lock().expect("senders lock");
                match senders.get(&peer) {
                    Some(tx) if !tx.is_closed() => tx.clone(),
                    _ => {
                        let (tx, rx) = mpsc::channel(PEER_QUEUE);
                        senders.insert(peer, tx.clone());
                        tokio::spawn(self.clone().write_loop(peer, rx, tx.clone()));
                        tx
                    }
                }
            };
            match tx.send(msg).await {
                Ok(()) => return,
                Err(mpsc::error::SendError(back)) => msg = back,
            }
        }
    }

    async fn write_loop(
        self: Arc<Self>,
        peer: PeerId,
        mut rx: mpsc::Receiver<Message>,
        me: mpsc::Sender<Message>,
    ) {
        // A message whose write failed. Two connections to one peer can exist (both dialled
        // at once) and one can close under a stream while the other stays up: the message
        // is written again on a new stream, or the peer would never get it (a delivery
        // lost that way leaves the asker waiting out its whole timeout).
        let mut unsent: Option<Message> = None;
        for _ in 0..2 {
            let Some(stream) = self.open_stream(peer).await else {
                break;
            };
            let (read, mut write) = stream.split();
            tokio::spawn(self.clone().read_loop(peer, Box::new(read)));
            loop {
                let msg = match unsent.take() {
                    Some(m) => m,
                    None => match rx.recv().await {
                        Some(m) => m,
                        None => {
                            self.drop_sender(peer, &me);
                            return;
                        }
                    },
                };
                match write_message(&mut write, &msg).await {
                    Ok(n) => {
                        let kind = if !msg.payload.is_empty() {
                            "blocks"
                        } else if !msg.presences.is_empty() {
                            "presences"
                        } else {
                            "wantlist"
                        };
                        self.metrics
                            .blockexc_bytes_sent
                            .get_or_create(&KindLabels { kind })
                            .inc_by(n as u64);
                    }
                    Err(e) => {
                        tracing::debug!(%peer, "blockexc write failed: {e}");
                        unsent = Some(msg);
                        break;
                    }
                }
            }
        }
        // What was written (and queued behind it) is lost with the stream: whoever waits on
        // this peer must hear it, or it waits for its timeout.
        self.drop_sender(peer, &me);
        self.broadcast(WantEvent::PeerGone(peer));
    }

    async fn open_stream(&self, peer: PeerId) -> Option<libp2p::Stream> {
        let mut control = self.control.lock().expect("control lock").clone();
        match tokio::time::timeout(OPEN_STREAM_TIMEOUT, control.open_stream(peer, PROTOCOL)).await {
            Ok(Ok(s)) => Some(s),
            Ok(Err(e)) => {
                tracing::debug!(%peer, "cannot open a blockexc stream: {e}");
                None
            }
            Err(_) => {
                tracing::debug!(%peer, "opening a blockexc stream timed out");
                None
            }
        }
    }

    fn drop_sender(&self, peer: PeerId, me: &mpsc::Sender<Message>) {
        let mut senders = self.senders.lock().expect("senders lock");
        if senders.get(&peer).is_some_and(|tx| tx.same_channel(me)) {
            senders.remove(&peer);
        }
    }

    /// Boxed: reading leads to serving, serving to opening a stream, and that to reading
    /// again, a cycle the compiler can only prove `Send` through a named type.
    pub(super) fn read_loop(
        self: Arc<Self>,
        peer: PeerId,
        stream: Box<dyn futures::AsyncRead + Send + Unpin>,
    ) -> BoxFuture<'static, ()> {
        async move {
            self.read_messages(peer, stream).await;
            // Answers the peer would have sent on this stream will not come: whoever waits
            // on it asks again (the peer answers on a new stream) instead of timing out.
            self.broadcast(WantEvent::PeerGone(peer));
        }
        .boxed()
    }

    async fn read_messages(
        self: &Arc<Self>,
        peer: PeerId,
        stream: Box<dyn futures::AsyncRead + Send + Unpin>,
    ) {
        let mut r = BufReader::with_capacity(256 * 1024, stream);
        loop {
            match read_message(&mut r).await {
                Ok(Some(msg)) => self.handle(peer, msg).await,
                Ok(None) => return,
                // The frame was read whole, so the stream is still in step: go on reading.
                Err(
                    e
                    @ (WireError::Protobuf(_) | WireError::BadCid { .. } | WireError::BadPrice(_)),
                ) => {
                    tracing::debug!(%peer, "{e}");
                    self.offence(peer, "malformed");
                }
                Err(e @ WireError::TooLarge { .. }) => {
                    tracing::debug!(%peer, "{e}");
                    self.offence(peer, "oversize");
                    return;
                }
                Err(e) => {
                    tracing::debug!(%peer, "blockexc read ended: {e}");
                    return;
                }
            }
        }
    }

    async fn handle(self: &Arc<Self>, peer: PeerId, msg: Message) {
        for p in msg.presences {
            let key = *key_of(&p.address);
            self.route(
                key,
                WantEvent::Presence {
                    peer,
                    address: p.address,
                    presence: p.presence,
                },
            );
        }
        let accepted: u64 = msg
            .payload
            .into_iter()
            .map(|d| self.on_delivery(peer, d))
            .sum();
        if accepted > 0 {
            // Ledger series are labelled by peer id, whose text form costs an encoding:
            // once per message, not once per block.
            let account = self.ledgers.lock().expect("ledgers lock").account(&peer);
            self.export_account(peer, account);
        }
        if !msg.wantlist.entries.is_empty() {
            // Served beside the reader, never inside it: a reader that waits to send stops
            // reading, and when two peers serve each other at once, each waits on the
            // other's reader, for good (the 50-node stress scenario found it).
            let me = self.clone();
            let entries = msg.wantlist.entries;
            tokio::spawn(async move { me.serve(peer, entries).await });
        }
    }
}
