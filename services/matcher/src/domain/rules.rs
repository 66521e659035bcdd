//! The rules that match one LinkedIn company against the CRM accounts, and the reasons they
//! write.
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

use rayon::prelude::*;

use super::fuzzy::{FuzzyHit, fuzzy_compare, fuzzy_query_keys, names_related};
use super::hash::{KeyKind, key};
use super::hosts::SharedHostKind;
use super::index::MatchIndex;
use super::model::{Candidate, CrmId, DecisionKind, LinkedInResult, Match, Method, Review, Score};
use super::names::NameForm;
use super::prepared::{Addr, AddrField, CrmEntry, LiEntry, Prepared, country_str, same_brand};
use super::trust::{Effective, trust_dep};

/// Keys read while matching one company.
pub(super) type Footprint = Vec<u64>;

/// Appends the pieces of a reason, in order (one allocation for the whole reason; `format!`
/// would make one per piece that is itself formatted).
#[inline]
pub(super) fn push_all(out: &mut String, parts: &[&str]) {
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
    /// Near names written differently (one in another script or in full-width forms): a
    /// look-alike of another company unless other evidence agrees.
    AcrossScripts,
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
            Conflict::AcrossScripts => out.push_str(
                "the names are written differently (another script or full-width forms) and differ by a letter: a look-alike unless other evidence agrees",
            ),
        }
    }
}

impl MatchIndex {
    /// Matches the given slots (dead ones are skipped), on all cores when there are many.
    pub(super) fn compute_many(&self, slots: &[u32]) -> Vec<(u32, LinkedInResult, Footprint)> {
        let one = |&s: &u32| self.compute(s).map(|(r, fp)| (s, r, fp));
        if slots.len() >= 64 {
            slots.par_iter().with_min_len(32).filter_map(one).collect()
        } else {
            slots.iter().filter_map(one).collect()
        }
    }

    pub(super) fn compute(&self, slot: u32) -> Option<(LinkedInResult, Footprint)> {
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
    /// Found by the Latin reading of a name in another script.
    reading: bool,
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
            // 2b. The same name in another script: the Latin readings are equal.
            let mut cands = self.same_reading(rejected);
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
                    reading: false,
                });
            }
        }
        out.sort_by(|a, b| a.c.id.cmp(&b.c.id));
        out
    }

    /// CRM accounts whose name reads the same in Latin letters, when one of the two names is
    /// in another script (two Latin names that only read alike are different names).
    fn same_reading(&mut self, rejected: &dyn Fn(&CrmId) -> bool) -> Vec<Cand<'a>> {
        let rec = &self.x.rec;
        if rec.reading_key == 0 {
            return Vec::new();
        }
        self.fp.push(rec.reading_key);
        let mut out: Vec<Cand<'a>> = Vec::new();
        for s in self.ix.crm_keys.slots(&[rec.reading_key]) {
            if let Some(c) = self.crm(s)
                && c.rec.reading_key == rec.reading_key
                && (rec.form == NameForm::Transliterated || c.rec.form == NameForm::Transliterated)
                && !rejected(&c.id)
            {
                out.push(Cand {
                    c,
                    conflict: None,
                    hit: None,
                    reading: true,
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
                    reading: false,
                });
            }
        }
        self.fp.extend(read);
        for c in &mut out {
            c.conflict = if c.c.rec.form != self.x.rec.form {
                Some(Conflict::AcrossScripts)
            } else {
                self.conflict(c.c)
            };
        }
        out.sort_by(|a, b| a.c.id.cmp(&b.c.id));
        out
    }

    /// Conflicting evidence between the LinkedIn company and a CRM account, if any.
    fn conflict(&mut self, c: &'a CrmEntry) -> Option<Conflict<'a>> {
        // A name written in another script or in full-width forms was localised, or typed in
        // another office: its record's country tells where that happened, not where the
        // company is, so countries that differ do not conflict then.
        if let (Some(a), Some(b)) = (self.x.rec.country, c.rec.country)
            && a != b
            && self.x.rec.form == c.rec.form
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
            None if cand.reading => {
                push_all(
                    &mut reason,
                    &[
                        "name \"",
                        self.x.rec.name_raw(),
                        "\" reads \"",
                        self.x.rec.reading(),
                        "\" in Latin letters, as does CRM name \"",
                        c.rec.name_raw(),
                        "\" (transliterated: weaker than the same letters)",
                    ],
                );
                0.85
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
                Some(h) if c.rec.form != self.x.rec.form => {
                    push_all(
                        &mut why,
                        &[
                            "name ≈ \"",
                            c.rec.name_raw(),
                            "\" (read \"",
                            c.rec.core(),
                            "\"; ",
                        ],
                    );
                    h.detail.write_to(&mut why);
                    why.push(')');
                }
                Some(h) => {
                    push_all(&mut why, &["name ≈ \"", c.rec.name_raw(), "\" ("]);
                    h.detail.write_to(&mut why);
                    why.push(')');
                }
                None if cand.reading => push_all(
                    &mut why,
                    &[
                        "\"",
                        self.x.rec.name_raw(),
                        "\" and CRM name \"",
                        c.rec.name_raw(),
                        "\" both read \"",
                        c.rec.reading(),
                        "\" in Latin letters",
                    ],
                ),
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
