//! Framing on a blockexc stream: each message is an unsigned-varint length prefix and a
//! protobuf body. The length is checked against the cap before any body byte is read, so a
//! peer announcing a huge message costs us nothing.

use bytes::{Bytes, BytesMut};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::message::{Message, WireError, MAX_MESSAGE_SIZE};

/// Reads one framed body; `Ok(None)` on a clean end of stream between messages. The
/// prefix is read a byte at a time (nothing past it may be taken from the stream) and
/// decoded by `unsigned-varint`, which also refuses overlong and non-minimal prefixes.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<Bytes>, WireError> {
    let mut prefix = [0u8; 10];
    for i in 0..prefix.len() {
        if r.read(&mut prefix[i..=i]).await? == 0 {
            if i == 0 {
                return Ok(None);
            }
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        if prefix[i] & 0x80 == 0 {
            let (len, _) = unsigned_varint::decode::u64(&prefix[..=i])
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            if len > max as u64 {
                return Err(WireError::TooLarge { len, max });
            }
            let mut buf = BytesMut::zeroed(len as usize);
            r.read_exact(&mut buf).await?;
            return Ok(Some(buf.freeze()));
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "length prefix overflows u64",
    )
    .into())
}

pub async fn read_message<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Message>, WireError> {
    match read_frame(r, MAX_MESSAGE_SIZE).await? {
        Some(body) => Message::decode(body).map(Some),
        None => Ok(None),
    }
}

/// A buffer holding the varint prefix for a body of `len` bytes, with room for `extra` more.
pub(crate) fn length_prefix(len: usize, extra: usize) -> Vec<u8> {
    let mut buf = unsigned_varint::encode::usize_buffer();
    let prefix = unsigned_varint::encode::usize(len, &mut buf);
    let mut out = Vec::with_capacity(prefix.len() + extra);
    out.extend_from_slice(prefix);
    out
}

/// The bytes a frame of a `body_len`-byte body takes on the wire, its prefix included.
pub fn framed_len(body_len: usize) -> u64 {
    let mut buf = unsigned_varint::encode::usize_buffer();
    (unsigned_varint::encode::usize(body_len, &mut buf).len() + body_len) as u64
}

/// Frames raw body bytes (tests and tools; the engine frames messages with
/// [`Message::encode_framed`]).
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = length_prefix(body.len(), body.len());
    out.extend_from_slice(body);
    out
}

/// Prefix and body go out in one write so that a small message is one transport frame.
pub async fn write_message<W: AsyncWrite + Unpin>(
    w: &mut W,
    msg: &Message,
) -> Result<usize, WireError> {
    let framed = msg.encode_framed();
    w.write_all(&framed).await?;
    w.flush().await?;
    Ok(framed.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;

    #[test]
    fn frames_round_trip_and_end_cleanly() {
        let mut bytes = frame(b"hello");
        bytes.extend(frame(b""));
        bytes.extend(frame(&[7u8; 300]));
        let mut r = Cursor::new(bytes);
        block_on(async {
            assert_eq!(
                &read_frame(&mut r, 1000).await.unwrap().unwrap()[..],
                b"hello"
            );
            assert!(read_frame(&mut r, 1000).await.unwrap().unwrap().is_empty());
            assert_eq!(read_frame(&mut r, 1000).await.unwrap().unwrap().len(), 300);
            assert!(read_frame(&mut r, 1000).await.unwrap().is_none());
        });
    }

    #[test]
    fn framed_messages_are_the_prefixed_body() {
        let msg = Message {
            pending_bytes: 300,
            account: vec![1; 200],
            ..Message::default()
        };
        assert_eq!(msg.encode_framed(), frame(&msg.encode()));
        let mut r = Cursor::new(msg.encode_framed());
        let body = block_on(read_frame(&mut r, 1000)).unwrap().unwrap();
        assert_eq!(Message::decode(body).unwrap(), msg);
    }

    #[test]
    fn oversized_and_truncated_frames_are_errors() {
        block_on(async {
            let mut r = Cursor::new(frame(&[0u8; 2000]));
            assert!(matches!(
                read_frame(&mut r, 1000).await,
                Err(WireError::TooLarge { len: 2000, .. })
            ));
            let mut cut = frame(&[1u8; 100]);
            cut.truncate(50);
            assert!(read_frame(&mut Cursor::new(cut), 1000).await.is_err());
            let endless = vec![0xffu8; 11];
            assert!(read_frame(&mut Cursor::new(endless), 1000).await.is_err());
        });
    }
}
