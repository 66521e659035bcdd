//! A multimap from 64-bit keys to record slots, built for millions of entries and kept up to
//! date one record at a time.
//!
//! The bulk part is one sorted array of packed entries, eight bytes each: the key's top 32 bits
//! above the slot. Sorting the packed values orders them by key, so a directory over the key's
//! top bits finds a key's entries in one step. Later insertions go to a small hash map of
//! linked lists (no allocation per key).
//!
//! Look-ups compare the top 32 bits of the key only, and entries are never removed one by one:
//! a look-up may return slots of other keys (rarely) or of records that have since changed or
//! gone. Every caller verifies what it gets against the record itself. `merge` folds the hash
//! map into the array and drops entries of records that are gone.
//!
//! # Building
//!
//! The array is built by a two-level radix sort rather than a comparison sort: the directory
//! already asks for the entries grouped by their top bits, and a bucket holds one or two entries
//! on average. Each piece of the input is grouped by the top 8 bits in place, on all cores; then
//! each of the 256 partitions gathers its entries from every piece straight into its directory
//! buckets, on all cores (a partition is a few hundred kilobytes to a few megabytes, so the
//! scatter stays in cache), and the few buckets with more than one entry are sorted in place.
//! For 25 M entries that is four passes over the data instead of the ~25 of a comparison sort,
//! and one new array the size of the input.

use rayon::prelude::*;

use super::hash::PremixedMap;

pub(crate) struct KeyIndex {
    /// Directory: entries of directory bucket `b` are `entries[dir[b]..dir[b + 1]]`.
    dir: Vec<u32>,
    dir_shift: u32,
    entries: Vec<u64>,
    /// Later insertions: tag → 1 + index in `links` of its newest entry.
    delta: PremixedMap<u32>,
    /// (slot, 1 + index of the next older entry of the same tag, or 0).
    links: Vec<(u32, u32)>,
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

/// Bits of the first radix level (partitions).
const PART_BITS: u32 = 8;
/// Input is split into pieces of this many entries for the first level.
const PIECE: usize = 1 << 16;

/// Groups a piece of input by partition (`e >> pshift`) in place (American flag sort: every
/// entry is swapped straight to its partition) and returns where each partition starts:
/// partition `p` is `piece[offsets[p]..offsets[p + 1]]`.
fn partition_in_place(piece: &mut [u64], pshift: u32, nparts: usize) -> Vec<u32> {
    let mut offsets = vec![0u32; nparts + 1];
    for &e in piece.iter() {
        offsets[(e >> pshift) as usize + 1] += 1;
    }
    for p in 0..nparts {
        offsets[p + 1] += offsets[p];
    }
    let mut heads: Vec<u32> = offsets[..nparts].to_vec();
    for p in 0..nparts {
        let end = offsets[p + 1];
        while heads[p] < end {
            let mut e = piece[heads[p] as usize];
            loop {
                let q = (e >> pshift) as usize;
                if q == p {
                    break;
                }
                std::mem::swap(&mut e, &mut piece[heads[q] as usize]);
                heads[q] += 1;
            }
            piece[heads[p] as usize] = e;
            heads[p] += 1;
        }
    }
    offsets
}

impl KeyIndex {
    /// Builds from packed entries (see [`KeyIndex::entry`]), on all cores.
    pub(crate) fn from_entries(entries: Vec<u64>) -> KeyIndex {
        KeyIndex::from_parts(vec![entries])
    }

    /// Builds from packed entries gathered in several vectors (one per chunk of records, say),
    /// on all cores. Equal entries are kept once.
    pub(crate) fn from_parts(parts: Vec<Vec<u64>>) -> KeyIndex {
        let total: usize = parts.iter().map(Vec::len).sum();
        let bits = ((total / 16).max(256).next_power_of_two().trailing_zeros()).min(28);
        let dir_shift = 64 - bits;
        let pbits = PART_BITS.min(bits);
        let pshift = 64 - pbits;
        let nparts = 1usize << pbits;
        // Buckets per partition.
        let sub_bits = bits - pbits;
        let per_part = 1usize << sub_bits;

        // Level 1: group every piece of input by partition, in place.
        let mut parts = parts;
        let pieces: Vec<(&[u64], Vec<u32>)> = parts
            .par_iter_mut()
            .flat_map(|part| {
                part.par_chunks_mut(PIECE).map(|c| {
                    let offsets = partition_in_place(c, pshift, nparts);
                    (&*c, offsets)
                })
            })
            .collect();

        // Level 2: each partition gathers its entries from every piece, in piece order,
        // straight into its directory buckets.
        let sizes: Vec<usize> = (0..nparts)
            .map(|p| {
                pieces
                    .iter()
                    .map(|(_, offsets)| (offsets[p + 1] - offsets[p]) as usize)
                    .sum()
            })
            .collect();
        let mut entries = vec![0u64; total];
        let mut dir = vec![0u32; (1usize << bits) + 1];
        let mut outs: Vec<&mut [u64]> = Vec::with_capacity(nparts);
        let mut rest: &mut [u64] = &mut entries;
        for &sz in &sizes {
            let (head, tail) = rest.split_at_mut(sz);
            outs.push(head);
            rest = tail;
        }
        let sub_mask = (per_part - 1) as u64;
        let kept: Vec<usize> = outs
            .into_par_iter()
            .zip(dir[..nparts * per_part].par_chunks_mut(per_part))
            .enumerate()
            .map(|(p, (out, counts))| {
                let sources = || {
                    pieces.iter().flat_map(move |(data, offsets)| {
                        let (lo, hi) = (offsets[p] as usize, offsets[p + 1] as usize);
                        data[lo..hi].iter().copied()
                    })
                };
                // counts[b] becomes the start of bucket b within the partition.
                for e in sources() {
                    counts[((e >> dir_shift) & sub_mask) as usize] += 1;
                }
                let mut start = 0u32;
                for c in counts.iter_mut() {
                    let n = *c;
                    *c = start;
                    start += n;
                }
                let mut next: Vec<u32> = counts.to_vec();
                for e in sources() {
                    let b = ((e >> dir_shift) & sub_mask) as usize;
                    out[next[b] as usize] = e;
                    next[b] += 1;
                }
                // Sort and dedup each bucket, compacting the partition towards its start.
                let mut w = 0usize;
                for b in 0..per_part {
                    let (lo, hi) = (counts[b] as usize, next[b] as usize);
                    counts[b] = w as u32;
                    if hi - lo > 1 {
                        out[lo..hi].sort_unstable();
                    }
                    for r in lo..hi {
                        if r == lo || out[r] != out[w - 1] {
                            out[w] = out[r];
                            w += 1;
                        }
                    }
                }
                w
            })
            .collect();
        drop(pieces);
        drop(parts);

        // Partitions that lost duplicates leave gaps: close them; the directory of each
        // partition is relative to its start so far.
        let mut bases: Vec<u32> = Vec::with_capacity(nparts);
        let mut w = 0usize;
        let mut start = 0usize;
        for (&sz, &k) in sizes.iter().zip(&kept) {
            if w != start {
                entries.copy_within(start..start + k, w);
            }
            bases.push(w as u32);
            w += k;
            start += sz;
        }
        dir[..nparts * per_part]
            .par_chunks_mut(per_part)
            .zip(bases.par_iter())
            .filter(|(_, base)| **base != 0)
            .for_each(|(d, &base)| d.iter_mut().for_each(|x| *x += base));
        dir[nparts * per_part] = w as u32;
        entries.truncate(w);
        entries.shrink_to_fit();
        KeyIndex {
            dir,
            dir_shift,
            entries,
            delta: PremixedMap::default(),
            links: Vec::new(),
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
            && let Some(&head) = self.delta.get(&u64::from(want))
        {
            let mut at = head;
            while let Some(&(s, next)) = self.links.get((at as usize).wrapping_sub(1)) {
                f(s);
                at = next;
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
        let t = u64::from(tag(key));
        let head = self.delta.get(&t).copied().unwrap_or(0);
        let mut at = head;
        while let Some(&(s, next)) = self.links.get((at as usize).wrapping_sub(1)) {
            if s == slot {
                return;
            }
            at = next;
        }
        self.links.push((slot, head));
        self.delta.insert(t, self.links.len() as u32);
    }

    /// Makes room for this many later insertions without growing.
    pub(crate) fn reserve(&mut self, entries: usize) {
        self.links.reserve(entries);
        self.delta.reserve(entries);
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len() + self.links.len()
    }

    /// Whether the hash-map part has grown enough that folding it into the array pays.
    pub(crate) fn wants_merge(&self) -> bool {
        self.links.len() > 65_536 && self.links.len() > self.entries.len() / 4
    }

    /// Folds the hash-map part into the array, keeping only entries whose slot `keep` accepts.
    pub(crate) fn merge(&mut self, keep: impl Fn(u32) -> bool + Sync) {
        let old: Vec<u64> = std::mem::take(&mut self.entries)
            .into_par_iter()
            .filter(|&e| keep(e as u32))
            .collect();
        let mut new: Vec<u64> = Vec::with_capacity(self.links.len());
        for (&t, &head) in &self.delta {
            let mut at = head;
            while let Some(&(s, next)) = self.links.get((at as usize).wrapping_sub(1)) {
                if keep(s) {
                    new.push((t << 32) | u64::from(s));
                }
                at = next;
            }
        }
        *self = KeyIndex::from_parts(vec![old, new]);
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.dir.len() * 4
            + self.entries.len() * 8
            + self.links.capacity() * 8
            + self.delta.capacity() * 12
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
        ix.insert(k1, 14);
        assert_eq!(ix.len(), 6);
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

    /// The radix build gives exactly the sorted, deduplicated array a comparison sort gives,
    /// whatever the split of the input into parts, and its directory points into it.
    #[test]
    fn given_parts_with_duplicates_then_the_array_is_sorted_and_unique() {
        let mut x = 0x1234_5678_9ABC_DEF0u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Few distinct keys, many slots each, and repeats: buckets of many entries, duplicates
        // within and across parts.
        let keys: Vec<u64> = (0..5_000).map(|_| next()).collect();
        let mut all_entries = Vec::new();
        let mut parts: Vec<Vec<u64>> = vec![Vec::new(); 7];
        for i in 0..300_000u64 {
            let k = keys[(next() % keys.len() as u64) as usize];
            let e = KeyIndex::entry(k, (next() % 50) as u32);
            all_entries.push(e);
            parts[(i % 7) as usize].push(e);
            if i % 11 == 0 {
                parts[((i + 3) % 7) as usize].push(e);
            }
        }
        parts.push(Vec::new());
        all_entries.sort_unstable();
        all_entries.dedup();
        let ix = KeyIndex::from_parts(parts);
        assert_eq!(ix.entries, all_entries);
        assert_eq!(ix.dir.first(), Some(&0));
        assert_eq!(ix.dir.last().map(|&d| d as usize), Some(ix.entries.len()));
        for (b, w) in ix.dir.windows(2).enumerate() {
            assert!(w[0] <= w[1]);
            for &e in &ix.entries[w[0] as usize..w[1] as usize] {
                assert_eq!((e >> ix.dir_shift) as usize, b);
            }
        }
        for &k in &keys[..100] {
            let mut want: Vec<u32> = all_entries
                .iter()
                .filter(|&&e| e >> 32 == k >> 32)
                .map(|&e| e as u32)
                .collect();
            want.dedup();
            assert_eq!(all(&ix, k), want);
        }
    }
}
