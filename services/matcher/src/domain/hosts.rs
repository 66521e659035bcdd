//! Hosts that never identify a company.
//!
//! This is the *first line* only: a short list of well-known hosts whose registrable domain is
//! shared by people or companies that have nothing to do with each other. The weight is carried
//! by the data-driven rule in the index: a site held by records with unrelated names is not
//! trusted as identity (see `index.rs`, "site trust"), which also catches the free-mail provider,
//! link shortener or site builder that is not in this list.

use std::sync::OnceLock;

use super::hash::FastMap;

use super::site::Site;

/// What kind of shared host a site is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedHostKind {
    /// Social networks and profile sites: the path names the company, not the host.
    Social,
    /// Link shorteners and link-in-bio pages.
    Shortener,
    /// Free e-mail providers (often typed into a CRM's domain field).
    FreeMail,
    /// Website builders and hosting platforms whose tenants live under one registrable domain
    /// (when the platform is not in the Public Suffix List's PRIVATE section): the label left of
    /// the platform names the tenant.
    Platform,
    /// Found by the data: held by records with unrelated names on one side (several CRM
    /// accounts, or several LinkedIn companies).
    HeldByUnrelatedNames,
    /// Found by the data: the LinkedIn companies and the CRM accounts holding it agree among
    /// themselves but not with each other (a rebrand, or a typing error): not identity, but
    /// worth a person's look.
    NamesDisagree,
}

impl SharedHostKind {
    pub fn describe(self) -> &'static str {
        match self {
            SharedHostKind::Social => "a social network",
            SharedHostKind::Shortener => "a link shortener",
            SharedHostKind::FreeMail => "a free-mail provider",
            SharedHostKind::Platform => "a shared website platform",
            SharedHostKind::HeldByUnrelatedNames => "held by records with unrelated names",
            SharedHostKind::NamesDisagree => {
                "held on LinkedIn and in the CRM under unrelated names"
            }
        }
    }

    /// Whether a sub-label under this host names a tenant (a site of its own).
    pub fn has_tenants(self) -> bool {
        matches!(
            self,
            SharedHostKind::Platform
                | SharedHostKind::HeldByUnrelatedNames
                | SharedHostKind::NamesDisagree
        )
    }
}

const SOCIAL: &[&str] = &[
    "linkedin.com",
    "facebook.com",
    "fb.com",
    "twitter.com",
    "x.com",
    "instagram.com",
    "youtube.com",
    "tiktok.com",
    "pinterest.com",
    "reddit.com",
    "medium.com",
    "github.com",
    "gitlab.com",
    "crunchbase.com",
    "xing.com",
    "wikipedia.org",
    "glassdoor.com",
    "yelp.com",
    "google.com",
    "apple.com",
    "vk.com",
    "t.me",
    "wa.me",
    "angel.co",
    "wellfound.com",
    "producthunt.com",
    "behance.net",
    "dribbble.com",
    "vimeo.com",
    "soundcloud.com",
    "threads.net",
    "bsky.app",
    "discord.gg",
    "twitch.tv",
    "snapchat.com",
    "weibo.com",
    "ok.ru",
    "zoominfo.com",
    "dnb.com",
    "bloomberg.com",
    "indeed.com",
    "trustpilot.com",
    "g2.com",
    "capterra.com",
    "clutch.co",
    "about.me",
];

const SHORTENERS: &[&str] = &[
    "bit.ly",
    "linktr.ee",
    "t.co",
    "goo.gl",
    "tinyurl.com",
    "ow.ly",
    "lnkd.in",
    "buff.ly",
    "rebrand.ly",
    "cutt.ly",
    "is.gd",
    "youtu.be",
    "fb.me",
    "bio.link",
    "beacons.ai",
    "lnk.bio",
    "taplink.cc",
    "tiny.cc",
    "shorturl.at",
    "rb.gy",
    "t.ly",
    "bl.ink",
    "s.id",
    "dlvr.it",
    "ift.tt",
    "amzn.to",
    "msha.ke",
    "linkin.bio",
];

const FREE_MAIL: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "yahoo.com",
    "ymail.com",
    "aol.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "protonmail.com",
    "proton.me",
    "pm.me",
    "gmx.de",
    "gmx.net",
    "gmx.com",
    "web.de",
    "t-online.de",
    "mail.ru",
    "yandex.ru",
    "yandex.com",
    "qq.com",
    "163.com",
    "126.com",
    "naver.com",
    "orange.fr",
    "free.fr",
    "laposte.net",
    "libero.it",
    "mail.com",
    "fastmail.com",
    "zoho.com",
    "hey.com",
    "tutanota.com",
];

/// Free-mail brands that exist under many country suffixes (`yahoo.co.uk`, `hotmail.fr`, ...).
const FREE_MAIL_LABELS: &[&str] = &["yahoo", "hotmail", "outlook", "live", "gmx", "yandex"];

const PLATFORMS: &[&str] = &[
    "wordpress.com",
    "weebly.com",
    "wixsite.com",
    "wix.com",
    "squarespace.com",
    "tumblr.com",
    "webflow.io",
    "strikingly.com",
    "jimdosite.com",
    "jimdo.com",
    "carrd.co",
    "godaddysites.com",
    "site123.me",
    "business.site",
    "ueniweb.com",
    "mystrikingly.com",
    "webnode.com",
    "yolasite.com",
    "azurewebsites.net",
    "cloudfront.net",
    "amazonaws.com",
];

/// The well-known kind of a site, if it is one of the listed shared hosts.
pub fn known_shared_host(site: &Site) -> Option<SharedHostKind> {
    known_shared_host_str(site.as_str(), site.label())
}

/// [`known_shared_host`] on a registrable domain given as text, with its label.
pub(crate) fn known_shared_host_str(s: &str, label: &str) -> Option<SharedHostKind> {
    // A fixed fast hash: this runs for every address of every record.
    static KNOWN: OnceLock<FastMap<&'static str, SharedHostKind>> = OnceLock::new();
    let known = KNOWN.get_or_init(|| {
        let mut m = FastMap::default();
        for (list, kind) in [
            (PLATFORMS, SharedHostKind::Platform),
            (FREE_MAIL, SharedHostKind::FreeMail),
            (SHORTENERS, SharedHostKind::Shortener),
            (SOCIAL, SharedHostKind::Social),
        ] {
            for &host in list {
                m.insert(host, kind);
            }
        }
        m
    });
    if let Some(&kind) = known.get(s) {
        return Some(kind);
    }
    FREE_MAIL_LABELS
        .contains(&label)
        .then_some(SharedHostKind::FreeMail)
}

/// Sub-labels that name a part of a site, never a tenant: `www`, language codes, `shop`, ...
pub fn is_generic_sub_label(label: &str) -> bool {
    const GENERIC: &[&str] = &[
        "m",
        "mobile",
        "amp",
        "app",
        "apps",
        "api",
        "blog",
        "shop",
        "store",
        "careers",
        "career",
        "jobs",
        "go",
        "get",
        "info",
        "about",
        "home",
        "mail",
        "email",
        "web",
        "news",
        "support",
        "help",
        "portal",
        "secure",
        "login",
        "account",
        "my",
        "docs",
        "status",
        "investors",
        "ir",
        "media",
        "press",
        "corporate",
        "global",
        "int",
        "intl",
        "static",
        "cdn",
        "img",
        "assets",
        "sites",
        "site",
        "pages",
        "en-us",
        "en-gb",
    ];
    label.starts_with("www")
        || (label.len() == 2 && label.bytes().all(|b| b.is_ascii_lowercase()))
        || GENERIC.contains(&label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::site::WebAddress;

    fn kind(raw: &str) -> Option<SharedHostKind> {
        known_shared_host(&WebAddress::parse(raw).unwrap().site)
    }

    #[test]
    fn given_well_known_shared_hosts_then_they_are_classified() {
        assert_eq!(
            kind("https://www.linkedin.com/company/acme"),
            Some(SharedHostKind::Social)
        );
        assert_eq!(
            kind("https://linktr.ee/acme"),
            Some(SharedHostKind::Shortener)
        );
        assert_eq!(kind("gmail.com"), Some(SharedHostKind::FreeMail));
        assert_eq!(kind("yahoo.co.uk"), Some(SharedHostKind::FreeMail));
        assert_eq!(
            kind("https://acme.wordpress.com/"),
            Some(SharedHostKind::Platform)
        );
        assert_eq!(kind("acme.com"), None);
    }

    #[test]
    fn given_sub_labels_then_only_tenant_like_ones_are_not_generic() {
        assert!(is_generic_sub_label("www"));
        assert!(is_generic_sub_label("www2"));
        assert!(is_generic_sub_label("en"));
        assert!(is_generic_sub_label("shop"));
        assert!(!is_generic_sub_label("acmeenergy"));
    }
}
