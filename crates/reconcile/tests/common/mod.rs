//! Helpers shared by the tests and the bench: sets with a known difference, and a whole
//! session run over wire bytes.
#![allow(dead_code)]

use neverust_reconcile::{
    Difference, Encoder, HashKey, Limits, Progress, Reconciler, SessionError, Symbol,
};

pub const KEY: HashKey = HashKey(*b"neverust-testkey");

/// A bijection of u64 (splitmix64's finalizer): distinct inputs give distinct items.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Two sets over a union of `n` items of which `d` differ: `ours_only` of them only in
/// ours, the rest only in theirs. Items are `item(i)` for distinct i.
pub struct Sets<S> {
    pub ours: Vec<S>,
    pub theirs: Vec<S>,
    pub ours_only: Vec<S>,
    pub theirs_only: Vec<S>,
}

pub fn sets<S: Symbol>(n: u64, d: u64, ours_only: u64, item: impl Fn(u64) -> S) -> Sets<S> {
    assert!(d <= n && ours_only <= d);
    let common = n - d;
    let a: Vec<S> = (common..common + ours_only).map(&item).collect();
    let b: Vec<S> = (common + ours_only..n).map(&item).collect();
    let mut ours: Vec<S> = (0..common).map(&item).chain(a.iter().copied()).collect();
    let mut theirs: Vec<S> = (0..common).map(&item).chain(b.iter().copied()).collect();
    // Shuffle-free but not sorted: the encoder must not rely on order.
    ours.reverse();
    let third = theirs.len() / 3;
    theirs.rotate_left(third);
    let (mut ours_only, mut theirs_only) = (a, b);
    ours_only.sort_unstable();
    theirs_only.sort_unstable();
    Sets {
        ours,
        theirs,
        ours_only,
        theirs_only,
    }
}

/// What a finished session cost.
#[derive(Debug)]
pub struct Run<S> {
    pub difference: Difference<S>,
    pub symbols: u64,
    pub bytes: u64,
}

/// The peer encodes `theirs` and streams batches of `batch(i)` symbols (i counts batches)
/// as wire bytes; we reconcile `ours` against them.
pub fn run<S: Symbol>(
    limits: &Limits,
    ours: &[S],
    theirs: &[S],
    mut batch: impl FnMut(u64) -> usize,
) -> Result<Run<S>, SessionError> {
    let mut encoder = Encoder::new(KEY, theirs.iter().copied());
    let mut session = Reconciler::new(KEY, limits, ours.iter().copied(), encoder.set_len());
    let mut buf = Vec::new();
    for i in 0.. {
        buf.clear();
        encoder.encode_next(batch(i), &mut buf);
        if let Progress::Done(difference) = session.receive(&buf)? {
            return Ok(Run {
                difference,
                symbols: session.symbols_received(),
                bytes: session.bytes_received(),
            });
        }
    }
    unreachable!()
}
