//! A multimap from 64-bit keys to record slots, built for a million records and kept up to date
//! one record at a time.
//!
//! The bulk part is a bucketed array (counting sort by the key's top bits): 12 bytes an entry, one
//! cache line a look-up. Later insertions go to a small hash map. Entries are never removed one
//! by one: a look-up may return slots whose record has since changed or gone, and every caller
//! verifies what it gets against the record itself. `rebuild` drops such stale entries.

use super::hash::PremixedMap;

pub(crate) struct KeyIndex {
    shift: u32,
    dir: Vec<u32>,
    keys: Vec<u64>,
    vals: Vec<u32>,
    delta: PremixedMap<Vec<u32>>,
    delta_len: usize,
}

impl Default for KeyIndex {
    fn default() -> Self {
        KeyIndex::build(Vec::new())
    }
}

impl KeyIndex {
    /// Builds from (key, slot) pairs. Duplicated pairs are harmless (callers dedup slots).
    pub(crate) fn build(pairs: Vec<(u64, u32)>) -> KeyIndex {
        let bits = (pairs.len().max(1024).next_power_of_two().trailing_zeros()).min(30);
        let shift = 64 - bits;
        let nbuckets = 1usize << bits;
        let mut dir = vec![0u32; nbuckets + 1];
        for &(k, _) in &pairs {
            dir[(k >> shift) as usize + 1] += 1;
        }
        for i in 0..nbuckets {
            dir[i + 1] += dir[i];
        }
        let mut fill: Vec<u32> = dir[..nbuckets].to_vec();
        let mut keys = vec![0u64; pairs.len()];
        let mut vals = vec![0u32; pairs.len()];
        for (k, v) in pairs {
            let b = (k >> shift) as usize;
            let at = fill[b] as usize;
            keys[at] = k;
            vals[at] = v;
            fill[b] += 1;
        }
        KeyIndex {
            shift,
            dir,
            keys,
            vals,
            delta: PremixedMap::default(),
            delta_len: 0,
        }
    }

    /// Calls `f` with every slot stored under `key` (possibly stale, possibly repeated).
    #[inline]
    pub(crate) fn for_each(&self, key: u64, mut f: impl FnMut(u32)) {
        let b = (key >> self.shift) as usize;
        let (lo, hi) = (self.dir[b] as usize, self.dir[b + 1] as usize);
        for i in lo..hi {
            if self.keys[i] == key {
                f(self.vals[i]);
            }
        }
        if let Some(v) = self.delta.get(&key) {
            for &s in v {
                f(s);
            }
        }
    }

    /// Every slot stored under any of `keys`, sorted, each once.
    pub(crate) fn slots(&self, keys: &[u64]) -> Vec<u32> {
        let mut out = Vec::new();
        for &k in keys {
            self.for_each(k, |s| out.push(s));
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    pub(crate) fn insert(&mut self, key: u64, slot: u32) {
        let v = self.delta.entry(key).or_default();
        if !v.contains(&slot) {
            v.push(slot);
            self.delta_len += 1;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len() + self.delta_len
    }

    /// Whether the hash-map part has grown enough that folding it into the array pays.
    pub(crate) fn wants_merge(&self) -> bool {
        self.delta_len > 65_536 && self.delta_len > self.keys.len() / 4
    }

    /// Folds the hash-map part into the array, keeping only entries `keep` accepts.
    pub(crate) fn merge(&mut self, keep: impl Fn(u64, u32) -> bool) {
        let mut pairs: Vec<(u64, u32)> = Vec::with_capacity(self.len());
        for (k, v) in self.keys.iter().zip(&self.vals) {
            if keep(*k, *v) {
                pairs.push((*k, *v));
            }
        }
        for (k, vs) in &self.delta {
            for v in vs {
                if keep(*k, *v) {
                    pairs.push((*k, *v));
                }
            }
        }
        *self = KeyIndex::build(pairs);
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.dir.len() * 4 + self.keys.len() * 8 + self.vals.len() * 4 + self.delta_len * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(ix: &KeyIndex, k: u64) -> Vec<u32> {
        let mut v = Vec::new();
        ix.for_each(k, |s| v.push(s));
        v.sort();
        v
    }

    #[test]
    fn given_bulk_and_later_inserts_then_lookups_see_both() {
        let mut ix = KeyIndex::build(vec![(1, 10), (u64::MAX, 11), (1, 12), (7 << 60, 13)]);
        ix.insert(1, 14);
        ix.insert(99, 15);
        assert_eq!(all(&ix, 1), vec![10, 12, 14]);
        assert_eq!(all(&ix, u64::MAX), vec![11]);
        assert_eq!(all(&ix, 99), vec![15]);
        assert_eq!(all(&ix, 5), Vec::<u32>::new());
        ix.merge(|_, v| v != 12);
        assert_eq!(all(&ix, 1), vec![10, 14]);
        assert_eq!(all(&ix, 99), vec![15]);
    }
}
