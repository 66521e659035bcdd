//! Web addresses and the sites they belong to.
//!
//! A website or domain typed by a person or a provider comes in every surface form: with or
//! without scheme, `www`, path, query, port, user-info, trailing dot, in any case, with
//! internationalised labels in Unicode or punycode. All of them reduce to one [`Site`]: the
//! registrable domain by the Public Suffix List (ICANN and PRIVATE sections, so tenants of shared
//! platforms such as `*.github.io` are distinct sites), in lowercase ASCII (punycode for IDNs).

use std::fmt;

/// A registrable domain ("acme.co.uk", "acme.github.io"), lowercase ASCII. A value that exists is
/// valid: it is only made by [`registrable_domain`] and [`WebAddress::parse`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Site {
    name: Box<str>,
    /// Length of the first label ("acme" in "acme.co.uk").
    label_len: u8,
}

impl Site {
    /// The registrable domain, e.g. `acme.co.uk`.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The label the owner chose, left of the public suffix: `acme` in `acme.co.uk`.
    pub fn label(&self) -> &str {
        self.name
            .get(..usize::from(self.label_len))
            .unwrap_or(&self.name)
    }

    /// The public suffix: `co.uk` in `acme.co.uk`.
    pub fn suffix(&self) -> &str {
        self.name
            .get(usize::from(self.label_len) + 1..)
            .unwrap_or("")
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl fmt::Debug for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Site({})", self.name)
    }
}

/// Why a text is not a usable web address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebAddressError {
    #[error("empty")]
    Empty,
    #[error("no host name in it")]
    NoHost,
    #[error("an IP address, not a domain")]
    IpAddress,
    #[error("host name {0:?} is not a valid domain name")]
    InvalidHost(String),
    #[error("{0:?} is a public suffix, not a registrable domain")]
    PublicSuffix(String),
}

/// A parsed website or domain value.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WebAddress {
    /// The host, lowercase ASCII, without trailing dot.
    pub host: Box<str>,
    /// The registrable domain of the host.
    pub site: Site,
    /// The label directly left of the site, when there is one ("shop" in "shop.acme.com").
    /// On a shared platform that is not in the Public Suffix List, it names the tenant.
    pub sub_label: Option<Box<str>>,
    /// The path, lowercase, without query and fragment (`/company/acme` for
    /// `linkedin.com/company/Acme?trk=1`); empty when there is none.
    pub path: Box<str>,
}

impl WebAddress {
    /// The path's non-empty segments.
    pub fn path_segments(&self) -> impl Iterator<Item = &str> {
        self.path.split('/').filter(|s| !s.is_empty())
    }
}

impl WebAddress {
    /// Parses a website or domain in any common surface form.
    ///
    /// Beyond [`registrable_domain`], two allowances for values people type: a leading `www`
    /// label is never a registrant's choice (it is dropped when something registrable or listed
    /// remains), and a value that is exactly a multi-label public suffix (`t.se`, a county
    /// suffix in the list) is taken as typed. Whether such a site identifies anybody is then
    /// decided by the data (see site trust in the index).
    pub fn parse(raw: &str) -> Result<WebAddress, WebAddressError> {
        let mut buf = String::new();
        let parts = AddressParts::parse(raw, &mut buf)?;
        let path: Box<str> = if parts.path.is_empty() {
            Box::from("")
        } else {
            parts.path.to_lowercase().into_boxed_str()
        };
        Ok(WebAddress {
            host: parts.host.into(),
            site: Site {
                name: parts.site.into(),
                label_len: parts.label_len,
            },
            sub_label: parts.sub_label.map(Box::from),
            path,
        })
    }
}

/// What [`WebAddress::parse`] finds, borrowed instead of allocated: the host from a buffer the
/// caller keeps from one address to the next, the path from the input.
pub(crate) struct AddressParts<'a> {
    /// The host, lowercase ASCII, without trailing dot (nor a leading `www` when dropped).
    pub host: &'a str,
    /// The registrable domain: the end of `host`.
    pub site: &'a str,
    /// Length of the site's first label.
    pub label_len: u8,
    /// The label directly left of the site, when there is one.
    pub sub_label: Option<&'a str>,
    /// The path as typed (any case), without query and fragment; empty when it is only "/".
    pub path: &'a str,
}

impl<'a> AddressParts<'a> {
    /// See [`WebAddress::parse`]; `buf` receives the host.
    pub(crate) fn parse(
        raw: &'a str,
        buf: &'a mut String,
    ) -> Result<AddressParts<'a>, WebAddressError> {
        let (host, path) = extract_host(raw)?;
        host_to_ascii_into(host, buf)?;
        let full: &'a str = buf;
        // Where the host starts once a leading "www" label is dropped.
        let mut from = 0;
        if let Some((first, rest)) = full.split_once('.')
            && first.starts_with("www")
            && first[3..].bytes().all(|b| b.is_ascii_digit())
            && rest.contains('.')
        {
            from = first.len() + 1;
        }
        let (site_start, label_len, from) = match registrable_range(&full[from..])
            .or_else(|| suffix_as_typed_range(&full[from..]))
        {
            Some((start, label_len)) => (from + start, label_len, from),
            None => {
                let (start, label_len) = registrable_range(full)
                    .ok_or_else(|| WebAddressError::PublicSuffix(full.to_string()))?;
                (start, label_len, 0)
            }
        };
        let ascii = &full[from..];
        let site = &full[site_start..];
        let sub_label = ascii
            .len()
            .checked_sub(site.len() + 1)
            .and_then(|end| ascii.get(..end))
            .and_then(|rest| rest.rsplit('.').next())
            .filter(|label| !label.is_empty());
        let path_end = path
            .bytes()
            .position(|b| b == b'?' || b == b'#')
            .unwrap_or(path.len());
        let path = if path_end > 1 { &path[..path_end] } else { "" };
        Ok(AddressParts {
            host: ascii,
            site,
            label_len,
            sub_label,
            path,
        })
    }

    /// The site's first label: `acme` in `acme.co.uk`.
    pub(crate) fn label(&self) -> &'a str {
        self.site
            .get(..usize::from(self.label_len))
            .unwrap_or(self.site)
    }
}

/// The registrable domain of a host name, or `None` when the host is itself a public suffix, is
/// empty, has an empty label (leading dot) or is not a domain name. Unicode and punycode input
/// give the same (punycode) answer. A single trailing dot (fully-qualified form) is accepted.
pub fn registrable_domain(host: &str) -> Option<Site> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let ascii = host_to_ascii(host).ok()?;
    registrable_domain_ascii(&ascii)
}

/// Host part of a URL-ish text, and what follows it: drops scheme, user-info and port.
fn extract_host(raw: &str) -> Result<(&str, &str), WebAddressError> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(WebAddressError::Empty);
    }
    // Byte searches: a URL is short, and a substring searcher costs more to set up than the
    // scan (this runs for every record).
    let rest = match s.as_bytes().windows(3).position(|w| w == b"://") {
        Some(i) => &s[i + 3..],
        None => s.strip_prefix("//").unwrap_or(s),
    };
    // "mailto:someone@acme.com" and a bare e-mail address name the mail domain.
    let rest = match rest.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("mailto:") => &rest[7..],
        _ => rest,
    };
    let end = rest
        .bytes()
        .position(|b| matches!(b, b'/' | b'?' | b'#' | b'\\'))
        .unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host_port = match authority.rsplit_once('@') {
        Some((_user, hp)) => hp,
        None => authority,
    };
    if host_port.starts_with('[') {
        return Err(WebAddressError::IpAddress);
    }
    let host = match host_port.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        Some(_) => return Err(WebAddressError::InvalidHost(host_port.to_string())),
        None => host_port,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return Err(WebAddressError::NoHost);
    }
    Ok((host, tail))
}

/// Lowercase ASCII form of a host; IDNs go through UTS #46 to punycode.
fn host_to_ascii(host: &str) -> Result<String, WebAddressError> {
    let mut buf = String::new();
    host_to_ascii_into(host, &mut buf)?;
    Ok(buf)
}

/// [`host_to_ascii`] into a buffer (cleared first).
fn host_to_ascii_into(host: &str, buf: &mut String) -> Result<(), WebAddressError> {
    let invalid = || WebAddressError::InvalidHost(host.to_string());
    buf.clear();
    if host.is_empty() {
        return Err(WebAddressError::NoHost);
    }
    if host.is_ascii() {
        buf.push_str(host);
        buf.make_ascii_lowercase();
        if buf.as_bytes().windows(3).any(|w| w == b"xn-") {
            // Validate and canonicalise punycode labels.
            let ascii = idna::domain_to_ascii(buf).map_err(|_| invalid())?;
            buf.clear();
            buf.push_str(&ascii);
        }
    } else {
        buf.push_str(&idna::domain_to_ascii(host).map_err(|_| invalid())?);
    }
    // Labels of letters, digits, '-' and '_', 1 to 63 bytes, 253 bytes in all (one pass over
    // the bytes: this runs for every record).
    let ascii = buf.as_bytes();
    if ascii.len() > 253 {
        return Err(invalid());
    }
    let mut label_len = 0usize;
    let mut label_digits = true;
    for &b in ascii {
        if b == b'.' {
            if label_len == 0 || label_len > 63 {
                return Err(invalid());
            }
            label_len = 0;
            label_digits = true;
        } else if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            label_len += 1;
            label_digits &= b.is_ascii_digit();
        } else {
            return Err(invalid());
        }
    }
    if label_len == 0 || label_len > 63 {
        return Err(invalid());
    }
    if label_digits {
        return Err(WebAddressError::IpAddress);
    }
    Ok(())
}

/// A host that is itself a listed public suffix of two labels or more, taken as a site — unless
/// its first label is a generic category (`co.uk`, `com.au`, `org.br`), never a name.
fn suffix_as_typed_range(ascii: &str) -> Option<(usize, u8)> {
    const GENERIC: &[&str] = &[
        "com", "co", "net", "org", "gov", "gob", "edu", "ac", "mil", "int", "nom", "sch", "ltd",
        "plc", "info", "biz", "or", "ne", "go", "gv", "web", "firm", "gen", "ind", "store",
    ];
    let suffix = psl::suffix(ascii.as_bytes())?;
    if !suffix.is_known() || suffix.as_bytes() != ascii.as_bytes() {
        return None;
    }
    let (label, _) = ascii.split_once('.')?;
    if GENERIC.contains(&label) {
        return None;
    }
    Some((0, u8::try_from(label.len()).ok()?))
}

fn registrable_domain_ascii(ascii: &str) -> Option<Site> {
    let (start, label_len) = registrable_range(ascii)?;
    Some(Site {
        name: ascii.get(start..)?.into(),
        label_len,
    })
}

/// Where the registrable domain of a lowercase ASCII host starts, and its first label's length.
fn registrable_range(ascii: &str) -> Option<(usize, u8)> {
    let b = ascii.as_bytes();
    if b.is_empty() || b[0] == b'.' || b[b.len() - 1] == b'.' || b.windows(2).any(|w| w == b"..") {
        return None;
    }
    let domain = psl::domain(ascii.as_bytes())?;
    let len = domain.as_bytes().len();
    let suffix_len = domain.suffix().as_bytes().len();
    let label_len = len.checked_sub(suffix_len + 1)?;
    let label_len = u8::try_from(label_len).ok()?;
    Some((ascii.len().checked_sub(len)?, label_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site_of(raw: &str) -> String {
        match WebAddress::parse(raw) {
            Ok(w) => w.site.to_string(),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn given_any_surface_form_when_parsed_then_registrable_domain() {
        for raw in [
            "acme.co.uk",
            "www.acme.co.uk",
            "https://www.acme.co.uk/",
            "HTTPS://WWW.ACME.CO.UK/ABOUT?x=1#top",
            "http://shop.acme.co.uk:8080/path",
            "https://user:pass@acme.co.uk",
            "acme.co.uk.",
            "https://www.acme.co.uk./",
            "//acme.co.uk/home",
            "  acme.co.uk  ",
            "mailto:info@acme.co.uk",
            "info@acme.co.uk",
        ] {
            assert_eq!(site_of(raw), "acme.co.uk", "{raw}");
        }
    }

    #[test]
    fn given_a_platform_tenant_when_parsed_then_the_tenant_is_the_site() {
        assert_eq!(site_of("https://acme.github.io/"), "acme.github.io");
        assert_eq!(site_of("acme.myshopify.com"), "acme.myshopify.com");
        assert_eq!(site_of("https://acme.blogspot.com"), "acme.blogspot.com");
    }

    #[test]
    fn given_an_internationalised_name_when_parsed_then_unicode_and_punycode_agree() {
        assert_eq!(site_of("https://www.bücher.de/"), "xn--bcher-kva.de");
        assert_eq!(site_of("WWW.XN--BCHER-KVA.DE"), "xn--bcher-kva.de");
        assert_eq!(site_of("食狮.公司.cn"), "xn--85x722f.xn--55qx5d.cn");
    }

    #[test]
    fn given_something_that_is_not_a_domain_when_parsed_then_error() {
        assert!(WebAddress::parse("").is_err());
        assert!(WebAddress::parse("   ").is_err());
        assert!(WebAddress::parse("http://").is_err());
        assert!(WebAddress::parse("http://192.168.0.1/").is_err());
        assert!(WebAddress::parse("http://[::1]:80/").is_err());
        assert!(WebAddress::parse("co.uk").is_err());
        assert!(WebAddress::parse("not a domain").is_err());
        assert!(WebAddress::parse("acme..com").is_err());
        assert!(WebAddress::parse("localhost").is_err());
    }

    #[test]
    fn given_a_site_then_label_and_suffix_split_at_the_public_suffix() {
        let w = WebAddress::parse("https://shop.fminc.co.uk/").unwrap();
        assert_eq!(w.site.label(), "fminc");
        assert_eq!(w.site.suffix(), "co.uk");
        assert_eq!(w.sub_label.as_deref(), Some("shop"));
        let w = WebAddress::parse("fminc.com").unwrap();
        assert_eq!(w.sub_label, None);
    }

    #[test]
    fn given_www_before_a_listed_suffix_then_the_suffix_is_the_site_as_typed() {
        // t.se is a (county) suffix in the list; people still type it as a company domain.
        assert_eq!(site_of("https://www.t.se"), "t.se");
        assert_eq!(site_of("t.se"), "t.se");
        // ...but neither a one-label suffix nor a generic category is a site, and the strict
        // function stays strict.
        assert!(WebAddress::parse("com").is_err());
        assert!(WebAddress::parse("co.uk").is_err());
        assert_eq!(registrable_domain("t.se"), None);
    }

    #[test]
    fn given_a_url_then_its_path_segments_are_kept() {
        let w = WebAddress::parse("https://www.linkedin.com/company/Acme-Corp/?trk=x#y").unwrap();
        let path: Vec<&str> = w.path_segments().collect();
        assert_eq!(path, vec!["company", "acme-corp"]);
    }
}
