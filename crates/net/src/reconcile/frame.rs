//! The messages of a reconciliation session and their framing: each message is an
//! unsigned-varint length and a protobuf body, as on blockexc streams, capped before any
//! body byte is read. Block index sets that travel whole (a peer's set when it is smaller
//! than the difference could ever be, the indices a peer lacks at the end) travel as runs.

use futures::{AsyncRead, AsyncWrite, AsyncWriteExt};
use prost::Message as _;

use crate::blockexc::codec::{framed_len, length_prefix, read_frame};
use crate::blockexc::WireError;

/// The largest message either side accepts: a batch of the most symbols a session lets
/// through in one go, or a set of runs. 4 MiB holds a million scattered indices.
pub const MAX_FRAME: usize = 4 << 20;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Frame {
    #[prost(oneof = "Body", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub body: Option<Body>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Body {
    /// Initiator → responder, first.
    #[prost(message, tag = "1")]
    Open(Open),
    /// Responder → initiator, in answer to `Open`.
    #[prost(message, tag = "2")]
    Accept(Accept),
    /// Responder → initiator: a wire batch of coded symbols of its set
    /// (`neverust_reconcile::Batch`).
    #[prost(bytes = "vec", tag = "3")]
    Symbols(Vec<u8>),
    /// Responder → initiator, instead of symbols: its whole set, as runs.
    #[prost(message, tag = "4")]
    Set(Runs),
    /// Initiator → responder: send this many more symbols.
    #[prost(uint64, tag = "5")]
    More(u64),
    /// Initiator → responder, last: the difference is known.
    #[prost(message, tag = "6")]
    Done(Done),
    /// Either side: the session ends here, for this reason.
    #[prost(string, tag = "7")]
    Abort(String),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Open {
    /// The tree CID, binary, whose block indices are reconciled.
    #[prost(bytes = "vec", tag = "1")]
    pub tree: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub set_len: u64,
    /// The session's 16-byte hash key, drawn by the initiator.
    #[prost(bytes = "vec", tag = "3")]
    pub key: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Accept {
    #[prost(uint64, tag = "1")]
    pub set_len: u64,
    /// The responder is downloading this tree: it wants to hear which blocks it lacks.
    #[prost(bool, tag = "2")]
    pub wants: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Done {
    /// What the initiator holds and the responder lacks, when the responder wants it.
    #[prost(message, optional, tag = "1")]
    pub you_lack: Option<Runs>,
}

/// Sorted distinct indices as runs: `gaps[i]` is the distance from the end of run i-1 (or
/// from 0) to the start of run i, `lens[i]` its length (≥ 1). A whole dataset is one run.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Runs {
    #[prost(uint64, repeated, tag = "1")]
    pub gaps: Vec<u64>,
    #[prost(uint64, repeated, tag = "2")]
    pub lens: Vec<u64>,
}

/// Why bytes from the peer are not a set of runs.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RunsError {
    #[error("runs have {gaps} gaps and {lens} lengths")]
    Unpaired { gaps: usize, lens: usize },
    #[error("a run is empty")]
    EmptyRun,
    #[error("runs hold more than the {max} indices allowed")]
    TooMany { max: u64 },
    #[error("runs pass index 2^64")]
    Overflow,
}

impl Runs {
    /// The runs of `indices`, which must be sorted and distinct.
    pub fn of(indices: &[u64]) -> Runs {
        let mut runs = Runs::default();
        let mut end = 0u64;
        let mut i = 0;
        while i < indices.len() {
            let start = indices[i];
            let mut len = 1;
            while i + len < indices.len() && indices[i + len] == start + len as u64 {
                len += 1;
            }
            runs.gaps.push(start - end);
            runs.lens.push(len as u64);
            end = start + len as u64;
            i += len;
        }
        runs
    }

    /// The indices, at most `max` of them: a peer's runs can claim any count.
    pub fn indices(&self, max: u64) -> Result<Vec<u64>, RunsError> {
        if self.gaps.len() != self.lens.len() {
            return Err(RunsError::Unpaired {
                gaps: self.gaps.len(),
                lens: self.lens.len(),
            });
        }
        let mut total = 0u64;
        for &len in &self.lens {
            if len == 0 {
                return Err(RunsError::EmptyRun);
            }
            total = total.saturating_add(len);
            if total > max {
                return Err(RunsError::TooMany { max });
            }
        }
        let mut out = Vec::with_capacity(total as usize);
        let mut end = 0u64;
        for (&gap, &len) in self.gaps.iter().zip(&self.lens) {
            let start = end.checked_add(gap).ok_or(RunsError::Overflow)?;
            end = start.checked_add(len).ok_or(RunsError::Overflow)?;
            out.extend(start..end);
        }
        Ok(out)
    }

    /// Its size on the wire, to choose between runs and coded symbols.
    pub fn wire_len(&self) -> usize {
        self.encoded_len()
    }
}

/// Writes one framed message; returns the bytes written.
pub async fn write<W: AsyncWrite + Unpin>(w: &mut W, body: Body) -> std::io::Result<u64> {
    let frame = Frame { body: Some(body) };
    let len = frame.encoded_len();
    let mut out = length_prefix(len, len);
    frame.encode(&mut out).expect("a Vec grows as needed");
    w.write_all(&out).await?;
    w.flush().await?;
    Ok(out.len() as u64)
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("reconciliation message of {len} bytes is over the {max} byte limit")]
    TooLarge { len: u64, max: usize },
    #[error("malformed reconciliation message: {0}")]
    Malformed(#[from] prost::DecodeError),
    #[error("a reconciliation message without a body")]
    NoBody,
    #[error("reconciliation stream failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one framed message and its size on the wire; `None` when the stream ended.
pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<(Body, u64)>, FrameError> {
    let bytes = match read_frame(r, MAX_FRAME).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(None),
        Err(WireError::TooLarge { len, max }) => return Err(FrameError::TooLarge { len, max }),
        Err(WireError::Io(e)) => return Err(e.into()),
        Err(e) => return Err(std::io::Error::other(e).into()),
    };
    let wire = framed_len(bytes.len());
    let frame = Frame::decode(bytes)?;
    match frame.body {
        Some(body) => Ok(Some((body, wire))),
        None => Err(FrameError::NoBody),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn runs_round_trip(mut v in proptest::collection::vec(0u64..5000, 0..400)) {
            v.sort_unstable();
            v.dedup();
            let runs = Runs::of(&v);
            prop_assert_eq!(runs.indices(u64::MAX).unwrap(), v);
        }
    }

    #[test]
    fn a_whole_dataset_is_one_run_and_bad_runs_are_refused() {
        let all: Vec<u64> = (0..100_000).collect();
        let runs = Runs::of(&all);
        assert_eq!(
            (runs.gaps.clone(), runs.lens.clone()),
            (vec![0], vec![100_000])
        );
        assert!(runs.wire_len() < 10);
        assert_eq!(
            runs.indices(99_999),
            Err(RunsError::TooMany { max: 99_999 })
        );
        let empty = Runs {
            gaps: vec![1],
            lens: vec![0],
        };
        assert_eq!(empty.indices(10), Err(RunsError::EmptyRun));
        let unpaired = Runs {
            gaps: vec![1, 2],
            lens: vec![1],
        };
        assert!(matches!(
            unpaired.indices(10),
            Err(RunsError::Unpaired { .. })
        ));
        let overflow = Runs {
            gaps: vec![u64::MAX],
            lens: vec![2],
        };
        assert_eq!(overflow.indices(10), Err(RunsError::Overflow));
    }

    #[test]
    fn frames_round_trip_with_their_size() {
        futures::executor::block_on(async {
            let mut buf = Vec::new();
            let n = write(&mut buf, Body::More(300)).await.unwrap();
            assert_eq!(n, buf.len() as u64);
            let mut r = futures::io::Cursor::new(buf);
            let (body, wire) = read(&mut r).await.unwrap().unwrap();
            assert_eq!((body, wire), (Body::More(300), n));
            assert!(read(&mut r).await.unwrap().is_none());
        });
    }
}
