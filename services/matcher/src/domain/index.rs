//! The incremental match index.
//!
//! Holds CRM accounts, LinkedIn companies and manual decisions. Records arrive, change and go
//! one at a time or in batches; after each batch only the LinkedIn companies whose result may
//! have changed are matched again, and the results that did change are returned. For the same
//! set of records and decisions the results are the same whatever the order of arrival: the
//! incremental path and [`MatchIndex::build`] agree (a test checks it on the dev set).
//!
//! # How a LinkedIn company is matched
//!
//! 1. **Domain.** Its website reduces to a site (see [`super::site`]). If the site is *trusted*,
//!    every CRM account holding the same site is a match. A site is not trusted when it is a
//!    well-known shared host ([`super::hosts`]) or — the rule that carries the weight — when the
//!    records holding it have unrelated names: several CRM accounts (or several LinkedIn
//!    companies) under unrelated names make it a free-mail provider, a shortener, a platform,
//!    whatever: it does not identify anyone. On such a host the label left of it names a tenant
//!    (`acme.wordpress.com`), itself a site. A website that is a page named after the company on
//!    somebody else's host (`linktr.ee/acme`) is not the company's site either.
//!    CRM accounts with the same name as a domain match (or as the company) and no conflicting
//!    trusted site are duplicates of it and match too.
//! 2. **Name.** Otherwise, CRM accounts with the same normalised name ([`super::names`]) are
//!    candidates. A candidate *conflicts* when both sides have trusted sites that differ (other
//!    than by suffix or affix: `acme.de`/`acme.com`, `acmeintl.ai`/`acme.com` do not conflict),
//!    or both have countries that differ. One candidate without conflict: a match. Several: a
//!    match for each only when they are visibly one company (their trusted sites agree);
//!    otherwise a case for review. Any conflicting candidate: a case for review.
//! 3. **Fuzzy.** Otherwise, CRM names a typo away (one mistyped rare word, or a mistyped trailing
//!    legal form) are candidates, with the same conflict rules; only a single clear candidate
//!    is a match.
//! 4. **Same site, unrelated names** (a LinkedIn company and CRM accounts agree on a site but not
//!    on a name: a rebrand, a typing error): a case for review.
//! 5. **Manual decisions** win: a rejected pair is never output nor counted as a candidate; a
//!    confirmed or hand-made link is always output (method `manual`) and closes the review.
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

use super::hash::{FastMap, KeyHasher, KeyKind, PremixedMap, key};
use super::hosts::{SharedHostKind, is_generic_sub_label, known_shared_host_str};
use super::keyindex::KeyIndex;
use super::model::{
    Candidate, CrmAccount, CrmId, Decision, DecisionKind, LinkedInCompany, LinkedInId,
    LinkedInResult, Match, Method, Review, Score,
};
use super::names::{
    FuzzyHit, NameScratch, compact_key, exact_key, fuzzy_compare, fuzzy_index_keys,
    fuzzy_query_keys, names_related, normalize_with,
};
use super::site::AddressParts;

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

// ---- prepared records -------------------------------------------------------------------------

/// A piece of a record's text.
#[derive(Clone, Copy, Default)]
struct Span {
    start: u32,
    len: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum AddrField {
    Domain,
    Website,
}

impl AddrField {
    fn as_str(self) -> &'static str {
        match self {
            AddrField::Domain => "domain",
            AddrField::Website => "website",
        }
    }
}

/// One website/domain value of a record, parsed; its text lives in the record's arena.
#[derive(Clone, Copy)]
struct Addr {
    field: AddrField,
    /// As typed.
    raw: Span,
    /// The registrable domain.
    site: Span,
    /// Length of the site's label ("acme" in "acme.co.uk").
    label_len: u32,
    /// The non-generic label left of the site, if any.
    sub: Option<Span>,
    site_key: u64,
    tenant_key: Option<u64>,
    /// A page named after the holder on somebody else's host (`linktr.ee/acme`): never the
    /// holder's own site.
    profile: bool,
    /// The site is a listed shared host (see [`super::hosts`]).
    listed: Option<SharedHostKind>,
}

impl Addr {
    fn holds(&self, k: u64) -> bool {
        self.site_key == k || self.tenant_key == Some(k)
    }
}

/// What both sides have in common, prepared once. All text in one allocation.
struct Prepared {
    text: Box<str>,
    name_raw: Span,
    core: Span,
    exact: u64,
    compact: u64,
    addrs: Box<[Addr]>,
    country: Option<[u8; 2]>,
}

/// Buffers reused from one record to the next while preparing records: with them, preparing a
/// record allocates its own two boxes and nothing else in the common case.
#[derive(Default)]
struct PrepScratch {
    name: NameScratch,
    core: String,
    fallback: String,
    host: String,
    path: String,
    text: String,
    addrs: Vec<Addr>,
}

impl Prepared {
    fn new(
        name: &str,
        fallback_name: Option<&str>,
        fields: &[(AddrField, Option<&str>)],
        country: Option<&str>,
        sc: &mut PrepScratch,
    ) -> Prepared {
        let name_raw = name.trim();
        normalize_with(name_raw, &mut sc.core, &mut sc.name);
        if sc.core.is_empty()
            && let Some(f) = fallback_name
        {
            sc.fallback.clear();
            sc.fallback
                .extend(f.chars().map(|c| if c == '-' { ' ' } else { c }));
            normalize_with(&sc.fallback, &mut sc.core, &mut sc.name);
        }
        let core: &str = &sc.core;
        let holder_names: [&str; 2] = [core, fallback_name.unwrap_or("")];

        let text = &mut sc.text;
        text.clear();
        let push = |text: &mut String, s: &str| -> Span {
            let start = text.len() as u32;
            text.push_str(s);
            Span {
                start,
                len: s.len() as u32,
            }
        };
        let name_span = push(text, name_raw);
        let core_span = push(text, core);
        let addrs = &mut sc.addrs;
        addrs.clear();
        for (field, value) in fields {
            let Some(raw) = value.map(str::trim) else {
                continue;
            };
            let Ok(web) = AddressParts::parse(raw, &mut sc.host) else {
                continue;
            };
            let site_key = key(KeyKind::Site, web.site);
            let sub = web.sub_label.filter(|l| !is_generic_sub_label(l));
            let tenant_key = sub.map(|l| {
                KeyHasher::new(KeyKind::Tenant)
                    .part(l.as_bytes())
                    .part(web.site.as_bytes())
                    .finish()
            });
            if addrs
                .iter()
                .any(|b| b.site_key == site_key && b.tenant_key == tenant_key)
            {
                continue;
            }
            let profile = !web.path.is_empty() && {
                let path = &mut sc.path;
                path.clear();
                if web.path.is_ascii() {
                    path.push_str(web.path);
                    path.make_ascii_lowercase();
                } else {
                    path.push_str(&web.path.to_lowercase());
                }
                is_profile_page(web.label(), path, &holder_names)
            };
            let raw_span = push(text, raw);
            let site_span = push(text, web.site);
            let sub_span = sub.map(|l| push(text, l));
            addrs.push(Addr {
                field: *field,
                raw: raw_span,
                site: site_span,
                label_len: u32::from(web.label_len),
                sub: sub_span,
                site_key,
                tenant_key,
                profile,
                listed: known_shared_host_str(web.site, web.label()),
            });
        }
        Prepared {
            exact: exact_key(core),
            compact: compact_key(core),
            text: Box::from(text.as_str()),
            name_raw: name_span,
            core: core_span,
            addrs: Box::from(addrs.as_slice()),
            country: parse_country(country),
        }
    }

    fn s(&self, sp: Span) -> &str {
        let start = sp.start as usize;
        self.text.get(start..start + sp.len as usize).unwrap_or("")
    }

    fn name_raw(&self) -> &str {
        self.s(self.name_raw)
    }

    fn core(&self) -> &str {
        self.s(self.core)
    }

    fn raw(&self, a: &Addr) -> &str {
        self.s(a.raw)
    }

    fn site(&self, a: &Addr) -> &str {
        self.s(a.site)
    }

    fn label(&self, a: &Addr) -> &str {
        let site = self.site(a);
        site.get(..a.label_len as usize).unwrap_or(site)
    }

    fn sub(&self, a: &Addr) -> Option<&str> {
        a.sub.map(|sp| self.s(sp))
    }

    fn site_keys(&self, out: &mut Vec<u64>) {
        for a in self.addrs.iter() {
            out.push(a.site_key);
            if let Some(t) = a.tenant_key {
                out.push(t);
            }
        }
    }

    /// Calls `f` with the rarity key of each distinct word of the name.
    fn for_each_token_key(&self, mut f: impl FnMut(u64)) {
        let mut seen = [0u64; 16];
        let mut n = 0;
        let mut more: Vec<u64> = Vec::new();
        for t in self.core().split(' ').filter(|t| !t.is_empty()) {
            let k = key(KeyKind::TokenCount, t);
            if seen[..n].contains(&k) || more.contains(&k) {
                continue;
            }
            if n < seen.len() {
                seen[n] = k;
                n += 1;
            } else {
                more.push(k);
            }
            f(k);
        }
    }
}

/// Whether a URL is a page named after its holder on a host whose name is not the holder's:
/// a path segment spells one of the holder's names (spaces, dashes and dots aside) while the
/// site's label does not. `path` is in lowercase.
fn is_profile_page(site_label: &str, path: &str, names: &[&str]) -> bool {
    let label = label_core(site_label);
    names.iter().any(|name| {
        let squashed = || {
            name.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
        };
        if squashed().nth(2).is_none() {
            return false;
        }
        let mut label_chars = label.chars();
        let label_has_head = squashed().take(6).all(|c| label_chars.next() == Some(c));
        !label_has_head
            && path.split('/').filter(|s| !s.is_empty()).any(|seg| {
                seg.chars()
                    .filter(|c| c.is_alphanumeric())
                    .flat_map(char::to_lowercase)
                    .eq(squashed())
            })
    })
}

/// The brand in a site label: without trailing digits and the affixes people add to a name
/// when it is taken ("acmeinc", "acmegroup", "acmehq", "getacme", "acme24" → "acme").
pub(crate) fn label_core(label: &str) -> &str {
    let mut l = label.trim_end_matches(|c: char| c.is_ascii_digit());
    for prefix in ["get", "try", "the", "my", "go"] {
        if let Some(rest) = l.strip_prefix(prefix)
            && rest.len() >= 4
        {
            l = rest;
            break;
        }
    }
    for suffix in [
        "international",
        "global",
        "group",
        "intl",
        "inc",
        "corp",
        "llc",
        "ltd",
        "hq",
        "online",
        "app",
        "co",
    ] {
        if let Some(rest) = l.strip_suffix(suffix)
            && rest.len() >= 3
        {
            l = rest.trim_end_matches('-');
            break;
        }
    }
    l
}

/// Two site labels name the same brand: equal, or equal once affixes are set aside — the
/// latter only for brands long enough to be a name: "cwp" + "hq" and "cwp" + "inc" are two
/// companies' initials as often as one's.
fn same_brand(a: &str, b: &str) -> bool {
    a == b || {
        let (ca, cb) = (label_core(a), label_core(b));
        ca.len() >= 6 && ca == cb
    }
}

fn parse_country(c: Option<&str>) -> Option<[u8; 2]> {
    let c = c?.trim().as_bytes();
    match c {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}

fn country_str(c: &[u8; 2]) -> &str {
    std::str::from_utf8(c).unwrap_or("??")
}

struct CrmEntry {
    id: CrmId,
    rec: Prepared,
}

impl CrmEntry {
    fn new(a: CrmAccount, sc: &mut PrepScratch) -> CrmEntry {
        let rec = Prepared::new(
            &a.name,
            None,
            &[
                (AddrField::Domain, a.domain.as_deref()),
                (AddrField::Website, a.website.as_deref()),
            ],
            a.country.as_deref(),
            sc,
        );
        CrmEntry { id: a.id, rec }
    }

    /// Every key the account is indexed under (a key may come twice: the key index keeps an
    /// entry once).
    fn index_keys(&self, out: &mut Vec<u64>) {
        self.rec.site_keys(out);
        out.push(self.rec.exact);
        out.push(self.rec.compact);
        fuzzy_index_keys(self.rec.core(), out);
        out.push(key(KeyKind::CrmId, self.id.as_str()));
    }
}

struct LiEntry {
    id: LinkedInId,
    rec: Prepared,
}

impl LiEntry {
    fn new(c: LinkedInCompany, sc: &mut PrepScratch) -> LiEntry {
        let rec = Prepared::new(
            &c.name,
            c.vanity_name.as_deref(),
            &[(AddrField::Website, c.website.as_deref())],
            c.country.as_deref(),
            sc,
        );
        LiEntry { id: c.id, rec }
    }
}

/// A site that identifies its holder: the registrable domain, or a tenant on a shared host.
#[derive(Clone, Copy)]
struct Effective<'a> {
    key: u64,
    rec: &'a Prepared,
    addr: &'a Addr,
    tenant: bool,
}

impl<'a> Effective<'a> {
    /// The label its owner chose: the tenant label on a shared host, else the site's label.
    fn label(&self) -> &'a str {
        if self.tenant {
            self.rec.sub(self.addr).unwrap_or("")
        } else {
            self.rec.label(self.addr)
        }
    }

    fn raw(&self) -> &'a str {
        self.rec.raw(self.addr)
    }

    /// Appends the site as reasons show it.
    fn write_shown(&self, out: &mut String) {
        let site = self.rec.site(self.addr);
        if self.tenant {
            let sub = self.rec.sub(self.addr).unwrap_or("");
            push_all(
                out,
                &[sub, ".", site, " (tenant of shared host ", site, ")"],
            );
        } else {
            out.push_str(site);
        }
    }
}

/// Appends the pieces of a reason, in order (one allocation for the whole reason; `format!`
/// would make one per piece that is itself formatted).
fn push_all(out: &mut String, parts: &[&str]) {
    for p in parts {
        out.push_str(p);
    }
}

/// Evidence against a candidate pair, written out only when a reason shows it.
#[derive(Clone, Copy)]
enum Conflict<'a> {
    /// Both sides have countries, and they differ: LinkedIn's, the CRM's.
    Countries([u8; 2], [u8; 2]),
    /// Both sides have trusted sites, and they differ: LinkedIn's, the CRM's.
    Websites(Effective<'a>, Effective<'a>),
}

impl Conflict<'_> {
    fn write_to(&self, out: &mut String) {
        match self {
            Conflict::Countries(a, b) => push_all(
                out,
                &[
                    "countries differ: LinkedIn ",
                    country_str(a),
                    ", CRM ",
                    country_str(b),
                ],
            ),
            Conflict::Websites(xe, ce) => {
                push_all(out, &["websites differ: LinkedIn ", xe.raw(), " → "]);
                xe.write_shown(out);
                push_all(out, &[", CRM ", ce.raw(), " → "]);
                ce.write_shown(out);
            }
        }
    }
}

/// Keys read while matching one company.
type Footprint = Vec<u64>;

/// The dependency key for "the trust of site `k`", apart from "the holders of site `k`": a
/// company that only checked a candidate's domain for conflicts depends on the former.
#[inline]
fn trust_dep(k: u64) -> u64 {
    k.rotate_left(29) ^ 0x7A3D_5C1E_9B4F_2D61
}

/// LinkedIn companies matched at once when building (bounds the memory results take).
const BUILD_CHUNK: usize = 1 << 16;

/// The incremental match index. See the module documentation for the rules.
pub struct MatchIndex {
    cfg: MatchConfig,
    crm: Vec<Option<CrmEntry>>,
    crm_slots: FastMap<CrmId, u32>,
    li: Vec<Option<LiEntry>>,
    li_slots: FastMap<LinkedInId, u32>,
    crm_keys: KeyIndex,
    li_sites: KeyIndex,
    tokens: WordCounts,
    /// Sites (and tenant hosts) that are not trusted; all others are.
    shared: PremixedMap<SharedHostKind>,
    deps: KeyIndex,
    decisions: FastMap<LinkedInId, Vec<(CrmId, DecisionKind)>>,
    /// Hash of each LinkedIn company's current result (0: not computed).
    result_hash: Vec<u64>,
}

impl Default for MatchIndex {
    fn default() -> Self {
        MatchIndex::new(MatchConfig::default())
    }
}

impl MatchIndex {
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
    /// million entries (a hundred milliseconds) nor grows the insertion maps from nothing.
    fn make_room(&mut self) {
        let room = |n: usize| n / 8 + 1024;
        self.tokens.make_room();
        self.shared.reserve(room(self.shared.len()));
        self.crm_slots.reserve(room(self.crm_slots.len()));
        self.li_slots.reserve(room(self.li_slots.len()));
        let links = |n: usize| (n / 256).clamp(1024, 1 << 16);
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

    // ---- site trust ---------------------------------------------------------------------------

    fn compute_all_trust(&mut self) {
        // Every (site key, holder) pair, grouped by key: a key with a single holder is shared
        // only if it is a listed host, and needs no look-up; the others are clustered.
        // Holders are numbered CRM slots first, then LinkedIn slots with the top bit set, so
        // a group sorted by holder lists CRM holders before LinkedIn ones, each by slot: the
        // order the key indexes give.
        const LI: u32 = 1 << 31;
        /// (site key, holder, listed kind of the site): the kind travels with the pair, so a
        /// site with one holder (most of them) is decided without reading the record again.
        type Pair = (u64, u32, Option<SharedHostKind>);
        fn site_pairs<E: Sync>(
            records: &[Option<E>],
            side: u32,
            rec: impl Fn(&E) -> &Prepared + Sync,
        ) -> Vec<Vec<Pair>> {
            const CHUNK: usize = 16_384;
            records
                .par_chunks(CHUNK)
                .enumerate()
                .map(|(c, chunk)| {
                    let mut out = Vec::with_capacity(chunk.len() * 2);
                    for (i, e) in chunk.iter().enumerate() {
                        if let Some(e) = e {
                            let h = side | (c * CHUNK + i) as u32;
                            for a in rec(e).addrs.iter() {
                                out.push((a.site_key, h, a.listed));
                                if let Some(t) = a.tenant_key {
                                    out.push((t, h, None));
                                }
                            }
                        }
                    }
                    out
                })
                .collect()
        }
        let (crm_parts, li_parts) = rayon::join(
            || site_pairs(&self.crm, 0, |e: &CrmEntry| &e.rec),
            || site_pairs(&self.li, LI, |e: &LiEntry| &e.rec),
        );
        let mut pairs: Vec<Pair> =
            Vec::with_capacity(crm_parts.iter().chain(&li_parts).map(Vec::len).sum());
        for p in crm_parts.into_iter().chain(li_parts) {
            pairs.extend_from_slice(&p);
        }
        pairs.par_sort_unstable_by_key(|p| (p.0, p.1));
        pairs.dedup_by_key(|p| (p.0, p.1));
        let mut groups: Vec<(usize, usize)> = Vec::new();
        let mut start = 0;
        for i in 1..=pairs.len() {
            if i == pairs.len() || pairs[i].0 != pairs[start].0 {
                groups.push((start, i));
                start = i;
            }
        }
        let shared: Vec<(u64, SharedHostKind)> = groups
            .par_iter()
            .with_min_len(4096)
            .filter_map(|&(lo, hi)| {
                let k = pairs[lo].0;
                let group = &pairs[lo..hi];
                if group.len() > 1 {
                    // The holders are at hand: no need to look them up in the key indexes.
                    let crm = group.iter().filter(|p| p.1 & LI == 0).map(|p| p.1);
                    let li = group.iter().filter(|p| p.1 & LI != 0).map(|p| p.1 & !LI);
                    return self.trust_of_holders(k, crm, li).map(|t| (k, t));
                }
                pairs[lo].2.map(|t| (k, t))
            })
            .collect();
        self.shared = shared.into_iter().collect();
    }

    /// Whether a site key is shared (not identity), from its current holders.
    fn compute_trust(&self, k: u64) -> Option<SharedHostKind> {
        // Fast path: one holder, or one record under two keys, and not a listed host.
        let mut first: Option<(bool, u32)> = None;
        let mut more = false;
        self.crm_keys.for_each(k, |s| match first {
            None => first = Some((false, s)),
            Some(f) => more |= f != (false, s),
        });
        self.li_sites.for_each(k, |s| match first {
            None => first = Some((true, s)),
            Some(f) => more |= f != (true, s),
        });
        if !more {
            let (is_li, s) = first?;
            let rec = if is_li {
                &self.li.get(s as usize)?.as_ref()?.rec
            } else {
                &self.crm.get(s as usize)?.as_ref()?.rec
            };
            let a = rec.addrs.iter().find(|a| a.holds(k))?;
            return if a.site_key == k { a.listed } else { None };
        }
        let crm_holders = self.crm_keys.slots(&[k]);
        let li_holders = self.li_sites.slots(&[k]);
        self.trust_of_holders(k, crm_holders, li_holders)
    }

    /// Whether a site key is shared, from the slots of its CRM and LinkedIn holders (each
    /// side in slot order; slots of records that do not hold the key are skipped).
    fn trust_of_holders<C, L>(
        &self,
        k: u64,
        crm_holders: C,
        li_holders: L,
    ) -> Option<SharedHostKind>
    where
        C: IntoIterator<Item = u32>,
        C::IntoIter: Clone,
        L: IntoIterator<Item = u32>,
        L::IntoIter: Clone,
    {
        let crm_holders = crm_holders.into_iter().filter_map(|s| {
            let e = self.crm.get(s as usize)?.as_ref()?;
            let a = e.rec.addrs.iter().find(|a| a.holds(k))?;
            Some((e.id.as_str(), &e.rec, a))
        });
        let li_holders = li_holders.into_iter().filter_map(|s| {
            let e = self.li.get(s as usize)?.as_ref()?;
            let a = e.rec.addrs.iter().find(|a| a.holds(k))?;
            Some((e.id.as_str(), &e.rec, a))
        });
        let (_, _, first) = crm_holders.clone().chain(li_holders.clone()).next()?;
        if first.site_key == k
            && let Some(kind) = first.listed
        {
            return Some(kind);
        }
        // Cluster each side's holders by related names, taking them in order of id: the first
        // name (the lowest id's) is the side's representative, and a holder unrelated to it
        // starts a second cluster: two clusters on one side mean the site is shared. One
        // cluster a side that disagree mean the sides name different companies. (A name is
        // compared with the representative only, so the lowest id decides, not the order of
        // arrival.)
        fn representative<'r>(
            holders: impl Iterator<Item = (&'r str, &'r Prepared, &'r Addr)> + Clone,
        ) -> Result<Option<&'r str>, SharedHostKind> {
            let named = holders
                .map(|(id, rec, _)| (id, rec.core()))
                .filter(|(_, core)| !core.is_empty());
            let Some((_, rep)) = named.clone().min_by(|a, b| a.0.cmp(b.0)) else {
                return Ok(None);
            };
            if named.clone().any(|(_, core)| !names_related(rep, core)) {
                return Err(SharedHostKind::HeldByUnrelatedNames);
            }
            Ok(Some(rep))
        }
        let c = match representative(crm_holders) {
            Ok(c) => c,
            Err(kind) => return Some(kind),
        };
        let l = match representative(li_holders) {
            Ok(l) => l,
            Err(kind) => return Some(kind),
        };
        match (c, l) {
            (Some(c), Some(l)) if !names_related(c, l) => Some(SharedHostKind::NamesDisagree),
            _ => None,
        }
    }

    fn shared_kind(&self, k: u64) -> Option<SharedHostKind> {
        if self.shared.is_empty() {
            None
        } else {
            self.shared.get(&k).copied()
        }
    }

    /// The site of an address that identifies its holder, if any.
    fn effective<'a>(
        &self,
        rec: &'a Prepared,
        a: &'a Addr,
        fp: &mut Footprint,
    ) -> Option<Effective<'a>> {
        if a.profile {
            return None;
        }
        fp.push(trust_dep(a.site_key));
        match self.shared_kind(a.site_key) {
            None => Some(Effective {
                key: a.site_key,
                rec,
                addr: a,
                tenant: false,
            }),
            Some(kind) => {
                let t = a.tenant_key?;
                if !kind.has_tenants() {
                    return None;
                }
                fp.push(trust_dep(t));
                self.shared_kind(t).is_none().then_some(Effective {
                    key: t,
                    rec,
                    addr: a,
                    tenant: true,
                })
            }
        }
    }

    /// Appends why an address is not used, for reasons.
    fn write_ignored_note(&self, out: &mut String, rec: &Prepared, a: &Addr) {
        if a.profile {
            push_all(
                out,
                &[rec.raw(a), " ignored (a profile page on ", rec.site(a), ")"],
            );
            return;
        }
        match self.shared_kind(a.site_key) {
            Some(kind) => push_all(out, &[rec.site(a), " ignored (", kind.describe(), ")"]),
            None => push_all(out, &[rec.site(a), " ignored"]),
        }
    }

    // ---- matching one LinkedIn company ----------------------------------------------------------

    /// Matches the given slots (dead ones are skipped), on all cores when there are many.
    fn compute_many(&self, slots: &[u32]) -> Vec<(u32, LinkedInResult, Footprint)> {
        let one = |&s: &u32| self.compute(s).map(|(r, fp)| (s, r, fp));
        if slots.len() >= 64 {
            slots.par_iter().with_min_len(32).filter_map(one).collect()
        } else {
            slots.iter().filter_map(one).collect()
        }
    }

    fn compute(&self, slot: u32) -> Option<(LinkedInResult, Footprint)> {
        let x = self.li.get(slot as usize)?.as_ref()?;
        let mut fp: Footprint = Vec::with_capacity(16);
        let decisions: &[(CrmId, DecisionKind)] =
            self.decisions.get(&x.id).map(Vec::as_slice).unwrap_or(&[]);
        let rejected = |c: &CrmId| {
            decisions
                .iter()
                .any(|(d, k)| d == c && *k == DecisionKind::Reject)
        };
        let mut ctx = Ctx {
            ix: self,
            x,
            xeff: None,
            fp: &mut fp,
        };
        ctx.xeff = x
            .rec
            .addrs
            .iter()
            .find_map(|a| self.effective(&x.rec, a, ctx.fp));
        let (mut matches, review) = ctx.algorithm(&rejected);

        // Manual decisions win.
        let mut manual = false;
        for (crm_id, kind) in decisions {
            fp.push(key(KeyKind::CrmId, crm_id.as_str()));
            if *kind == DecisionKind::Reject || !self.crm_slots.contains_key(crm_id) {
                continue;
            }
            manual = true;
            matches.retain(|m| &m.crm_id != crm_id);
            matches.push(Match {
                linkedin_id: x.id.clone(),
                crm_id: crm_id.clone(),
                method: Method::Manual,
                score: Score::new(1.0),
                reason: match kind {
                    DecisionKind::Confirm => "confirmed by a person".to_string(),
                    _ => "linked by hand".to_string(),
                },
            });
        }
        matches.sort_by(|a, b| a.crm_id.cmp(&b.crm_id));
        let review = if manual { None } else { review };
        fp.sort_unstable();
        fp.dedup();
        Some((
            LinkedInResult {
                linkedin_id: x.id.clone(),
                matches,
                review,
            },
            fp,
        ))
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

/// How many records use each word (by its rarity key), in shards chosen by bits of the key
/// that the maps' own hashing does not use, so that counting two million names can be done on
/// all cores: each shard is counted by one thread, with no merging of big maps at the end.
struct WordCounts {
    shards: Vec<PremixedMap<u32>>,
}

impl WordCounts {
    const SHARD_BITS: u32 = 6;

    #[inline]
    fn shard(k: u64) -> usize {
        ((k >> 40) & ((1 << Self::SHARD_BITS) - 1)) as usize
    }

    fn count(crm: &[Option<CrmEntry>], li: &[Option<LiEntry>]) -> WordCounts {
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
    fn get(&self, k: u64) -> u32 {
        self.shards
            .get(Self::shard(k))
            .and_then(|m| m.get(&k))
            .copied()
            .unwrap_or(0)
    }

    fn set(&mut self, k: u64, n: u32) {
        if let Some(m) = self.shards.get_mut(Self::shard(k)) {
            if n == 0 {
                m.remove(&k);
            } else {
                m.insert(k, n);
            }
        }
    }

    /// Room to grow by an eighth without rehashing.
    fn make_room(&mut self) {
        for m in &mut self.shards {
            m.reserve(m.len() / 8 + 64);
        }
    }
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

/// Two addresses on one site whose hosts carry different non-generic labels
/// (`apex.platform.com`, `bolt.platform.com`) are different sites.
fn different_hosts(pa: &Prepared, a: &Addr, pb: &Prepared, b: &Addr) -> bool {
    a.site_key == b.site_key && matches!((pa.sub(a), pb.sub(b)), (Some(x), Some(y)) if x != y)
}

/// A candidate during matching.
struct Cand<'a> {
    c: &'a CrmEntry,
    conflict: Option<Conflict<'a>>,
    /// Set for fuzzy candidates.
    hit: Option<FuzzyHit<'a>>,
}

struct Ctx<'a, 'f> {
    ix: &'a MatchIndex,
    x: &'a LiEntry,
    xeff: Option<Effective<'a>>,
    fp: &'f mut Footprint,
}

impl<'a> Ctx<'a, '_> {
    fn crm(&self, slot: u32) -> Option<&'a CrmEntry> {
        self.ix.crm.get(slot as usize).and_then(Option::as_ref)
    }

    fn algorithm(&mut self, rejected: &dyn Fn(&CrmId) -> bool) -> (Vec<Match>, Option<Review>) {
        // 1. Domain
        if let Some(xe) = self.xeff {
            self.fp.push(xe.key);
            let mut anchors: Vec<&'a CrmEntry> = Vec::new();
            for s in self.ix.crm_keys.slots(&[xe.key]) {
                if let Some(c) = self.crm(s)
                    && c.rec.addrs.iter().any(|a| {
                        a.holds(xe.key)
                            && !a.profile
                            && !different_hosts(xe.rec, xe.addr, &c.rec, a)
                    })
                    && !rejected(&c.id)
                {
                    anchors.push(c);
                }
            }
            if !anchors.is_empty() {
                anchors.sort_by(|a, b| a.id.cmp(&b.id));
                return (self.domain_matches(xe, &anchors, rejected), None);
            }
        }
        // 2. Same name
        self.fp.push(self.x.rec.exact);
        self.fp.push(self.x.rec.compact);
        if !self.x.rec.core().is_empty() {
            let mut cands = self.same_name(&self.x.rec, rejected);
            if !cands.is_empty() {
                for c in &mut cands {
                    c.conflict = self.conflict(c.c);
                }
                return self.decide(cands, Method::Name);
            }
            // 3. Fuzzy
            let cands = self.fuzzy(rejected);
            if !cands.is_empty() {
                return self.decide(cands, Method::Fuzzy);
            }
        }
        // 4. Nothing by name, but the same site under another name: a person should look.
        self.disputed_site(rejected)
    }

    /// A review case when the company's site is held in the CRM under an unrelated name.
    fn disputed_site(&mut self, rejected: &dyn Fn(&CrmId) -> bool) -> (Vec<Match>, Option<Review>) {
        let x = self.x;
        for a in x.rec.addrs.iter() {
            self.fp.push(trust_dep(a.site_key));
            if a.profile || self.ix.shared_kind(a.site_key) != Some(SharedHostKind::NamesDisagree) {
                continue;
            }
            self.fp.push(a.site_key);
            let mut holders: Vec<&'a CrmEntry> = Vec::new();
            for s in self.ix.crm_keys.slots(&[a.site_key]) {
                if let Some(c) = self.crm(s)
                    && c.rec
                        .addrs
                        .iter()
                        .any(|b| b.site_key == a.site_key && !b.profile)
                    && !rejected(&c.id)
                {
                    holders.push(c);
                }
            }
            if holders.is_empty() {
                continue;
            }
            holders.sort_by(|p, q| p.id.cmp(&q.id));
            let site = x.rec.site(a);
            let candidates = holders
                .iter()
                .map(|c| Candidate {
                    crm_id: c.id.clone(),
                    crm_name: c.rec.name_raw().to_string(),
                    method: Method::Domain,
                    score: Score::new(0.6),
                    reason: format!(
                        "website {} → {site} is also the CRM account's, but the names are unrelated",
                        x.rec.raw(a)
                    ),
                })
                .collect();
            return (
                Vec::new(),
                Some(Review {
                    reason: format!(
                        "same website {site} as CRM accounts with unrelated names (rebrand or typing error?)"
                    ),
                    candidates,
                }),
            );
        }
        (Vec::new(), None)
    }

    /// CRM accounts with the same normalised name (or the same without spaces).
    fn same_name(&mut self, rec: &Prepared, rejected: &dyn Fn(&CrmId) -> bool) -> Vec<Cand<'a>> {
        let mut out: Vec<Cand<'a>> = Vec::new();
        for s in self.ix.crm_keys.slots(&[rec.exact, rec.compact]) {
            if let Some(c) = self.crm(s)
                && !c.rec.core().is_empty()
                && (c.rec.exact == rec.exact || c.rec.compact == rec.compact)
                && !rejected(&c.id)
            {
                out.push(Cand {
                    c,
                    conflict: None,
                    hit: None,
                });
            }
        }
        out.sort_by(|a, b| a.c.id.cmp(&b.c.id));
        out
    }

    fn fuzzy(&mut self, rejected: &dyn Fn(&CrmId) -> bool) -> Vec<Cand<'a>> {
        let mut keys = Vec::with_capacity(32);
        let core = self.x.rec.core();
        fuzzy_query_keys(core, &mut keys);
        self.fp.extend_from_slice(&keys);
        let slots = self.ix.crm_keys.slots(&keys);
        let rare_max = self.ix.cfg.rare_word_max;
        let tokens = &self.ix.tokens;
        let mut read: Vec<u64> = Vec::new();
        let mut out: Vec<Cand<'a>> = Vec::new();
        for s in slots {
            let Some(c) = self.crm(s) else { continue };
            let other = c.rec.core();
            if other.is_empty() || c.rec.exact == self.x.rec.exact || rejected(&c.id) {
                continue;
            }
            let mut is_rare = |t: &str| {
                let k = key(KeyKind::TokenCount, t);
                read.push(k);
                tokens.get(k) <= rare_max
            };
            if let Some(hit) = fuzzy_compare(core, other, &mut is_rare) {
                out.push(Cand {
                    c,
                    conflict: None,
                    hit: Some(hit),
                });
            }
        }
        self.fp.extend(read);
        for c in &mut out {
            c.conflict = self.conflict(c.c);
        }
        out.sort_by(|a, b| a.c.id.cmp(&b.c.id));
        out
    }

    /// Conflicting evidence between the LinkedIn company and a CRM account, if any.
    fn conflict(&mut self, c: &'a CrmEntry) -> Option<Conflict<'a>> {
        if let (Some(a), Some(b)) = (self.x.rec.country, c.rec.country)
            && a != b
        {
            return Some(Conflict::Countries(a, b));
        }
        let xe = self.xeff?;
        let mut first_trusted: Option<Effective<'a>> = None;
        for a in c.rec.addrs.iter() {
            if let Some(ce) = self.ix.effective(&c.rec, a, self.fp) {
                if ce.key == xe.key || same_brand(ce.label(), xe.label()) {
                    return None;
                }
                first_trusted.get_or_insert(ce);
            }
        }
        first_trusted.map(|ce| Conflict::Websites(xe, ce))
    }

    /// The trusted sites of a CRM account.
    fn effective_sites(&mut self, c: &'a CrmEntry) -> Vec<Effective<'a>> {
        c.rec
            .addrs
            .iter()
            .filter_map(|a| self.ix.effective(&c.rec, a, self.fp))
            .collect()
    }

    fn domain_matches(
        &mut self,
        xe: Effective<'a>,
        anchors: &[&'a CrmEntry],
        rejected: &dyn Fn(&CrmId) -> bool,
    ) -> Vec<Match> {
        let x = self.x;
        let mut out: Vec<Match> = Vec::new();
        for a in anchors {
            let (field, addr) = a
                .rec
                .addrs
                .iter()
                .find(|ad| ad.holds(xe.key))
                .map(|ad| (ad.field, a.rec.raw(ad)))
                .unwrap_or((AddrField::Domain, ""));
            let related = names_related(x.rec.core(), a.rec.core());
            let mut reason = String::with_capacity(96);
            push_all(&mut reason, &["website ", xe.raw(), " → "]);
            xe.write_shown(&mut reason);
            push_all(&mut reason, &[" equals CRM ", field.as_str(), " ", addr]);
            if !related {
                push_all(
                    &mut reason,
                    &[
                        "; names differ (\"",
                        x.rec.name_raw(),
                        "\" / \"",
                        a.rec.name_raw(),
                        "\")",
                    ],
                );
            }
            out.push(Match {
                linkedin_id: x.id.clone(),
                crm_id: a.id.clone(),
                method: Method::Domain,
                score: Score::new(if related { 0.99 } else { 0.95 }),
                reason,
            });
        }
        // Duplicates: same name as an anchor or as the company, no conflicting trusted site.
        let mut names: Vec<(&'a Prepared, Option<&'a CrmEntry>)> = vec![(&x.rec, None)];
        for a in anchors {
            if a.rec.exact != x.rec.exact {
                names.push((&a.rec, Some(a)));
            }
        }
        let mut dups: Vec<Match> = Vec::new();
        for (rec, via) in names {
            if rec.core().is_empty() {
                continue;
            }
            self.fp.push(rec.exact);
            self.fp.push(rec.compact);
            for cand in self.same_name(rec, rejected) {
                let c = cand.c;
                if out.iter().chain(dups.iter()).any(|m| m.crm_id == c.id) {
                    continue;
                }
                if self.conflict(c).is_some() {
                    continue;
                }
                let twin = via.unwrap_or(anchors[0]);
                if let (Some(p), Some(q)) = (twin.rec.country, c.rec.country)
                    && p != q
                {
                    continue;
                }
                let sites = self.effective_sites(c);
                let mut reason = String::with_capacity(128);
                push_all(
                    &mut reason,
                    &[
                        "duplicate CRM account: name \"",
                        c.rec.name_raw(),
                        "\" equals that of ",
                        twin.id.as_str(),
                        " (matched by domain ",
                    ],
                );
                xe.write_shown(&mut reason);
                reason.push_str("); ");
                if sites.is_empty() {
                    match c.rec.addrs.first() {
                        Some(ad) => {
                            reason.push_str("its domain ");
                            self.ix.write_ignored_note(&mut reason, &c.rec, ad);
                        }
                        None => reason.push_str("it has no domain"),
                    }
                } else {
                    reason.push_str("its website differs only in suffix");
                }
                dups.push(Match {
                    linkedin_id: x.id.clone(),
                    crm_id: c.id.clone(),
                    method: Method::Name,
                    score: Score::new(0.9),
                    reason,
                });
            }
        }
        out.extend(dups);
        out
    }

    /// Turns name or fuzzy candidates into matches or a review case.
    fn decide(&mut self, cands: Vec<Cand<'a>>, method: Method) -> (Vec<Match>, Option<Review>) {
        let (ok, conflicting): (Vec<&Cand<'a>>, Vec<&Cand<'a>>) =
            cands.iter().partition(|c| c.conflict.is_none());
        let what = if method == Method::Name {
            "same name"
        } else {
            "similar name"
        };
        if !conflicting.is_empty() {
            let reason = if ok.is_empty() {
                format!("{what} as CRM accounts, but the evidence conflicts")
            } else {
                format!(
                    "{what} as {} CRM accounts, {} of them with conflicting evidence",
                    cands.len(),
                    conflicting.len()
                )
            };
            return (Vec::new(), Some(self.review(reason, &cands, method)));
        }
        if ok.len() > 1 && !self.one_company(&ok) {
            if method == Method::Fuzzy {
                let score = |c: &Cand<'a>| c.hit.as_ref().map_or(0.0, |h| h.score);
                let mut scored: Vec<f64> = ok.iter().map(|c| score(c)).collect();
                scored.sort_by(|a, b| b.total_cmp(a));
                if scored.len() >= 2
                    && scored[0] - scored[1] >= 0.1
                    && let Some(best) = ok.iter().find(|c| score(c) == scored[0])
                {
                    return (vec![self.pair(best, method, 1)], None);
                }
            }
            let reason = format!(
                "{} CRM accounts have this {what} and nothing tells them apart",
                ok.len()
            );
            return (Vec::new(), Some(self.review(reason, &cands, method)));
        }
        let n = ok.len();
        (ok.iter().map(|c| self.pair(c, method, n)).collect(), None)
    }

    /// Several candidates are visibly one company when at least one has a trusted site and all
    /// trusted sites among them agree (same site or same brand).
    fn one_company(&mut self, cands: &[&Cand<'a>]) -> bool {
        let mut reference: Option<Effective<'a>> = None;
        for cand in cands {
            for e in self.effective_sites(cand.c) {
                match reference {
                    None => reference = Some(e),
                    Some(r) => {
                        if r.key != e.key && !same_brand(r.label(), e.label()) {
                            return false;
                        }
                    }
                }
            }
        }
        reference.is_some()
    }

    /// Appends what else is known about the pair (notes separated by "; ").
    fn write_evidence_notes(&mut self, out: &mut String, c: &'a CrmEntry) {
        let mut first = true;
        let mut sep = |out: &mut String| {
            if !std::mem::take(&mut first) {
                out.push_str("; ");
            }
        };
        match (self.xeff, self.x.rec.addrs.first()) {
            (Some(_), _) => {}
            (None, Some(a)) => {
                sep(out);
                out.push_str("LinkedIn website ");
                self.ix.write_ignored_note(out, &self.x.rec, a);
            }
            (None, None) => {
                sep(out);
                out.push_str("LinkedIn has no website");
            }
        }
        let sites = self.effective_sites(c);
        if let Some(ce) = sites.first() {
            if let Some(xe) = self.xeff {
                sep(out);
                out.push_str("websites differ only in suffix: ");
                xe.write_shown(out);
                out.push_str(" / ");
                ce.write_shown(out);
            }
        } else {
            match c.rec.addrs.first() {
                Some(a) => {
                    sep(out);
                    push_all(out, &["CRM ", a.field.as_str(), " "]);
                    self.ix.write_ignored_note(out, &c.rec, a);
                }
                None => {
                    sep(out);
                    out.push_str("CRM has no domain");
                }
            }
        }
    }

    fn pair(&mut self, cand: &Cand<'a>, method: Method, n: usize) -> Match {
        let c = cand.c;
        let mut reason = String::with_capacity(160);
        let score = match &cand.hit {
            Some(h) => {
                push_all(
                    &mut reason,
                    &[
                        "name \"",
                        self.x.rec.name_raw(),
                        "\" ≈ CRM name \"",
                        c.rec.name_raw(),
                        "\" (",
                    ],
                );
                h.detail.write_to(&mut reason);
                reason.push(')');
                h.score
            }
            None => {
                push_all(
                    &mut reason,
                    &[
                        "name \"",
                        self.x.rec.name_raw(),
                        "\" → \"",
                        self.x.rec.core(),
                        "\" equals CRM name \"",
                        c.rec.name_raw(),
                        "\"",
                    ],
                );
                if self.xeff.is_some() && !self.effective_sites(c).is_empty() {
                    0.93
                } else {
                    0.9
                }
            }
        };
        reason.push_str("; ");
        self.write_evidence_notes(&mut reason, c);
        if n > 1 {
            use std::fmt::Write as _;
            let _ = write!(reason, "; one of {n} accounts of the same company");
        }
        Match {
            linkedin_id: self.x.id.clone(),
            crm_id: c.id.clone(),
            method,
            score: Score::new(score),
            reason,
        }
    }

    fn review(&mut self, reason: String, cands: &[Cand<'a>], method: Method) -> Review {
        let mut candidates: Vec<Candidate> = Vec::with_capacity(cands.len());
        for cand in cands {
            let c = cand.c;
            let score = cand.hit.as_ref().map_or(0.8, |h| h.score * 0.9);
            let mut why = String::with_capacity(128);
            match &cand.hit {
                Some(h) => {
                    push_all(&mut why, &["name ≈ \"", c.rec.name_raw(), "\" ("]);
                    h.detail.write_to(&mut why);
                    why.push(')');
                }
                None => push_all(&mut why, &["name = \"", c.rec.name_raw(), "\""]),
            }
            why.push_str("; ");
            match &cand.conflict {
                Some(conf) => conf.write_to(&mut why),
                None => self.write_evidence_notes(&mut why, c),
            }
            candidates.push(Candidate {
                crm_id: c.id.clone(),
                crm_name: c.rec.name_raw().to_string(),
                method,
                score: Score::new(if cand.conflict.is_some() {
                    score * 0.6
                } else {
                    score
                }),
                reason: why,
            });
        }
        Review { reason, candidates }
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

    #[test]
    fn label_cores_set_common_affixes_aside() {
        assert_eq!(label_core("acmeinc"), "acme");
        assert_eq!(label_core("indigozenithpharmaintl"), "indigozenithpharma");
        assert_eq!(label_core("getacme"), "acme");
        assert_eq!(label_core("acme24"), "acme");
        assert_eq!(label_core("co"), "co");
        assert!(same_brand("indigozenithpharmaintl", "indigozenithpharma"));
        assert!(
            !same_brand("cwphq", "cwpinc"),
            "short initials are not a brand"
        );
    }
}
