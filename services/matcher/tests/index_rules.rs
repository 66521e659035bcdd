//! The matching rules, one given/when/then at a time, through the public API.

mod common;

use matcher::domain::{
    Change, ChangeSet, CrmAccount, CrmId, Decision, DecisionKind, LinkedInCompany, LinkedInId,
    LinkedInResult, MatchConfig, MatchIndex, Method,
};

// ---- tiny given/when/then helpers ---------------------------------------------------------

fn crm(id: &str, name: &str, domain: Option<&str>) -> CrmAccount {
    CrmAccount {
        id: CrmId::parse(id).unwrap(),
        name: name.to_string(),
        domain: domain.map(str::to_string),
        website: None,
        country: None,
    }
}

fn crm_in(id: &str, name: &str, domain: Option<&str>, country: &str) -> CrmAccount {
    CrmAccount {
        country: Some(country.to_string()),
        ..crm(id, name, domain)
    }
}

fn li(id: &str, name: &str, website: Option<&str>) -> LinkedInCompany {
    LinkedInCompany {
        id: LinkedInId::parse(id).unwrap(),
        name: name.to_string(),
        vanity_name: None,
        website: website.map(str::to_string),
        country: None,
    }
}

fn li_in(id: &str, name: &str, website: Option<&str>, country: &str) -> LinkedInCompany {
    LinkedInCompany {
        country: Some(country.to_string()),
        ..li(id, name, website)
    }
}

fn given(crm: Vec<CrmAccount>, linkedin: Vec<LinkedInCompany>) -> MatchIndex {
    MatchIndex::build(MatchConfig::default(), crm, linkedin, Vec::new())
}

fn result(ix: &MatchIndex, id: &str) -> LinkedInResult {
    ix.result(&LinkedInId::parse(id).unwrap())
        .expect("LinkedIn company is in the index")
}

fn pairs(ix: &MatchIndex, id: &str) -> Vec<(String, Method)> {
    result(ix, id)
        .matches
        .iter()
        .map(|m| (m.crm_id.to_string(), m.method))
        .collect()
}

fn decision(l: &str, c: &str, kind: DecisionKind) -> Decision {
    Decision {
        linkedin_id: LinkedInId::parse(l).unwrap(),
        crm_id: CrmId::parse(c).unwrap(),
        kind,
    }
}

fn updated_ids(cs: &ChangeSet) -> Vec<String> {
    cs.updated
        .iter()
        .map(|r| r.linkedin_id.to_string())
        .collect()
}

// ---- domain ---------------------------------------------------------------------------------

#[test]
fn given_same_site_in_different_surface_forms_when_matched_then_domain_pair_with_reason() {
    let ix = given(
        vec![crm("crm-1", "Acme", Some("ACME.CO.UK"))],
        vec![li("li-1", "Acme Ltd", Some("www.acme.co.uk"))],
    );
    let r = result(&ix, "li-1");
    assert_eq!(pairs(&ix, "li-1"), vec![("crm-1".into(), Method::Domain)]);
    assert_eq!(
        r.matches[0].reason,
        "website www.acme.co.uk → acme.co.uk equals CRM domain ACME.CO.UK"
    );
    assert!(r.matches[0].score.value() > 0.95);
}

#[test]
fn given_a_host_held_by_unrelated_names_when_matched_then_it_is_not_identity() {
    // "postbox.example" is in no list: the data says it is shared.
    let ix = given(
        vec![
            crm("crm-1", "Sage Harbor Payments", Some("postbox.example")),
            crm("crm-2", "Garcia Software", Some("postbox.example")),
            crm("crm-3", "Nimbus Freight", Some("postbox.example")),
        ],
        vec![
            li(
                "li-1",
                "Garcia Software GmbH",
                Some("https://garciasoftware.de"),
            ),
            li("li-2", "Quantum Bio", Some("https://postbox.example/")),
        ],
    );
    // Matched by name, the shared host is neither evidence for nor against.
    assert_eq!(pairs(&ix, "li-1"), vec![("crm-2".into(), Method::Name)]);
    assert!(result(&ix, "li-1").matches[0].reason.contains("ignored"));
    // A website on the shared host matches nobody by domain.
    assert!(pairs(&ix, "li-2").is_empty());
}

#[test]
fn given_the_same_site_under_unrelated_names_then_review_not_match() {
    // A rebrand, or a typing error: the site alone does not decide.
    let ix = given(
        vec![crm("crm-1", "Facebook Inc", Some("meta.com"))],
        vec![li(
            "li-1",
            "Meta Platforms",
            Some("https://about.meta.com/"),
        )],
    );
    let r = result(&ix, "li-1");
    assert!(r.matches.is_empty());
    let review = r.review.as_ref().expect("a case for review");
    assert_eq!(review.candidates[0].crm_id.as_str(), "crm-1");
    assert!(review.reason.contains("unrelated names"));
}

#[test]
fn given_tenants_of_a_platform_not_in_the_suffix_list_when_matched_then_tenants_are_sites() {
    let ix = given(
        vec![
            crm("crm-1", "Apex Energy", Some("apexenergy.pagehost.example")),
            crm("crm-2", "Bolt Foods", Some("boltfoods.pagehost.example")),
        ],
        vec![
            li(
                "li-1",
                "Apex Energy Pty Ltd",
                Some("https://apexenergy.pagehost.example/"),
            ),
            li(
                "li-2",
                "Cedar Labs",
                Some("https://cedarlabs.pagehost.example/"),
            ),
        ],
    );
    assert_eq!(pairs(&ix, "li-1"), vec![("crm-1".into(), Method::Domain)]);
    assert!(result(&ix, "li-1").matches[0].reason.contains("tenant"));
    assert!(pairs(&ix, "li-2").is_empty());
}

#[test]
fn given_tenants_of_a_listed_platform_when_matched_then_each_tenant_is_its_own_site() {
    let ix = given(
        vec![crm("crm-1", "Echo Health", Some("echohealth.github.io"))],
        vec![
            li(
                "li-1",
                "echo health llp",
                Some("https://echohealth.github.io/"),
            ),
            li("li-2", "Other Co", Some("https://other.github.io/")),
        ],
    );
    assert_eq!(pairs(&ix, "li-1"), vec![("crm-1".into(), Method::Domain)]);
    assert!(pairs(&ix, "li-2").is_empty());
}

#[test]
fn given_a_profile_page_as_website_when_matched_then_the_name_decides() {
    let ix = given(
        vec![crm("crm-1", "Keystone Cloud", Some("keystonecloud.com"))],
        vec![li(
            "li-1",
            "KEYSTONECLOUD",
            Some("https://profiles.example/keystonecloud"),
        )],
    );
    let r = result(&ix, "li-1");
    assert_eq!(pairs(&ix, "li-1"), vec![("crm-1".into(), Method::Name)]);
    assert!(
        r.matches[0].reason.contains("profile page"),
        "{}",
        r.matches[0].reason
    );
}

#[test]
fn given_duplicate_crm_accounts_when_one_matches_by_domain_then_each_gets_a_pair() {
    let ix = given(
        vec![
            crm(
                "crm-1",
                "Blue Data Incorporated",
                Some("https://bluedata.com/"),
            ),
            crm("crm-2", "The Blue Data Corp", None),
            crm("crm-3", "Blue Data", Some("gmail.com")),
            crm("crm-4", "Blue Data", Some("otherbluedata.org")),
        ],
        vec![li("li-1", "Blue Data", Some("https://bluedata.com/en-us/"))],
    );
    assert_eq!(
        pairs(&ix, "li-1"),
        vec![
            ("crm-1".into(), Method::Domain),
            ("crm-2".into(), Method::Name),
            ("crm-3".into(), Method::Name),
        ],
        "crm-4 has a conflicting domain: another Blue Data"
    );
}

// ---- name -----------------------------------------------------------------------------------

#[test]
fn given_a_crm_account_without_domain_when_names_agree_then_name_pair() {
    let ix = given(
        vec![crm(
            "crm-1",
            "GOLDEN WILLOW INDUSTRIES GMBH AND CO. KG",
            None,
        )],
        vec![li(
            "li-1",
            "Golden Willow Industries",
            Some("HTTPS://WWW.GOLDENWILLOWINDUSTRIES.DE/"),
        )],
    );
    assert_eq!(pairs(&ix, "li-1"), vec![("crm-1".into(), Method::Name)]);
    assert!(
        result(&ix, "li-1").matches[0]
            .reason
            .contains("CRM has no domain")
    );
}

#[test]
fn given_websites_that_differ_only_in_suffix_when_names_agree_then_name_pair() {
    let ix = given(
        vec![crm("crm-1", "Helix Media NV", Some("helixmedia.nl"))],
        vec![li(
            "li-1",
            "hélix mediá n.v.",
            Some("https://www.helixmedia.de"),
        )],
    );
    assert_eq!(pairs(&ix, "li-1"), vec![("crm-1".into(), Method::Name)]);
    assert!(
        result(&ix, "li-1").matches[0]
            .reason
            .contains("differ only in suffix")
    );
}

#[test]
fn given_conflicting_websites_when_names_agree_then_review_not_match() {
    let ix = given(
        vec![crm("crm-1", "Silver Dynamics", Some("silverdynamics.com"))],
        vec![li("li-1", "Silver Dynamics", Some("https://sdiinc.com/"))],
    );
    let r = result(&ix, "li-1");
    assert!(r.matches.is_empty());
    let review = r.review.as_ref().expect("a case for review");
    assert_eq!(review.candidates.len(), 1);
    assert!(review.candidates[0].reason.contains("websites differ"));
}

#[test]
fn given_two_same_name_accounts_and_nothing_to_tell_them_apart_then_review_with_both() {
    let ix = given(
        vec![
            crm("crm-1", "Fusion Payments SA", None),
            crm("crm-2", "Fusion Payments", None),
        ],
        vec![li("li-1", "fusion payments sa", None)],
    );
    let r = result(&ix, "li-1");
    assert!(r.matches.is_empty());
    let review = r.review.as_ref().expect("ambiguous");
    let ids: Vec<String> = review
        .candidates
        .iter()
        .map(|c| c.crm_id.to_string())
        .collect();
    assert_eq!(ids, vec!["crm-1", "crm-2"]);
}

#[test]
fn given_two_same_name_accounts_sharing_a_site_then_both_are_one_company() {
    let ix = given(
        vec![
            crm("crm-1", "Nova Networks AB", Some("novanetworks.se")),
            crm(
                "crm-2",
                "Nova Networks Aktiebolag",
                Some("www.novanetworks.se"),
            ),
        ],
        vec![li("li-1", "Nova Networks", None)],
    );
    assert_eq!(
        pairs(&ix, "li-1"),
        vec![
            ("crm-1".into(), Method::Name),
            ("crm-2".into(), Method::Name)
        ]
    );
}

#[test]
fn given_different_countries_when_names_agree_then_review_not_match() {
    let ix = given(
        vec![crm_in("crm-1", "Beacon Industries", None, "GB")],
        vec![li_in("li-1", "Beacon Industries", None, "US")],
    );
    let r = result(&ix, "li-1");
    assert!(r.matches.is_empty());
    assert!(
        r.review.as_ref().unwrap().candidates[0]
            .reason
            .contains("countries differ")
    );
}

// ---- fuzzy ----------------------------------------------------------------------------------

#[test]
fn given_one_typo_and_a_single_candidate_when_matched_then_fuzzy_pair() {
    let ix = given(
        vec![
            crm("crm-1", "Cedar Vertex Studzos", None),
            crm("crm-2", "Cedar Studios", Some("cedarstudios.com")),
            crm("crm-3", "Vertex Studios", Some("vertexstudios.com")),
        ],
        vec![li(
            "li-1",
            "Cedar  Vertex Studios",
            Some("https://cedarvertexstudios.com:443/about"),
        )],
    );
    assert_eq!(pairs(&ix, "li-1"), vec![("crm-1".into(), Method::Fuzzy)]);
    let m = &result(&ix, "li-1").matches[0];
    assert!(m.score.value() < 0.9 && m.reason.contains("typo"), "{m:?}");
}

#[test]
fn given_names_that_differ_in_a_distinctive_word_then_no_pair() {
    let ix = given(
        vec![crm("crm-1", "Apex Bright Health", None)],
        vec![li("li-1", "Apex Bright Foods", None)],
    );
    assert!(result(&ix, "li-1").is_empty());
}

#[test]
fn given_a_near_name_with_a_conflicting_domain_then_no_pair() {
    let ix = given(
        vec![crm("crm-1", "Zöñíth Data", Some("zonithdata.com"))],
        vec![li("li-1", "zenith data", Some("http://zenithdata.com/"))],
    );
    assert!(result(&ix, "li-1").matches.is_empty());
}

#[test]
fn given_two_typo_candidates_of_different_companies_then_review() {
    let ix = given(
        vec![
            crm("crm-1", "Horizon Robttics", None),
            crm("crm-2", "Horizon Robotiks", None),
        ],
        vec![li("li-1", "Horizon Robotics Corporation", None)],
    );
    let r = result(&ix, "li-1");
    assert!(r.matches.is_empty());
    assert_eq!(r.review.as_ref().unwrap().candidates.len(), 2);
}

// ---- manual decisions -----------------------------------------------------------------------

#[test]
fn given_a_rejected_pair_when_matched_again_then_it_never_comes_back() {
    let mut ix = given(
        vec![crm("crm-1", "Acme", Some("acme.com"))],
        vec![li("li-1", "Acme", Some("acme.com"))],
    );
    let cs = ix.decide(decision("li-1", "crm-1", DecisionKind::Reject));
    assert_eq!(updated_ids(&cs), vec!["li-1"]);
    assert!(pairs(&ix, "li-1").is_empty());
    // A later change to the account does not resurrect it.
    ix.upsert_crm(crm("crm-1", "Acme Inc", Some("www.acme.com")));
    assert!(pairs(&ix, "li-1").is_empty());
}

#[test]
fn given_an_ambiguous_case_when_one_candidate_is_rejected_then_the_other_is_matched() {
    let mut ix = given(
        vec![
            crm("crm-1", "Beacon Industries", None),
            crm("crm-2", "Beacon Industries", None),
        ],
        vec![li("li-1", "BEACON INDUSTRIES", None)],
    );
    assert!(result(&ix, "li-1").review.is_some());
    ix.decide(decision("li-1", "crm-1", DecisionKind::Reject));
    assert_eq!(pairs(&ix, "li-1"), vec![("crm-2".into(), Method::Name)]);
}

#[test]
fn given_a_confirmed_or_linked_pair_then_manual_wins_and_closes_the_review() {
    let mut ix = given(
        vec![
            crm("crm-1", "Beacon Industries", None),
            crm("crm-2", "Beacon Industries", None),
        ],
        vec![
            li("li-1", "Beacon Industries", None),
            li("li-2", "Orbit Retail", None),
        ],
    );
    ix.decide(decision("li-1", "crm-2", DecisionKind::Confirm));
    let r = result(&ix, "li-1");
    assert_eq!(pairs(&ix, "li-1"), vec![("crm-2".into(), Method::Manual)]);
    assert!(r.review.is_none());
    assert_eq!(r.matches[0].score.value(), 1.0);

    ix.decide(decision("li-2", "crm-1", DecisionKind::Link));
    assert_eq!(pairs(&ix, "li-2"), vec![("crm-1".into(), Method::Manual)]);

    // Revoking the decision gives the algorithm back its say.
    ix.apply(vec![Change::Revoke {
        linkedin_id: LinkedInId::parse("li-2").unwrap(),
        crm_id: CrmId::parse("crm-1").unwrap(),
    }]);
    assert!(pairs(&ix, "li-2").is_empty());
    assert_eq!(ix.decisions().len(), 1);
}

#[test]
fn given_a_link_to_an_account_that_goes_away_then_the_pair_goes_and_comes_back_with_it() {
    let mut ix = given(
        vec![crm("crm-1", "Unrelated Name", None)],
        vec![li("li-1", "Acme", None)],
    );
    ix.decide(decision("li-1", "crm-1", DecisionKind::Link));
    let cs = ix.remove_crm(&CrmId::parse("crm-1").unwrap());
    assert_eq!(updated_ids(&cs), vec!["li-1"]);
    assert!(pairs(&ix, "li-1").is_empty());
    ix.upsert_crm(crm("crm-1", "Unrelated Name", None));
    assert_eq!(pairs(&ix, "li-1"), vec![("crm-1".into(), Method::Manual)]);
}

// ---- incremental ----------------------------------------------------------------------------

#[test]
fn given_a_unique_name_match_when_a_second_same_name_account_arrives_then_it_becomes_review() {
    let mut ix = given(
        vec![crm("crm-1", "Harbor Labs", None)],
        vec![
            li("li-1", "Harbor Labs", None),
            li("li-2", "Unrelated", None),
        ],
    );
    assert_eq!(pairs(&ix, "li-1").len(), 1);
    let cs = ix.upsert_crm(crm("crm-2", "Harbor Labs GmbH", None));
    assert_eq!(
        updated_ids(&cs),
        vec!["li-1"],
        "only the affected company changes"
    );
    assert!(cs.rematched <= 2);
    assert!(result(&ix, "li-1").review.is_some());
}

#[test]
fn given_a_trusted_site_when_unrelated_holders_arrive_then_domain_pairs_are_withdrawn() {
    let mut ix = given(
        vec![crm("crm-1", "Acme", Some("inbox.example"))],
        vec![li("li-1", "Acme", Some("inbox.example"))],
    );
    assert_eq!(pairs(&ix, "li-1"), vec![("crm-1".into(), Method::Domain)]);
    let cs = ix.apply(vec![
        Change::UpsertCrm(crm("crm-2", "Bolt Foods", Some("inbox.example"))),
        Change::UpsertCrm(crm("crm-3", "Quantum Bio", Some("inbox.example"))),
    ]);
    assert_eq!(updated_ids(&cs), vec!["li-1"]);
    // Still the same company, now by name, and the shared site is no longer evidence.
    assert_eq!(pairs(&ix, "li-1"), vec![("crm-1".into(), Method::Name)]);
}

#[test]
fn given_a_linkedin_company_that_changes_its_website_then_its_result_follows() {
    let mut ix = given(
        vec![
            crm("crm-1", "Alpha One", Some("alpha.com")),
            crm("crm-2", "Beta Two", Some("beta.com")),
        ],
        vec![li("li-1", "Alpha One", Some("alpha.com"))],
    );
    assert_eq!(pairs(&ix, "li-1")[0].0, "crm-1");
    ix.upsert_linkedin(li("li-1", "Beta Two Ltd", Some("https://beta.com")));
    assert_eq!(pairs(&ix, "li-1")[0].0, "crm-2");
    let cs = ix.remove_linkedin(&LinkedInId::parse("li-1").unwrap());
    assert_eq!(cs.removed.len(), 1);
    assert!(ix.result(&LinkedInId::parse("li-1").unwrap()).is_none());
}

/// Random updates, removals and decisions on the dev set, applied in batches, end in the same
/// results as a bulk build of the final state.
#[test]
fn given_churn_on_the_dev_set_when_applied_incrementally_then_equal_to_a_rebuild() {
    let dev = common::load_dev();
    let mut ix = MatchIndex::build(
        MatchConfig::default(),
        dev.crm.clone(),
        dev.linkedin.clone(),
        Vec::new(),
    );
    let mut crm_now: Vec<Option<CrmAccount>> = dev.crm.iter().cloned().map(Some).collect();
    let mut li_now: Vec<Option<LinkedInCompany>> = dev.linkedin.iter().cloned().map(Some).collect();
    let mut decisions: Vec<Decision> = Vec::new();
    let mut seed: u64 = 0x5EED;
    let mut rnd = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for _round in 0..20 {
        let mut batch = Vec::new();
        for _ in 0..50 {
            match rnd(6) {
                0 => {
                    // swap the domains of two accounts
                    let (a, b) = (rnd(crm_now.len()), rnd(crm_now.len()));
                    if let (Some(x), Some(y)) = (crm_now[a].clone(), crm_now[b].clone()) {
                        let mut x2 = x.clone();
                        x2.domain = y.domain.clone();
                        crm_now[a] = Some(x2.clone());
                        batch.push(Change::UpsertCrm(x2));
                    }
                }
                1 => {
                    let a = rnd(crm_now.len());
                    if let Some(x) = crm_now[a].take() {
                        batch.push(Change::RemoveCrm(x.id));
                    } else {
                        let x = dev.crm[a].clone();
                        crm_now[a] = Some(x.clone());
                        batch.push(Change::UpsertCrm(x));
                    }
                }
                2 => {
                    // rename an account after another one
                    let (a, b) = (rnd(crm_now.len()), rnd(dev.crm.len()));
                    if let Some(x) = crm_now[a].clone() {
                        let mut x2 = x.clone();
                        x2.name = dev.crm[b].name.clone();
                        crm_now[a] = Some(x2.clone());
                        batch.push(Change::UpsertCrm(x2));
                    }
                }
                3 => {
                    let a = rnd(li_now.len());
                    if let Some(x) = li_now[a].take() {
                        batch.push(Change::RemoveLinkedIn(x.id));
                    } else {
                        let x = dev.linkedin[a].clone();
                        li_now[a] = Some(x.clone());
                        batch.push(Change::UpsertLinkedIn(x));
                    }
                }
                4 => {
                    let (a, b) = (rnd(li_now.len()), rnd(dev.linkedin.len()));
                    if let Some(x) = li_now[a].clone() {
                        let mut x2 = x.clone();
                        x2.website = dev.linkedin[b].website.clone();
                        li_now[a] = Some(x2.clone());
                        batch.push(Change::UpsertLinkedIn(x2));
                    }
                }
                _ => {
                    let (a, b) = (rnd(dev.linkedin.len()), rnd(dev.crm.len()));
                    let kind = [
                        DecisionKind::Confirm,
                        DecisionKind::Reject,
                        DecisionKind::Link,
                    ][rnd(3)];
                    let d = Decision {
                        linkedin_id: dev.linkedin[a].id.clone(),
                        crm_id: dev.crm[b].id.clone(),
                        kind,
                    };
                    decisions.retain(|e| !(e.linkedin_id == d.linkedin_id && e.crm_id == d.crm_id));
                    decisions.push(d.clone());
                    batch.push(Change::Decide(d));
                }
            }
        }
        ix.apply(batch);
    }
    let rebuilt = MatchIndex::build(
        MatchConfig::default(),
        crm_now.into_iter().flatten().collect(),
        li_now.iter().flatten().cloned().collect(),
        decisions,
    );
    for l in li_now.iter().flatten() {
        assert_eq!(
            ix.result(&l.id),
            rebuilt.result(&l.id),
            "results differ for {}",
            l.id
        );
    }
}

#[test]
fn given_the_same_input_in_another_order_then_the_same_results() {
    let dev = common::load_dev();
    let a = MatchIndex::build(
        MatchConfig::default(),
        dev.crm.clone(),
        dev.linkedin.clone(),
        Vec::new(),
    );
    let mut crm = dev.crm.clone();
    crm.reverse();
    let mut linkedin = dev.linkedin.clone();
    linkedin.reverse();
    let b = MatchIndex::build(MatchConfig::default(), crm, linkedin, Vec::new());
    for l in &dev.linkedin {
        assert_eq!(a.result(&l.id), b.result(&l.id));
    }
}

// ---- bad input ------------------------------------------------------------------------------

#[test]
fn given_hostile_input_then_nothing_panics() {
    let weird = [
        "",
        " ",
        "()",
        "((((",
        ")))",
        "&&&",
        "....",
        "The",
        "the the the",
        "\u{0}\u{1}\u{7f}",
        "🦀🦀🦀 Crab Corp",
        "שלום בע\"מ",
        "株式会社テスト",
        "Ǆǅǆ ﬁﬂ",
        "a",
        "http://",
        "https://[::1]:99999/",
        "xn--",
        "xn--zz.com",
        "http://user@:80",
        "@@@",
        ":::::",
        "www.",
        ".",
        "..",
        "-.com",
        "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z",
    ];
    let long = "x".repeat(10_000);
    let mut crm_rows = Vec::new();
    let mut li_rows = Vec::new();
    for (i, w) in weird.iter().chain([&long.as_str()]).enumerate() {
        crm_rows.push(CrmAccount {
            id: CrmId::parse(&format!("crm-{i}")).unwrap(),
            name: w.to_string(),
            domain: Some(w.to_string()),
            website: Some(w.to_string()),
            country: Some(w.to_string()),
        });
        li_rows.push(LinkedInCompany {
            id: LinkedInId::parse(&format!("li-{i}")).unwrap(),
            name: w.to_string(),
            vanity_name: Some(w.to_string()),
            website: Some(w.to_string()),
            country: Some(w.to_string()),
        });
    }
    let mut ix = MatchIndex::build(
        MatchConfig::default(),
        crm_rows.clone(),
        li_rows.clone(),
        Vec::new(),
    );
    for r in crm_rows {
        ix.upsert_crm(r);
    }
    for r in li_rows {
        ix.upsert_linkedin(r);
    }
    assert_eq!(ix.results().len(), weird.len() + 1);
}

// ---- International names (issue 18) ---------------------------------------------------------

#[test]
fn a_name_in_cyrillic_matches_its_latin_account_by_its_reading_with_a_weaker_score() {
    let ix = given(
        vec![crm_in("crm-1", "Lindqvist Software", None, "US")],
        vec![li_in("li-1", "ООО «Линдквист Софтваре»", None, "RU")],
    );
    let r = result(&ix, "li-1");
    assert_eq!(r.matches.len(), 1, "{r:?}");
    let m = &r.matches[0];
    assert_eq!(m.method, Method::Name);
    assert!(m.score.value() < 0.9, "weaker than the same letters: {m:?}");
    assert!(
        m.reason.contains("ООО «Линдквист Софтваре»") && m.reason.contains("lindkvistsoftvare"),
        "shows the original and the reading: {}",
        m.reason
    );
}

#[test]
fn two_latin_names_that_only_read_alike_are_different_names() {
    let ix = given(
        // "xeno cedar" and "kseno kedar" read alike ("ksenokedar"), and are three letters apart.
        vec![crm("crm-1", "Kseno Kedar Works", None)],
        vec![li("li-1", "Xeno Cedar Works", None)],
    );
    assert!(pairs(&ix, "li-1").is_empty());
}

#[test]
fn a_look_alike_across_scripts_goes_to_review_with_both_spellings() {
    // One letter apart, one of them in full-width forms: another company unless other evidence
    // agrees.
    let ix = given(
        vec![crm_in(
            "crm-1",
            "Ｉｎｄｉｇｏ　Ｄｅｌｔａ　Ｂｉｏ",
            None,
            "JP",
        )],
        vec![li_in("li-1", "Irdigo Delta Bio", None, "DE")],
    );
    let r = result(&ix, "li-1");
    assert!(r.matches.is_empty(), "{r:?}");
    let review = r.review.expect("a person decides");
    let c = &review.candidates[0];
    assert!(
        c.reason.contains("Ｉｎｄｉｇｏ") && c.reason.contains("indigo delta bio"),
        "{}",
        c.reason
    );
    // One letter apart in Cyrillic: nothing at all (readings must be equal).
    let ix = given(
        vec![crm("crm-1", "Nimbus Cloud", None)],
        vec![li_in("li-1", "Нрмбус Клоуд", None, "RU")],
    );
    assert!(pairs(&ix, "li-1").is_empty());
}

#[test]
fn a_full_width_name_typed_in_another_office_matches_whatever_its_country() {
    let ix = given(
        vec![crm_in(
            "crm-1",
            "ＭＩＬＬＥＲ　ＳＴＵＤＩＯＳ　ＩＮＣ",
            None,
            "JP",
        )],
        vec![li_in("li-1", "Miller Studios Co.", None, "US")],
    );
    assert_eq!(
        pairs(&ix, "li-1"),
        vec![("crm-1".to_string(), Method::Name)]
    );
    // The same letters in the same form keep the country rule.
    let ix = given(
        vec![crm_in("crm-1", "Miller Studios", None, "JP")],
        vec![li_in("li-1", "Miller Studios Co.", None, "US")],
    );
    assert!(pairs(&ix, "li-1").is_empty());
}
