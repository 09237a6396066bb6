//! The baseline: learning which blocks a peer holds the way blockexc alone does, a
//! want-have entry per block and a presence back for each, in Archivist's wire format.
//! It runs on a stream protocol of the benchmark's own so that it answers from the same
//! sets the reconciliation sessions see (the node's engine answers from its store).

use std::sync::Arc;

use futures::io::BufReader;
use futures::{AsyncReadExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use neverust_content::Cid;
use neverust_net::blockexc::codec::{framed_len, read_frame, write_message};
use neverust_net::blockexc::{
    BlockAddress, BlockPresence, Message, Presence, WireError, MAX_MESSAGE_SIZE,
};
use neverust_net::Network;

const PROTOCOL: StreamProtocol = StreamProtocol::new("/neverust-bench/want-have/1.0.0");
/// Want-have entries per message, as a download's peer sync sends them.
const WANTS_PER_MESSAGE: usize = 4096;

/// Why asking a peer about its blocks failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlainError {
    #[error("opening a want-have stream")]
    Open(#[source] libp2p_stream::OpenStreamError),
    #[error("sending want-haves")]
    Send(#[source] WireError),
    #[error("reading presences")]
    Receive(#[source] WireError),
    #[error("the peer closed after {answered} of {asked} presences")]
    Closed { answered: usize, asked: usize },
}

/// What one side learned, and what it cost on the wire in both directions.
pub struct Asked {
    pub has: Vec<u64>,
    pub bytes_sent: u64,
    pub messages_sent: u64,
}

/// Answers want-haves from `set` (sorted) on this host.
pub fn serve(net: &Network, set: Arc<Vec<u64>>) {
    let Ok(mut incoming) = net.stream_control().accept(PROTOCOL) else {
        return;
    };
    tokio::spawn(async move {
        while let Some((_, stream)) = incoming.next().await {
            let set = set.clone();
            tokio::spawn(async move {
                if let Err(e) = answer(stream, &set).await {
                    tracing::debug!("want-have baseline: {e}");
                }
            });
        }
    });
}

async fn answer(stream: libp2p::Stream, set: &[u64]) -> Result<(), WireError> {
    let (read, mut write) = stream.split();
    let mut read = BufReader::new(read);
    while let Some(body) = read_frame(&mut read, MAX_MESSAGE_SIZE).await? {
        let msg = Message::decode(body)?;
        let presences = msg
            .wantlist
            .entries
            .into_iter()
            .filter_map(|e| {
                let BlockAddress::Leaf { index, .. } = e.address else {
                    return None;
                };
                let presence = if set.binary_search(&index).is_ok() {
                    Presence::Have
                } else {
                    Presence::DontHave
                };
                Some(BlockPresence {
                    address: e.address,
                    presence,
                    price: Vec::new(),
                })
            })
            .collect();
        let answer = Message {
            presences,
            ..Message::default()
        };
        write_message(&mut write, &answer).await?;
    }
    Ok(())
}

/// Asks `peer` about every block of `missing` (sorted); returns those it holds.
pub async fn ask(
    net: &Network,
    peer: PeerId,
    tree: Cid,
    missing: &[u64],
) -> Result<Asked, PlainError> {
    // libp2p-stream drops an inbound stream its acceptor is not ready for that instant;
    // the asker sees the stream close and asks again, as the node's sessions do.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match ask_once(net, peer, tree, missing).await {
            Err(_) if attempt < 4 => {
                tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await
            }
            result => return result,
        }
    }
}

async fn ask_once(
    net: &Network,
    peer: PeerId,
    tree: Cid,
    missing: &[u64],
) -> Result<Asked, PlainError> {
    let stream = net
        .stream_control()
        .open_stream(peer, PROTOCOL)
        .await
        .map_err(PlainError::Open)?;
    let (read, mut write) = stream.split();
    let writing = async {
        let (mut bytes, mut messages) = (0u64, 0u64);
        for chunk in missing.chunks(WANTS_PER_MESSAGE) {
            let msg = Message::want_haves(tree, chunk);
            bytes += write_message(&mut write, &msg)
                .await
                .map_err(PlainError::Send)? as u64;
            messages += 1;
        }
        Ok::<_, PlainError>((bytes, messages))
    };
    let reading = async {
        let mut read = BufReader::new(read);
        let (mut bytes, mut messages, mut answered) = (0u64, 0u64, 0usize);
        let mut has = Vec::new();
        while answered < missing.len() {
            let Some(body) = read_frame(&mut read, MAX_MESSAGE_SIZE)
                .await
                .map_err(PlainError::Receive)?
            else {
                return Err(PlainError::Closed {
                    answered,
                    asked: missing.len(),
                });
            };
            bytes += framed_len(body.len());
            messages += 1;
            let msg = Message::decode(body).map_err(PlainError::Receive)?;
            answered += msg.presences.len();
            has.extend(
                msg.presences
                    .iter()
                    .filter_map(|p| match (&p.address, p.presence) {
                        (BlockAddress::Leaf { index, .. }, Presence::Have) => Some(*index),
                        _ => None,
                    }),
            );
        }
        has.sort_unstable();
        Ok::<_, PlainError>((has, bytes, messages))
    };
    let (w, r) = futures::join!(writing, reading);
    let ((wb, wm), (has, rb, rm)) = (w?, r?);
    Ok(Asked {
        has,
        bytes_sent: wb + rb,
        messages_sent: wm + rm,
    })
}
