//! Word rarity: how many records use each word of their names, which the typo rule reads.

use rayon::prelude::*;

use super::hash::PremixedMap;
use super::prepared::{CrmEntry, LiEntry, Prepared};

/// How many records use each word (by its rarity key), in shards chosen by bits of the key
/// that the maps' own hashing does not use, so that counting two million names can be done on
/// all cores: each shard is counted by one thread, with no merging of big maps at the end.
pub(super) struct WordCounts {
    pub(super) shards: Vec<PremixedMap<u32>>,
}

impl WordCounts {
    const SHARD_BITS: u32 = 6;

    #[inline]
    pub(super) fn shard(k: u64) -> usize {
        ((k >> 40) & ((1 << Self::SHARD_BITS) - 1)) as usize
    }

    pub(super) fn count(crm: &[Option<CrmEntry>], li: &[Option<LiEntry>]) -> WordCounts {
        const CHUNK: usize = 1 << 15;
        let nshards = 1usize << Self::SHARD_BITS;
        fn keys_by_shard<E: Sync>(
            records: &[Option<E>],
            rec: impl Fn(&E) -> &Prepared + Sync,
        ) -> Vec<Vec<Vec<u64>>> {
            let nshards = 1usize << WordCounts::SHARD_BITS;
            records
                .par_chunks(CHUNK)
                .map(|chunk| {
                    let mut out: Vec<Vec<u64>> = vec![Vec::new(); nshards];
                    for e in chunk.iter().flatten() {
                        rec(e).for_each_token_key(|t| out[WordCounts::shard(t)].push(t));
                    }
                    out
                })
                .collect()
        }
        let (c, l) = rayon::join(
            || keys_by_shard(crm, |e: &CrmEntry| &e.rec),
            || keys_by_shard(li, |e: &LiEntry| &e.rec),
        );
        let parts: Vec<&Vec<Vec<u64>>> = c.iter().chain(&l).collect();
        let shards = (0..nshards)
            .into_par_iter()
            .map(|s| {
                let n: usize = parts.iter().map(|p| p[s].len()).sum();
                let mut m: PremixedMap<u32> = PremixedMap::default();
                m.reserve(n / 2);
                for p in &parts {
                    for &t in &p[s] {
                        *m.entry(t).or_insert(0) += 1;
                    }
                }
                m
            })
            .collect();
        WordCounts { shards }
    }

    #[inline]
    pub(super) fn get(&self, k: u64) -> u32 {
        self.shards
            .get(Self::shard(k))
            .and_then(|m| m.get(&k))
            .copied()
            .unwrap_or(0)
    }

    pub(super) fn set(&mut self, k: u64, n: u32) {
        if let Some(m) = self.shards.get_mut(Self::shard(k)) {
            if n == 0 {
                m.remove(&k);
            } else {
                m.insert(k, n);
            }
        }
    }

    /// Room to grow by an eighth without rehashing.
    pub(super) fn make_room(&mut self) {
        for m in &mut self.shards {
            m.reserve(m.len() / 8 + 64);
        }
    }
}
