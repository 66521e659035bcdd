//! A multimap from 64-bit keys to record slots, built for millions of entries and kept up to
//! date one record at a time.
//!
//! The bulk part is one sorted array of packed entries, eight bytes each: the key's top 32 bits
//! above the slot. Sorting the packed values orders them by key, so a directory over the key's
//! top bits finds a key's entries in one step. Later insertions go to a small hash map.
//!
//! Look-ups compare the top 32 bits of the key only, and entries are never removed one by one:
//! a look-up may return slots of other keys (rarely) or of records that have since changed or
//! gone. Every caller verifies what it gets against the record itself. `merge` folds the hash
//! map into the array and drops entries of records that are gone.

use rayon::prelude::*;

use super::hash::PremixedMap;

pub(crate) struct KeyIndex {
    /// Directory: entries of directory bucket `b` are `entries[dir[b]..dir[b + 1]]`.
    dir: Vec<u32>,
    dir_shift: u32,
    entries: Vec<u64>,
    delta: PremixedMap<Vec<u32>>,
    delta_len: usize,
}

impl Default for KeyIndex {
    fn default() -> Self {
        KeyIndex::from_entries(Vec::new())
    }
}

#[inline]
fn tag(key: u64) -> u32 {
    (key >> 32) as u32
}

#[inline]
fn pack(key: u64, slot: u32) -> u64 {
    (key & 0xFFFF_FFFF_0000_0000) | u64::from(slot)
}

impl KeyIndex {
    /// Builds from packed entries (see [`KeyIndex::entry`]); sorts them on all cores.
    pub(crate) fn from_entries(mut entries: Vec<u64>) -> KeyIndex {
        entries.par_sort_unstable();
        entries.dedup();
        entries.shrink_to_fit();
        let bits = ((entries.len() / 2)
            .max(256)
            .next_power_of_two()
            .trailing_zeros())
        .min(28);
        let dir_shift = 64 - bits;
        let nbuckets = 1usize << bits;
        let mut dir = vec![0u32; nbuckets + 1];
        for &e in &entries {
            dir[(e >> dir_shift) as usize + 1] += 1;
        }
        for i in 0..nbuckets {
            dir[i + 1] += dir[i];
        }
        KeyIndex {
            dir,
            dir_shift,
            entries,
            delta: PremixedMap::default(),
            delta_len: 0,
        }
    }

    /// The packed form of a (key, slot) entry.
    #[inline]
    pub(crate) fn entry(key: u64, slot: u32) -> u64 {
        pack(key, slot)
    }

    /// Calls `f` with every slot stored under `key` (possibly stale, possibly repeated).
    #[inline]
    pub(crate) fn for_each(&self, key: u64, mut f: impl FnMut(u32)) {
        let b = (key >> self.dir_shift) as usize;
        let (lo, hi) = (self.dir[b] as usize, self.dir[b + 1] as usize);
        let want = tag(key);
        let bucket = &self.entries[lo..hi];
        let start = bucket.partition_point(|&e| ((e >> 32) as u32) < want);
        for &e in &bucket[start..] {
            if (e >> 32) as u32 != want {
                break;
            }
            f(e as u32);
        }
        if !self.delta.is_empty()
            && let Some(v) = self.delta.get(&u64::from(want))
        {
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
        let v = self.delta.entry(u64::from(tag(key))).or_default();
        if !v.contains(&slot) {
            v.push(slot);
            self.delta_len += 1;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len() + self.delta_len
    }

    /// Whether the hash-map part has grown enough that folding it into the array pays.
    pub(crate) fn wants_merge(&self) -> bool {
        self.delta_len > 65_536 && self.delta_len > self.entries.len() / 4
    }

    /// Folds the hash-map part into the array, keeping only entries whose slot `keep` accepts.
    pub(crate) fn merge(&mut self, keep: impl Fn(u32) -> bool + Sync) {
        let mut entries: Vec<u64> = std::mem::take(&mut self.entries)
            .into_par_iter()
            .filter(|&e| keep(e as u32))
            .collect();
        for (t, vs) in &self.delta {
            for &v in vs {
                if keep(v) {
                    entries.push((t << 32) | u64::from(v));
                }
            }
        }
        *self = KeyIndex::from_entries(entries);
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.dir.len() * 4 + self.entries.len() * 8 + self.delta_len * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(ix: &KeyIndex, k: u64) -> Vec<u32> {
        ix.slots(&[k])
    }

    #[test]
    fn given_bulk_and_later_inserts_then_lookups_see_both() {
        let k1 = 0x0123_4567_89AB_CDEF;
        let k2 = u64::MAX;
        let k3 = 7 << 60;
        let mut ix = KeyIndex::from_entries(vec![
            KeyIndex::entry(k1, 10),
            KeyIndex::entry(k2, 11),
            KeyIndex::entry(k1, 12),
            KeyIndex::entry(k3, 13),
        ]);
        ix.insert(k1, 14);
        ix.insert(99 << 40, 15);
        assert_eq!(all(&ix, k1), vec![10, 12, 14]);
        assert_eq!(all(&ix, k2), vec![11]);
        assert_eq!(all(&ix, 99 << 40), vec![15]);
        assert_eq!(all(&ix, 5 << 50), Vec::<u32>::new());
        ix.merge(|v| v != 12);
        assert_eq!(all(&ix, k1), vec![10, 14]);
        assert_eq!(all(&ix, 99 << 40), vec![15]);
    }

    #[test]
    fn given_many_keys_then_each_finds_its_own() {
        let keys: Vec<u64> = (0..10_000u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        let ix = KeyIndex::from_entries(
            keys.iter()
                .enumerate()
                .map(|(i, &k)| KeyIndex::entry(k, i as u32))
                .collect(),
        );
        for (i, &k) in keys.iter().enumerate() {
            assert!(all(&ix, k).contains(&(i as u32)));
        }
    }
}
