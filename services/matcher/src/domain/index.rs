//! The incremental match index.
//!
//! Holds CRM accounts and LinkedIn companies, the current result for every LinkedIn company, and
//! the manual decisions. Records arrive, change and go one at a time or in batches; after each
//! batch only the LinkedIn companies whose result may have changed are matched again, and the
//! changed results are returned. For the same set of records and decisions the results are the
//! same, whatever the order of arrival (the incremental path and [`MatchIndex::build`] agree).
//!
//! # How a LinkedIn company is matched
//!
//! 1. **Domain.** Its website reduces to a site (see [`super::site`]). If the site is *trusted*,
//!    every CRM account holding the same site is a match. A site is not trusted when it is a
//!    well-known shared host ([`super::hosts`]) or — the rule that carries the weight — when the
//!    records holding it (CRM accounts and LinkedIn companies) have unrelated names: then it is
//!    a free-mail provider, a shortener, a platform, whatever; it does not identify anyone. On a
//!    shared host the label left of it names a tenant ("acme.wordpress.com"), itself a site.
//!    CRM accounts carrying the same name as a domain match, with no conflicting trusted site,
//!    are duplicates of it and match too.
//! 2. **Name.** Otherwise, CRM accounts with the same normalised name ([`super::names`]) are
//!    candidates. A candidate *conflicts* when both sides have trusted sites that differ (other
//!    than by suffix: `acme.de` and `acme.com` do not conflict), or both have countries that
//!    differ. One candidate without conflict: a match. Several: a match for each only when they
//!    are visibly one company (their trusted sites agree); otherwise a case for review. Any
//!    conflicting candidate: a case for review.
//! 3. **Fuzzy.** Otherwise, CRM names a typo away (one mistyped rare word, or a mistyped trailing
//!    legal form) are candidates, with the same conflict rules; only a single clear candidate
//!    is a match.
//! 4. **Manual decisions** win: a rejected pair is never output nor counted as a candidate; a
//!    confirmed or hand-made link is always output (method `manual`) and closes the review.
//!
//! # What a change re-matches
//!
//! Matching a LinkedIn company records every key it read (its site keys, name keys, the fuzzy
//! blocks it looked in, the site keys of candidates it checked for conflicts, the rarity of the
//! words it compared, the CRM ids of manual links): its *footprint*. A change to a CRM account
//! touches the keys of its old and new versions; a change of a site's trust or of a word's
//! rarity touches that key. The LinkedIn companies whose footprint holds a touched key, and those
//! that changed themselves or got a decision, are matched again.

use std::collections::HashSet;

use rayon::prelude::*;

use super::hash::{FastMap, KeyKind, PremixedMap, key};
use super::hosts::{SharedHostKind, is_generic_sub_label, known_shared_host};
use super::keyindex::KeyIndex;
use super::model::{
    Candidate, CrmAccount, CrmId, Decision, DecisionKind, LinkedInCompany, LinkedInId,
    LinkedInResult, Match, Method, Review, Score,
};
use super::names::{FuzzyHit, NormalizedName, fuzzy_compare, names_related};
use super::site::{Site, WebAddress};

/// Tunables. The defaults are what the quality test runs with.
#[derive(Clone, Debug)]
pub struct MatchConfig {
    /// A word used by at most this many records counts as rare (a possible typo).
    pub rare_word_max: u32,
    /// Keep footprints so that changes re-match only the affected companies. A one-shot batch
    /// run can switch this off to save time and memory.
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

/// One website/domain value of a record, parsed.
struct Address {
    /// As typed.
    raw: Box<str>,
    site: Site,
    /// The non-generic label left of the site, if any.
    sub_label: Option<Box<str>>,
    site_key: u64,
    tenant_key: Option<u64>,
    /// A page named after the holder on somebody else's host (`linktr.ee/acme`,
    /// `facebook.com/acme`): never the holder's own site.
    profile: bool,
}

impl Address {
    fn parse(raw: &str, names: &[&str]) -> Option<Address> {
        let web = WebAddress::parse(raw).ok()?;
        let profile = is_profile_page(&web, names);
        let site_key = key(KeyKind::Site, web.site.as_str());
        let sub_label = web.sub_label.filter(|l| !is_generic_sub_label(l));
        let tenant_key = sub_label.as_ref().map(|l| {
            let mut h = super::hash::KeyHasher::new(KeyKind::Tenant);
            h.part(l.as_bytes()).part(web.site.as_str().as_bytes());
            h.finish()
        });
        Some(Address {
            raw: raw.trim().into(),
            site: web.site,
            sub_label,
            site_key,
            tenant_key,
            profile,
        })
    }

    fn holds(&self, k: u64) -> bool {
        self.site_key == k || self.tenant_key == Some(k)
    }
}

/// What both sides have in common, prepared once.
struct Prepared {
    name_raw: Box<str>,
    name: NormalizedName,
    exact: u64,
    compact: u64,
    addrs: Vec<(AddrField, Address)>,
    country: Option<[u8; 2]>,
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

impl Prepared {
    fn new(name: &str, fallback_name: Option<&str>, fields: &[(AddrField, Option<&str>)], country: Option<&str>) -> Prepared {
        let mut normalized = NormalizedName::new(name);
        if normalized.is_empty()
            && let Some(f) = fallback_name
        {
            normalized = NormalizedName::new(&f.replace('-', " "));
        }
        let mut names: Vec<String> = vec![normalized.compact()];
        if let Some(f) = fallback_name {
            names.push(f.chars().filter(|c| c.is_alphanumeric()).collect::<String>().to_lowercase());
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut addrs: Vec<(AddrField, Address)> = Vec::new();
        for (field, value) in fields {
            if let Some(a) = value.and_then(|v| Address::parse(v, &names))
                && !addrs.iter().any(|(_, b)| b.site_key == a.site_key && b.tenant_key == a.tenant_key)
            {
                addrs.push((*field, a));
            }
        }
        Prepared {
            name_raw: name.trim().into(),
            exact: normalized.exact_key(),
            compact: normalized.compact_key(),
            name: normalized,
            addrs,
            country: parse_country(country),
        }
    }

    fn site_keys(&self, out: &mut Vec<u64>) {
        for (_, a) in &self.addrs {
            out.push(a.site_key);
            if let Some(t) = a.tenant_key {
                out.push(t);
            }
        }
    }

    fn token_keys(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .name
            .tokens()
            .filter(|t| !t.is_empty())
            .map(|t| key(KeyKind::TokenCount, t))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Whether a URL is a page named after its holder on a host whose name is not the holder's:
/// a path segment spells one of the holder's names (spaces, dashes and dots aside) while the
/// site's label does not.
fn is_profile_page(web: &WebAddress, names: &[&str]) -> bool {
    let squash = |s: &str| -> String { s.chars().filter(|c| c.is_alphanumeric()).collect() };
    let label = label_core(web.site.label());
    names.iter().filter(|n| n.len() >= 3).any(|name| {
        !label.starts_with(name.get(..name.len().min(6)).unwrap_or(name))
            && web.path.iter().any(|seg| squash(seg) == *name)
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
        "international", "global", "group", "intl", "inc", "corp", "llc", "ltd", "hq", "online",
        "app", "co",
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
    fn new(a: CrmAccount) -> CrmEntry {
        let rec = Prepared::new(
            &a.name,
            None,
            &[
                (AddrField::Domain, a.domain.as_deref()),
                (AddrField::Website, a.website.as_deref()),
            ],
            a.country.as_deref(),
        );
        CrmEntry { id: a.id, rec }
    }

    /// Every key the account is indexed under.
    fn index_keys(&self, out: &mut Vec<u64>) {
        let start = out.len();
        self.rec.site_keys(out);
        out.push(self.rec.exact);
        out.push(self.rec.compact);
        self.rec.name.fuzzy_index_keys(out);
        out.push(key(KeyKind::CrmId, self.id.as_str()));
        let mut tail: Vec<u64> = out.split_off(start);
        tail.sort_unstable();
        tail.dedup();
        out.extend(tail);
    }
}

struct LiEntry {
    id: LinkedInId,
    rec: Prepared,
}

impl LiEntry {
    fn new(c: LinkedInCompany) -> LiEntry {
        let rec = Prepared::new(
            &c.name,
            c.vanity_name.as_deref(),
            &[(AddrField::Website, c.website.as_deref())],
            c.country.as_deref(),
        );
        LiEntry { id: c.id, rec }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Trust {
    Trusted,
    Shared(SharedHostKind),
}

/// A site that identifies its holder: the registrable domain, or a tenant on a shared host.
#[derive(Clone, Copy)]
struct Effective<'a> {
    key: u64,
    addr: &'a Address,
    tenant: bool,
}

impl<'a> Effective<'a> {
    /// The label its owner chose: the tenant label on a shared host, else the site's label.
    fn label(&self) -> &'a str {
        if self.tenant {
            self.addr.sub_label.as_deref().unwrap_or("")
        } else {
            self.addr.site.label()
        }
    }

    fn shown(&self) -> String {
        if self.tenant {
            format!(
                "{}.{} (tenant of shared host {})",
                self.label(),
                self.addr.site,
                self.addr.site
            )
        } else {
            self.addr.site.to_string()
        }
    }
}

/// Keys read while matching one company.
type Footprint = Vec<u64>;

/// The incremental match index. See the module documentation for the rules.
pub struct MatchIndex {
    cfg: MatchConfig,
    crm: Vec<Option<CrmEntry>>,
    crm_slots: FastMap<CrmId, u32>,
    li: Vec<Option<LiEntry>>,
    li_slots: FastMap<LinkedInId, u32>,
    crm_keys: KeyIndex,
    li_sites: KeyIndex,
    tokens: PremixedMap<u32>,
    trust: PremixedMap<Trust>,
    deps: KeyIndex,
    decisions: FastMap<LinkedInId, Vec<(CrmId, DecisionKind)>>,
    results: Vec<Option<LinkedInResult>>,
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
    /// records replace earlier ones with the same id.
    pub fn build(
        cfg: MatchConfig,
        crm: Vec<CrmAccount>,
        linkedin: Vec<LinkedInCompany>,
        decisions: Vec<Decision>,
    ) -> MatchIndex {
        let crm = dedup_by_id(crm, |a| a.id.clone());
        let linkedin = dedup_by_id(linkedin, |c| c.id.clone());
        let crm: Vec<Option<CrmEntry>> = crm.into_par_iter().map(|a| Some(CrmEntry::new(a))).collect();
        let li: Vec<Option<LiEntry>> = linkedin.into_par_iter().map(|c| Some(LiEntry::new(c))).collect();
        let crm_slots: FastMap<CrmId, u32> = crm
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (e.id.clone(), i as u32)))
            .collect();
        let li_slots: FastMap<LinkedInId, u32> = li
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (e.id.clone(), i as u32)))
            .collect();

        let crm_pairs: Vec<(u64, u32)> = crm
            .par_iter()
            .enumerate()
            .flat_map_iter(|(i, e)| {
                let mut keys = Vec::with_capacity(16);
                if let Some(e) = e {
                    e.index_keys(&mut keys);
                }
                keys.into_iter().map(move |k| (k, i as u32))
            })
            .collect();
        let crm_keys = KeyIndex::build(crm_pairs);
        let li_pairs: Vec<(u64, u32)> = li
            .iter()
            .enumerate()
            .flat_map(|(i, e)| {
                let mut keys = Vec::new();
                if let Some(e) = e {
                    e.rec.site_keys(&mut keys);
                }
                keys.into_iter().map(move |k| (k, i as u32))
            })
            .collect();
        let li_sites = KeyIndex::build(li_pairs);

        let mut tokens: PremixedMap<u32> = PremixedMap::default();
        for rec in crm
            .iter()
            .flatten()
            .map(|e| &e.rec)
            .chain(li.iter().flatten().map(|e| &e.rec))
        {
            for t in rec.token_keys() {
                *tokens.entry(t).or_insert(0) += 1;
            }
        }

        let mut by_li: FastMap<LinkedInId, Vec<(CrmId, DecisionKind)>> = FastMap::default();
        for d in decisions {
            record_decision(&mut by_li, d.linkedin_id, d.crm_id, Some(d.kind));
        }

        let mut ix = MatchIndex {
            cfg,
            results: (0..li.len()).map(|_| None).collect(),
            crm,
            crm_slots,
            li,
            li_slots,
            crm_keys,
            li_sites,
            tokens,
            trust: PremixedMap::default(),
            deps: KeyIndex::default(),
            decisions: by_li,
        };
        ix.compute_all_trust();
        let slots: Vec<u32> = (0..ix.li.len() as u32).collect();
        let computed = ix.compute_many(&slots);
        let mut dep_pairs: Vec<(u64, u32)> = Vec::new();
        for (slot, result, fp) in computed {
            if ix.cfg.track_dependencies {
                dep_pairs.extend(fp.into_iter().map(|k| (k, slot)));
            }
            ix.results[slot as usize] = Some(result);
        }
        ix.deps = KeyIndex::build(dep_pairs);
        ix
    }

    /// The current result for a LinkedIn company.
    pub fn result(&self, id: &LinkedInId) -> Option<&LinkedInResult> {
        let slot = *self.li_slots.get(id)?;
        self.results.get(slot as usize)?.as_ref()
    }

    /// All current results, in order of first arrival of the LinkedIn companies.
    pub fn results(&self) -> impl Iterator<Item = &LinkedInResult> {
        self.results.iter().flatten()
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
            index_bytes: self.crm_keys.heap_bytes() + self.li_sites.heap_bytes() + self.deps.heap_bytes(),
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
        let mut touched: HashSet<u64> = HashSet::new();
        let mut retrust: HashSet<u64> = HashSet::new();
        let mut direct: HashSet<u32> = HashSet::new();
        let mut removed: Vec<LinkedInId> = Vec::new();
        let mut token_delta: PremixedMap<i64> = PremixedMap::default();

        for change in changes {
            match change {
                Change::UpsertCrm(account) => {
                    let entry = CrmEntry::new(account);
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
                        self.forget_crm(&old, &mut touched, &mut retrust, &mut token_delta);
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
                    for t in entry.rec.token_keys() {
                        *token_delta.entry(t).or_insert(0) += 1;
                    }
                    self.crm[slot as usize] = Some(entry);
                }
                Change::RemoveCrm(id) => {
                    if let Some(slot) = self.crm_slots.remove(&id)
                        && let Some(old) = self.crm[slot as usize].take()
                    {
                        self.forget_crm(&old, &mut touched, &mut retrust, &mut token_delta);
                    }
                }
                Change::UpsertLinkedIn(company) => {
                    let entry = LiEntry::new(company);
                    let slot = match self.li_slots.get(&entry.id) {
                        Some(&s) => s,
                        None => {
                            let s = self.li.len() as u32;
                            self.li.push(None);
                            self.results.push(None);
                            self.li_slots.insert(entry.id.clone(), s);
                            s
                        }
                    };
                    if let Some(old) = self.li[slot as usize].take() {
                        let mut sk = Vec::new();
                        old.rec.site_keys(&mut sk);
                        retrust.extend(sk);
                        for t in old.rec.token_keys() {
                            *token_delta.entry(t).or_insert(0) -= 1;
                        }
                    }
                    let mut sk = Vec::new();
                    entry.rec.site_keys(&mut sk);
                    for &k in &sk {
                        self.li_sites.insert(k, slot);
                    }
                    retrust.extend(sk);
                    for t in entry.rec.token_keys() {
                        *token_delta.entry(t).or_insert(0) += 1;
                    }
                    self.li[slot as usize] = Some(entry);
                    direct.insert(slot);
                }
                Change::RemoveLinkedIn(id) => {
                    if let Some(slot) = self.li_slots.remove(&id) {
                        if let Some(old) = self.li[slot as usize].take() {
                            let mut sk = Vec::new();
                            old.rec.site_keys(&mut sk);
                            retrust.extend(sk);
                            for t in old.rec.token_keys() {
                                *token_delta.entry(t).or_insert(0) -= 1;
                            }
                        }
                        self.results[slot as usize] = None;
                        direct.remove(&slot);
                        removed.push(id);
                    }
                }
                Change::Decide(d) => {
                    if let Some(&slot) = self.li_slots.get(&d.linkedin_id) {
                        direct.insert(slot);
                    }
                    record_decision(&mut self.decisions, d.linkedin_id, d.crm_id, Some(d.kind));
                }
                Change::Revoke {
                    linkedin_id,
                    crm_id,
                } => {
                    if let Some(&slot) = self.li_slots.get(&linkedin_id) {
                        direct.insert(slot);
                    }
                    record_decision(&mut self.decisions, linkedin_id, crm_id, None);
                }
            }
        }

        // Word rarity: only a crossing of the threshold changes what the typo rule says.
        let rare = self.cfg.rare_word_max as i64;
        for (t, d) in token_delta {
            if d == 0 {
                continue;
            }
            let before = i64::from(self.tokens.get(&t).copied().unwrap_or(0));
            let after = (before + d).max(0);
            if after == 0 {
                self.tokens.remove(&t);
            } else {
                self.tokens.insert(t, after as u32);
            }
            if (before <= rare) != (after <= rare) {
                touched.insert(t);
            }
        }

        // Site trust of every site whose holders changed.
        let mut retrust: Vec<u64> = retrust.into_iter().collect();
        retrust.sort_unstable();
        for k in retrust {
            let before = self.trust.get(&k).copied();
            match self.compute_trust(k) {
                Some(t) => {
                    self.trust.insert(k, t);
                }
                None => {
                    self.trust.remove(&k);
                }
            }
            if self.trust.get(&k).copied() != before {
                touched.insert(k);
            }
        }

        // Who is affected.
        let mut affected: HashSet<u32> = direct;
        if self.cfg.track_dependencies {
            for k in &touched {
                self.deps.for_each(*k, |s| {
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

        let computed = self.compute_many(&affected);
        let mut updated = Vec::new();
        for (slot, result, fp) in computed {
            if self.cfg.track_dependencies {
                for k in fp {
                    self.deps.insert(k, slot);
                }
            }
            let old = self.results[slot as usize].replace(result.clone());
            if old.as_ref() != Some(&result) {
                updated.push(result);
            }
        }
        updated.sort_by(|a, b| a.linkedin_id.cmp(&b.linkedin_id));
        removed.sort();

        if self.crm_keys.wants_merge() {
            let crm = &self.crm;
            self.crm_keys
                .merge(|_, s| crm.get(s as usize).is_some_and(Option::is_some));
        }
        if self.li_sites.wants_merge() {
            let li = &self.li;
            self.li_sites
                .merge(|_, s| li.get(s as usize).is_some_and(Option::is_some));
        }
        if self.deps.wants_merge() {
            let li = &self.li;
            self.deps
                .merge(|_, s| li.get(s as usize).is_some_and(Option::is_some));
        }

        ChangeSet {
            updated,
            removed,
            rematched: affected.len(),
        }
    }

    fn forget_crm(
        &self,
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
        for t in old.rec.token_keys() {
            *token_delta.entry(t).or_insert(0) -= 1;
        }
    }

    // ----------------------------------------------------------------------------------------
    // Site trust

    fn compute_all_trust(&mut self) {
        // Registrable sites first, then tenants (a tenant only matters on a shared host).
        let mut sites: FastMap<u64, ()> = FastMap::default();
        let mut tenants: FastMap<u64, ()> = FastMap::default();
        for rec in self
            .crm
            .iter()
            .flatten()
            .map(|e| &e.rec)
            .chain(self.li.iter().flatten().map(|e| &e.rec))
        {
            for (_, a) in &rec.addrs {
                sites.insert(a.site_key, ());
                if let Some(t) = a.tenant_key {
                    tenants.insert(t, ());
                }
            }
        }
        let mut keys: Vec<u64> = sites.into_keys().collect();
        keys.sort_unstable();
        let computed: Vec<(u64, Option<Trust>)> =
            keys.par_iter().map(|&k| (k, self.compute_trust(k))).collect();
        for (k, t) in computed {
            if let Some(t) = t {
                self.trust.insert(k, t);
            }
        }
        let mut keys: Vec<u64> = tenants.into_keys().collect();
        keys.sort_unstable();
        let computed: Vec<(u64, Option<Trust>)> =
            keys.par_iter().map(|&k| (k, self.compute_trust(k))).collect();
        for (k, t) in computed {
            if let Some(t) = t {
                self.trust.insert(k, t);
            }
        }
    }

    /// Trust of a site key from its current holders; `None` when nobody holds it.
    fn compute_trust(&self, k: u64) -> Option<Trust> {
        let crm_slots = self.crm_keys.slots(&[k]);
        let li_slots = self.li_sites.slots(&[k]);
        let crm_holders = crm_slots.iter().filter_map(|&s| {
            let e = self.crm.get(s as usize)?.as_ref()?;
            let (_, a) = e.rec.addrs.iter().find(|(_, a)| a.holds(k))?;
            Some((0u8, e.id.as_str(), &e.rec, a))
        });
        let li_holders = li_slots.iter().filter_map(|&s| {
            let e = self.li.get(s as usize)?.as_ref()?;
            let (_, a) = e.rec.addrs.iter().find(|(_, a)| a.holds(k))?;
            Some((1u8, e.id.as_str(), &e.rec, a))
        });
        let mut holders: Vec<(u8, &str, &Prepared, &Address)> = crm_holders.chain(li_holders).collect();
        let (_, _, _, first) = holders.first()?;
        let is_tenant = first.tenant_key == Some(k);
        if !is_tenant && let Some(kind) = known_shared_host(&first.site) {
            return Some(Trust::Shared(kind));
        }
        holders.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        // Cluster each side's holders by related names: two clusters on one side mean the site
        // is shared; one cluster a side that disagree mean the sides name different companies.
        let mut reps: [Vec<&NormalizedName>; 2] = [Vec::new(), Vec::new()];
        for (side, _, rec, _) in &holders {
            if rec.name.is_empty() {
                continue;
            }
            let side_reps = &mut reps[usize::from(*side)];
            if !side_reps.iter().any(|r| names_related(r, &rec.name)) {
                side_reps.push(&rec.name);
                if side_reps.len() >= 2 {
                    return Some(Trust::Shared(SharedHostKind::HeldByUnrelatedNames));
                }
            }
        }
        if let ([c], [l]) = (&reps[0][..], &reps[1][..])
            && !names_related(c, l)
        {
            return Some(Trust::Shared(SharedHostKind::NamesDisagree));
        }
        Some(Trust::Trusted)
    }

    fn trust_of(&self, k: u64) -> Trust {
        self.trust.get(&k).copied().unwrap_or(Trust::Trusted)
    }

    /// The site of an address that identifies its holder, if any.
    fn effective<'a>(&self, a: &'a Address, fp: &mut Footprint) -> Option<Effective<'a>> {
        if a.profile {
            return None;
        }
        fp.push(a.site_key);
        match self.trust_of(a.site_key) {
            Trust::Trusted => Some(Effective {
                key: a.site_key,
                addr: a,
                tenant: false,
            }),
            Trust::Shared(kind) => {
                let t = a.tenant_key?;
                if !kind.has_tenants() {
                    return None;
                }
                fp.push(t);
                (self.trust_of(t) == Trust::Trusted).then_some(Effective {
                    key: t,
                    addr: a,
                    tenant: true,
                })
            }
        }
    }

    /// Why an address is not used, for reasons.
    fn ignored_note(&self, a: &Address) -> String {
        if a.profile {
            return format!("{} ignored (a profile page on {})", a.raw, a.site);
        }
        match self.trust_of(a.site_key) {
            Trust::Shared(kind) => format!("{} ignored ({})", a.site, kind.describe()),
            Trust::Trusted => format!("{} ignored", a.site),
        }
    }

    // ----------------------------------------------------------------------------------------
    // Matching one LinkedIn company

    /// Matches the given live slots; dead slots are skipped by the callers.
    fn compute_many(&self, slots: &[u32]) -> Vec<(u32, LinkedInResult, Footprint)> {
        let one = |&s: &u32| self.compute(s).map(|(r, fp)| (s, r, fp));
        if slots.len() >= 64 {
            slots.par_iter().with_min_len(256).filter_map(one).collect()
        } else {
            slots.iter().filter_map(one).collect()
        }
    }

    fn compute(&self, slot: u32) -> Option<(LinkedInResult, Footprint)> {
        let mut fp: Footprint = Vec::new();
        let x = self.li.get(slot as usize)?.as_ref()?;
        let decisions: &[(CrmId, DecisionKind)] = self
            .decisions
            .get(&x.id)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
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
            .find_map(|(_, a)| self.effective(a, ctx.fp));
        let (mut matches, review) = ctx.algorithm(&rejected);

        // Manual decisions win.
        let mut manual = false;
        for (crm_id, kind) in decisions {
            ctx.fp.push(key(KeyKind::CrmId, crm_id.as_str()));
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

fn dedup_by_id<T, K: Eq + std::hash::Hash>(v: Vec<T>, id: impl Fn(&T) -> K) -> Vec<T> {
    let mut last: std::collections::HashMap<K, usize> = std::collections::HashMap::new();
    for (i, r) in v.iter().enumerate() {
        last.insert(id(r), i);
    }
    if last.len() == v.len() {
        return v;
    }
    // Keep the last version of each id, at the position of its first arrival.
    let mut first: std::collections::HashMap<K, usize> = std::collections::HashMap::new();
    for (i, r) in v.iter().enumerate() {
        first.entry(id(r)).or_insert(i);
    }
    let mut slots: Vec<Option<T>> = (0..v.len()).map(|_| None).collect();
    for (i, r) in v.into_iter().enumerate() {
        let k = id(&r);
        if last.get(&k) == Some(&i)
            && let Some(&f) = first.get(&k)
        {
            slots[f] = Some(r);
        }
    }
    slots.into_iter().flatten().collect()
}

/// Two addresses on one site whose hosts carry different non-generic labels
/// (`apex.platform.com`, `bolt.platform.com`) are different sites unless the tenant is the site.
fn different_hosts(a: &Address, b: &Address) -> bool {
    matches!((&a.sub_label, &b.sub_label), (Some(x), Some(y)) if x != y)
        && a.site_key == b.site_key
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

/// A candidate during matching.
struct Cand<'a> {
    c: &'a CrmEntry,
    conflict: Option<String>,
    /// Set for fuzzy candidates.
    hit: Option<FuzzyHit>,
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
            let mut anchors: Vec<&'a CrmEntry> = Vec::new();
            for s in self.ix.crm_keys.slots(&[xe.key]) {
                if let Some(c) = self.crm(s)
                    && c.rec.addrs.iter().any(|(_, a)| {
                        a.holds(xe.key) && !a.profile && !different_hosts(xe.addr, a)
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
        if !self.x.rec.name.is_empty() {
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
        for (_, a) in &x.rec.addrs {
            if a.profile || self.ix.trust_of(a.site_key) != Trust::Shared(SharedHostKind::NamesDisagree) {
                continue;
            }
            let mut holders: Vec<&'a CrmEntry> = Vec::new();
            for s in self.ix.crm_keys.slots(&[a.site_key]) {
                if let Some(c) = self.crm(s)
                    && c.rec.addrs.iter().any(|(_, b)| b.site_key == a.site_key && !b.profile)
                    && !rejected(&c.id)
                {
                    holders.push(c);
                }
            }
            if holders.is_empty() {
                continue;
            }
            holders.sort_by(|p, q| p.id.cmp(&q.id));
            let candidates = holders
                .iter()
                .map(|c| Candidate {
                    crm_id: c.id.clone(),
                    crm_name: c.rec.name_raw.to_string(),
                    method: Method::Domain,
                    score: Score::new(0.6),
                    reason: format!(
                        "website {} → {} is also the CRM account's, but the names are unrelated",
                        a.raw, a.site
                    ),
                })
                .collect();
            return (
                Vec::new(),
                Some(Review {
                    reason: format!(
                        "same website {} as CRM accounts with unrelated names (rebrand or typing error?)",
                        a.site
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
                && !c.rec.name.is_empty()
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
        let mut keys = Vec::new();
        self.x.rec.name.fuzzy_query_keys(&mut keys);
        self.fp.extend_from_slice(&keys);
        let slots = self.ix.crm_keys.slots(&keys);
        let rare_max = self.ix.cfg.rare_word_max;
        let tokens = &self.ix.tokens;
        let mut read: Vec<u64> = Vec::new();
        let mut out: Vec<Cand<'a>> = Vec::new();
        for s in slots {
            let Some(c) = self.crm(s) else { continue };
            if c.rec.name.is_empty() || rejected(&c.id) || c.rec.exact == self.x.rec.exact {
                continue;
            }
            let mut is_rare = |t: &str| {
                let k = key(KeyKind::TokenCount, t);
                read.push(k);
                tokens.get(&k).copied().unwrap_or(0) <= rare_max
            };
            if let Some(hit) = fuzzy_compare(&self.x.rec.name, &c.rec.name, &mut is_rare) {
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
    fn conflict(&mut self, c: &'a CrmEntry) -> Option<String> {
        if let (Some(a), Some(b)) = (self.x.rec.country, c.rec.country)
            && a != b
        {
            return Some(format!(
                "countries differ: LinkedIn {}, CRM {}",
                country_str(&a),
                country_str(&b)
            ));
        }
        let xe = self.xeff?;
        let mut first_trusted: Option<Effective<'a>> = None;
        for (_, a) in &c.rec.addrs {
            if let Some(ce) = self.ix.effective(a, self.fp) {
                if ce.key == xe.key || same_brand(ce.label(), xe.label()) {
                    return None;
                }
                first_trusted.get_or_insert(ce);
            }
        }
        first_trusted.map(|ce| {
            format!(
                "websites differ: LinkedIn {} → {}, CRM {} → {}",
                xe.addr.raw,
                xe.shown(),
                ce.addr.raw,
                ce.shown()
            )
        })
    }

    /// The trusted sites of a CRM account.
    fn effective_sites(&mut self, c: &'a CrmEntry) -> Vec<Effective<'a>> {
        c.rec
            .addrs
            .iter()
            .filter_map(|(_, a)| self.ix.effective(a, self.fp))
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
                .find(|(_, ad)| ad.holds(xe.key))
                .map(|(f, ad)| (*f, ad.raw.as_ref()))
                .unwrap_or((AddrField::Domain, ""));
            let related = names_related(&x.rec.name, &a.rec.name);
            let mut reason = format!(
                "website {} → {} equals CRM {} {}",
                xe.addr.raw,
                xe.shown(),
                field.as_str(),
                addr
            );
            if !related {
                reason.push_str(&format!(
                    "; names differ (\"{}\" / \"{}\")",
                    x.rec.name_raw, a.rec.name_raw
                ));
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
            if rec.name.is_empty() {
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
                let domain_note = if sites.is_empty() {
                    match c.rec.addrs.first() {
                        Some((_, ad)) => format!("its domain {}", self.ix.ignored_note(ad)),
                        None => "it has no domain".to_string(),
                    }
                } else {
                    "its website differs only in suffix".to_string()
                };
                dups.push(Match {
                    linkedin_id: x.id.clone(),
                    crm_id: c.id.clone(),
                    method: Method::Name,
                    score: Score::new(0.9),
                    reason: format!(
                        "duplicate CRM account: name \"{}\" equals that of {} (matched by domain {}); {}",
                        c.rec.name_raw,
                        twin.id,
                        xe.shown(),
                        domain_note
                    ),
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
                let mut scored: Vec<f64> = ok
                    .iter()
                    .map(|c| c.hit.as_ref().map_or(0.0, |h| h.score))
                    .collect();
                scored.sort_by(|a, b| b.total_cmp(a));
                if scored.len() >= 2 && scored[0] - scored[1] >= 0.1 {
                    let best = ok
                        .iter()
                        .find(|c| c.hit.as_ref().map_or(0.0, |h| h.score) == scored[0]);
                    if let Some(best) = best {
                        return (vec![self.pair(best, method, ok.len())], None);
                    }
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
    /// trusted sites among them agree (same site or same label).
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

    fn evidence_notes(&mut self, c: &'a CrmEntry) -> String {
        let mut notes: Vec<String> = Vec::new();
        match (self.xeff, self.x.rec.addrs.first()) {
            (Some(_), _) => {}
            (None, Some((_, a))) => notes.push(format!("LinkedIn website {}", self.ix.ignored_note(a))),
            (None, None) => notes.push("LinkedIn has no website".to_string()),
        }
        let sites = self.effective_sites(c);
        if let Some(ce) = sites.first() {
            if let Some(xe) = self.xeff {
                notes.push(format!(
                    "websites differ only in suffix: {} / {}",
                    xe.shown(),
                    ce.shown()
                ));
            }
        } else {
            match c.rec.addrs.first() {
                Some((f, a)) => notes.push(format!("CRM {} {}", f.as_str(), self.ix.ignored_note(a))),
                None => notes.push("CRM has no domain".to_string()),
            }
        }
        notes.join("; ")
    }

    fn pair(&mut self, cand: &Cand<'a>, method: Method, n: usize) -> Match {
        let c = cand.c;
        let notes = self.evidence_notes(c);
        let (score, what) = match (&cand.hit, method) {
            (Some(h), _) => (
                h.score,
                format!(
                    "name \"{}\" ≈ CRM name \"{}\" ({})",
                    self.x.rec.name_raw, c.rec.name_raw, h.detail
                ),
            ),
            _ => (
                if self.xeff.is_some() && !self.effective_sites(c).is_empty() {
                    0.93
                } else {
                    0.9
                },
                format!(
                    "name \"{}\" → \"{}\" equals CRM name \"{}\"",
                    self.x.rec.name_raw,
                    self.x.rec.name.as_str(),
                    c.rec.name_raw
                ),
            ),
        };
        let dup = if n > 1 {
            format!("; one of {n} accounts of the same company")
        } else {
            String::new()
        };
        Match {
            linkedin_id: self.x.id.clone(),
            crm_id: c.id.clone(),
            method,
            score: Score::new(score),
            reason: format!("{what}; {notes}{dup}"),
        }
    }

    fn review(&mut self, reason: String, cands: &[Cand<'a>], method: Method) -> Review {
        let mut candidates: Vec<Candidate> = Vec::new();
        for cand in cands {
            let c = cand.c;
            let score = cand.hit.as_ref().map_or(0.8, |h| h.score * 0.9);
            let mut why = match &cand.hit {
                Some(h) => format!("name ≈ \"{}\" ({})", c.rec.name_raw, h.detail),
                None => format!("name = \"{}\"", c.rec.name_raw),
            };
            if let Some(conf) = &cand.conflict {
                why.push_str("; ");
                why.push_str(conf);
            } else {
                why.push_str("; ");
                why.push_str(&self.evidence_notes(c));
            }
            candidates.push(Candidate {
                crm_id: c.id.clone(),
                crm_name: c.rec.name_raw.to_string(),
                method,
                score: Score::new(if cand.conflict.is_some() { score * 0.6 } else { score }),
                reason: why,
            });
        }
        Review { reason, candidates }
    }
}
