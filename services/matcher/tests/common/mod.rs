//! Loading the labelled development sets (tests/data/dev and tests/data/dev-wild, copied from
//! shared/matching).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use matcher::domain::{CrmAccount, CrmId, LinkedInCompany, LinkedInId};
use serde_json::Value;

pub struct DevSet {
    pub linkedin: Vec<LinkedInCompany>,
    pub crm: Vec<CrmAccount>,
    /// linkedin id → (true CRM ids, case)
    pub truth: BTreeMap<String, (BTreeSet<String>, String)>,
}

fn lines(text: &str) -> impl Iterator<Item = Value> + '_ {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("dev set lines are valid JSON"))
}

fn opt(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

pub fn load_dev() -> DevSet {
    load(
        include_str!("../data/dev/linkedin.jsonl"),
        include_str!("../data/dev/crm.jsonl"),
        include_str!("../data/dev/truth.jsonl"),
    )
}

/// The international set: other scripts, full-width forms, IDNs, look-alikes across scripts.
pub fn load_dev_wild() -> DevSet {
    load(
        include_str!("../data/dev-wild/linkedin.jsonl"),
        include_str!("../data/dev-wild/crm.jsonl"),
        include_str!("../data/dev-wild/truth.jsonl"),
    )
}

fn load(linkedin: &str, crm: &str, truth: &str) -> DevSet {
    let linkedin = lines(linkedin)
        .map(|v| LinkedInCompany {
            id: LinkedInId::parse(&opt(&v, "id").unwrap()).unwrap(),
            name: opt(&v, "name").unwrap_or_default(),
            vanity_name: opt(&v, "vanity_name"),
            website: opt(&v, "website"),
            country: opt(&v, "country"),
        })
        .collect();
    let crm = lines(crm)
        .map(|v| CrmAccount {
            id: CrmId::parse(&opt(&v, "id").unwrap()).unwrap(),
            name: opt(&v, "name").unwrap_or_default(),
            domain: opt(&v, "domain"),
            website: opt(&v, "website"),
            country: opt(&v, "country"),
        })
        .collect();
    let truth = lines(truth)
        .map(|v| {
            let ids = v["crm_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect();
            (
                opt(&v, "linkedin_id").unwrap(),
                (ids, opt(&v, "case").unwrap()),
            )
        })
        .collect();
    DevSet {
        linkedin,
        crm,
        truth,
    }
}

/// Precision and recall exactly as shared/matching/score.py computes them.
pub struct Score {
    pub pairs: usize,
    pub precision: f64,
    pub recall: f64,
    /// case → (entities, found, wrong pairs)
    pub by_case: BTreeMap<String, (usize, usize, usize)>,
}

pub fn score(
    truth: &BTreeMap<String, (BTreeSet<String>, String)>,
    pairs: &BTreeSet<(String, String)>,
) -> Score {
    let is_true = |l: &str, c: &str| truth.get(l).is_some_and(|(ids, _)| ids.contains(c));
    let correct = pairs.iter().filter(|(l, c)| is_true(l, c)).count();
    let found: BTreeSet<&str> = pairs
        .iter()
        .filter(|(l, c)| is_true(l, c))
        .map(|(l, _)| l.as_str())
        .collect();
    let matchable = truth.values().filter(|(ids, _)| !ids.is_empty()).count();
    let mut by_case: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for (l, (_, case)) in truth {
        let e = by_case.entry(case.clone()).or_default();
        e.0 += 1;
        e.1 += usize::from(found.contains(l.as_str()));
        e.2 += pairs
            .iter()
            .filter(|(pl, c)| pl == l && !is_true(pl, c))
            .count();
    }
    Score {
        pairs: pairs.len(),
        precision: if pairs.is_empty() {
            0.0
        } else {
            correct as f64 / pairs.len() as f64
        },
        recall: if matchable == 0 {
            0.0
        } else {
            found.len() as f64 / matchable as f64
        },
        by_case,
    }
}
