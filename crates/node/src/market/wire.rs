//! `/neverust/market/1.0.0`: how nodes reach the market's ledger. One question per stream
//! (a follow keeps its stream and gets every entry as it is sequenced); frames are a u32
//! big-endian length and a body: a JSON question or answer, or a signed action's line as
//! it is logged (an entry's frame starts with its u64 big-endian number). Lines travel as
//! bytes, so the keeper sends a proof on exactly as it logged it, without serializing it
//! again for each follower.
//!
//! Everything a party does travels as a [`SignedAction`]: the ledger's keeper orders them
//! but cannot forge one, and every follower checks each signature and rule again.

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::StreamProtocol;
use neverust_market::ledger::MarketConfig;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/neverust/market/1.0.0");

/// A fill or a proof carries 5 sampled 2 KiB cells, hex-encoded: about 25 KB.
const MAX_FRAME: usize = 8 << 20;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Ask {
    /// Sequence the action that follows in a [`write_line`] frame (the keeper answers
    /// `Submitted` or `Refused`).
    Submit,
    /// Send the config, then every entry from `from` on as [`write_entry`] frames, as
    /// they come.
    Follow { from: u64 },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Answer {
    Submitted {
        seq: u64,
    },
    /// Why the ledger refused the action.
    Refused {
        error: String,
    },
    Config {
        config: MarketConfig,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("market stream: {0}")]
    Io(#[from] std::io::Error),
    #[error("market frame of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("market entry frame of {0} bytes is shorter than its number")]
    Short(usize),
    #[error("market frame does not decode: {0}")]
    Decode(#[from] serde_json::Error),
}

pub async fn write<T: Serialize>(
    w: &mut (impl futures::AsyncWrite + Unpin),
    msg: &T,
) -> Result<(), WireError> {
    write_frame(w, &[&serde_json::to_vec(msg)?]).await
}

pub async fn read<T: DeserializeOwned>(
    r: &mut (impl futures::AsyncRead + Unpin),
) -> Result<T, WireError> {
    Ok(serde_json::from_slice(&read_frame(r).await?)?)
}

/// A signed action's logged line.
pub async fn write_line(
    w: &mut (impl futures::AsyncWrite + Unpin),
    line: &[u8],
) -> Result<(), WireError> {
    write_frame(w, &[line]).await
}

pub async fn read_line(r: &mut (impl futures::AsyncRead + Unpin)) -> Result<Vec<u8>, WireError> {
    read_frame(r).await
}

/// Entry `seq` of the log: its number, then its line.
pub async fn write_entry(
    w: &mut (impl futures::AsyncWrite + Unpin),
    seq: u64,
    line: &[u8],
) -> Result<(), WireError> {
    write_frame(w, &[&seq.to_be_bytes(), line]).await
}

pub async fn read_entry(
    r: &mut (impl futures::AsyncRead + Unpin),
) -> Result<(u64, Vec<u8>), WireError> {
    let mut body = read_frame(r).await?;
    if body.len() < 8 {
        return Err(WireError::Short(body.len()));
    }
    let line = body.split_off(8);
    let seq = u64::from_be_bytes(body.try_into().expect("eight bytes"));
    Ok((seq, line))
}

async fn write_frame(
    w: &mut (impl futures::AsyncWrite + Unpin),
    parts: &[&[u8]],
) -> Result<(), WireError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    w.write_all(&(len as u32).to_be_bytes()).await?;
    for part in parts {
        w.write_all(part).await?;
    }
    w.flush().await?;
    Ok(())
}

async fn read_frame(r: &mut (impl futures::AsyncRead + Unpin)) -> Result<Vec<u8>, WireError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;
    use neverust_market::ledger::{Action, SignedAction};

    #[tokio::test]
    async fn frames_round_trip_and_refuse_oversize() {
        let mut buf = Vec::new();
        write(&mut buf, &Ask::Follow { from: 4 }).await.unwrap();
        let back: Ask = read(&mut buf.as_slice()).await.unwrap();
        assert!(matches!(back, Ask::Follow { from: 4 }), "{back:?}");

        let key = Keypair::generate_ed25519();
        let entry = SignedAction::sign(&key, 8, Action::Deposit { amount: 1 });
        let mut buf = Vec::new();
        write_entry(&mut buf, 3, &entry.to_json()).await.unwrap();
        write_line(&mut buf, &entry.to_json()).await.unwrap();
        let mut r = buf.as_slice();
        let (seq, line) = read_entry(&mut r).await.unwrap();
        assert_eq!(seq, 3);
        let back = SignedAction::from_json_line(&line).unwrap();
        assert!(back.verify().is_ok(), "the signature survives the wire");
        assert_eq!(back, entry);
        assert_eq!(read_line(&mut r).await.unwrap(), entry.to_json());

        let mut short = 4u32.to_be_bytes().to_vec();
        short.extend_from_slice(b"abcd");
        let err = read_entry(&mut short.as_slice()).await.unwrap_err();
        assert!(matches!(err, WireError::Short(4)), "{err}");

        let mut huge = ((MAX_FRAME + 1) as u32).to_be_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        let err = read::<Ask>(&mut huge.as_slice()).await.unwrap_err();
        assert!(matches!(err, WireError::TooLarge(_)), "{err}");
    }
}
