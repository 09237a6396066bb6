//! Bounded fuzz runs of everything a peer's bytes reach (bolero drives them with random
//! inputs under `cargo test`; the same targets run under libFuzzer with `cargo bolero
//! test`): nothing panics, a batch that decodes re-encodes to the same bytes, and a session
//! never holds more symbols than its limit however the bytes are cut.

mod common;

use common::KEY;
use neverust_reconcile::{Batch, CodedSymbol, Limits, Progress, Reconciler, SessionError, Symbol};

#[test]
fn fuzz_batch_decoder() {
    bolero::check!()
        .with_iterations(20_000)
        .for_each(|bytes: &[u8]| {
            let set_len = bytes.first().map_or(0, |&b| u64::from(b) << 8);
            for_width::<u64>(bytes, set_len);
            for_width::<[u8; 40]>(bytes, set_len);
        });
}

fn for_width<S: Symbol>(bytes: &[u8], set_len: u64) {
    if let Ok(batch) = Batch::<S>::decode(bytes, set_len, 64) {
        let mut again = Vec::new();
        batch.encode(set_len, &mut again);
        assert_eq!(again, bytes, "the encoding is canonical");
    }
}

/// A session fed arbitrary frames: the peer controls every byte and the cuts between them.
#[test]
fn fuzz_session_on_bytes() {
    bolero::check!()
        .with_type::<(u8, Vec<Vec<u8>>)>()
        .with_iterations(5_000)
        .for_each(|(their_len, frames)| {
            let limits = Limits {
                slack: 64,
                ..Limits::default()
            };
            let mut session = Reconciler::new(
                KEY,
                &limits,
                0..u64::from(*their_len % 16),
                u64::from(*their_len),
            );
            for frame in frames {
                let result = session.receive(frame);
                assert!(session.symbols_received() <= session.symbol_limit());
                assert!(session.bytes_received() <= session.byte_limit() + frame.len() as u64);
                if result.is_err() || matches!(result, Ok(Progress::Done(_))) {
                    assert_eq!(session.receive(frame), Err(SessionError::Ended));
                    break;
                }
            }
        });
}

/// Well-formed batches of hostile symbols: small sums so that cells peel, checksums right
/// or wrong, any counts. This reaches the peeling loop, which bytes rarely do; a peer that
/// makes it peel forever must be stopped as inconsistent.
#[test]
fn fuzz_session_on_symbols() {
    bolero::check!()
        .with_type::<(u8, Vec<Vec<(u8, bool, i8)>>)>()
        .with_iterations(5_000)
        .for_each(|(ours, batches)| {
            let limits = Limits {
                slack: 64,
                ..Limits::default()
            };
            let mut session = Reconciler::new(KEY, &limits, 0..u64::from(*ours % 16), 16);
            let mut next = 0;
            for cells in batches {
                let symbols: Vec<CodedSymbol<u64>> = cells
                    .iter()
                    .map(|&(sum, honest, count)| {
                        let sum = u64::from(sum % 32);
                        let checksum = if honest {
                            KEY.checksum(&sum)
                        } else {
                            u64::from(count as u8)
                        };
                        CodedSymbol {
                            sum,
                            checksum,
                            count: i64::from(count % 3),
                        }
                    })
                    .collect();
                let n = symbols.len() as u64;
                let result = session.receive_batch(Batch {
                    first_index: next,
                    symbols,
                });
                next += n;
                assert!(session.symbols_received() <= session.symbol_limit());
                if let Ok(Progress::Done(d)) = &result {
                    let peeled = (d.ours_only.len() + d.theirs_only.len()) as u64;
                    assert!(peeled <= session.symbols_received());
                }
                if !matches!(result, Ok(Progress::NeedMore { .. })) {
                    break;
                }
            }
        });
}
