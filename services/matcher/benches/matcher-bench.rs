//! Matcher benchmark: 1,000,000 LinkedIn companies against 1,000,000 CRM accounts, generated
//! here with the kinds of variation real data has (surface forms of websites, legal forms, case,
//! accents, typos, duplicates, platform tenants, free-mail and social hosts, accounts without a
//! domain, look-alike companies), then 1,000 changed records against the full index.
//!
//! ```text
//! cargo bench -p matcher --bench matcher-bench                  # the full size
//! cargo bench -p matcher --bench matcher-bench -- --companies 100000
//! ```
//!
//! Prints, from the same run: the naive exact-domain hash join (the floor), the one-shot batch
//! match (what `matcher match` does), the index build with dependency tracking (what the service
//! keeps), a batch of changes against that index, peak memory (VmHWM), and precision/recall
//! against the generator's truth as a sanity check. `RUST_LOG=matcher=debug` adds the phases of
//! each build and batch of changes; `--digest` adds a digest of every result (to check that a
//! change to the matcher leaves its output as it was).

use std::collections::HashMap;
use std::time::Instant;

use clap::Parser;

/// mimalloc (built without transparent huge pages: on this VM faulting in 2 MiB pages cost more
/// than the matching): the run frees millions of small strings made on another thread, where
/// glibc's allocator costs about 1.4 s more of the 3 s batch. (The `matcher` binary still uses
/// the system allocator; the service wiring decides for the long-running process.)
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use matcher::domain::{
    Change, CrmAccount, CrmId, LinkedInCompany, LinkedInId, MatchConfig, MatchIndex,
};

#[derive(Parser, Debug)]
#[command(about = "Matcher benchmark on generated data")]
struct Args {
    /// LinkedIn companies (the CRM gets as many accounts).
    #[arg(long, default_value_t = 1_000_000)]
    companies: usize,
    /// Changed records for the incremental measurement.
    #[arg(long, default_value_t = 1_000)]
    changes: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 20_260_501)]
    seed: u64,
    /// Also print a digest of every result (pairs, scores, reasons, review cases), to check that
    /// a change to the matcher leaves its output as it was. Costs time in the batch measurement.
    #[arg(long)]
    digest: bool,
    /// Passed by `cargo bench` to every bench target; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Feeds everything a result says into a hasher with fixed keys.
fn digest_result(h: &mut impl std::hash::Hasher, r: &matcher::domain::LinkedInResult) {
    h.write(r.linkedin_id.as_str().as_bytes());
    for m in &r.matches {
        h.write(m.crm_id.as_str().as_bytes());
        h.write(m.method.as_str().as_bytes());
        h.write_u64(m.score.value().to_bits());
        h.write(m.reason.as_bytes());
    }
    if let Some(rv) = &r.review {
        h.write(rv.reason.as_bytes());
        for c in &rv.candidates {
            h.write(c.crm_id.as_str().as_bytes());
            h.write(c.crm_name.as_bytes());
            h.write(c.method.as_str().as_bytes());
            h.write_u64(c.score.value().to_bits());
            h.write(c.reason.as_bytes());
        }
    }
}

// ---- deterministic generator ----------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

const SYLLABLES: &[&str] = &[
    "ka", "ro", "mi", "ten", "va", "lu", "dor", "sen", "bri", "qua", "zel", "mon", "tri", "fal",
    "ver", "nor", "pel", "sta", "gra", "hol", "ix", "ar", "on", "el", "tor", "vin", "cas", "lex",
    "mar", "del", "sol", "ny", "po", "ra", "ti", "be", "ko", "za", "fi", "gu",
];
const INDUSTRY: &[&str] = &[
    "Labs",
    "Systems",
    "Capital",
    "Foods",
    "Health",
    "Data",
    "Media",
    "Motors",
    "Software",
    "Partners",
    "Ventures",
    "Logistics",
    "Analytics",
    "Security",
    "Payments",
    "Networks",
    "Devices",
    "Pharma",
    "Bio",
    "Energy",
    "Retail",
    "Studios",
    "Works",
    "Industries",
    "Solutions",
    "Consulting",
    "Robotics",
    "Marine",
    "Aerospace",
    "Dynamics",
    "Freight",
    "Cloud",
    "Digital",
];
const LEGAL: &[(&str, &str)] = &[
    ("US", "Inc."),
    ("US", "LLC"),
    ("US", "Corp"),
    ("US", "Incorporated"),
    ("GB", "Ltd"),
    ("GB", "PLC"),
    ("GB", "LLP"),
    ("DE", "GmbH"),
    ("DE", "AG"),
    ("DE", "GmbH & Co. KG"),
    ("FR", "SAS"),
    ("FR", "S.A."),
    ("IT", "S.p.A."),
    ("IT", "S.r.l."),
    ("NL", "B.V."),
    ("NL", "N.V."),
    ("SE", "AB"),
    ("SE", "Aktiebolag"),
    ("JP", "K.K."),
    ("JP", "Co., Ltd."),
    ("AU", "Pty Ltd"),
    ("AU", "Proprietary Limited"),
    ("BR", "Ltda."),
    ("BR", "S/A"),
];
const TLD: &[(&str, &str)] = &[
    ("US", "com"),
    ("GB", "co.uk"),
    ("DE", "de"),
    ("FR", "fr"),
    ("IT", "it"),
    ("NL", "nl"),
    ("SE", "se"),
    ("JP", "co.jp"),
    ("AU", "com.au"),
    ("BR", "com.br"),
];
const GENERIC_TLD: &[&str] = &["com", "io", "ai", "net", "org", "tech", "co"];
const FREEMAIL: &[&str] = &[
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "hotmail.com",
    "web.de",
    "gmx.de",
    "icloud.com",
    "mailbox.example",
    "post.example",
    "inbox.example",
];
const SOCIAL: &[&str] = &[
    "https://www.linkedin.com/company/{}",
    "https://facebook.com/{}",
    "https://linktr.ee/{}",
    "https://profiles.example/{}",
];
const PLATFORMS: &[&str] = &[
    "github.io",
    "myshopify.com",
    "blogspot.com",
    "wordpress.com",
    "weebly.com",
    "pages.example",
    "sitebuilder.example",
];
const REGIONS: &[&str] = &["(Global)", "(UK)", "(US)", "(EMEA)", "(HQ)"];

/// A brand word of three or four syllables: 40^3 + 40^4 words, so a million companies rarely
/// share a name by chance (they do on purpose below).
fn word(r: &mut Rng) -> String {
    let n = 3 + r.below(2);
    let mut w = String::new();
    for _ in 0..n {
        let syllable: &&str = r.pick(SYLLABLES);
        w.push_str(syllable);
    }
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => w,
    }
}

/// A company as it really is.
struct Company {
    base: String,
    country: &'static str,
    domain: String,
}

fn company(r: &mut Rng) -> Company {
    let (country, tld) = *r.pick(TLD);
    let base = match r.below(10) {
        0 => format!("{} and {}", word(r), word(r)),
        1 => format!("{}{}", word(r), r.pick(INDUSTRY).to_lowercase()),
        2..=5 => format!("{} {}", word(r), r.pick(INDUSTRY)),
        _ => format!("{} {} {}", word(r), word(r), r.pick(INDUSTRY)),
    };
    let compact: String = base
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    let tld = if r.chance(0.4) {
        r.pick(GENERIC_TLD)
    } else {
        tld
    };
    let domain = if r.chance(0.15) {
        let initials: String = base
            .split(' ')
            .filter_map(|w| w.chars().next())
            .collect::<String>()
            .to_lowercase();
        format!(
            "{initials}{}{}.{tld}",
            r.pick(&["inc", "group", "hq", "global"]),
            r.below(100)
        )
    } else {
        format!("{compact}.{tld}")
    };
    Company {
        base,
        country,
        domain,
    }
}

fn accents(s: &str, r: &mut Rng) -> String {
    s.chars()
        .map(|c| match c {
            'a' if r.chance(0.3) => 'á',
            'e' if r.chance(0.3) => 'é',
            'o' if r.chance(0.3) => 'ö',
            'n' if r.chance(0.2) => 'ñ',
            _ => c,
        })
        .collect()
}

fn typo(s: &str, r: &mut Rng) -> String {
    // one substitution in the longest word, not its first letter
    let words: Vec<&str> = s.split(' ').collect();
    let (i, w) = words
        .iter()
        .enumerate()
        .max_by_key(|(_, w)| w.len())
        .map(|(i, w)| (i, *w))
        .unwrap_or((0, s));
    let chars: Vec<char> = w.chars().collect();
    if chars.len() < 5 {
        return s.to_string();
    }
    let at = 1 + r.below(chars.len() - 1);
    let mut out: Vec<char> = chars.clone();
    out[at] = (b'a' + r.below(26) as u8) as char;
    let mut ws: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    ws[i] = out.into_iter().collect();
    ws.join(" ")
}

/// A surface form of a name: legal form, case, accents, spacing, "The", region.
fn surface_name(c: &Company, r: &mut Rng) -> String {
    let mut s = c.base.clone();
    if r.chance(0.4) {
        let forms: Vec<&str> = LEGAL
            .iter()
            .filter(|(cc, _)| *cc == c.country || r.chance(0.05))
            .map(|(_, f)| *f)
            .collect();
        if !forms.is_empty() {
            s = format!("{s} {}", r.pick(&forms));
        }
    }
    if r.chance(0.15) {
        s = format!("The {s}");
    }
    if r.chance(0.1) {
        s = format!("{s} {}", r.pick(REGIONS));
    }
    if r.chance(0.15) {
        s = accents(&s, r);
    }
    match r.below(10) {
        0 => s.to_uppercase(),
        1 => s.to_lowercase(),
        2 => s.replace(' ', "  "),
        _ => s,
    }
}

/// A surface form of a website.
fn surface_site(domain: &str, r: &mut Rng) -> String {
    match r.below(10) {
        0 => domain.to_string(),
        1 => format!("www.{domain}"),
        2 => format!("https://www.{domain}/"),
        3 => format!("HTTPS://WWW.{}/", domain.to_uppercase()),
        4 => format!("http://{domain}/home.html"),
        5 => format!("https://{domain}:443/about"),
        6 => format!("https://www.{domain}/?utm_source=linkedin"),
        7 => format!(
            "https://{}.{domain}/",
            r.pick(&["shop", "go", "info", "careers", "en"])
        ),
        8 => format!("https://{domain}/en-us/"),
        _ => format!("{domain}."),
    }
}

struct Generated {
    linkedin: Vec<LinkedInCompany>,
    crm: Vec<CrmAccount>,
    /// For each LinkedIn company, the CRM ids that are the same company.
    truth: Vec<Vec<u32>>,
}

fn generate(n: usize, seed: u64) -> Generated {
    let mut r = Rng(seed);
    let mut linkedin = Vec::with_capacity(n);
    let mut crm = Vec::with_capacity(n);
    let mut truth: Vec<Vec<u32>> = Vec::with_capacity(n);
    let crm_id =
        |i: usize| CrmId::parse(&format!("crm-{i:08x}")).unwrap_or_else(|_| unreachable!());
    let push_crm =
        |crm: &mut Vec<CrmAccount>, name: String, domain: Option<String>, country: &str| {
            let i = crm.len();
            crm.push(CrmAccount {
                id: crm_id(i),
                name,
                domain,
                website: None,
                country: Some(country.to_string()),
            });
            i as u32
        };
    for i in 0..n {
        let c = company(&mut r);
        let mut li_site = Some(surface_site(&c.domain, &mut r));
        let mut crm_domain: Option<String> = Some(surface_site(&c.domain, &mut r));
        let mut crm_name = surface_name(&c, &mut r);
        let mut ids = Vec::new();
        let kind = r.below(100);
        let in_crm = kind < 75;
        match kind {
            0..=34 => {}
            35..=37 => {
                let host = format!(
                    "{}.{}",
                    c.domain.split('.').next().unwrap_or("x"),
                    r.pick(PLATFORMS)
                );
                li_site = Some(format!("https://{host}/"));
                crm_domain = Some(host);
            }
            38..=42 => crm_domain = Some(r.pick(FREEMAIL).to_string()),
            43..=54 => crm_domain = None,
            55..=59 => li_site = None,
            60..=63 => {
                let slug: String = c.base.chars().filter(|c| c.is_alphanumeric()).collect();
                li_site = Some(r.pick(SOCIAL).replace("{}", &slug.to_lowercase()));
            }
            64..=67 => {
                let label = c.domain.split('.').next().unwrap_or("x").to_string();
                crm_domain = Some(format!("{label}.{}", r.pick(GENERIC_TLD)));
                li_site = Some(surface_site(
                    &format!("{label}.{}", r.pick(&["de", "co.uk", "fr"])),
                    &mut r,
                ));
            }
            68..=74 => {
                crm_name = typo(&c.base, &mut r);
                crm_domain = None;
            }
            75..=82 => {
                // not in the CRM; a look-alike with a typo'd name and its own domain is
                let other = typo(&c.base, &mut r);
                let label: String = other.chars().filter(|c| c.is_alphanumeric()).collect();
                push_crm(
                    &mut crm,
                    other,
                    Some(format!("{}.com", label.to_lowercase())),
                    c.country,
                );
            }
            83..=86 => {
                // two unrelated companies of the same name, no domains, no website: ambiguous
                li_site = None;
                push_crm(&mut crm, c.base.clone(), None, c.country);
                push_crm(&mut crm, surface_name(&c, &mut r), None, c.country);
            }
            _ => {}
        }
        if in_crm {
            ids.push(push_crm(&mut crm, crm_name, crm_domain.clone(), c.country));
            if r.chance(0.08) {
                // a duplicate account without a domain
                ids.push(push_crm(
                    &mut crm,
                    surface_name(&c, &mut r),
                    None,
                    c.country,
                ));
            }
        }
        linkedin.push(LinkedInCompany {
            id: LinkedInId::parse(&format!("li-{i:08x}")).unwrap_or_else(|_| unreachable!()),
            name: surface_name(&c, &mut r),
            vanity_name: None,
            website: li_site,
            country: Some(c.country.to_string()),
        });
        truth.push(ids);
    }
    // Fill the CRM up to n with CRM-only companies.
    while crm.len() < n {
        let c = company(&mut r);
        let name = surface_name(&c, &mut r);
        let domain = if r.chance(0.8) {
            Some(surface_site(&c.domain, &mut r))
        } else {
            None
        };
        push_crm(&mut crm, name, domain, c.country);
    }
    Generated {
        linkedin,
        crm,
        truth,
    }
}

// ---- measurements ---------------------------------------------------------------------------

fn proc_status(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn mib(kb: Option<u64>) -> String {
    kb.map_or("?".to_string(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
}

/// The number in a generated id ("li-0000002a" → 42).
fn index_in_id(id: &str, prefix: &str) -> Option<u32> {
    u32::from_str_radix(id.strip_prefix(prefix)?, 16).ok()
}

/// The floor: lowercase the raw website/domain strings and join on exact equality.
fn naive_join(linkedin: &[LinkedInCompany], crm: &[CrmAccount]) -> usize {
    let mut by_domain: HashMap<String, Vec<u32>> = HashMap::with_capacity(crm.len());
    for (i, a) in crm.iter().enumerate() {
        if let Some(d) = &a.domain {
            by_domain
                .entry(d.to_lowercase())
                .or_default()
                .push(i as u32);
        }
    }
    let mut pairs = 0;
    for c in linkedin {
        if let Some(w) = &c.website
            && let Some(v) = by_domain.get(&w.to_lowercase())
        {
            pairs += v.len();
        }
    }
    pairs
}

fn main() {
    let args = Args::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        // `RUST_LOG=matcher=debug` shows the phases of each index build.
        rp_platform::telemetry::init_for_tests();
    }
    let n = args.companies;
    println!(
        "machine: {}, rayon threads {}",
        rp_platform::testing::machine(),
        rayon::current_num_threads()
    );

    let t = Instant::now();
    let g = generate(n, args.seed);
    println!(
        "generated {} LinkedIn companies, {} CRM accounts in {:.2} s (not counted)",
        g.linkedin.len(),
        g.crm.len(),
        t.elapsed().as_secs_f64()
    );

    // Floor
    let t = Instant::now();
    let naive_pairs = naive_join(&g.linkedin, &g.crm);
    let naive = t.elapsed().as_secs_f64();
    println!("naive exact-domain hash join: {naive:.2} s, {naive_pairs} pairs (floor)");

    // One-shot batch match (what `matcher match` runs)
    let truth = g.truth;
    let t = Instant::now();
    let batch_cfg = MatchConfig {
        track_dependencies: false,
        ..MatchConfig::default()
    };
    let index = MatchIndex::build(batch_cfg, g.crm, g.linkedin, Vec::new());
    let (mut pairs, mut reviews) = (0usize, 0usize);
    let mut correct = 0usize;
    let mut found = 0usize;
    let mut digest = std::hash::DefaultHasher::new();
    index.for_each_result_chunk(1 << 16, |chunk| {
        for r in chunk {
            if args.digest {
                digest_result(&mut digest, r);
            }
            pairs += r.matches.len();
            reviews += usize::from(r.review.is_some());
            // The generator numbers its records in their ids (see `generate`): the check
            // reads the numbers back instead of looking a million ids up in maps.
            let truth_of = index_in_id(r.linkedin_id.as_str(), "li-")
                .and_then(|i| truth.get(i as usize))
                .map_or(&[][..], Vec::as_slice);
            let mut any = false;
            for m in &r.matches {
                if index_in_id(m.crm_id.as_str(), "crm-").is_some_and(|c| truth_of.contains(&c)) {
                    correct += 1;
                    any = true;
                }
            }
            found += usize::from(any);
        }
    });
    let batch = t.elapsed().as_secs_f64();
    println!(
        "matcher batch (build + match all): {batch:.2} s, {pairs} pairs, {reviews} need review; ratio to floor {:.1}x; RSS now {}",
        batch / naive.max(1e-9),
        mib(proc_status("VmRSS:"))
    );

    if args.digest {
        use std::hash::Hasher;
        println!("results digest: {:016x}", digest.finish());
    }
    // Sanity: precision/recall against the generator's truth.
    let matchable = truth.iter().filter(|t| !t.is_empty()).count();
    println!(
        "generated-truth check: precision {:.4}, recall {:.4}",
        correct as f64 / pairs.max(1) as f64,
        found as f64 / matchable.max(1) as f64
    );
    drop(index);
    drop(truth);

    // The service's index: with dependency tracking, then a batch of changes.
    let g = generate(n, args.seed);
    let t = Instant::now();
    let mut index = MatchIndex::build(MatchConfig::default(), g.crm, g.linkedin, Vec::new());
    let tracked = t.elapsed().as_secs_f64();
    let stats = index.stats();
    println!(
        "matcher index build with dependency tracking: {tracked:.2} s ({} CRM keys, {} dependency keys, {} in key indexes); RSS now {}",
        stats.crm_keys,
        stats.dependency_keys,
        mib(Some(stats.index_bytes as u64 / 1024)),
        mib(proc_status("VmRSS:"))
    );

    let changes = make_changes(n, args.changes, args.seed ^ 0xC4A9);
    let t = Instant::now();
    let cs = index.apply(changes.clone());
    let inc = t.elapsed().as_secs_f64();
    println!(
        "{} changed records (half CRM, half LinkedIn) in one batch: {:.1} ms, {} companies re-matched, {} results changed",
        args.changes,
        inc * 1000.0,
        cs.rematched,
        cs.updated.len()
    );
    if args.digest {
        use std::hash::Hasher;
        let mut h = std::hash::DefaultHasher::new();
        for r in &cs.updated {
            digest_result(&mut h, r);
        }
        for id in &cs.removed {
            h.write(id.as_str().as_bytes());
        }
        println!("changed results digest: {:016x}", h.finish());
    }
    let changes = make_changes(n, args.changes, args.seed ^ 0x5EED);
    let t = Instant::now();
    let mut rematched = 0;
    for c in changes {
        rematched += index.apply(vec![c]).rematched;
    }
    let one_by_one = t.elapsed().as_secs_f64();
    println!(
        "{} changed records one at a time: {:.1} ms total, {rematched} companies re-matched",
        args.changes,
        one_by_one * 1000.0
    );
    println!("peak memory (VmHWM): {}", mib(proc_status("VmHWM:")));
}

/// Changed records: CRM accounts that change domain or name or arrive, LinkedIn companies that
/// change website or arrive.
fn make_changes(n: usize, count: usize, seed: u64) -> Vec<Change> {
    let mut r = Rng(seed);
    let mut out = Vec::with_capacity(count);
    for k in 0..count {
        let c = company(&mut r);
        if k % 2 == 0 {
            let id = if r.chance(0.5) {
                format!("crm-{:08x}", r.below(n))
            } else {
                format!("crm-new-{seed:x}-{k}")
            };
            out.push(Change::UpsertCrm(CrmAccount {
                id: CrmId::parse(&id).unwrap_or_else(|_| unreachable!()),
                name: surface_name(&c, &mut r),
                domain: Some(surface_site(&c.domain, &mut r)),
                website: None,
                country: Some(c.country.to_string()),
            }));
        } else {
            let id = if r.chance(0.5) {
                format!("li-{:08x}", r.below(n))
            } else {
                format!("li-new-{seed:x}-{k}")
            };
            out.push(Change::UpsertLinkedIn(LinkedInCompany {
                id: LinkedInId::parse(&id).unwrap_or_else(|_| unreachable!()),
                name: surface_name(&c, &mut r),
                vanity_name: None,
                website: Some(surface_site(&c.domain, &mut r)),
                country: Some(c.country.to_string()),
            }));
        }
    }
    out
}
