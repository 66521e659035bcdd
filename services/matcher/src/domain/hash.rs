//! Stable 64-bit keys for the index.
//!
//! Every lookup key of the matcher (a web site, a normalised name, a fuzzy block, ...) is a 64-bit
//! hash of a kind tag and some text. The hash is fixed (no per-process seed), so the same input
//! gives the same keys, the same candidate order and therefore the same results on every run.

use std::hash::{BuildHasherDefault, Hasher};

const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// Kinds of keys, mixed into the hash so equal text of different kinds never collides by design.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum KeyKind {
    /// A registrable domain ("acme.co.uk").
    Site = 1,
    /// A tenant host on a shared platform ("acme.wordpress.com").
    Tenant = 2,
    /// Normalised name, tokens joined by spaces.
    Exact = 3,
    /// Normalised name without spaces.
    Compact = 4,
    /// Fuzzy key: the name without spaces, less one character (symmetric deletion).
    Delete = 7,
    /// Fuzzy block: the name without its last token.
    DropLast = 8,
    /// The rarity of a token (read by the typo rule).
    TokenCount = 9,
    /// A CRM account's identity (read by manual decisions).
    CrmId = 10,
    /// The Latin reading of a name (transliterated and folded, no spaces).
    Reading = 11,
}

/// Incremental builder of a key.
pub(crate) struct KeyHasher(u64);

impl KeyHasher {
    pub(crate) fn new(kind: KeyKind) -> Self {
        Self(K.wrapping_mul(kind as u64 + 1))
    }

    #[inline]
    fn mix(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(K).rotate_left(31);
    }

    /// Adds a part; parts are length-delimited, so ("ab","c") differs from ("a","bc").
    pub(crate) fn part(&mut self, bytes: &[u8]) -> &mut Self {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        self.mix(u64::from_le_bytes(word) ^ ((bytes.len() as u64) << 56));
        self
    }

    pub(crate) fn number(&mut self, n: u64) -> &mut Self {
        self.mix(n ^ 0xA5A5_A5A5_0000_0000);
        self
    }

    pub(crate) fn finish(&self) -> u64 {
        // splitmix64 finaliser: spreads every input bit over the whole word.
        let mut z = self.0.wrapping_add(K);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Key of a kind and one text.
pub(crate) fn key(kind: KeyKind, text: &str) -> u64 {
    KeyHasher::new(kind).part(text.as_bytes()).finish()
}

/// Hasher for maps whose keys are already well-mixed `u64` keys.
#[derive(Default, Clone, Copy)]
pub(crate) struct PremixedHasher(u64);

impl Hasher for PremixedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(K).rotate_left(5);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(K);
    }
}

pub(crate) type PremixedMap<V> =
    std::collections::HashMap<u64, V, BuildHasherDefault<PremixedHasher>>;

/// A fast, fixed hasher for string-keyed maps (ids).
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z ^ (z >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word))
                .wrapping_mul(K)
                .rotate_left(31);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(K).rotate_left(7);
        }
    }
}

pub(crate) type FastMap<K2, V> = std::collections::HashMap<K2, V, BuildHasherDefault<FastHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_kind_separated() {
        assert_eq!(key(KeyKind::Exact, "acme"), key(KeyKind::Exact, "acme"));
        assert_ne!(key(KeyKind::Exact, "acme"), key(KeyKind::Compact, "acme"));
        let a = KeyHasher::new(KeyKind::Exact)
            .part(b"ab")
            .part(b"c")
            .finish();
        let b = KeyHasher::new(KeyKind::Exact)
            .part(b"a")
            .part(b"bc")
            .finish();
        assert_ne!(a, b);
    }
}
