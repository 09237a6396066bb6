//! `/neverust/market/1.0.0`: how nodes reach the market's ledger. One question per stream
//! (a follow keeps its stream and gets every entry as it is sequenced); frames are a u32
//! big-endian length and a JSON body, the same JSON the actions are signed in.
//!
//! Everything a party does travels as a [`SignedAction`]: the ledger's keeper orders them
//! but cannot forge one, and every follower checks each signature and rule again.

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::StreamProtocol;
use neverust_market::ledger::{MarketConfig, SignedAction};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/neverust/market/1.0.0");

/// A fill or a proof carries 5 sampled 64 KiB blocks, hex-encoded: about 700 KB.
const MAX_FRAME: usize = 8 << 20;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Ask {
    /// Sequence this action (the keeper answers `Submitted` or `Refused`).
    Submit { action: Box<SignedAction> },
    /// Send the config, then every entry from `from` on, as they come.
    Follow { from: u64 },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Answer {
    Submitted {
        seq: u64,
    },
    /// Why the ledger refused the action; `stale` when only its time was behind the
    /// ledger's (signing again with a later time can succeed).
    Refused {
        error: String,
        stale: bool,
    },
    Config {
        config: MarketConfig,
    },
    Entry {
        seq: u64,
        action: Box<SignedAction>,
    },
}

/// [`Answer::Entry`] as the keeper writes it: the entry borrowed from its log rather than
/// copied for each follower (a proof is about 700 KB).
#[derive(Serialize)]
#[serde(tag = "type", rename = "entry")]
pub struct EntryOut<'a> {
    pub seq: u64,
    pub action: &'a SignedAction,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("market stream: {0}")]
    Io(#[from] std::io::Error),
    #[error("market frame of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("market frame does not decode: {0}")]
    Decode(#[from] serde_json::Error),
}

pub async fn write<T: Serialize>(
    w: &mut (impl futures::AsyncWrite + Unpin),
    msg: &T,
) -> Result<(), WireError> {
    let body = serde_json::to_vec(msg)?;
    if body.len() > MAX_FRAME {
        return Err(WireError::TooLarge(body.len()));
    }
    w.write_all(&(body.len() as u32).to_be_bytes()).await?;
    w.write_all(&body).await?;
    w.flush().await?;
    Ok(())
}

pub async fn read<T: DeserializeOwned>(
    r: &mut (impl futures::AsyncRead + Unpin),
) -> Result<T, WireError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(serde_json::from_slice(&body)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;
    use neverust_market::ledger::Action;

    #[tokio::test]
    async fn frames_round_trip_and_refuse_oversize() {
        let key = Keypair::generate_ed25519();
        let ask = Ask::Submit {
            action: Box::new(SignedAction::sign(&key, 7, Action::Deposit { amount: 5 })),
        };
        let mut buf = Vec::new();
        write(&mut buf, &ask).await.unwrap();
        let back: Ask = read(&mut buf.as_slice()).await.unwrap();
        let Ask::Submit { action } = back else {
            panic!("{back:?}")
        };
        assert!(action.verify().is_ok(), "the signature survives the wire");

        let entry = SignedAction::sign(&key, 8, Action::Deposit { amount: 1 });
        let mut buf = Vec::new();
        write(
            &mut buf,
            &EntryOut {
                seq: 3,
                action: &entry,
            },
        )
        .await
        .unwrap();
        match read::<Answer>(&mut buf.as_slice()).await.unwrap() {
            Answer::Entry { seq, action } => assert_eq!((seq, *action), (3, entry)),
            other => panic!("a borrowed entry reads as an entry: {other:?}"),
        }

        let mut huge = ((MAX_FRAME + 1) as u32).to_be_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        let err = read::<Ask>(&mut huge.as_slice()).await.unwrap_err();
        assert!(matches!(err, WireError::TooLarge(_)), "{err}");
    }
}
