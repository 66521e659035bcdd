//! The records as the rules read them: each CRM account and LinkedIn company prepared once on
//! arrival (its name normalised, its websites parsed into sites and tenants, its keys hashed),
//! with all its text in one allocation.

use super::fuzzy::fuzzy_index_keys;
use super::hash::{KeyHasher, KeyKind, key};
use super::hosts::{SharedHostKind, is_generic_sub_label, known_shared_host_str};
use super::model::{CrmAccount, CrmId, LinkedInCompany, LinkedInId};
use super::names::{
    NameForm, NameScratch, compact_key, exact_key, latin_reading_with, normalize_with,
};
use super::site::AddressParts;

/// A piece of a record's text.
#[derive(Clone, Copy, Default)]
pub(super) struct Span {
    pub(super) start: u32,
    pub(super) len: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum AddrField {
    Domain,
    Website,
}

impl AddrField {
    #[inline]
    pub(super) fn as_str(self) -> &'static str {
        match self {
            AddrField::Domain => "domain",
            AddrField::Website => "website",
        }
    }
}

/// One website/domain value of a record, parsed; its text lives in the record's arena.
#[derive(Clone, Copy)]
pub(super) struct Addr {
    pub(super) field: AddrField,
    /// As typed.
    pub(super) raw: Span,
    /// The registrable domain.
    pub(super) site: Span,
    /// Length of the site's label ("acme" in "acme.co.uk").
    pub(super) label_len: u32,
    /// The non-generic label left of the site, if any.
    pub(super) sub: Option<Span>,
    pub(super) site_key: u64,
    pub(super) tenant_key: Option<u64>,
    /// A page named after the holder on somebody else's host (`linktr.ee/acme`): never the
    /// holder's own site.
    pub(super) profile: bool,
    /// The site is a listed shared host (see [`super::hosts`]).
    pub(super) listed: Option<SharedHostKind>,
}

impl Addr {
    #[inline]
    pub(super) fn holds(&self, k: u64) -> bool {
        self.site_key == k || self.tenant_key == Some(k)
    }
}

/// What both sides have in common, prepared once. All text in one allocation.
pub(super) struct Prepared {
    pub(super) text: Box<str>,
    pub(super) name_raw: Span,
    pub(super) core: Span,
    pub(super) exact: u64,
    pub(super) compact: u64,
    /// How the name was written.
    pub(super) form: NameForm,
    /// The Latin reading of the core (see `names::latin_reading`), shown in reasons.
    pub(super) reading: Span,
    /// Its key; 0 when the reading is empty.
    pub(super) reading_key: u64,
    pub(super) addrs: Box<[Addr]>,
    pub(super) country: Option<[u8; 2]>,
}

/// Buffers reused from one record to the next while preparing records: with them, preparing a
/// record allocates its own two boxes and nothing else in the common case.
#[derive(Default)]
pub(super) struct PrepScratch {
    pub(super) name: NameScratch,
    pub(super) core: String,
    pub(super) reading: String,
    pub(super) word: String,
    pub(super) fallback: String,
    pub(super) host: String,
    pub(super) path: String,
    pub(super) text: String,
    pub(super) addrs: Vec<Addr>,
}

impl Prepared {
    pub(super) fn new(
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
        // A name in another script is compared through its Latin reading; so is every Latin
        // name, to be compared with those.
        let form = NameForm::of(name_raw);
        latin_reading_with(core, &mut sc.reading, &mut sc.word);
        let reading_span = push(text, &sc.reading);
        let reading_key = if sc.reading.is_empty() {
            0
        } else {
            key(KeyKind::Reading, &sc.reading)
        };
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
            form,
            reading: reading_span,
            reading_key,
            text: Box::from(text.as_str()),
            name_raw: name_span,
            core: core_span,
            addrs: Box::from(addrs.as_slice()),
            country: parse_country(country),
        }
    }

    #[inline]
    pub(super) fn s(&self, sp: Span) -> &str {
        let start = sp.start as usize;
        self.text.get(start..start + sp.len as usize).unwrap_or("")
    }

    #[inline]
    pub(super) fn name_raw(&self) -> &str {
        self.s(self.name_raw)
    }

    #[inline]
    pub(super) fn core(&self) -> &str {
        self.s(self.core)
    }

    #[inline]
    pub(super) fn reading(&self) -> &str {
        self.s(self.reading)
    }

    #[inline]
    pub(super) fn raw(&self, a: &Addr) -> &str {
        self.s(a.raw)
    }

    #[inline]
    pub(super) fn site(&self, a: &Addr) -> &str {
        self.s(a.site)
    }

    #[inline]
    pub(super) fn label(&self, a: &Addr) -> &str {
        let site = self.site(a);
        site.get(..a.label_len as usize).unwrap_or(site)
    }

    #[inline]
    pub(super) fn sub(&self, a: &Addr) -> Option<&str> {
        a.sub.map(|sp| self.s(sp))
    }

    #[inline]
    pub(super) fn site_keys(&self, out: &mut Vec<u64>) {
        for a in self.addrs.iter() {
            out.push(a.site_key);
            if let Some(t) = a.tenant_key {
                out.push(t);
            }
        }
    }

    /// Calls `f` with the rarity key of each distinct word of the name.
    pub(super) fn for_each_token_key(&self, mut f: impl FnMut(u64)) {
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
#[inline]
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
#[inline]
pub(super) fn same_brand(a: &str, b: &str) -> bool {
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

#[inline]
pub(super) fn country_str(c: &[u8; 2]) -> &str {
    std::str::from_utf8(c).unwrap_or("??")
}

pub(super) struct CrmEntry {
    pub(super) id: CrmId,
    pub(super) rec: Prepared,
}

impl CrmEntry {
    pub(super) fn new(a: CrmAccount, sc: &mut PrepScratch) -> CrmEntry {
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
    pub(super) fn index_keys(&self, out: &mut Vec<u64>) {
        self.rec.site_keys(out);
        out.push(self.rec.exact);
        out.push(self.rec.compact);
        if self.rec.reading_key != 0 {
            out.push(self.rec.reading_key);
        }
        fuzzy_index_keys(self.rec.core(), out);
        out.push(key(KeyKind::CrmId, self.id.as_str()));
    }
}

pub(super) struct LiEntry {
    pub(super) id: LinkedInId,
    pub(super) rec: Prepared,
}

impl LiEntry {
    pub(super) fn new(c: LinkedInCompany, sc: &mut PrepScratch) -> LiEntry {
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

#[cfg(test)]
mod tests {
    use super::*;

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
