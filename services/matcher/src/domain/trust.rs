//! The trust of sites: which sites (and tenants of shared hosts) identify their holder, from
//! the names of the records that hold them, and the site of an address that a rule may use.

use rayon::prelude::*;

use super::fuzzy::names_related;
use super::hosts::SharedHostKind;
use super::index::MatchIndex;
use super::prepared::{Addr, CrmEntry, LiEntry, Prepared};
use super::rules::{Footprint, push_all};

/// The dependency key for "the trust of site `k`", apart from "the holders of site `k`": a
/// company that only checked a candidate's domain for conflicts depends on the former.
#[inline]
pub(super) fn trust_dep(k: u64) -> u64 {
    k.rotate_left(29) ^ 0x7A3D_5C1E_9B4F_2D61
}

/// A site that identifies its holder: the registrable domain, or a tenant on a shared host.
#[derive(Clone, Copy)]
pub(super) struct Effective<'a> {
    pub(super) key: u64,
    pub(super) rec: &'a Prepared,
    pub(super) addr: &'a Addr,
    pub(super) tenant: bool,
}

impl<'a> Effective<'a> {
    /// The label its owner chose: the tenant label on a shared host, else the site's label.
    #[inline]
    pub(super) fn label(&self) -> &'a str {
        if self.tenant {
            self.rec.sub(self.addr).unwrap_or("")
        } else {
            self.rec.label(self.addr)
        }
    }

    #[inline]
    pub(super) fn raw(&self) -> &'a str {
        self.rec.raw(self.addr)
    }

    /// Appends the site as reasons show it.
    pub(super) fn write_shown(&self, out: &mut String) {
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

impl MatchIndex {
    pub(super) fn compute_all_trust(&mut self) {
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
    pub(super) fn compute_trust(&self, k: u64) -> Option<SharedHostKind> {
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

    #[inline]
    pub(super) fn shared_kind(&self, k: u64) -> Option<SharedHostKind> {
        if self.shared.is_empty() {
            None
        } else {
            self.shared.get(&k).copied()
        }
    }

    /// The site of an address that identifies its holder, if any.
    #[inline]
    pub(super) fn effective<'a>(
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
    pub(super) fn write_ignored_note(&self, out: &mut String, rec: &Prepared, a: &Addr) {
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
}
