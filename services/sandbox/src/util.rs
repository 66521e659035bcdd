//! Small shared pieces: a deterministic RNG, the sandbox clock, time formats, ids.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// SplitMix64: tiny, fast, and stable forever (unlike `rand`'s StdRng, whose algorithm may
/// change between versions). The generated data must not change when a dependency does.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// An independent stream for one part of the data, so changing one size does not reshuffle
    /// the others.
    pub fn stream(seed: u64, name: &str) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let mut r = Rng::new(seed ^ h);
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; returns 0 for n == 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// Uniform float in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// 9999-12-31T23:59:59.999Z: past this, times would not format.
const MAX_MS: i64 = 253_402_300_799_999;

/// The sandbox's clock: starts at the anchor (or real now) and runs in real time; tests can
/// advance it to expire tokens or to order modifications without sleeping.
#[derive(Debug)]
pub struct Clock {
    base_ms: i64,
    started: Instant,
    offset_ms: AtomicI64,
}

impl Clock {
    pub fn new(anchor: Option<NaiveDate>) -> Self {
        let base_ms = match anchor.and_then(|d| d.and_hms_opt(0, 0, 0)) {
            Some(dt) => dt.and_utc().timestamp_millis(),
            None => Utc::now().timestamp_millis(),
        };
        Clock {
            base_ms,
            started: Instant::now(),
            offset_ms: AtomicI64::new(0),
        }
    }

    /// A clock that reads `now_ms` now and runs on from there (a restored one).
    pub fn starting_at(now_ms: i64) -> Self {
        Clock {
            base_ms: now_ms.min(MAX_MS),
            started: Instant::now(),
            offset_ms: AtomicI64::new(0),
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.base_ms
            .saturating_add(self.started.elapsed().as_millis() as i64)
            .saturating_add(self.offset_ms.load(Ordering::Relaxed))
            .min(MAX_MS)
    }

    /// Move forward; the clock stops at the end of year 9999.
    pub fn advance(&self, ms: i64) {
        let _ = self
            .offset_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |o| {
                Some(o.saturating_add(ms.max(0)).min(MAX_MS))
            });
    }
}

pub fn to_datetime(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
}

/// HubSpot / ISO form: `2025-01-31T12:34:56.789Z`.
pub fn fmt_iso(ms: i64) -> String {
    to_datetime(ms).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Salesforce datetime form: `2025-01-31T12:34:56.000+0000`.
pub const SF_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3f+0000";

pub fn date_ms(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .map(|dt| dt.and_utc().timestamp_millis())
        .unwrap_or_default()
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// An 18-character Salesforce id: 3-char key prefix, 12 chars of body, 3-char case-safe suffix
/// computed like Salesforce does.
pub fn sf_id(prefix: &str, n: u64) -> String {
    let mut body = [b'0'; 12];
    body[0] = b'D';
    body[1] = b'n';
    let mut v = n;
    for slot in body[4..].iter_mut().rev() {
        *slot = BASE62[(v % 62) as usize];
        v /= 62;
    }
    let mut id15 = String::with_capacity(18);
    id15.push_str(prefix);
    id15.push_str(std::str::from_utf8(&body).unwrap_or("Dn0000000000"));
    let suffix = sf_suffix(&id15);
    id15.push_str(&suffix);
    id15
}

fn sf_suffix(id15: &str) -> String {
    const MAP: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let bytes = id15.as_bytes();
    let mut out = String::with_capacity(3);
    for chunk in 0..3 {
        let mut bits = 0usize;
        for i in 0..5 {
            if let Some(c) = bytes.get(chunk * 5 + i)
                && c.is_ascii_uppercase()
            {
                bits |= 1 << i;
            }
        }
        out.push(MAP[bits] as char);
    }
    out
}

/// Random opaque token material (not deterministic: tokens are secrets).
pub fn random_token(prefix: &str) -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{a}{b}")
}

/// Percent-decode (`+` is left alone: Rest.li and SOQL values use `%20`).
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Form-style decode: `+` means space.
pub fn form_decode(s: &str) -> Option<String> {
    percent_decode(&s.replace('+', " "))
}

/// Parse `a=1&b=2` (form-urlencoded) into pairs; undecodable pairs are skipped.
pub fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((form_decode(k)?, form_decode(v)?))
        })
        .collect()
}

pub fn form_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Percent-encode everything but unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salesforce_ids_have_18_chars_and_a_case_safe_suffix() {
        let id = sf_id("001", 12345);
        assert_eq!(id.len(), 18);
        assert!(id.starts_with("001Dn"));
        // The suffix encodes which of the first 15 chars are upper case.
        assert_eq!(&id[15..], &sf_suffix(&id[..15]));
        assert_ne!(sf_id("001", 1), sf_id("001", 2));
        assert!(sf_id("001", 1) < sf_id("001", 2));
    }

    #[test]
    fn rng_is_deterministic_per_stream() {
        let a: Vec<u64> = (0..5).map(|_| Rng::stream(1, "x").next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::stream(1, "x").next_u64(),
            Rng::stream(1, "y").next_u64()
        );
    }

    #[test]
    fn form_decoding() {
        let p = parse_form("a=1+2&b=%2Fx&c");
        assert_eq!(form_get(&p, "a"), Some("1 2"));
        assert_eq!(form_get(&p, "b"), Some("/x"));
        assert_eq!(form_get(&p, "c"), Some(""));
    }
}
