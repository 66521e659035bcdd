//! The generated world: CRM companies, contacts, deals (served by HubSpot AND Salesforce),
//! LinkedIn organizations, ad accounts, campaigns and engagement, plus the ground truth of which
//! LinkedIn organization is which CRM company.
//!
//! Everything is a pure function of (seed, sizes, anchor date).

use std::collections::{HashMap, HashSet};

use chrono::{Days, NaiveDate};
use serde::Serialize;

use crate::config::Sizes;
use crate::util::{Rng, date_ms, sf_id};

pub const HS_COMPANY_BASE: u64 = 7_000_000_001;
pub const HS_CONTACT_BASE: u64 = 100_001;
pub const HS_DEAL_BASE: u64 = 9_000_000_001;
pub const ORG_ID_BASE: u64 = 2_000_001;
const DAY_MS: i64 = 86_400_000;

#[derive(Clone, Debug)]
pub struct Company {
    pub hs_id: u64,
    pub sf_id: String,
    pub name: String,
    /// Website as a user typed it into the CRM (varied surface forms), if any.
    pub website: Option<String>,
    /// HubSpot's `domain` property (host without `www.`), derived from the website.
    pub domain: Option<String>,
    pub country: Option<String>,
    pub created_ms: i64,
    pub modified_ms: i64,
    pub archived: bool,
}

#[derive(Clone, Debug)]
pub struct Contact {
    pub hs_id: u64,
    pub sf_id: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub title: Option<String>,
    /// Index into `World::companies`.
    pub company: Option<u32>,
    pub created_ms: i64,
    pub modified_ms: i64,
    pub archived: bool,
}

#[derive(Clone, Debug)]
pub struct Deal {
    pub hs_id: u64,
    pub sf_id: String,
    pub name: String,
    /// Amount in minor units (cents).
    pub amount_cents: Option<i64>,
    pub currency: String,
    /// Index into `World::pipelines`.
    pub pipeline: usize,
    /// Index into that pipeline's stages.
    pub stage: usize,
    pub created_ms: i64,
    pub close_date: Option<NaiveDate>,
    pub company: Option<u32>,
    pub modified_ms: i64,
    pub archived: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Stage {
    pub id: String,
    pub label: String,
    pub display_order: u32,
    pub closed: bool,
    /// 0.0 ..= 1.0
    pub probability: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Pipeline {
    pub id: String,
    pub label: String,
    pub display_order: u32,
    pub stages: Vec<Stage>,
}

/// Salesforce OpportunityStage (one list for the org; labels are the HubSpot stage labels).
#[derive(Clone, Debug)]
pub struct SfStage {
    pub id: String,
    pub api_name: String,
    pub label: String,
    pub closed: bool,
    pub won: bool,
    pub sort_order: u32,
    /// Percent, 0..=100.
    pub probability: f64,
}

#[derive(Clone, Debug)]
pub struct Org {
    pub id: u64,
    pub name: String,
    pub vanity: String,
    pub website: Option<String>,
    pub industry: u32,
    pub staff: &'static str,
    pub country: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct AdAccount {
    pub id: u64,
    pub name: String,
    pub currency: String,
    pub status: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Campaign {
    pub id: u64,
    pub account_id: u64,
    pub name: String,
}

/// One LinkedIn engagement fact: org x campaign x day.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct Engagement {
    pub date: NaiveDate,
    pub org_id: u64,
    pub campaign_id: u64,
    pub impressions: u64,
    pub clicks: u64,
    pub engagements: u64,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MatchKind {
    Domain,
    Name,
}

/// Generation-time truth: LinkedIn org `org` is CRM company `company` (or none).
#[derive(Clone, Debug)]
pub struct TruthLink {
    pub org: u32,
    pub company: Option<u32>,
    pub kind: Option<MatchKind>,
    /// The registrable domain both sides share (domain matches only).
    pub domain: Option<String>,
}

/// Object type of the CRM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Company,
    Contact,
    Deal,
}

/// Records ordered by (modified time, index): what incremental syncs walk.
#[derive(Clone, Debug, Default)]
pub struct ModIndex(pub Vec<(i64, u32)>);

impl ModIndex {
    pub fn build(items: impl Iterator<Item = (i64, u32)>) -> Self {
        let mut v: Vec<(i64, u32)> = items.collect();
        v.sort_unstable();
        ModIndex(v)
    }
    pub fn insert(&mut self, key: (i64, u32)) {
        let pos = self.0.partition_point(|e| *e < key);
        self.0.insert(pos, key);
    }
    pub fn remove(&mut self, key: (i64, u32)) {
        let pos = self.0.partition_point(|e| *e < key);
        if self.0.get(pos) == Some(&key) {
            self.0.remove(pos);
        }
    }
    /// Positions of entries with `lo <= modified < hi`.
    pub fn range(&self, lo: i64, hi: i64) -> std::ops::Range<usize> {
        let a = self.0.partition_point(|e| e.0 < lo);
        let b = self.0.partition_point(|e| e.0 < hi).max(a);
        a..b
    }
}

#[derive(Debug)]
pub struct World {
    pub anchor: NaiveDate,
    pub companies: Vec<Company>,
    pub contacts: Vec<Contact>,
    pub deals: Vec<Deal>,
    pub pipelines: Vec<Pipeline>,
    pub sf_stages: Vec<SfStage>,
    pub orgs: Vec<Org>,
    pub org_by_id: HashMap<u64, u32>,
    pub ad_accounts: Vec<AdAccount>,
    pub campaigns: Vec<Campaign>,
    /// Sorted by (date, org_id, campaign_id).
    pub engagement: Vec<Engagement>,
    pub truth: Vec<TruthLink>,
    pub company_idx: ModIndex,
    pub contact_idx: ModIndex,
    pub deal_idx: ModIndex,
    /// Which CRM account (HubSpot portal, Salesforce org) the data is: 0 as generated;
    /// [`World::switch_crm_account`] makes it another one.
    pub crm_account: u64,
    /// Which LinkedIn member authorizes: 0 as generated.
    pub linkedin_member: u64,
}

/// HubSpot ids of account `n` are this far above account 0's.
const HS_ACCOUNT_STRIDE: u64 = 100_000_000_000;
/// Salesforce record numbers of account `n` are this far above account 0's.
const SF_ACCOUNT_STRIDE: u64 = 10_000_000;

impl World {
    /// The HubSpot portal id of the current CRM account.
    pub fn hub_id(&self) -> u64 {
        4_242_424 + self.crm_account
    }

    /// The Salesforce org id (18 characters, key prefix `00D`) of the current CRM account.
    pub fn sf_org_id(&self) -> String {
        crate::util::sf_id("00D", 1 + self.crm_account)
    }

    /// The LinkedIn member (person URN) who authorizes.
    pub fn linkedin_member_urn(&self) -> String {
        format!("urn:li:person:dEmO{:06}", self.linkedin_member)
    }

    fn hs_base(&self, kind: Kind) -> u64 {
        let base = match kind {
            Kind::Company => HS_COMPANY_BASE,
            Kind::Contact => HS_CONTACT_BASE,
            Kind::Deal => HS_DEAL_BASE,
        };
        base + self.crm_account * HS_ACCOUNT_STRIDE
    }

    /// The Salesforce id of record `idx` of `kind` in the current account.
    pub fn sf_id(&self, kind: Kind, idx: u32) -> String {
        let prefix = match kind {
            Kind::Company => "001",
            Kind::Contact => "003",
            Kind::Deal => "006",
        };
        crate::util::sf_id(
            prefix,
            u64::from(idx) + 1 + self.crm_account * SF_ACCOUNT_STRIDE,
        )
    }

    /// The CRM becomes another account's (`account`, not 0 for a different one): every record
    /// gets that account's ids (HubSpot and Salesforce), and its deals are worth twice as much,
    /// so its numbers differ from the previous account's; modification times stay (the records
    /// are older than any sync of the previous account). The portal and org ids change with it.
    pub fn switch_crm_account(&mut self, account: u64) {
        self.crm_account = account;
        for i in 0..self.companies.len() {
            let (hs, sf) = (
                self.hs_id(Kind::Company, i as u32),
                self.sf_id(Kind::Company, i as u32),
            );
            let c = &mut self.companies[i];
            (c.hs_id, c.sf_id) = (hs, sf);
        }
        for i in 0..self.contacts.len() {
            let (hs, sf) = (
                self.hs_id(Kind::Contact, i as u32),
                self.sf_id(Kind::Contact, i as u32),
            );
            let c = &mut self.contacts[i];
            (c.hs_id, c.sf_id) = (hs, sf);
        }
        for i in 0..self.deals.len() {
            let (hs, sf) = (
                self.hs_id(Kind::Deal, i as u32),
                self.sf_id(Kind::Deal, i as u32),
            );
            let d = &mut self.deals[i];
            (d.hs_id, d.sf_id) = (hs, sf);
            d.amount_cents = d.amount_cents.map(|a| a.saturating_mul(2));
        }
    }

    pub fn mod_index(&self, kind: Kind) -> &ModIndex {
        match kind {
            Kind::Company => &self.company_idx,
            Kind::Contact => &self.contact_idx,
            Kind::Deal => &self.deal_idx,
        }
    }

    pub fn company_by_hs(&self, id: u64) -> Option<u32> {
        let i = id.checked_sub(self.hs_base(Kind::Company))?;
        (i < self.companies.len() as u64).then_some(i as u32)
    }
    pub fn contact_by_hs(&self, id: u64) -> Option<u32> {
        let i = id.checked_sub(self.hs_base(Kind::Contact))?;
        (i < self.contacts.len() as u64).then_some(i as u32)
    }
    pub fn deal_by_hs(&self, id: u64) -> Option<u32> {
        let i = id.checked_sub(self.hs_base(Kind::Deal))?;
        (i < self.deals.len() as u64).then_some(i as u32)
    }

    pub fn len(&self, kind: Kind) -> usize {
        match kind {
            Kind::Company => self.companies.len(),
            Kind::Contact => self.contacts.len(),
            Kind::Deal => self.deals.len(),
        }
    }

    pub fn hs_id(&self, kind: Kind, idx: u32) -> u64 {
        self.hs_base(kind) + u64::from(idx)
    }

    pub fn archived(&self, kind: Kind, idx: u32) -> bool {
        let i = idx as usize;
        match kind {
            Kind::Company => self.companies.get(i).is_none_or(|c| c.archived),
            Kind::Contact => self.contacts.get(i).is_none_or(|c| c.archived),
            Kind::Deal => self.deals.get(i).is_none_or(|c| c.archived),
        }
    }

    /// Index by HubSpot numeric id or Salesforce id.
    pub fn find(&self, kind: Kind, id: &str) -> Option<u32> {
        if let Ok(n) = id.parse::<u64>() {
            return match kind {
                Kind::Company => self.company_by_hs(n),
                Kind::Contact => self.contact_by_hs(n),
                Kind::Deal => self.deal_by_hs(n),
            };
        }
        let pos = match kind {
            Kind::Company => self
                .companies
                .iter()
                .position(|c| c.sf_id == id || c.sf_id[..15] == *id),
            Kind::Contact => self
                .contacts
                .iter()
                .position(|c| c.sf_id == id || c.sf_id[..15] == *id),
            Kind::Deal => self
                .deals
                .iter()
                .position(|c| c.sf_id == id || c.sf_id[..15] == *id),
        };
        pos.map(|p| p as u32)
    }

    fn index_mut(&mut self, kind: Kind) -> &mut ModIndex {
        match kind {
            Kind::Company => &mut self.company_idx,
            Kind::Contact => &mut self.contact_idx,
            Kind::Deal => &mut self.deal_idx,
        }
    }

    /// Archive (delete) a record: it leaves lists, searches and queries.
    pub fn archive(&mut self, kind: Kind, idx: u32, now_ms: i64) {
        let i = idx as usize;
        let old = match kind {
            Kind::Company => self.companies.get_mut(i).map(|c| {
                c.archived = true;
                std::mem::replace(&mut c.modified_ms, now_ms)
            }),
            Kind::Contact => self.contacts.get_mut(i).map(|c| {
                c.archived = true;
                std::mem::replace(&mut c.modified_ms, now_ms)
            }),
            Kind::Deal => self.deals.get_mut(i).map(|c| {
                c.archived = true;
                std::mem::replace(&mut c.modified_ms, now_ms)
            }),
        };
        if let Some(old) = old {
            self.index_mut(kind).remove((old, idx));
        }
    }

    /// Register a record just pushed onto its vector.
    pub fn index_new(&mut self, kind: Kind, idx: u32, modified_ms: i64) {
        self.index_mut(kind).insert((modified_ms, idx));
    }

    pub fn set_modified(&mut self, kind: Kind, idx: u32, ms: i64) {
        let i = idx as usize;
        let (old, index) = match kind {
            Kind::Company => (
                std::mem::replace(&mut self.companies[i].modified_ms, ms),
                &mut self.company_idx,
            ),
            Kind::Contact => (
                std::mem::replace(&mut self.contacts[i].modified_ms, ms),
                &mut self.contact_idx,
            ),
            Kind::Deal => (
                std::mem::replace(&mut self.deals[i].modified_ms, ms),
                &mut self.deal_idx,
            ),
        };
        index.remove((old, idx));
        if !self.archived(kind, idx) {
            self.index_mut(kind).insert((ms, idx));
        }
    }

    /// Deals' stage classification.
    pub fn stage_of(&self, d: &Deal) -> Option<&Stage> {
        self.pipelines.get(d.pipeline)?.stages.get(d.stage)
    }

    pub fn engagement_range(&self, start: NaiveDate, end: NaiveDate) -> &[Engagement] {
        let a = self.engagement.partition_point(|e| e.date < start);
        let b = self.engagement.partition_point(|e| e.date <= end).max(a);
        &self.engagement[a..b]
    }

    pub fn add_engagement(&mut self, rows: Vec<Engagement>) {
        self.engagement.extend(rows);
        self.engagement
            .sort_by_key(|e| (e.date, e.org_id, e.campaign_id));
    }

    pub fn campaign_account(&self, campaign_id: u64) -> Option<u64> {
        self.campaigns
            .iter()
            .find(|c| c.id == campaign_id)
            .map(|c| c.account_id)
    }
}

const ADJ: [&str; 40] = [
    "Blue",
    "Bright",
    "Silver",
    "North",
    "Summit",
    "Cedar",
    "Granite",
    "Crystal",
    "Golden",
    "Iron",
    "Maple",
    "Pioneer",
    "Quantum",
    "Rapid",
    "Solar",
    "Stellar",
    "Swift",
    "True",
    "Vertex",
    "Vivid",
    "Atlas",
    "Beacon",
    "Coastal",
    "Crimson",
    "Delta",
    "Echo",
    "Evergreen",
    "Falcon",
    "Harbor",
    "Horizon",
    "Liberty",
    "Lunar",
    "Nimbus",
    "Nova",
    "Orbit",
    "Pacific",
    "Prime",
    "Radiant",
    "Redwood",
    "Sterling",
];
const WORD: [&str; 40] = [
    "Ridge", "Bay", "Peak", "Stone", "River", "Oak", "Field", "Lake", "Brook", "Bridge", "Point",
    "Gate", "Hill", "Crest", "Wood", "Port", "Vale", "Rock", "Shore", "Park", "Forge", "Mill",
    "Grove", "Haven", "Meadow", "Canyon", "Island", "Spring", "Glen", "Harvest", "Lantern",
    "Arrow", "Anchor", "Compass", "Signal", "Thread", "Tower", "Wave", "Wind", "Spark",
];
const NOUN: [&str; 40] = [
    "Analytics",
    "Systems",
    "Labs",
    "Logistics",
    "Dynamics",
    "Networks",
    "Solutions",
    "Software",
    "Robotics",
    "Health",
    "Energy",
    "Capital",
    "Media",
    "Foods",
    "Motors",
    "Devices",
    "Cloud",
    "Data",
    "Security",
    "Biotech",
    "Works",
    "Partners",
    "Consulting",
    "Ventures",
    "Studios",
    "Materials",
    "Payments",
    "Learning",
    "Retail",
    "Telecom",
    "Aerospace",
    "Insights",
    "Mobility",
    "Foundry",
    "Pharma",
    "Textiles",
    "Logic",
    "Digital",
    "Industries",
    "Metrics",
];
const FIRST: [&str; 32] = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Lukas",
    "Anna",
    "Felix",
    "Lea",
    "Oliver",
    "Amelia",
    "Hugo",
    "Chloe",
    "Noah",
    "Emma",
    "Liam",
    "Sofia",
];
const LAST: [&str; 32] = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Dubois",
    "Moreau",
    "Evans",
    "Clarke",
    "de Vries",
    "Jansen",
    "O'Brien",
    "Nguyen",
];
const TITLES: [&str; 12] = [
    "CEO",
    "CTO",
    "VP Marketing",
    "Head of Growth",
    "Marketing Manager",
    "Demand Generation Manager",
    "Sales Director",
    "Account Executive",
    "Software Engineer",
    "Data Analyst",
    "Procurement Lead",
    "CFO",
];
const PRODUCTS: [&str; 6] = [
    "Platform",
    "Renewal",
    "Expansion",
    "Pilot",
    "Enterprise Plan",
    "Analytics Add-on",
];
const STAFF: [&str; 9] = [
    "SIZE_2_TO_10",
    "SIZE_11_TO_50",
    "SIZE_51_TO_200",
    "SIZE_201_TO_500",
    "SIZE_501_TO_1000",
    "SIZE_1001_TO_5000",
    "SIZE_5001_TO_10000",
    "SIZE_10001_OR_MORE",
    "SIZE_1",
];
const INDUSTRIES: [u32; 8] = [4, 6, 96, 43, 14, 25, 27, 80];

fn pick_country(rng: &mut Rng) -> &'static str {
    let r = rng.below(100);
    match r {
        0..55 => "US",
        55..67 => "GB",
        67..79 => "DE",
        79..85 => "FR",
        85..90 => "CA",
        90..94 => "NL",
        94..97 => "AU",
        _ => "SE",
    }
}

fn tld(country: &str, g: usize) -> &'static str {
    match country {
        "GB" => "co.uk",
        "DE" => "de",
        "FR" => "fr",
        "NL" => "nl",
        "AU" => "com.au",
        "CA" => "ca",
        "SE" => "se",
        _ if g.is_multiple_of(5) => "io",
        _ => "com",
    }
}

fn legal_form(country: &str, k: usize) -> &'static str {
    match country {
        "DE" => ["GmbH", "AG"][k % 2],
        "GB" => ["Ltd", "Limited", "PLC"][k % 3],
        "FR" => ["SAS", "SA"][k % 2],
        "NL" => "B.V.",
        "SE" => "AB",
        "AU" => "Pty Ltd",
        _ => ["Inc.", "Inc", "LLC", "Corp."][k % 4],
    }
}

/// The three words of the g-th unique company name, plus a number suffix past 64,000 names.
fn name_parts(g: usize) -> (&'static str, &'static str, &'static str, usize) {
    const P: usize = 40 * 40 * 40;
    let p = (g % P) * 7919 % P;
    (ADJ[p % 40], WORD[(p / 40) % 40], NOUN[p / 1600], g / P)
}

fn base_name(g: usize, joiner: &str) -> String {
    let (a, w, n, extra) = name_parts(g);
    let mut s = format!("{a}{joiner}{w} {n}");
    if extra > 0 {
        s.push_str(&format!(" {}", extra + 1));
    }
    s
}

fn domain_for(g: usize, country: &str) -> String {
    let (a, w, n, extra) = name_parts(g);
    let mut host = format!("{a}{w}{n}").to_lowercase();
    if extra > 0 {
        host.push_str(&(extra + 1).to_string());
    }
    format!("{host}.{}", tld(country, g))
}

/// CRM-side surface form of a website.
fn crm_website(d: &str, k: usize) -> String {
    match k % 7 {
        0 => format!("https://www.{d}"),
        1 => format!("http://{d}/"),
        2 => d.to_string(),
        3 => format!("WWW.{}", d.to_uppercase()),
        4 => format!("https://{d}/about-us"),
        5 => format!("https://shop.{d}"),
        _ => format!("www.{d}/en?ref=crm"),
    }
}

/// LinkedIn-side surface form of a website.
fn li_website(d: &str, k: usize) -> String {
    match k % 5 {
        0 => format!("http://www.{d}"),
        1 => format!("https://{d}"),
        2 => format!("https://www.{d}/"),
        3 => d.to_string(),
        _ => {
            let mut s = String::from("https://");
            for (i, c) in d.chars().enumerate() {
                if i == 0 {
                    s.extend(c.to_uppercase());
                } else {
                    s.push(c);
                }
            }
            s.push_str("/en-us");
            s
        }
    }
}

/// HubSpot's `domain` property: the host without `www.`.
pub fn domain_property(website: &str) -> Option<String> {
    let lower = website.trim().to_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .unwrap_or(&lower);
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.strip_prefix("www.").unwrap_or(host);
    (!host.is_empty()).then(|| host.to_string())
}

fn time_in_day(rng: &mut Rng) -> i64 {
    rng.range(0, DAY_MS - 1)
}

fn pipelines() -> Vec<Pipeline> {
    let st = |id: &str, label: &str, order: u32, closed: bool, p: f64| Stage {
        id: id.to_string(),
        label: label.to_string(),
        display_order: order,
        closed,
        probability: p,
    };
    vec![
        Pipeline {
            id: "default".into(),
            label: "Sales Pipeline".into(),
            display_order: 0,
            stages: vec![
                st(
                    "appointmentscheduled",
                    "Appointment Scheduled",
                    0,
                    false,
                    0.2,
                ),
                st("qualifiedtobuy", "Qualified To Buy", 1, false, 0.4),
                st(
                    "presentationscheduled",
                    "Presentation Scheduled",
                    2,
                    false,
                    0.6,
                ),
                st(
                    "decisionmakerboughtin",
                    "Decision Maker Bought-In",
                    3,
                    false,
                    0.8,
                ),
                st("contractsent", "Contract Sent", 4, false, 0.9),
                st("closedwon", "Closed Won", 5, true, 1.0),
                st("closedlost", "Closed Lost", 6, true, 0.0),
            ],
        },
        Pipeline {
            id: "75314512".into(),
            label: "Enterprise".into(),
            display_order: 1,
            stages: vec![
                st("160934201", "Discovery", 0, false, 0.1),
                st("160934202", "Proposal", 1, false, 0.5),
                st("160934203", "Negotiation", 2, false, 0.8),
                st("160934204", "Closed Won", 3, true, 1.0),
                st("160934205", "Closed Lost", 4, true, 0.0),
            ],
        },
    ]
}

fn sf_stages(pipelines: &[Pipeline]) -> Vec<SfStage> {
    let mut out: Vec<SfStage> = Vec::new();
    for p in pipelines {
        for s in &p.stages {
            if out.iter().any(|o| o.label == s.label) {
                continue;
            }
            let n = out.len() as u64 + 1;
            out.push(SfStage {
                id: sf_id("01J", n),
                api_name: s.label.clone(),
                label: s.label.clone(),
                closed: s.closed,
                won: s.closed && s.probability >= 1.0,
                sort_order: n as u32,
                probability: s.probability * 100.0,
            });
        }
    }
    out
}

enum Role {
    Plain,
    DomainMatch(usize),
    NameMatch(usize),
}

/// Generate the world. Fast enough for the typical workspace to start in a few seconds.
pub fn generate(seed: u64, sizes: Sizes, anchor: NaiveDate) -> World {
    let anchor_ms = date_ms(anchor);
    let n_companies = sizes.companies;
    let n_orgs = sizes.engaged_orgs;
    let days = sizes.days.max(1);

    // Which engaged orgs are CRM companies, and how they are expected to match.
    let n_domain = (n_orgs * 55 / 100).min(n_companies);
    let n_name = (n_orgs * 15 / 100).min(n_companies - n_domain);
    let n_overlap = n_domain + n_name;
    let spacing = n_companies.checked_div(n_overlap).unwrap_or(1).max(1);
    let mut roles: Vec<Role> = (0..n_companies).map(|_| Role::Plain).collect();
    let mut org_company: Vec<Option<u32>> = vec![None; n_orgs];
    for (k, slot) in org_company.iter_mut().enumerate().take(n_overlap) {
        let c = k * spacing;
        roles[c] = if k < n_domain {
            Role::DomainMatch(k)
        } else {
            Role::NameMatch(k)
        };
        *slot = Some(c as u32);
    }

    // Companies.
    let mut rng = Rng::stream(seed, "companies");
    let mut companies = Vec::with_capacity(n_companies);
    let mut org_seed: Vec<(String, Option<String>, String)> = vec![Default::default(); n_orgs];
    let mut truth_domain: Vec<Option<String>> = vec![None; n_orgs];
    let mut used_domains: HashSet<String> = HashSet::with_capacity(n_companies + n_orgs);
    for (i, role) in roles.iter().enumerate() {
        let country = pick_country(&mut rng);
        let mut d = domain_for(i, country);
        if !used_domains.insert(d.clone()) {
            d = format!("{i}-{d}");
            used_domains.insert(d.clone());
        }
        let (name, website) = match *role {
            Role::Plain => {
                let mut name = base_name(i, " ");
                if rng.chance(0.4) {
                    name = format!("{name} {}", legal_form(country, i));
                }
                let website = rng.chance(0.85).then(|| crm_website(&d, i));
                (name, website)
            }
            Role::DomainMatch(k) => {
                let crm_name = if k % 3 == 0 {
                    format!("{} {}", base_name(i, " "), legal_form(country, k))
                } else {
                    base_name(i, " ")
                };
                org_seed[k] = (
                    base_name(i, " "),
                    Some(li_website(&d, k / 7 + k)),
                    country.to_string(),
                );
                truth_domain[k] = Some(d.clone());
                (crm_name, Some(crm_website(&d, k)))
            }
            Role::NameMatch(k) => {
                let legal = legal_form(country, k);
                let (crm, li) = match k % 4 {
                    0 => (format!("{} {legal}", base_name(i, " ")), base_name(i, " ")),
                    1 => (
                        base_name(i, " ").to_uppercase(),
                        format!("{}, {legal}", base_name(i, " ")),
                    ),
                    2 => (base_name(i, " & "), base_name(i, " and ")),
                    _ => (
                        format!("{} {legal}", base_name(i, " and ")),
                        base_name(i, " & "),
                    ),
                };
                // The org may list a website the CRM does not know.
                let li_site = (k % 2 == 0).then(|| li_website(&d, k));
                org_seed[k] = (li, li_site, country.to_string());
                (crm, None)
            }
        };
        let created = anchor_ms - rng.range(30, 1500) * DAY_MS + time_in_day(&mut rng);
        let modified = rng.range(created, anchor_ms - 1);
        companies.push(Company {
            hs_id: HS_COMPANY_BASE + i as u64,
            sf_id: sf_id("001", i as u64 + 1),
            domain: website.as_deref().and_then(domain_property),
            name,
            website,
            country: Some(country.to_string()),
            created_ms: created,
            modified_ms: modified,
            archived: false,
        });
    }

    // Organizations: overlapping ones take their seed; the rest have no CRM account.
    let mut rng = Rng::stream(seed, "orgs");
    let mut orgs = Vec::with_capacity(n_orgs);
    for (k, company) in org_company.iter().enumerate() {
        let (name, website, country) = if company.is_some() {
            org_seed[k].clone()
        } else {
            let g = n_companies + k;
            let country = pick_country(&mut rng);
            let mut d = domain_for(g, country);
            if !used_domains.insert(d.clone()) {
                d = format!("{g}-{d}");
            }
            let site = rng.chance(0.8).then(|| li_website(&d, k));
            (base_name(g, " "), site, country.to_string())
        };
        let vanity = name
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>()
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        orgs.push(Org {
            id: ORG_ID_BASE + k as u64,
            name,
            vanity,
            website,
            industry: *rng.pick(&INDUSTRIES),
            staff: STAFF[rng.below(STAFF.len() as u64) as usize],
            country,
        });
    }
    let org_by_id = orgs
        .iter()
        .enumerate()
        .map(|(i, o)| (o.id, i as u32))
        .collect();

    let truth = (0..n_orgs)
        .map(|k| TruthLink {
            org: k as u32,
            company: org_company[k],
            kind: if k < n_domain {
                Some(MatchKind::Domain)
            } else if k < n_overlap {
                Some(MatchKind::Name)
            } else {
                None
            },
            domain: truth_domain[k].clone(),
        })
        .collect();

    // Ads: two accounts, eight campaigns.
    let ad_accounts = vec![
        AdAccount {
            id: 510_000_001,
            name: "Revenue Proven Demo - Demand Gen".into(),
            currency: "USD".into(),
            status: "ACTIVE".into(),
        },
        AdAccount {
            id: 510_000_002,
            name: "Revenue Proven Demo - EMEA".into(),
            currency: "EUR".into(),
            status: "ACTIVE".into(),
        },
    ];
    let campaign_names = [
        "Brand Awareness Q1",
        "Webinar Promotion",
        "Retargeting - Pricing Page",
        "ABM Tier 1",
        "Product Launch",
        "EMEA Lead Gen",
        "DACH Thought Leadership",
        "UK Retargeting",
    ];
    let campaigns: Vec<Campaign> = campaign_names
        .iter()
        .enumerate()
        .map(|(i, n)| Campaign {
            id: 600_000_001 + i as u64,
            account_id: if i < 5 { 510_000_001 } else { 510_000_002 },
            name: (*n).to_string(),
        })
        .collect();

    // Engagement: sparse, ~15-30 active days a year per org, 1-3 campaigns.
    let mut rng = Rng::stream(seed, "engagement");
    let first_day = anchor - Days::new(u64::from(days));
    let mut engagement = Vec::with_capacity(n_orgs * 40);
    let mut org_days: Vec<Vec<u32>> = Vec::with_capacity(n_orgs);
    for org in &orgs {
        let n_camp = rng.range(1, 3) as usize;
        let mut camps: Vec<u64> = Vec::with_capacity(3);
        while camps.len() < n_camp {
            let c = rng.pick(&campaigns).id;
            if !camps.contains(&c) {
                camps.push(c);
            }
        }
        let yearly = rng.range(15, 30) as u32;
        let n_days = ((yearly * days).div_ceil(365)).clamp(1, days) as usize;
        let mut active: Vec<u32> = Vec::with_capacity(n_days);
        while active.len() < n_days {
            let d = rng.below(u64::from(days)) as u32;
            if !active.contains(&d) {
                active.push(d);
            }
        }
        active.sort_unstable();
        for &d in &active {
            let date = first_day + Days::new(u64::from(d));
            let mut any = false;
            for (ci, &c) in camps.iter().enumerate() {
                let last = ci + 1 == camps.len();
                if rng.chance(0.6) || (last && !any) {
                    any = true;
                    let u = rng.unit();
                    let impressions = 1 + (u * u * 400.0) as u64;
                    let clicks = rng.below(impressions / 15 + 2);
                    let engagements = clicks + rng.below(impressions / 10 + 1);
                    engagement.push(Engagement {
                        date,
                        org_id: org.id,
                        campaign_id: c,
                        impressions,
                        clicks,
                        engagements,
                    });
                }
            }
        }
        org_days.push(active);
    }
    engagement.sort_by_key(|e| (e.date, e.org_id, e.campaign_id));

    // Contacts.
    let mut rng = Rng::stream(seed, "contacts");
    let mut contacts = Vec::with_capacity(sizes.contacts);
    for i in 0..sizes.contacts {
        let first = *rng.pick(&FIRST);
        let last = *rng.pick(&LAST);
        let company = if n_companies > 0 && rng.chance(0.92) {
            Some(rng.below(n_companies as u64) as u32)
        } else {
            None
        };
        let local: String = format!("{first}.{last}")
            .to_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
            .collect();
        let email = if rng.chance(0.95) {
            let dom = company
                .and_then(|c| companies[c as usize].domain.clone())
                .unwrap_or_else(|| ["gmail.com", "outlook.com", "yahoo.com"][i % 3].to_string());
            Some(format!("{local}{}@{dom}", i % 1000))
        } else {
            None
        };
        let created = anchor_ms - rng.range(1, 1200) * DAY_MS + time_in_day(&mut rng);
        let modified = rng.range(created, anchor_ms - 1);
        contacts.push(Contact {
            hs_id: HS_CONTACT_BASE + i as u64,
            sf_id: sf_id("003", i as u64 + 1),
            first_name: first.to_string(),
            last_name: last.to_string(),
            email,
            title: rng.chance(0.8).then(|| rng.pick(&TITLES).to_string()),
            company,
            created_ms: created,
            modified_ms: modified,
            archived: false,
        });
    }

    // Deals: many on engaged companies, created after engagement.
    let pipelines = pipelines();
    let sf_stages = sf_stages(&pipelines);
    let mut rng = Rng::stream(seed, "deals");
    let mut deals = Vec::with_capacity(sizes.deals);
    let window_start_ms = date_ms(first_day);
    for i in 0..sizes.deals {
        let r = rng.unit();
        let (company, created) = if r < 0.45 && n_overlap > 0 {
            let k = rng.below(n_overlap as u64) as usize;
            let day = *rng.pick(&org_days[k]);
            let lag = rng.range(3, 45);
            let mut created = date_ms(first_day) + (i64::from(day) + lag) * DAY_MS;
            if created >= anchor_ms {
                created = anchor_ms - DAY_MS;
            }
            (org_company[k], created + time_in_day(&mut rng))
        } else if r < 0.95 && n_companies > 0 {
            let c = rng.below(n_companies as u64) as u32;
            let created = if rng.chance(0.2) {
                window_start_ms - rng.range(1, 180) * DAY_MS
            } else {
                rng.range(window_start_ms, anchor_ms - DAY_MS)
            };
            (
                Some(c),
                created - created.rem_euclid(DAY_MS) + time_in_day(&mut rng),
            )
        } else {
            (
                None,
                rng.range(window_start_ms, anchor_ms - DAY_MS) / DAY_MS * DAY_MS
                    + time_in_day(&mut rng),
            )
        };
        let pipeline = if rng.chance(0.75) { 0 } else { 1 };
        let stages = &pipelines[pipeline].stages;
        let age_days = (anchor_ms - created) / DAY_MS;
        let (p_won, p_lost) = if age_days > 60 {
            (0.45, 0.35)
        } else {
            (0.12, 0.08)
        };
        let u = rng.unit();
        let won = stages.iter().position(|s| s.closed && s.probability >= 1.0);
        let lost = stages.iter().position(|s| s.closed && s.probability <= 0.0);
        let open: Vec<usize> = (0..stages.len()).filter(|&s| !stages[s].closed).collect();
        let stage = if u < p_won {
            won.unwrap_or(0)
        } else if u < p_won + p_lost {
            lost.unwrap_or(0)
        } else {
            *rng.pick(&open)
        };
        let created_date = crate::util::to_datetime(created).date_naive();
        let close_date = if stages[stage].closed {
            let max = (age_days).clamp(1, 120);
            Some(created_date + Days::new(rng.range(1, max) as u64))
        } else {
            Some(created_date + Days::new(rng.range(30, 180) as u64))
        };
        let country = company
            .and_then(|c| companies[c as usize].country.clone())
            .unwrap_or_default();
        let currency = match country.as_str() {
            "DE" | "FR" | "NL" if rng.chance(0.8) => "EUR",
            "GB" if rng.chance(0.8) => "GBP",
            _ if rng.chance(0.03) => "EUR",
            _ => "USD",
        };
        let dollars = (1000.0f64.ln() + rng.unit() * (250_000.0f64.ln() - 1000.0f64.ln())).exp();
        let amount_cents = if rng.chance(0.8) {
            ((dollars / 100.0).round() as i64) * 10_000
        } else {
            (dollars * 100.0) as i64
        };
        let cname = company
            .map(|c| companies[c as usize].name.clone())
            .unwrap_or_else(|| "Unassigned".to_string());
        let modified = rng.range(created, anchor_ms - 1).max(created);
        deals.push(Deal {
            hs_id: HS_DEAL_BASE + i as u64,
            sf_id: sf_id("006", i as u64 + 1),
            name: format!("{cname} - {}", rng.pick(&PRODUCTS)),
            amount_cents: (!rng.chance(0.02)).then_some(amount_cents),
            currency: currency.to_string(),
            pipeline,
            stage,
            created_ms: created,
            close_date,
            company,
            modified_ms: modified,
            archived: false,
        });
    }

    let company_idx = ModIndex::build(
        companies
            .iter()
            .enumerate()
            .map(|(i, c)| (c.modified_ms, i as u32)),
    );
    let contact_idx = ModIndex::build(
        contacts
            .iter()
            .enumerate()
            .map(|(i, c)| (c.modified_ms, i as u32)),
    );
    let deal_idx = ModIndex::build(
        deals
            .iter()
            .enumerate()
            .map(|(i, c)| (c.modified_ms, i as u32)),
    );

    World {
        anchor,
        companies,
        contacts,
        deals,
        pipelines,
        sf_stages,
        orgs,
        org_by_id,
        ad_accounts,
        campaigns,
        engagement,
        truth,
        company_idx,
        contact_idx,
        deal_idx,
        crm_account: 0,
        linkedin_member: 0,
    }
}

/// Format cents as a decimal string: `12500`, `12500.5` style is avoided; `12500.50`.
pub fn amount_string(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    if c.is_multiple_of(100) {
        format!("{sign}{}", c / 100)
    } else {
        format!("{sign}{}.{:02}", c / 100, c % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchor() -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 6, 30).unwrap()
    }

    #[test]
    fn same_seed_same_world() {
        let a = generate(7, Sizes::TINY, anchor());
        let b = generate(7, Sizes::TINY, anchor());
        assert_eq!(a.engagement, b.engagement);
        assert_eq!(
            a.companies.iter().map(|c| &c.name).collect::<Vec<_>>(),
            b.companies.iter().map(|c| &c.name).collect::<Vec<_>>()
        );
    }

    #[test]
    fn overlap_has_domain_name_and_unmatched_orgs() {
        let w = generate(1, Sizes::TINY, anchor());
        let count = |k: Option<MatchKind>| w.truth.iter().filter(|t| t.kind == k).count();
        assert!(count(Some(MatchKind::Domain)) > 0);
        assert!(count(Some(MatchKind::Name)) > 0);
        assert!(count(None) > 0);
        for t in &w.truth {
            if t.kind == Some(MatchKind::Name) {
                let c = &w.companies[t.company.unwrap() as usize];
                assert!(c.website.is_none(), "name matches have no CRM website");
            }
        }
    }

    #[test]
    fn engagement_is_sparse_and_within_the_window() {
        let sizes = Sizes {
            engaged_orgs: 200,
            days: 365,
            ..Sizes::TINY
        };
        let w = generate(3, sizes, anchor());
        let per_org = w.engagement.len() as f64 / 200.0;
        assert!((15.0..=90.0).contains(&per_org), "{per_org}");
        assert!(w.engagement.iter().all(|e| e.date < anchor()));
        assert!(
            w.engagement
                .iter()
                .all(|e| e.date >= anchor() - Days::new(365))
        );
    }

    #[test]
    fn many_deals_follow_engagement_of_their_company() {
        let sizes = Sizes {
            companies: 2_000,
            contacts: 10,
            deals: 1_000,
            engaged_orgs: 300,
            days: 365,
        };
        let w = generate(11, sizes, anchor());
        let mut company_days: std::collections::HashMap<u32, Vec<NaiveDate>> =
            std::collections::HashMap::new();
        for t in &w.truth {
            if let Some(c) = t.company {
                let org = w.orgs[t.org as usize].id;
                let days = w
                    .engagement
                    .iter()
                    .filter(|e| e.org_id == org)
                    .map(|e| e.date)
                    .collect();
                company_days.insert(c, days);
            }
        }
        let follows = w
            .deals
            .iter()
            .filter(|d| {
                let created = crate::util::to_datetime(d.created_ms).date_naive();
                d.company
                    .and_then(|c| company_days.get(&c))
                    .is_some_and(|days| {
                        days.iter()
                            .any(|e| *e < created && (created - *e).num_days() <= 46)
                    })
            })
            .count();
        assert!(
            follows * 100 / w.deals.len() >= 30,
            "{follows} of {}",
            w.deals.len()
        );
        let won = w
            .deals
            .iter()
            .filter(|d| {
                w.stage_of(d)
                    .is_some_and(|s| s.closed && s.probability >= 1.0)
            })
            .count();
        let lost = w
            .deals
            .iter()
            .filter(|d| {
                w.stage_of(d)
                    .is_some_and(|s| s.closed && s.probability <= 0.0)
            })
            .count();
        assert!(won > 100 && lost > 50 && won + lost < w.deals.len());
        let currencies: std::collections::HashSet<&str> =
            w.deals.iter().map(|d| d.currency.as_str()).collect();
        assert_eq!(currencies.len(), 3, "{currencies:?}");
    }

    #[test]
    fn amounts_format_as_decimal_strings() {
        assert_eq!(amount_string(1_250_000), "12500");
        assert_eq!(amount_string(1_250_050), "12500.50");
    }
}
