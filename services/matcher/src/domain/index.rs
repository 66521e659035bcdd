//! The incremental match index.
//!
//! Holds CRM accounts, LinkedIn companies and manual decisions. Records arrive, change and go
//! one at a time or in batches; after each batch only the LinkedIn companies whose result may
//! have changed are matched again, and the results that did change are returned. For the same
//! set of records and decisions the results are the same whatever the order of arrival: the
//! incremental path and [`MatchIndex::build`] agree (a test checks it on the dev set).
//!
//! The rules that match one LinkedIn company are in [`super::rules`]; beside them, private to
//! the index: `prepared` (the records as the rules read them), `trust` (which sites identify
//! their holder) and `words` (word rarity).
//!
//! # What a change re-matches
//!
//! Matching a LinkedIn company records every key it read (its site keys, name keys, the fuzzy
//! keys it looked up, the site keys of candidates it checked for conflicts, the rarity of the
//! words it compared, the CRM ids of its manual decisions): its *footprint*. A change to a CRM
//! account touches the keys of its old and new versions; a change of a site's trust or of a
//! word's rarity touches that key. The LinkedIn companies whose footprint holds a touched key,
//! and those that changed themselves or got a decision, are matched again.
//!
//! Results are not stored: a result is computed when asked for (a few microseconds), and only a
//! hash of each current result is kept, to tell which results a change altered.

use std::collections::HashSet;

use rayon::prelude::*;

use super::hash::{FastMap, KeyHasher, KeyKind, PremixedMap};
use super::hosts::SharedHostKind;
use super::keyindex::KeyIndex;
use super::model::{
    CrmAccount, CrmId, Decision, DecisionKind, LinkedInCompany, LinkedInId, LinkedInResult,
};
use super::prepared::{CrmEntry, LiEntry, PrepScratch};
use super::rules::Footprint;
use super::trust::trust_dep;
use super::words::WordCounts;

/// Tunables. The defaults are what the quality test runs with.
#[derive(Clone, Debug)]
pub struct MatchConfig {
    /// A word used by at most this many records counts as rare (a possible typo).
    pub rare_word_max: u32,
    /// Keep footprints so that a change re-matches only the affected companies. A one-shot
    /// batch run switches this off: building is then faster and smaller, and every change
    /// re-matches everybody.
    pub track_dependencies: bool,
}

impl Default for MatchConfig {
    fn default() -> Self {
        MatchConfig {
            rare_word_max: 2,
            track_dependencies: true,
        }
    }
}

/// One change to the index.
#[derive(Clone, Debug)]
pub enum Change {
    UpsertCrm(CrmAccount),
    RemoveCrm(CrmId),
    UpsertLinkedIn(LinkedInCompany),
    RemoveLinkedIn(LinkedInId),
    Decide(Decision),
    /// Forget any decision about this pair.
    Revoke {
        linkedin_id: LinkedInId,
        crm_id: CrmId,
    },
}

/// What a batch of changes did to the results.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChangeSet {
    /// New results of LinkedIn companies whose result changed (or that are new), by id.
    pub updated: Vec<LinkedInResult>,
    /// LinkedIn companies that are gone.
    pub removed: Vec<LinkedInId>,
    /// How many LinkedIn companies were matched again to find that out.
    pub rematched: usize,
}

/// Sizes, for logs and the benchmark.
#[derive(Clone, Debug, Default)]
pub struct IndexStats {
    pub crm_accounts: usize,
    pub linkedin_companies: usize,
    pub crm_keys: usize,
    pub dependency_keys: usize,
    pub index_bytes: usize,
}

/// LinkedIn companies matched at once when building (bounds the memory results take).
const BUILD_CHUNK: usize = 1 << 16;

/// The incremental match index. See [`super::rules`] for the rules it applies.
pub struct MatchIndex {
    pub(super) cfg: MatchConfig,
    pub(super) crm: Vec<Option<CrmEntry>>,
    pub(super) crm_slots: FastMap<CrmId, u32>,
    pub(super) li: Vec<Option<LiEntry>>,
    pub(super) li_slots: FastMap<LinkedInId, u32>,
    pub(super) crm_keys: KeyIndex,
    pub(super) li_sites: KeyIndex,
    pub(super) tokens: WordCounts,
    /// Sites (and tenant hosts) that are not trusted; all others are.
    pub(super) shared: PremixedMap<SharedHostKind>,
    pub(super) deps: KeyIndex,
    pub(super) decisions: FastMap<LinkedInId, Vec<(CrmId, DecisionKind)>>,
    /// Hash of each LinkedIn company's current result (0: not computed).
    pub(super) result_hash: Vec<u64>,
}

impl Default for MatchIndex {
    fn default() -> Self {
        MatchIndex::new(MatchConfig::default())
    }
}

impl MatchIndex {
    /// How many records (CRM accounts and LinkedIn companies, live or freed slots) the index
    /// holds: what its memory grows with.
    pub fn records(&self) -> usize {
        self.crm.len() + self.li.len()
    }

    /// An empty index.
    pub fn new(cfg: MatchConfig) -> MatchIndex {
        MatchIndex::build(cfg, Vec::new(), Vec::new(), Vec::new())
    }

    /// Builds the index from whole sets of records and decisions at once, on all cores. Later
    /// records replace earlier ones with the same id. With dependency tracking on, every
    /// LinkedIn company is matched once here to learn its footprint.
    pub fn build(
        cfg: MatchConfig,
        crm: Vec<CrmAccount>,
        linkedin: Vec<LinkedInCompany>,
        decisions: Vec<Decision>,
    ) -> MatchIndex {
        let t0 = std::time::Instant::now();
        let phase = |what: &str| {
            tracing::debug!(
                phase = what,
                elapsed_s = t0.elapsed().as_secs_f64(),
                "match index build"
            );
        };
        let ((crm, crm_slots), (linkedin, li_slots)) = rayon::join(
            || dedup_by_id(crm, |a| &a.id),
            || dedup_by_id(linkedin, |c| &c.id),
        );
        phase("dedup");
        let crm: Vec<Option<CrmEntry>> = crm
            .into_par_iter()
            .with_min_len(1024)
            .map_init(PrepScratch::default, |sc, a| Some(CrmEntry::new(a, sc)))
            .collect();
        let li: Vec<Option<LiEntry>> = linkedin
            .into_par_iter()
            .with_min_len(1024)
            .map_init(PrepScratch::default, |sc, c| Some(LiEntry::new(c, sc)))
            .collect();
        phase("prepare");
        let crm_entries =
            packed_entries(&crm, |e: &CrmEntry, out: &mut Vec<u64>| e.index_keys(out));
        phase("crm keys");
        let crm_keys = KeyIndex::from_parts(crm_entries);
        phase("crm key index");
        let li_entries =
            packed_entries(&li, |e: &LiEntry, out: &mut Vec<u64>| e.rec.site_keys(out));
        let li_sites = KeyIndex::from_parts(li_entries);
        phase("li site index");
        let tokens = WordCounts::count(&crm, &li);
        phase("word rarity");

        let mut by_li: FastMap<LinkedInId, Vec<(CrmId, DecisionKind)>> = FastMap::default();
        for d in decisions {
            record_decision(&mut by_li, d.linkedin_id, d.crm_id, Some(d.kind));
        }

        // Room to grow, so the first changes do not copy a million records.
        let mut crm = crm;
        let mut li = li;
        crm.reserve(crm.len() / 8 + 4096);
        li.reserve(li.len() / 8 + 4096);
        let mut hashes = vec![0; li.len()];
        hashes.reserve(li.len() / 8 + 4096);
        let mut ix = MatchIndex {
            cfg,
            result_hash: hashes,
            crm,
            crm_slots,
            li,
            li_slots,
            crm_keys,
            li_sites,
            tokens,
            shared: PremixedMap::default(),
            deps: KeyIndex::default(),
            decisions: by_li,
        };
        ix.compute_all_trust();
        phase("trust");
        if ix.cfg.track_dependencies {
            let mut dep_parts: Vec<Vec<u64>> = Vec::new();
            let n = ix.li.len() as u32;
            let mut start = 0u32;
            while start < n {
                let end = (start + BUILD_CHUNK as u32).min(n);
                let slots: Vec<u32> = (start..end).collect();
                let chunk: Vec<(u32, u64, Footprint)> = slots
                    .par_iter()
                    .with_min_len(256)
                    .filter_map(|&s| ix.compute(s).map(|(r, fp)| (s, result_hash(&r), fp)))
                    .collect();
                let mut entries = Vec::with_capacity(chunk.iter().map(|c| c.2.len()).sum());
                for (slot, h, fp) in chunk {
                    ix.result_hash[slot as usize] = h;
                    entries.extend(fp.into_iter().map(|k| KeyIndex::entry(k, slot)));
                }
                dep_parts.push(entries);
                start = end;
            }
            phase("match all");
            ix.deps = KeyIndex::from_parts(dep_parts);
            phase("dependency index");
        }
        ix.make_room();
        phase("room to grow");
        ix
    }

    /// Room to grow in every map, so the first batch of changes neither rehashes a map of a
    /// million entries (a hundred milliseconds) nor grows the insertion maps from nothing. A
    /// small index gets little room: growing a small map is cheap, and a server keeps many small
    /// workspaces' indexes (a room of 1,024 entries a map made a 330-record index about 0.75
    /// MiB).
    fn make_room(&mut self) {
        let room = |n: usize| n / 8 + 64;
        self.tokens.make_room();
        self.shared.reserve(room(self.shared.len()));
        self.crm_slots.reserve(room(self.crm_slots.len()));
        self.li_slots.reserve(room(self.li_slots.len()));
        let links = |n: usize| (n / 256).clamp(64, 1 << 16);
        self.crm_keys.reserve(links(self.crm_keys.len()));
        self.li_sites.reserve(links(self.li_sites.len()));
        self.deps.reserve(links(self.deps.len()));
    }

    /// The current result for a LinkedIn company (computed now).
    pub fn result(&self, id: &LinkedInId) -> Option<LinkedInResult> {
        let slot = *self.li_slots.get(id)?;
        self.compute(slot).map(|(r, _)| r)
    }

    /// All current results, in order of first arrival of the LinkedIn companies.
    pub fn results(&self) -> Vec<LinkedInResult> {
        let mut out = Vec::with_capacity(self.li_slots.len());
        self.for_each_result_chunk(BUILD_CHUNK, |chunk| out.extend_from_slice(chunk));
        out
    }

    /// All current results in order of first arrival, handed over in chunks that are matched in
    /// parallel: the way to stream a million results without holding them all. While `f` reads
    /// one chunk (on the calling thread), the thread pool matches the next.
    pub fn for_each_result_chunk(&self, chunk: usize, mut f: impl FnMut(&[LinkedInResult])) {
        let n = self.li.len() as u32;
        let chunk = chunk.max(1) as u32;
        let compute = |start: u32| -> Vec<LinkedInResult> {
            let end = start.saturating_add(chunk).min(n);
            (start..end)
                .into_par_iter()
                .with_min_len(256)
                .filter_map(|s| self.compute(s).map(|(r, _)| r))
                .collect()
        };
        let mut start = 0u32;
        let mut current = compute(start);
        while start < n {
            let next_start = start.saturating_add(chunk);
            let mut next = Vec::new();
            rayon::in_place_scope(|s| {
                if next_start < n {
                    s.spawn(|_| next = compute(next_start));
                }
                f(&current);
                drop(std::mem::take(&mut current));
            });
            current = next;
            start = next_start;
        }
    }

    /// All manual decisions, sorted (for persistence).
    pub fn decisions(&self) -> Vec<Decision> {
        let mut v: Vec<Decision> = self
            .decisions
            .iter()
            .flat_map(|(li, ds)| {
                ds.iter().map(move |(crm, kind)| Decision {
                    linkedin_id: li.clone(),
                    crm_id: crm.clone(),
                    kind: *kind,
                })
            })
            .collect();
        v.sort_by(|a, b| (&a.linkedin_id, &a.crm_id).cmp(&(&b.linkedin_id, &b.crm_id)));
        v
    }

    pub fn stats(&self) -> IndexStats {
        IndexStats {
            crm_accounts: self.crm_slots.len(),
            linkedin_companies: self.li_slots.len(),
            crm_keys: self.crm_keys.len(),
            dependency_keys: self.deps.len(),
            index_bytes: self.crm_keys.heap_bytes()
                + self.li_sites.heap_bytes()
                + self.deps.heap_bytes(),
        }
    }

    pub fn upsert_crm(&mut self, account: CrmAccount) -> ChangeSet {
        self.apply(vec![Change::UpsertCrm(account)])
    }

    pub fn remove_crm(&mut self, id: &CrmId) -> ChangeSet {
        self.apply(vec![Change::RemoveCrm(id.clone())])
    }

    pub fn upsert_linkedin(&mut self, company: LinkedInCompany) -> ChangeSet {
        self.apply(vec![Change::UpsertLinkedIn(company)])
    }

    pub fn remove_linkedin(&mut self, id: &LinkedInId) -> ChangeSet {
        self.apply(vec![Change::RemoveLinkedIn(id.clone())])
    }

    /// Records a manual decision; it wins over the algorithm from now on.
    pub fn decide(&mut self, decision: Decision) -> ChangeSet {
        self.apply(vec![Change::Decide(decision)])
    }

    /// Applies a batch of changes, re-matches the affected LinkedIn companies (on all cores when
    /// there are many) and returns the results that changed.
    pub fn apply(&mut self, changes: Vec<Change>) -> ChangeSet {
        let t0 = std::time::Instant::now();
        let phase = |what: &str| {
            tracing::debug!(
                phase = what,
                elapsed_s = t0.elapsed().as_secs_f64(),
                "match index apply"
            );
        };
        let mut touched: HashSet<u64> = HashSet::new();
        let mut retrust: HashSet<u64> = HashSet::new();
        let mut direct: HashSet<u32> = HashSet::new();
        let mut removed: Vec<LinkedInId> = Vec::new();
        let mut token_delta: PremixedMap<i64> = PremixedMap::default();

        // Prepare new records first, on all cores when there are many (handing a few records
        // to the thread pool costs more than preparing them).
        let prep = |sc: &mut PrepScratch, c: Change| match c {
            Change::UpsertCrm(a) => Prepped::Crm(Box::new(CrmEntry::new(a, sc))),
            Change::UpsertLinkedIn(c) => Prepped::Li(Box::new(LiEntry::new(c, sc))),
            other => Prepped::Other(other),
        };
        let prepared: Vec<Prepped> = if changes.len() >= 64 {
            changes
                .into_par_iter()
                .map_init(PrepScratch::default, prep)
                .collect()
        } else {
            let mut sc = PrepScratch::default();
            changes.into_iter().map(|c| prep(&mut sc, c)).collect()
        };
        phase("prepare");

        for change in prepared {
            match change {
                Prepped::Crm(entry) => {
                    let entry = *entry;
                    let slot = match self.crm_slots.get(&entry.id) {
                        Some(&s) => s,
                        None => {
                            let s = self.crm.len() as u32;
                            self.crm.push(None);
                            self.crm_slots.insert(entry.id.clone(), s);
                            s
                        }
                    };
                    if let Some(old) = self.crm[slot as usize].take() {
                        forget_crm(&old, &mut touched, &mut retrust, &mut token_delta);
                    }
                    let mut keys = Vec::new();
                    entry.index_keys(&mut keys);
                    for &k in &keys {
                        self.crm_keys.insert(k, slot);
                        touched.insert(k);
                    }
                    let mut sk = Vec::new();
                    entry.rec.site_keys(&mut sk);
                    retrust.extend(sk);
                    entry
                        .rec
                        .for_each_token_key(|t| *token_delta.entry(t).or_insert(0) += 1);
                    self.crm[slot as usize] = Some(entry);
                }
                Prepped::Li(entry) => {
                    let entry = *entry;
                    let slot = match self.li_slots.get(&entry.id) {
                        Some(&s) => s,
                        None => {
                            let s = self.li.len() as u32;
                            self.li.push(None);
                            self.result_hash.push(0);
                            self.li_slots.insert(entry.id.clone(), s);
                            s
                        }
                    };
                    if let Some(old) = self.li[slot as usize].take() {
                        forget_li(&old, &mut retrust, &mut token_delta);
                    }
                    let mut sk = Vec::new();
                    entry.rec.site_keys(&mut sk);
                    for &k in &sk {
                        self.li_sites.insert(k, slot);
                    }
                    retrust.extend(sk);
                    entry
                        .rec
                        .for_each_token_key(|t| *token_delta.entry(t).or_insert(0) += 1);
                    self.li[slot as usize] = Some(entry);
                    direct.insert(slot);
                }
                Prepped::Other(Change::RemoveCrm(id)) => {
                    if let Some(slot) = self.crm_slots.remove(&id)
                        && let Some(old) = self.crm[slot as usize].take()
                    {
                        forget_crm(&old, &mut touched, &mut retrust, &mut token_delta);
                    }
                }
                Prepped::Other(Change::RemoveLinkedIn(id)) => {
                    if let Some(slot) = self.li_slots.remove(&id) {
                        if let Some(old) = self.li[slot as usize].take() {
                            forget_li(&old, &mut retrust, &mut token_delta);
                        }
                        self.result_hash[slot as usize] = 0;
                        direct.remove(&slot);
                        removed.push(id);
                    }
                }
                Prepped::Other(Change::Decide(d)) => {
                    if let Some(&slot) = self.li_slots.get(&d.linkedin_id) {
                        direct.insert(slot);
                    }
                    record_decision(&mut self.decisions, d.linkedin_id, d.crm_id, Some(d.kind));
                }
                Prepped::Other(Change::Revoke {
                    linkedin_id,
                    crm_id,
                }) => {
                    if let Some(&slot) = self.li_slots.get(&linkedin_id) {
                        direct.insert(slot);
                    }
                    record_decision(&mut self.decisions, linkedin_id, crm_id, None);
                }
                Prepped::Other(Change::UpsertCrm(_) | Change::UpsertLinkedIn(_)) => {}
            }
        }

        phase("records");
        // Word rarity: only a crossing of the threshold changes what the typo rule says.
        let rare = i64::from(self.cfg.rare_word_max);
        for (t, d) in token_delta {
            if d == 0 {
                continue;
            }
            let before = i64::from(self.tokens.get(t));
            let after = (before + d).max(0);
            self.tokens.set(t, after as u32);
            if (before <= rare) != (after <= rare) {
                touched.insert(t);
            }
        }

        // Trust of every site whose holders changed.
        // Computed from the holders alone (not from other sites' trust): on all cores when
        // there are many, then recorded.
        let mut retrust: Vec<u64> = retrust.into_iter().collect();
        retrust.sort_unstable();
        let trust: Vec<(u64, Option<SharedHostKind>)> = if retrust.len() >= 64 {
            retrust
                .par_iter()
                .with_min_len(16)
                .map(|&k| (k, self.compute_trust(k)))
                .collect()
        } else {
            retrust
                .iter()
                .map(|&k| (k, self.compute_trust(k)))
                .collect()
        };
        for (k, kind) in trust {
            let before = match kind {
                Some(kind) => self.shared.insert(k, kind),
                None => self.shared.remove(&k),
            };
            if before != kind {
                touched.insert(trust_dep(k));
            }
        }

        phase("rarity, trust");
        // Who is affected.
        let mut affected: HashSet<u32> = direct;
        if self.cfg.track_dependencies {
            for &k in &touched {
                self.deps.for_each(k, |s| {
                    affected.insert(s);
                });
            }
        } else if !touched.is_empty() {
            affected.extend(0..self.li.len() as u32);
        }
        let mut affected: Vec<u32> = affected
            .into_iter()
            .filter(|&s| self.li.get(s as usize).is_some_and(Option::is_some))
            .collect();
        affected.sort_unstable();

        phase("affected");
        let computed = self.compute_many(&affected);
        phase("compute");
        let mut updated = Vec::new();
        for (slot, result, fp) in computed {
            if self.cfg.track_dependencies {
                for k in fp {
                    self.deps.insert(k, slot);
                }
            }
            let h = result_hash(&result);
            if self.result_hash[slot as usize] != h {
                self.result_hash[slot as usize] = h;
                updated.push(result);
            }
        }
        updated.sort_by(|a, b| a.linkedin_id.cmp(&b.linkedin_id));
        removed.sort();

        phase("footprints");
        if self.crm_keys.wants_merge() {
            let crm = &self.crm;
            self.crm_keys
                .merge(|s| crm.get(s as usize).is_some_and(Option::is_some));
        }
        if self.li_sites.wants_merge() {
            let li = &self.li;
            self.li_sites
                .merge(|s| li.get(s as usize).is_some_and(Option::is_some));
        }
        if self.deps.wants_merge() {
            let li = &self.li;
            self.deps
                .merge(|s| li.get(s as usize).is_some_and(Option::is_some));
        }

        ChangeSet {
            updated,
            removed,
            rematched: affected.len(),
        }
    }
}

/// A change with its new record prepared.
enum Prepped {
    Crm(Box<CrmEntry>),
    Li(Box<LiEntry>),
    Other(Change),
}

fn forget_crm(
    old: &CrmEntry,
    touched: &mut HashSet<u64>,
    retrust: &mut HashSet<u64>,
    token_delta: &mut PremixedMap<i64>,
) {
    let mut keys = Vec::new();
    old.index_keys(&mut keys);
    touched.extend(keys);
    let mut sk = Vec::new();
    old.rec.site_keys(&mut sk);
    retrust.extend(sk);
    old.rec
        .for_each_token_key(|t| *token_delta.entry(t).or_insert(0) -= 1);
}

fn forget_li(old: &LiEntry, retrust: &mut HashSet<u64>, token_delta: &mut PremixedMap<i64>) {
    let mut sk = Vec::new();
    old.rec.site_keys(&mut sk);
    retrust.extend(sk);
    old.rec
        .for_each_token_key(|t| *token_delta.entry(t).or_insert(0) -= 1);
}

/// A hash of everything a result says, to tell whether a change altered it.
fn result_hash(r: &LinkedInResult) -> u64 {
    let mut h = KeyHasher::new(KeyKind::Exact);
    h.part(r.linkedin_id.as_str().as_bytes());
    for m in &r.matches {
        h.part(m.crm_id.as_str().as_bytes())
            .part(m.method.as_str().as_bytes())
            .number(m.score.value().to_bits())
            .part(m.reason.as_bytes());
    }
    if let Some(rv) = &r.review {
        h.part(b"review").part(rv.reason.as_bytes());
        for c in &rv.candidates {
            h.part(c.crm_id.as_str().as_bytes())
                .number(c.score.value().to_bits())
                .part(c.reason.as_bytes());
        }
    }
    h.finish() | 1
}

/// The packed (key, slot) entries of all records, computed on all cores, one vector per chunk
/// of records (the key index sorts them together; gathering them first would copy them).
fn packed_entries<E: Sync>(
    records: &[Option<E>],
    keys_of: impl Fn(&E, &mut Vec<u64>) + Sync,
) -> Vec<Vec<u64>> {
    const CHUNK: usize = 8192;
    records
        .par_chunks(CHUNK)
        .enumerate()
        .map(|(c, chunk)| {
            let mut out = Vec::with_capacity(chunk.len() * 24);
            let mut keys = Vec::with_capacity(48);
            for (i, e) in chunk.iter().enumerate() {
                if let Some(e) = e {
                    keys.clear();
                    keys_of(e, &mut keys);
                    let slot = (c * CHUNK + i) as u32;
                    out.extend(keys.iter().map(|&k| KeyIndex::entry(k, slot)));
                }
            }
            out
        })
        .collect()
}

/// Keeps the last version of each id, at the position of its first arrival; returns the
/// records and where each id ended up.
fn dedup_by_id<T, K: Eq + std::hash::Hash + Clone>(
    v: Vec<T>,
    id: impl Fn(&T) -> &K,
) -> (Vec<T>, FastMap<K, u32>) {
    let mut pos: FastMap<K, u32> = FastMap::default();
    pos.reserve(v.len());
    let mut dups = false;
    for (i, r) in v.iter().enumerate() {
        match pos.entry(id(r).clone()) {
            std::collections::hash_map::Entry::Occupied(_) => dups = true,
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(i as u32);
            }
        }
    }
    if !dups {
        // The usual case: nothing to move.
        return (v, pos);
    }
    // Slot of each id in order of first arrival; the last version of a record wins.
    let mut first: Vec<Option<u32>> = vec![None; v.len()];
    let mut out: Vec<Option<T>> = Vec::with_capacity(pos.len());
    for (i, r) in v.into_iter().enumerate() {
        let at = pos.get(id(&r)).copied().unwrap_or(i as u32) as usize;
        match first[at] {
            Some(slot) => out[slot as usize] = Some(r),
            None => {
                first[at] = Some(out.len() as u32);
                out.push(Some(r));
            }
        }
    }
    for p in pos.values_mut() {
        *p = first[*p as usize].unwrap_or(0);
    }
    (out.into_iter().flatten().collect(), pos)
}

fn record_decision(
    by_li: &mut FastMap<LinkedInId, Vec<(CrmId, DecisionKind)>>,
    li: LinkedInId,
    crm: CrmId,
    kind: Option<DecisionKind>,
) {
    let v = by_li.entry(li.clone()).or_default();
    v.retain(|(c, _)| c != &crm);
    if let Some(k) = kind {
        v.push((crm, k));
        v.sort_by(|a, b| a.0.cmp(&b.0));
    }
    if v.is_empty() {
        by_li.remove(&li);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_repeated_ids_then_the_last_version_takes_the_first_place() {
        let records = vec![("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5), ("a", 6)];
        let (v, pos) = dedup_by_id(records, |r| &r.0);
        assert_eq!(v, vec![("a", 6), ("b", 5), ("c", 4)]);
        assert_eq!((pos["a"], pos["b"], pos["c"]), (0, 1, 2));
        let (v, pos) = dedup_by_id(vec![("x", 1), ("y", 2)], |r| &r.0);
        assert_eq!(v, vec![("x", 1), ("y", 2)]);
        assert_eq!((pos["x"], pos["y"]), (0, 1));
    }
}
