//! What is reconciled: items of fixed width, the keyed checksum that tells a pure coded
//! symbol from a mixed one, and the coded symbol itself (an XOR sum, a checksum, a count).
//!
//! Three kinds of item fit the node: a block index within one dataset (`u64`: the tree is
//! common to both sides, so the index alone names the block and decodes straight back to
//! it), a [`BlockKey`] (128 bits of keyed hash of tree digest and index: blocks across
//! datasets at 16 bytes a symbol, but a key the peer has must be looked up on its side),
//! and raw bytes (`[u8; 40]` holds tree digest and index whole, decodable on both sides at
//! 40 bytes a symbol). Items must be distinct within a set: the encoder removes repeats.

use siphasher::sip::SipHasher13;
use siphasher::sip128::SipHasher13 as SipHasher13x128;

/// An item of a reconciled set: a fixed number of bytes, XOR-able.
pub trait Symbol: Copy + Eq + Ord + std::fmt::Debug {
    /// Bytes of one item on the wire, in the `sum` of a coded symbol.
    const WIDTH: usize;
    /// The item of all zero bytes, the identity of XOR.
    const ZERO: Self;
    /// The wire bytes (`WIDTH` of them; little-endian for integers).
    type Bytes: AsRef<[u8]>;

    fn xor(&mut self, other: &Self);
    fn to_bytes(&self) -> Self::Bytes;
    /// From exactly `WIDTH` bytes; callers have checked the length.
    fn from_bytes(bytes: &[u8]) -> Self;
}

impl Symbol for u64 {
    const WIDTH: usize = 8;
    const ZERO: Self = 0;
    type Bytes = [u8; 8];

    fn xor(&mut self, other: &Self) {
        *self ^= other;
    }
    fn to_bytes(&self) -> [u8; 8] {
        self.to_le_bytes()
    }
    fn from_bytes(bytes: &[u8]) -> Self {
        u64::from_le_bytes(bytes.try_into().expect("caller passes WIDTH bytes"))
    }
}

impl Symbol for u128 {
    const WIDTH: usize = 16;
    const ZERO: Self = 0;
    type Bytes = [u8; 16];

    fn xor(&mut self, other: &Self) {
        *self ^= other;
    }
    fn to_bytes(&self) -> [u8; 16] {
        self.to_le_bytes()
    }
    fn from_bytes(bytes: &[u8]) -> Self {
        u128::from_le_bytes(bytes.try_into().expect("caller passes WIDTH bytes"))
    }
}

impl<const N: usize> Symbol for [u8; N] {
    const WIDTH: usize = N;
    const ZERO: Self = [0; N];
    type Bytes = [u8; N];

    fn xor(&mut self, other: &Self) {
        for (a, b) in self.iter_mut().zip(other) {
            *a ^= b;
        }
    }
    fn to_bytes(&self) -> [u8; N] {
        *self
    }
    fn from_bytes(bytes: &[u8]) -> Self {
        bytes.try_into().expect("caller passes WIDTH bytes")
    }
}

/// A block of some dataset, as 128 bits of keyed SipHash-1-3 of (tree digest, index).
/// Collisions among 10^6 blocks have odds near 2^-88; an outsider who does not know the
/// key cannot aim for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockKey(pub u128);

impl BlockKey {
    pub fn derive(key: &HashKey, tree_digest: &[u8; 32], index: u64) -> Self {
        let mut bytes = [0u8; 40];
        bytes[..32].copy_from_slice(tree_digest);
        bytes[32..].copy_from_slice(&index.to_le_bytes());
        BlockKey(SipHasher13x128::new_with_key(&key.0).hash(&bytes).as_u128())
    }
}

impl Symbol for BlockKey {
    const WIDTH: usize = 16;
    const ZERO: Self = BlockKey(0);
    type Bytes = [u8; 16];

    fn xor(&mut self, other: &Self) {
        self.0 ^= other.0;
    }
    fn to_bytes(&self) -> [u8; 16] {
        self.0.to_le_bytes()
    }
    fn from_bytes(bytes: &[u8]) -> Self {
        BlockKey(u128::from_bytes(bytes))
    }
}

/// The 128-bit key both peers of a session hash with. Agreed at the session's opening (a
/// nonce from the initiator, say): a key an attacker cannot predict keeps it from choosing
/// items whose checksums collide or whose mappings pile onto the same coded symbols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HashKey(pub [u8; 16]);

impl HashKey {
    /// The checksum of an item: keyed SipHash-1-3 of its wire bytes. It also seeds the
    /// item's mapping to coded symbols, as in the paper's reference code.
    pub fn checksum<S: Symbol>(&self, item: &S) -> u64 {
        SipHasher13::new_with_key(&self.0).hash(item.to_bytes().as_ref())
    }
}

/// One cell of the rateless IBLT: the XOR of the items mapped to it, the XOR of their
/// checksums, and how many there are (in a difference: ours count -1, theirs +1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodedSymbol<S> {
    pub sum: S,
    pub checksum: u64,
    pub count: i64,
}

impl<S: Symbol> CodedSymbol<S> {
    pub const ZERO: Self = CodedSymbol {
        sum: S::ZERO,
        checksum: 0,
        count: 0,
    };

    /// Adds (`sign` 1) or removes (`sign` -1) one item. Counts wrap rather than panic: a
    /// peer chooses them, and a wrapped count is just a symbol that never peels.
    pub(crate) fn add(&mut self, item: &S, checksum: u64, sign: i64) {
        self.sum.xor(item);
        self.checksum ^= checksum;
        self.count = self.count.wrapping_add(sign);
    }

    pub(crate) fn subtract(&mut self, other: &Self) {
        self.sum.xor(&other.sum);
        self.checksum ^= other.checksum;
        self.count = self.count.wrapping_sub(other.count);
    }

    pub fn is_zero(&self) -> bool {
        self.count == 0 && self.checksum == 0 && self.sum == S::ZERO
    }

    /// A symbol holding exactly one item (count ±1 and the checksum of the sum matches).
    pub(crate) fn is_pure(&self, key: &HashKey) -> bool {
        (self.count == 1 || self.count == -1) && key.checksum(&self.sum) == self.checksum
    }
}
