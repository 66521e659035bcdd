//! Company names: normalisation (near names, a typo apart, are in `fuzzy`).
//!
//! A name is folded to a sequence of tokens that carry its identity:
//!
//! 1. Unicode folding: NFKD, combining marks stripped, lowercase; letters that do not decompose
//!    are spelled out (ß → ss, æ → ae, ø → o, ł → l, ...).
//! 2. Parenthesised parts ("(Global)", "(UK)", "\[EMEA\]") are qualifiers, not the name: dropped.
//! 3. `&` and `+` are "and" (German "und" too); dots and apostrophes join ("S.p.A." → "spa",
//!    "Int'l" → "intl"); any other punctuation separates words; runs of single letters join
//!    ("S A" → "sa", "K K" → "kk").
//! 4. Common business abbreviations are spelled out (intl → international, corp → corporation,
//!    co → company, tech → technology, svc → services, grp → group, mfg → manufacturing, ...).
//! 5. A leading "The" goes.
//! 6. Legal-entity forms at the end go, repeatedly ("GmbH & Co. KG", "Co., Ltd.", "S.p.A."),
//!    taken from the ISO 20275 list in `data/legal_forms.txt`; a dangling "and" goes with them.
//!
//! Every word left is *distinctive*: two names that differ in one of them name different
//! companies ("Apex Bright Foods" is not "Apex Bright Health").
//!
//! Names in other scripts (docs/matching.md, "International names"):
//!
//! 7. Legal forms written in a non-Latin script are also stripped at the *start*, where those
//!    languages put them ("ООО «Линдквист Софтваре»" → "линдквист софтваре").
//! 8. Each record also gets a *Latin reading* ([`latin_reading`]): the core transliterated to
//!    ASCII by `deunicode` (any script), then folded by [`phonetic_fold`] so that the spellings
//!    a transliteration produces for one word agree ("Софтваре" → "softvare" and "Software"
//!    both read "softvare"). Only an *exact* equality of readings counts, and only between a
//!    name in another script and one in Latin letters ([`NameForm`]).

use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::sync::OnceLock;

use unicode_normalization::char::{decompose_compatible, is_combining_mark};

use super::hash::{KeyHasher, KeyKind, PremixedHasher, key};

type KeySet = HashSet<u64, BuildHasherDefault<PremixedHasher>>;

/// The ISO 20275 legal forms (see the file header for source and licence).
const LEGAL_FORMS_TXT: &str = include_str!("../../data/legal_forms.txt");

/// Longest legal form, in tokens, that we try to strip.
const MAX_FORM_TOKENS: usize = 6;

/// A normalised company name: distinctive tokens separated by single spaces.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct NormalizedName {
    core: Box<str>,
}

impl NormalizedName {
    /// Normalises a raw company name.
    pub fn new(raw: &str) -> Self {
        let mut out = String::with_capacity(raw.len());
        normalize_into(raw, &mut out);
        NormalizedName {
            core: out.into_boxed_str(),
        }
    }

    /// Tokens joined by single spaces.
    pub fn as_str(&self) -> &str {
        &self.core
    }

    pub fn is_empty(&self) -> bool {
        self.core.is_empty()
    }

    pub fn tokens(&self) -> std::str::Split<'_, char> {
        self.core.split(' ')
    }

    /// The name without spaces ("falcon payments" and "falconpayments" agree).
    pub fn compact(&self) -> String {
        self.core.replace(' ', "")
    }
}

/// Buffers for [`normalize_with`], reused from one name to the next (preparing a million
/// records would otherwise allocate and free them a million times).
#[derive(Default)]
pub(crate) struct NameScratch {
    folded: String,
    tokens: Tokens,
}

/// Tokens stored back to back in one string, with their bounds.
#[derive(Default)]
struct Tokens {
    text: String,
    bounds: Vec<(u32, u32)>,
}

impl Tokens {
    fn clear(&mut self) {
        self.text.clear();
        self.bounds.clear();
    }

    fn len(&self) -> usize {
        self.bounds.len()
    }

    fn get(&self, i: usize) -> &str {
        let (a, b) = self.bounds[i];
        &self.text[a as usize..b as usize]
    }

    /// Appends a token, spelling out an abbreviation.
    fn push(&mut self, t: &str) {
        let start = self.text.len() as u32;
        self.text.push_str(expand_abbreviation(t));
        self.bounds.push((start, self.text.len() as u32));
    }

    /// Key of tokens `from..to` as a sequence (see [`seq_key`]).
    fn seq_key(&self, from: usize, to: usize) -> u64 {
        let mut h = KeyHasher::new(KeyKind::Exact);
        for i in from..to {
            h.part(self.get(i).as_bytes());
        }
        h.finish()
    }
}

/// Normalises a raw company name into `out` (cleared first): distinctive tokens separated by
/// single spaces (see the module documentation for the steps).
pub(crate) fn normalize_into(raw: &str, out: &mut String) {
    normalize_with(raw, out, &mut NameScratch::default());
}

/// [`normalize_into`] with buffers kept between calls.
pub(crate) fn normalize_with(raw: &str, out: &mut String, scratch: &mut NameScratch) {
    out.clear();
    let NameScratch { folded, tokens } = scratch;
    folded.clear();
    fold_into(raw, folded);
    tokenize(folded, tokens);
    let mut first = 0;
    if tokens.len() > 1 && tokens.get(0) == "the" {
        first = 1;
    }
    let forms = legal_forms();
    while tokens.len() - first > 1 && is_local_script_form(tokens, first, forms) {
        first += 1;
    }
    let end = strip_legal_forms(tokens, first, forms);
    for i in first..end {
        if i > first {
            out.push(' ');
        }
        out.push_str(tokens.get(i));
    }
}

/// How a name was written, which says how much its spelling can be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum NameForm {
    /// Latin letters (with or without marks): compared letter for letter.
    #[default]
    Native,
    /// Compatibility forms (full-width Latin, ideographic spaces): typed on a CJK input method.
    /// Folds to the same letters, but its country and near-spellings are weaker evidence.
    Width,
    /// Letters of another script (Cyrillic, Greek, CJK, ...): comparable to Latin only through
    /// a transliteration, which is weaker evidence than the same letters.
    Transliterated,
}

impl NameForm {
    /// How `raw` is written: another script wins over compatibility forms.
    pub(crate) fn of(raw: &str) -> NameForm {
        let mut form = NameForm::Native;
        for c in raw.chars() {
            if c.is_ascii() {
                continue;
            }
            if matches!(c, '\u{3000}' | '\u{FF01}'..='\u{FFEF}') {
                form = NameForm::Width;
            } else if c.is_alphabetic() && !is_latin(c) {
                return NameForm::Transliterated;
            }
        }
        form
    }
}

/// A Latin letter (any of Unicode's Latin blocks).
fn is_latin(c: char) -> bool {
    matches!(c,
        '\u{00C0}'..='\u{024F}'   // Latin-1 Supplement letters, Latin Extended-A and -B
        | '\u{0250}'..='\u{02AF}' // IPA extensions
        | '\u{1E00}'..='\u{1EFF}' // Latin Extended Additional
        | '\u{2C60}'..='\u{2C7F}' // Latin Extended-C
        | '\u{A720}'..='\u{A7FF}' // Latin Extended-D
        | '\u{AB30}'..='\u{AB6F}' // Latin Extended-E
        | '\u{FB00}'..='\u{FB06}' // Latin ligatures
        | '\u{00AA}' | '\u{00BA}')
}

/// The Latin reading of a normalised core, compacted (no spaces): every token transliterated to
/// ASCII (`deunicode`, any script), lowercased, abbreviations spelled out, then
/// [`phonetic_fold`]ed. Empty when nothing of the name reads in Latin letters.
#[cfg(test)]
pub(crate) fn latin_reading(core: &str, out: &mut String) {
    latin_reading_with(core, out, &mut String::new());
}

/// [`latin_reading`] with a word buffer kept between calls.
pub(crate) fn latin_reading_with(core: &str, out: &mut String, word: &mut String) {
    out.clear();
    for token in core.split(' ') {
        word.clear();
        for c in token.chars() {
            if c.is_ascii() {
                word.push(c.to_ascii_lowercase());
            } else if let Some(t) = deunicode::deunicode_char(c) {
                word.extend(
                    t.chars()
                        .filter(char::is_ascii_alphanumeric)
                        .map(|c| c.to_ascii_lowercase()),
                );
            }
        }
        phonetic_fold(expand_abbreviation(word), out);
    }
}

/// Folds the spellings one sound gets from different transliterations into one, so that a
/// name transliterated letter by letter into another script and back reads as the original:
/// `shch`/`sch` → `sh`, `dzh` → `j`, `kh` → `h`, `ph` → `f`, `th` → `t`, `ck`/`c`/`q` → `k`, `x` → `ks`,
/// `w` → `v`, `y` → `i`. Rules about transliteration in general, not about any data set; applied
/// to both sides, and only ever compared for equality (a letter that differs still differs).
pub(crate) fn phonetic_fold(word: &str, out: &mut String) {
    let b = word.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        let (emit, used): (&str, usize) = if rest.starts_with(b"shch") {
            ("sh", 4)
        } else if rest.starts_with(b"dzh") {
            ("j", 3)
        } else if rest.starts_with(b"sch") {
            ("sh", 3)
        } else if rest.starts_with(b"kh") {
            ("h", 2)
        } else if rest.starts_with(b"ph") {
            ("f", 2)
        } else if rest.starts_with(b"th") {
            ("t", 2)
        } else if rest.starts_with(b"ck") {
            ("k", 2)
        } else {
            match b[i] {
                b'c' | b'q' => ("k", 1),
                b'x' => ("ks", 1),
                b'w' => ("v", 1),
                b'y' => ("i", 1),
                _ => {
                    out.push(b[i] as char);
                    i += 1;
                    continue;
                }
            }
        };
        out.push_str(emit);
        i += used;
    }
}

/// Key of a normalised name.
pub(crate) fn exact_key(core: &str) -> u64 {
    key(KeyKind::Exact, core)
}

/// Key of a normalised name without its spaces.
pub(crate) fn compact_key(core: &str) -> u64 {
    let mut buf = [0u8; 96];
    let mut n = 0;
    for &b in core.as_bytes() {
        if b != b' ' {
            if n == buf.len() {
                return key(KeyKind::Compact, &core.replace(' ', ""));
            }
            buf[n] = b;
            n += 1;
        }
    }
    KeyHasher::new(KeyKind::Compact).part(&buf[..n]).finish()
}

/// Unicode folding into `out`: lowercase, marks stripped, punctuation turned into spaces,
/// `&`/`+` into " and ", dots and apostrophes removed, parenthesised parts skipped.
fn fold_into(raw: &str, out: &mut String) {
    let bytes = raw.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if depth == 0 && b.is_ascii_alphanumeric() {
            // A run of ASCII letters and digits: copied at once, then lowercased.
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let at = out.len();
            out.push_str(&raw[start..i]);
            if let Some(run) = out.get_mut(at..) {
                run.make_ascii_lowercase();
            }
            continue;
        }
        let Some(c) = raw[i..].chars().next() else {
            break;
        };
        i += c.len_utf8();
        match c {
            '(' | '[' | '{' | '（' => {
                depth += 1;
                out.push(' ');
                continue;
            }
            ')' | ']' | '}' | '）' => {
                depth = depth.saturating_sub(1);
                out.push(' ');
                continue;
            }
            _ if depth > 0 => continue,
            _ => {}
        }
        if c.is_ascii() {
            push_ascii(c, out);
        } else {
            match c {
                'ß' | 'ẞ' => out.push_str("ss"),
                'æ' | 'Æ' => out.push_str("ae"),
                'œ' | 'Œ' => out.push_str("oe"),
                'ø' | 'Ø' => out.push('o'),
                'đ' | 'Đ' | 'ð' | 'Ð' => out.push('d'),
                'ł' | 'Ł' => out.push('l'),
                'þ' | 'Þ' => out.push_str("th"),
                'ı' => out.push('i'),
                'ħ' | 'Ħ' => out.push('h'),
                '’' | '‘' | '´' | '`' | '·' => {}
                _ => decompose_compatible(c, |d| {
                    if d.is_ascii() {
                        push_ascii(d, out);
                    } else if is_combining_mark(d) {
                    } else if d.is_alphanumeric() {
                        out.extend(d.to_lowercase());
                    } else {
                        out.push(' ');
                    }
                }),
            }
        }
    }
}

#[inline]
fn push_ascii(c: char, out: &mut String) {
    match c {
        'a'..='z' | '0'..='9' => out.push(c),
        'A'..='Z' => out.push(c.to_ascii_lowercase()),
        '&' | '+' => out.push_str(" and "),
        '.' | '\'' | '`' => {}
        _ => out.push(' '),
    }
}

/// Splits folded text into tokens, joins runs of single letters ("s a" → "sa") and spells out
/// abbreviations (also of a joined run).
fn tokenize(folded: &str, out: &mut Tokens) {
    out.clear();
    let single = |t: &str| {
        let mut cs = t.chars();
        matches!((cs.next(), cs.next()), (Some(c), None) if c.is_alphabetic())
    };
    let mut words = folded.split_ascii_whitespace().peekable();
    while let Some(w) = words.next() {
        if single(w) && words.peek().is_some_and(|n| single(n)) {
            let start = out.text.len();
            out.text.push_str(w);
            while let Some(n) = words.next_if(|n| single(n)) {
                out.text.push_str(n);
            }
            if let Some(expanded) = abbreviation(&out.text[start..]) {
                out.text.truncate(start);
                out.text.push_str(expanded);
            }
            out.bounds.push((start as u32, out.text.len() as u32));
        } else {
            out.push(w);
        }
    }
}

/// Common business abbreviations and spelling variants, spelled out. Rules about the language
/// of company names, not about any data set.
fn expand_abbreviation(t: &str) -> &str {
    abbreviation(t).unwrap_or(t)
}

/// The spelled-out form of an abbreviation, if `t` is one.
fn abbreviation(t: &str) -> Option<&'static str> {
    Some(match t {
        "intl" | "internatl" | "internat" => "international",
        "corp" | "corpn" => "corporation",
        "co" | "cie" | "comp" => "company",
        "inc" | "incorp" => "incorporated",
        "ltd" | "ltee" => "limited",
        "tech" | "techs" | "technologies" | "technol" => "technology",
        "svc" | "svcs" | "srvc" | "srvcs" | "serv" => "services",
        "grp" => "group",
        "mfg" | "mfrs" | "manuf" => "manufacturing",
        "mgmt" | "mgt" => "management",
        "assoc" | "assocs" => "associates",
        "bros" => "brothers",
        "natl" => "national",
        "sys" | "syst" => "systems",
        "soln" | "solns" => "solutions",
        "hldg" | "hldgs" => "holdings",
        "engg" | "engr" => "engineering",
        "dept" => "department",
        "univ" => "university",
        "ctr" | "cntr" | "centre" => "center",
        "mktg" => "marketing",
        "lab" | "laboratory" | "laboratories" => "labs",
        "und" => "and",
        _ => return None,
    })
}

/// Strips legal forms (and a dangling "and") from the end of tokens `first..`; returns where the
/// name ends.
/// A one-token legal form written in a non-Latin script at `i` ("ооо", "ао", "株式会社"): those
/// languages put the form before the name.
fn is_local_script_form(tokens: &Tokens, i: usize, forms: &LegalForms) -> bool {
    let t = tokens.get(i);
    t.chars()
        .any(|c| c.is_alphabetic() && !c.is_ascii() && !is_latin(c))
        && forms.forms.contains(&tokens.seq_key(i, i + 1))
}

fn strip_legal_forms(tokens: &Tokens, first: usize, forms: &LegalForms) -> usize {
    let mut end = tokens.len();
    loop {
        let n = end - first;
        if n <= 1 {
            return end;
        }
        if tokens.get(end - 1) == "and" {
            end -= 1;
            continue;
        }
        if !forms.last_words.contains(&tokens.seq_key(end - 1, end)) {
            return end;
        }
        let mut stripped = false;
        for k in (1..=forms.max_tokens.min(n - 1)).rev() {
            if forms.forms.contains(&tokens.seq_key(end - k, end)) {
                end -= k;
                stripped = true;
                break;
            }
        }
        if !stripped {
            return end;
        }
    }
}

/// The set of legal forms, folded like names.
pub(crate) struct LegalForms {
    forms: KeySet,
    /// Last words of the forms: a name that does not end in one of them keeps its end.
    last_words: KeySet,
    /// Single-token forms with one character replaced by a wildcard: near-typos of a form.
    near: KeySet,
    max_tokens: usize,
    count: usize,
}

impl LegalForms {
    fn parse(text: &str) -> LegalForms {
        let mut forms = KeySet::default();
        let mut last_words = KeySet::default();
        let mut near = KeySet::default();
        let mut max_tokens = 1;
        let mut count = 0;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut folded = String::new();
            fold_into(line, &mut folded);
            let mut tokens = Tokens::default();
            tokenize(&folded, &mut tokens);
            let n = tokens.len();
            if n == 0 || n > MAX_FORM_TOKENS {
                continue;
            }
            count += 1;
            max_tokens = max_tokens.max(n);
            forms.insert(tokens.seq_key(0, n));
            last_words.insert(tokens.seq_key(n - 1, n));
            let t = tokens.get(0);
            if n == 1 && t.len() >= 3 && t.is_ascii() {
                for i in 0..t.len() {
                    near.insert(wildcard_key(t, i));
                }
            }
        }
        LegalForms {
            forms,
            last_words,
            near,
            max_tokens,
            count,
        }
    }

    fn contains(&self, tokens: &[&str]) -> bool {
        self.forms.contains(&seq_key(tokens))
    }

    /// Whether a token is a legal form or one substitution away from one ("tnc" for "inc").
    pub(crate) fn is_near_form(&self, token: &str) -> bool {
        if self.contains(&[token]) {
            return true;
        }
        token.len() >= 3
            && token.is_ascii()
            && (0..token.len()).any(|i| self.near.contains(&wildcard_key(token, i)))
    }

    /// Number of distinct forms loaded (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.count
    }
}

fn seq_key(tokens: &[&str]) -> u64 {
    let mut h = KeyHasher::new(KeyKind::Exact);
    for t in tokens {
        h.part(t.as_bytes());
    }
    h.finish()
}

fn wildcard_key(token: &str, i: usize) -> u64 {
    let mut h = KeyHasher::new(KeyKind::Delete);
    h.part(&token.as_bytes()[..i])
        .part(&token.as_bytes()[i + 1..]);
    h.number(i as u64);
    h.finish()
}

pub(crate) fn legal_forms() -> &'static LegalForms {
    static FORMS: OnceLock<LegalForms> = OnceLock::new();
    FORMS.get_or_init(|| LegalForms::parse(LEGAL_FORMS_TXT))
}

/// Number of legal forms known (from the ISO 20275 list and its documented supplement).
pub fn legal_form_count() -> usize {
    legal_forms().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        NormalizedName::new(s).as_str().to_string()
    }

    fn reading(s: &str) -> String {
        let mut out = String::new();
        latin_reading(&n(s), &mut out);
        out
    }

    #[test]
    fn how_a_name_is_written_is_known() {
        assert_eq!(NameForm::of("Garcia & Lindqvist"), NameForm::Native);
        assert_eq!(NameForm::of("Cedár Solütíons Łódź"), NameForm::Native);
        assert_eq!(
            NameForm::of("Ｇａｒｃｉａ　ａｎｄ　Ｌｉｎｄｑｖｉｓｔ"),
            NameForm::Width
        );
        assert_eq!(NameForm::of("ООО «Линдквист»"), NameForm::Transliterated);
        assert_eq!(NameForm::of("Ωμέγα Λογισμικό"), NameForm::Transliterated);
        assert_eq!(NameForm::of("株式会社クレスト"), NameForm::Transliterated);
    }

    #[test]
    fn full_width_names_fold_to_the_same_name() {
        assert_eq!(
            n("Ｇａｒｃｉａ　ａｎｄ　Ｌｉｎｄｑｖｉｓｔ　ＫＧ"),
            n("Garcia & Lindqvist")
        );
        assert_eq!(
            n("ＭＩＬＬＥＲ　ＳＴＵＤＩＯＳ　ＩＮＣ　（Ｇｌｏｂａｌ）"),
            "miller studios"
        );
    }

    #[test]
    fn local_script_legal_forms_go_at_the_start_and_quotes_go() {
        assert_eq!(n("ООО «Линдквист Софтваре»"), "линдквист софтваре");
        assert_eq!(n("ПАО «Гаркиа Капитал»"), "гаркиа капитал");
        assert_eq!(n("АО „Делта Био“"), "делта био");
        // A Latin word that is also a form is a name at the start ("AG" of "AG Insurance").
        assert_eq!(n("AG Insurance"), "ag insurance");
        // A lone form is the name.
        assert_eq!(n("ООО"), "ооо");
    }

    #[test]
    fn a_name_transliterated_letter_by_letter_reads_as_the_original() {
        for (other, latin) in [
            ("Апекс Ечо Софтваре", "Apex Echo Software"),
            ("ООО «Линдквист Софтваре»", "LINDQVIST SOFTWARE"),
            ("Хеликс Орбит Хеалт", "Helix Orbit Health"),
            ("Щмидт Анд Ковалски", "Schmidt & Kowalski"),
            ("Джунипер Дйнамикс", "Juniper Dynamics"),
            ("Бригхт Лумен Нетворкс", "Bright Lumen Networks"),
            ("Кедар Ирон Секуритй", "Cedar Iron Security"),
        ] {
            assert_eq!(reading(other), reading(latin), "{other} / {latin}");
        }
        // Greek, letter by letter; names that are transliterations in real life.
        assert_eq!(reading("Δελτα Βιο"), "deltabio");
        assert_eq!(reading("Δελτα Βιο"), reading("Delta Bio"));
        for (other, latin) in [
            ("Северсталь", "Severstal"),
            ("Газпром", "Gazprom"),
            ("Сбербанк", "Sberbank"),
        ] {
            assert_eq!(reading(other), reading(latin), "{other} / {latin}");
        }
        // Kanji read as Chinese, kana by sound: not an English name's reading.
        assert_ne!(reading("株式会社クレスト"), reading("Crest"));
        // One letter apart is another name.
        assert_ne!(reading("Нрмбус Клоуд"), reading("Nimbus Cloud"));
        assert_ne!(reading("Атлат Секуритй"), reading("Atlas Security"));
    }

    #[test]
    fn given_accents_case_and_spacing_when_normalised_then_they_fold_away() {
        assert_eq!(n("Hárbor  Lighthöüse Média"), "harbor lighthouse media");
        assert_eq!(n("  GRANITE   CAPITAL "), "granite capital");
        assert_eq!(n("Straße Øresund Łódź"), "strasse oresund lodz");
    }

    #[test]
    fn given_a_leading_the_and_a_region_when_normalised_then_both_go() {
        assert_eq!(n("The Cedar Industries"), "cedar industries");
        assert_eq!(n("OAK GOLDEN INDUSTRIES (Global)"), "oak golden industries");
        assert_eq!(n("Iron Sage Pharma [EMEA]"), "iron sage pharma");
        // "The" alone is a name, not an article.
        assert_eq!(n("The"), "the");
    }

    #[test]
    fn given_legal_forms_of_many_countries_when_normalised_then_they_go() {
        for raw in [
            "Helix Data GmbH & Co. KG",
            "Helix Data GmbH and Co KG",
            "Helix Data S.p.A.",
            "Helix Data SpA",
            "Helix Data S/A",
            "Helix Data Kabushiki Kaisha",
            "Helix Data K.K.",
            "Helix Data Co., Ltd.",
            "Helix Data Pty. Ltd.",
            "Helix Data Proprietary Limited",
            "Helix Data Aktiebolag",
            "Helix Data AB",
            "Helix Data L.L.C.",
            "Helix Data Incorporated",
            "Helix Data Inc.",
            "Helix Data Corp",
            "Helix Data N.V.",
            "Helix Data Ltda.",
            "Helix Data plc",
            "Helix Data & Co.",
        ] {
            assert_eq!(n(raw), "helix data", "{raw}");
        }
    }

    #[test]
    fn given_ampersand_or_and_then_they_are_the_same() {
        assert_eq!(n("Miller & Tanaka"), n("Miller and Tanaka"));
        assert_eq!(n("Müller und Söhne"), n("Muller & Sohne"));
    }

    #[test]
    fn given_common_abbreviations_then_they_are_spelled_out() {
        assert_eq!(n("Acme Intl"), n("Acme International"));
        assert_eq!(n("Acme Int'l Group"), n("Acme International Grp"));
        assert_eq!(n("Acme Tech Svcs"), n("Acme Technologies Services"));
        assert_eq!(n("Acme Mfg"), n("Acme Manufacturing"));
        assert_eq!(n("Acme Sys"), n("Acme Systems"));
        // "Co" inside a name is "company" and stays a word.
        assert_eq!(n("Acme Co Holdings"), "acme company holdings");
    }

    #[test]
    fn given_purpose_words_then_they_are_not_stripped_as_legal_forms() {
        assert_ne!(n("Apex Bank"), n("Apex Trust"));
        assert_eq!(n("Apex Foundation"), "apex foundation");
    }

    #[test]
    fn given_a_name_that_is_only_a_legal_form_then_one_word_stays() {
        assert_eq!(n("Limited"), "limited");
        assert_eq!(n(""), "");
        assert_eq!(n("()"), "");
    }

    #[test]
    fn given_spacing_differences_then_compact_forms_agree() {
        let a = NormalizedName::new("Falcon Payments Ltd");
        let b = NormalizedName::new("Falconpayments");
        assert_ne!(a, b);
        assert_eq!(a.compact(), b.compact());
    }

    #[test]
    fn legal_forms_load_from_the_iso_list() {
        assert!(legal_form_count() > 3000);
        assert!(legal_forms().is_near_form("tnc"));
        assert!(legal_forms().is_near_form("olp"));
        assert!(!legal_forms().is_near_form("studios"));
    }
}
