//! Names near each other: the look-up keys that find a CRM name a typo away, and the comparison
//! that decides whether two normalised names are one company's (a typo in one rare word, a
//! mistyped trailing legal form) or merely related (for the trust of a shared site).

use super::hash::{KeyHasher, KeyKind, key};
use super::names::legal_forms;

/// Shortest and longest name (without spaces, in characters) that takes part in fuzzy look-up:
/// below, one letter changes the meaning; above, the deletion keys cost more than they find.
const FUZZY_MIN_CHARS: usize = 5;
const FUZZY_MAX_CHARS: usize = 48;

/// Keys under which a CRM account is indexed for fuzzy look-up: every one-character deletion
/// of the name without spaces (two strings one edit apart share one of these: symmetric
/// deletion), and the name without its last word (to meet a name with a mistyped legal form).
pub(crate) fn fuzzy_index_keys(core: &str, out: &mut Vec<u64>) {
    deletion_keys(core, out);
    if let Some((head, _)) = core.rsplit_once(' ') {
        out.push(key(KeyKind::DropLast, head));
    }
}

/// Keys a LinkedIn company looks up to find fuzzy candidates among CRM accounts.
pub(crate) fn fuzzy_query_keys(core: &str, out: &mut Vec<u64>) {
    deletion_keys(core, out);
    if !core.is_empty() {
        // The CRM name has one more (trailing) word than ours ...
        out.push(key(KeyKind::DropLast, core));
    }
    // ... or ours has one more than the CRM name.
    if let Some((head, _)) = core.rsplit_once(' ') {
        out.push(key(KeyKind::Exact, head));
    }
}

fn deletion_keys(core: &str, out: &mut Vec<u64>) {
    // Polynomial hashes of every prefix and suffix give the hash of each one-deletion variant
    // in constant time: h(c without i) = P[i] * B^(n-1-i) + S[i+1].
    const B: u64 = 0x100_0000_01B3;
    let mut chars = [0u32; FUZZY_MAX_CHARS];
    let mut n = 0;
    for c in core.chars().filter(|&c| c != ' ') {
        if n == FUZZY_MAX_CHARS {
            return;
        }
        chars[n] = c as u32;
        n += 1;
    }
    if n < FUZZY_MIN_CHARS {
        return;
    }
    let chars = &chars[..n];
    let mut prefix = [0u64; FUZZY_MAX_CHARS + 1];
    for i in 0..n {
        prefix[i + 1] = prefix[i]
            .wrapping_mul(B)
            .wrapping_add(u64::from(chars[i]) + 1);
    }
    let mut suffix = [0u64; FUZZY_MAX_CHARS + 1];
    let mut pow = [1u64; FUZZY_MAX_CHARS + 1];
    for i in 1..=n {
        pow[i] = pow[i - 1].wrapping_mul(B);
    }
    for i in (0..n).rev() {
        suffix[i] = (u64::from(chars[i]) + 1)
            .wrapping_mul(pow[n - 1 - i])
            .wrapping_add(suffix[i + 1]);
    }
    let finish = |h: u64, len: usize| {
        KeyHasher::new(KeyKind::Delete)
            .number(h)
            .number(len as u64)
            .finish()
    };
    out.push(finish(prefix[n], n));
    for i in 0..n {
        // Deleting either of two equal neighbours gives the same string: skip the repeat.
        if i > 0 && chars[i] == chars[i - 1] {
            continue;
        }
        let h = prefix[i]
            .wrapping_mul(pow[n - 1 - i])
            .wrapping_add(suffix[i + 1]);
        out.push(finish(h, n - 1));
    }
}

/// Whether two strings are at most one edit apart (insertion, deletion, substitution, or a
/// transposition of neighbours), compared by characters.
pub(crate) fn within_one_edit(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    if a.is_ascii() && b.is_ascii() {
        return one_edit(a.as_bytes(), b.as_bytes());
    }
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    one_edit(&a, &b)
}

fn one_edit<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let i = short
        .iter()
        .zip(long.iter())
        .take_while(|(x, y)| x == y)
        .count();
    if short.len() == long.len() {
        // substitution at i, or transposition of i and i+1
        short[i + 1..] == long[i + 1..]
            || (i + 1 < short.len()
                && short[i] == long[i + 1]
                && short[i + 1] == long[i]
                && short[i + 2..] == long[i + 2..])
    } else {
        // deletion from the longer one at i
        short[i..] == long[i + 1..]
    }
}

/// How two names are near each other, when they are.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct FuzzyHit<'a> {
    pub score: f64,
    pub detail: FuzzyDetail<'a>,
}

/// What differs between two names that are near each other (written out only for reasons).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum FuzzyDetail<'a> {
    /// One word mistyped: the first name's spelling, the second's.
    Typo(&'a str, &'a str),
    /// One name has an extra trailing word that reads as a mistyped legal form.
    TrailingForm(&'a str),
}

impl FuzzyDetail<'_> {
    /// Appends the human-readable detail.
    pub(crate) fn write_to(&self, out: &mut String) {
        match *self {
            FuzzyDetail::Typo(x, y) => {
                for part in ["one typo: \"", x, "\" / \"", y, "\""] {
                    out.push_str(part);
                }
            }
            FuzzyDetail::TrailingForm(extra) => {
                for part in [
                    "extra trailing \"",
                    extra,
                    "\" reads as a mistyped legal form",
                ] {
                    out.push_str(part);
                }
            }
        }
    }
}

/// Fuzzy comparison of two normalised names that are not equal: accepts a single typo in one
/// word, or one extra trailing word that is a (mistyped) legal form. Any other difference is a
/// different distinctive word, hence a different company. `is_rare` tells whether a token is
/// rare in the data (a typo makes a word nobody else uses; a real word recurs): a differing
/// word is accepted as a typo only when one of the two spellings is rare.
pub(crate) fn fuzzy_compare<'a>(
    a: &'a str,
    b: &'a str,
    is_rare: &mut dyn FnMut(&str) -> bool,
) -> Option<FuzzyHit<'a>> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let na = a.split(' ').count();
    let nb = b.split(' ').count();
    let total = a.len().max(b.len()) as f64;
    if na == nb {
        // Exactly one word differs.
        let mut diff = None;
        for (x, y) in a.split(' ').zip(b.split(' ')) {
            if x != y {
                if diff.is_some() {
                    return None;
                }
                diff = Some((x, y));
            }
        }
        let (x, y) = diff?;
        let min_len = x.chars().count().min(y.chars().count());
        let long_enough = if na == 1 {
            min_len >= 6
        } else {
            min_len >= 4 || (min_len == 3 && total >= 8.0)
        };
        if !long_enough || !within_one_edit(x, y) {
            return None;
        }
        // In a one-word name the word is usually a compound nobody else uses: rarity says
        // nothing there, length does.
        if na > 1 && !(is_rare(x) || is_rare(y)) {
            return None;
        }
        let score = 0.72 + 0.13 * (1.0 - 1.0 / total.max(1.0));
        return Some(FuzzyHit {
            score,
            detail: FuzzyDetail::Typo(x, y),
        });
    }
    let (short, long, ns, nl) = if na < nb {
        (a, b, na, nb)
    } else {
        (b, a, nb, na)
    };
    // The longer name is the shorter one and one more word.
    if nl == ns + 1 && long.starts_with(short) && long.as_bytes().get(short.len()) == Some(&b' ') {
        let extra = &long[short.len() + 1..];
        if legal_forms().is_near_form(extra) {
            return Some(FuzzyHit {
                score: 0.8,
                detail: FuzzyDetail::TrailingForm(extra),
            });
        }
    }
    None
}

/// Whether two names plausibly belong to one company, for deciding whether a web site is shared
/// by unrelated holders: equal, equal without spaces, one a word-subset of the other
/// ("Acme" / "Acme Labs"), one the initials of the other ("HBC" / "Helix Blue Capital"), or a typo
/// apart.
pub(crate) fn names_related(a: &str, b: &str) -> bool {
    if a.is_empty() || b.is_empty() {
        return false;
    }
    fn compact(s: &str) -> impl Iterator<Item = u8> + '_ {
        s.bytes().filter(|&c| c != b' ')
    }
    if a == b || compact(a).eq(compact(b)) {
        return true;
    }
    let na = a.split(' ').count();
    let nb = b.split(' ').count();
    let (short, long) = if na <= nb { (a, b) } else { (b, a) };
    if short.split(' ').all(|t| long.split(' ').any(|u| u == t)) {
        return true;
    }
    let initials_are =
        |s: &'_ str, of: &'_ str| of.split(' ').filter_map(|t| t.chars().next()).eq(s.chars());
    if na >= 2 && nb == 1 && initials_are(b, a) || nb >= 2 && na == 1 && initials_are(a, b) {
        return true;
    }
    fuzzy_compare(a, b, &mut |_| true).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::names::NormalizedName;

    #[test]
    fn given_one_typo_in_a_rare_word_then_fuzzy_accepts() {
        let a = NormalizedName::new("Cedar Vertex Studios");
        let b = NormalizedName::new("Cedar Vertex Studzos");
        let hit = fuzzy_compare(a.as_str(), b.as_str(), &mut |t| t == "studzos");
        assert!(hit.is_some());
    }

    #[test]
    fn given_names_that_differ_in_a_distinctive_word_then_fuzzy_refuses() {
        let a = NormalizedName::new("Apex Bright Foods");
        let b = NormalizedName::new("Apex Bright Health");
        assert!(fuzzy_compare(a.as_str(), b.as_str(), &mut |_| true).is_none());
        let a = NormalizedName::new("Dubois Bio");
        let b = NormalizedName::new("Dubois Bio Digital");
        assert!(fuzzy_compare(a.as_str(), b.as_str(), &mut |_| true).is_none());
    }

    #[test]
    fn given_a_one_letter_difference_between_two_common_words_then_fuzzy_refuses() {
        // "foods" and "goods" are both words many names use: not a typo.
        let a = NormalizedName::new("Apex Foods");
        let b = NormalizedName::new("Apex Goods");
        assert!(fuzzy_compare(a.as_str(), b.as_str(), &mut |_| false).is_none());
    }

    #[test]
    fn given_a_mistyped_trailing_legal_form_then_fuzzy_accepts() {
        let a = NormalizedName::new("Lindqvist and Kowalski");
        let b = NormalizedName::new("Lindqvist and Kowalski tnc.");
        assert!(fuzzy_compare(a.as_str(), b.as_str(), &mut |_| false).is_some());
    }

    #[test]
    fn given_related_names_then_related_and_unrelated_not() {
        let r = |a: &str, b: &str| {
            names_related(
                NormalizedName::new(a).as_str(),
                NormalizedName::new(b).as_str(),
            )
        };
        assert!(r("Acme Ltd", "ACME"));
        assert!(r("Acme", "Acme Labs"));
        assert!(r("HBC", "Helix Blue Capital"));
        assert!(!r("Sage Harbor Payments", "Garcia Software"));
    }

    #[test]
    fn given_names_one_edit_apart_then_they_share_a_deletion_key() {
        let keys = |s: &str| {
            let mut v = Vec::new();
            fuzzy_index_keys(NormalizedName::new(s).as_str(), &mut v);
            v
        };
        let shares = |a: &str, b: &str| keys(a).iter().any(|k| keys(b).contains(k));
        assert!(shares("Summitretail", "SUMMITuETAIL"));
        assert!(shares("Horizon Robotics", "Horizon Robttics"));
        assert!(shares("Beaconrobotics", "Beacynrobotics Co."));
        assert!(shares("Falcon Payments", "Falconpayments"));
        assert!(shares("Venutres Labs", "Ventures Labs"));
        assert!(!shares("Apex Foods", "Zenith Health"));
    }

    #[test]
    fn edit_distance_of_one() {
        assert!(within_one_edit("studios", "studzos"));
        assert!(within_one_edit("robotics", "robttics"));
        assert!(within_one_edit("ventures", "venutres"));
        assert!(within_one_edit("data", "datas"));
        assert!(!within_one_edit("foods", "health"));
        assert!(!within_one_edit("abcd", "badc"));
    }
}
