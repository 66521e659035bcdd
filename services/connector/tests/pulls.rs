//! Pulls against the sandbox, through the whole service: SyncRequested in, records, checkpoints
//! and step events out; incremental syncs read only what changed and count no boundary row
//! twice; a reconnect resumes from the checkpoints without re-reading a page.

mod connector_support;

use std::collections::HashSet;

use connector_support::{Harness, counts, failed, last, run_id};
use rp_platform::contracts::api::v1 as api;
use rp_platform::contracts::events::v1::{self as ev, envelope::Event};
use sandbox::{Provider as SbProvider, Sizes};
use serde_json::{Value, json};

fn event_types(events: &[rp_platform::eventlog::RecordedEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.event_type()).collect()
}

/// A read of HubSpot's archived list (deletions), which every incremental sync makes.
fn archived_list(r: &Value) -> bool {
    r["query"]
        .as_str()
        .unwrap_or_default()
        .contains("archived=true")
}

#[tokio::test]
async fn a_first_hubspot_sync_pulls_every_record_once_with_checkpoints_and_one_causal_chain() {
    let h = Harness::start().await;
    let id = h.connect(api::Provider::Hubspot).await;
    let (run, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    assert_eq!(
        event_types(&events),
        vec![
            "SyncRequested",
            "SyncStarted",
            "SyncStepStarted",
            "PullCompleted"
        ]
    );
    let batches = h.batches(&run).await;
    let truth = h.truth_counts().await;
    let got = counts(&batches);
    assert_eq!(
        got["companies"] as u64,
        truth["companies"].as_u64().unwrap()
    );
    assert_eq!(got["contacts"] as u64, truth["contacts"].as_u64().unwrap());
    assert_eq!(got["deals"] as u64, truth["deals"].as_u64().unwrap());
    assert_eq!(got["pipelines"], 2);
    let ids: HashSet<&str> = batches
        .iter()
        .flat_map(|b| b.contacts.iter().map(|c| c.id.as_str()))
        .collect();
    assert_eq!(ids.len(), Sizes::TINY.contacts, "every contact once");
    // Deals carry their companies, as downstream attribution needs.
    assert!(
        batches
            .iter()
            .flat_map(|b| &b.deals)
            .any(|d| !d.company_ids.is_empty())
    );
    // PullCompleted counts what was appended.
    let Some(Event::PullCompleted(done)) = &last(&events).envelope.event else {
        panic!("the run ends with PullCompleted");
    };
    let total: u64 = done.counts.iter().map(|c| c.records).sum();
    assert_eq!(total as usize, got.values().sum::<usize>());
    // A checkpoint per object type.
    for object in ["crm_company", "crm_contact", "crm_deal"] {
        let cp = h.checkpoint(id, object).await.expect("checkpoint");
        assert_eq!(cp.sync_run_id, run);
        assert!(cp.cursor.starts_with("2025-06-"), "{}", cp.cursor);
    }
    // Every event of the run: same correlation, caused by the SyncRequested, same trace.
    let requested = &events[0];
    let trace = rp_platform::telemetry::trace_id_of_traceparent(&requested.meta().traceparent)
        .expect("the request carries a trace")
        .to_string();
    let records = h.stream(&run_id(&run).records_stream()).await;
    let cps = h.stream(&id.checkpoint_stream("crm_deal")).await;
    for e in events[1..].iter().chain(&records).chain(&cps) {
        let m = e.meta();
        assert_eq!(m.correlation_id, run, "{}", e.event_type());
        assert_eq!(m.causation_id, requested.event_id().to_string());
        assert_eq!(m.integration_id, id.to_string());
        assert_eq!(m.workspace_id, h.ws());
        assert_eq!(
            rp_platform::telemetry::trace_id_of_traceparent(&m.traceparent),
            Some(trace.as_str()),
            "{} is in the sync's trace",
            e.event_type()
        );
    }
    // Batches stay far below the NATS max payload.
    for e in &records {
        assert!(prost::Message::encoded_len(&e.envelope) < 300 * 1024);
    }
    h.shutdown().await;
}

#[tokio::test]
async fn an_incremental_hubspot_sync_reads_only_changes_and_counts_no_boundary_row_twice() {
    let h = Harness::start().await;
    let id = h.connect(api::Provider::Hubspot).await;
    let (first, _) = h.sync(id).await;
    let signpost = h.checkpoint(id, "crm_company").await.unwrap().cursor;

    // Changes in the CRM: two companies renamed, one contact retitled, one deal created.
    h.admin(
        "PATCH",
        "/crm/companies/7000000003",
        json!({"name": "Renamed One"}),
    )
    .await;
    h.admin(
        "PATCH",
        "/crm/companies/7000000005",
        json!({"name": "Renamed Two"}),
    )
    .await;
    h.admin("PATCH", "/crm/contacts/100003", json!({"title": "CRO"}))
        .await;
    let deal = h
        .admin(
            "POST",
            "/crm/deals",
            json!({"name": "New deal", "amount": "1200.50", "currency": "USD", "company_id": "7000000002"}),
        )
        .await;
    h.clear_requests().await;

    let (second, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    let batches = h.batches(&second).await;
    let got = counts(&batches);
    assert_eq!(got.get("companies"), Some(&2));
    assert_eq!(got.get("contacts"), Some(&1));
    assert_eq!(got.get("deals"), Some(&1));
    let deals: Vec<&ev::CrmDeal> = batches.iter().flat_map(|b| &b.deals).collect();
    assert_eq!(deals[0].id, deal["hubspot_id"].as_str().unwrap());
    assert_eq!(deals[0].company_ids, vec!["7000000002".to_string()]);
    // Only searches from the previous signpost: no listing, nothing older.
    let log = h.requests(SbProvider::Hubspot).await;
    assert!(
        log.iter().all(|r| !(r["method"] == "GET"
            && !archived_list(r)
            && r["path"]
                .as_str()
                .unwrap_or_default()
                .starts_with("/crm/v3/objects/"))),
        "no list pages were read again (only the archived lists, for deletions): {log:?}"
    );
    let since_ms = chrono::DateTime::parse_from_rfc3339(&signpost)
        .unwrap()
        .timestamp_millis()
        .to_string();
    let searches: Vec<&Value> = log
        .iter()
        .filter(|r| r["path"].as_str().unwrap_or_default().ends_with("/search"))
        .collect();
    assert_eq!(searches.len(), 3, "{searches:?}");
    for s in &searches {
        assert!(
            s["body"].as_str().unwrap_or_default().contains(&since_ms),
            "search from the signpost {signpost}: {s}"
        );
    }

    // Nothing changed since: the changed rows come back from the >= search, and count 0.
    let (third, _) = h.sync(id).await;
    let got = counts(&h.batches(&third).await);
    assert_eq!(
        got.get("companies").copied().unwrap_or(0)
            + got.get("contacts").copied().unwrap_or(0)
            + got.get("deals").copied().unwrap_or(0),
        0,
        "boundary rows are not counted twice: {got:?}"
    );
    let log = h.requests(SbProvider::Hubspot).await;
    let searched_again = log
        .iter()
        .filter(|r| r["path"].as_str().unwrap_or_default().ends_with("/search"))
        .count();
    assert!(
        searched_again >= 6,
        "the third sync did search: {searched_again}"
    );
    assert_ne!(first, second);
    h.shutdown().await;
}

#[tokio::test]
async fn salesforce_full_then_incremental_sync() {
    let h = Harness::start().await;
    let id = h.connect(api::Provider::Salesforce).await;
    let (run, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    let got = counts(&h.batches(&run).await);
    let truth = h.truth_counts().await;
    assert_eq!(
        got["companies"] as u64,
        truth["companies"].as_u64().unwrap()
    );
    assert_eq!(got["contacts"] as u64, truth["contacts"].as_u64().unwrap());
    assert_eq!(got["deals"] as u64, truth["deals"].as_u64().unwrap());
    assert_eq!(got["pipelines"], 1);
    let batches = h.batches(&run).await;
    let pipeline = &batches.iter().flat_map(|b| &b.pipelines).next().unwrap();
    assert!(
        pipeline
            .stages
            .iter()
            .any(|s| s.kind == ev::StageKind::Won as i32)
    );
    assert!(
        batches
            .iter()
            .flat_map(|b| &b.deals)
            .all(|d| d.pipeline_id == "opportunities")
    );
    for object in ["crm_company", "crm_contact", "crm_deal"] {
        assert!(h.checkpoint(id, object).await.is_some(), "{object}");
    }

    let account = batches
        .iter()
        .flat_map(|b| &b.companies)
        .nth(4)
        .unwrap()
        .id
        .clone();
    h.admin(
        "PATCH",
        &format!("/crm/companies/{account}"),
        json!({"website": "https://new.example"}),
    )
    .await;
    h.clear_requests().await;
    let (second, _) = h.sync(id).await;
    let batches = h.batches(&second).await;
    let got = counts(&batches);
    assert_eq!(got.get("companies"), Some(&1), "{got:?}");
    assert_eq!(got.get("contacts"), None);
    assert_eq!(got.get("deals"), None);
    assert_eq!(
        batches
            .iter()
            .flat_map(|b| &b.companies)
            .next()
            .unwrap()
            .website,
        "https://new.example"
    );
    let log = h.requests(SbProvider::Salesforce).await;
    for r in log
        .iter()
        .filter(|r| r["path"].as_str().unwrap_or_default().ends_with("/query"))
    {
        let q = r["query"].as_str().unwrap_or_default();
        if !q.contains("OpportunityStage") {
            assert!(
                q.contains("SystemModstamp"),
                "filtered by the signpost: {q}"
            );
        }
    }
    h.shutdown().await;
}

#[tokio::test]
async fn a_linkedin_sync_pulls_engagement_then_resolves_the_companies_behind_it() {
    let h = Harness::start().await;
    let id = h.connect(api::Provider::Linkedin).await;
    let (run, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    let steps: Vec<i32> = events
        .iter()
        .filter_map(|e| match &e.envelope.event {
            Some(Event::SyncStepStarted(s)) => Some(s.step),
            _ => None,
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            ev::SyncStep::LinkedinPull as i32,
            ev::SyncStep::CompanyResolution as i32
        ]
    );
    assert_eq!(
        event_types(&events),
        vec![
            "SyncRequested",
            "SyncStarted",
            "SyncStepStarted",
            "PullCompleted",
            "SyncStepStarted",
            "CompaniesResolved"
        ]
    );
    let batches = h.batches(&run).await;
    let truth = h.truth_counts().await;
    let got = counts(&batches);
    assert_eq!(
        got["engagement"] as u64,
        truth["engagement_rows"].as_u64().unwrap()
    );
    let engaged: HashSet<&str> = batches
        .iter()
        .flat_map(|b| b.engagement.iter().map(|r| r.organization_id.as_str()))
        .collect();
    let resolved: HashSet<&str> = batches
        .iter()
        .flat_map(|b| b.organizations.iter().map(|o| o.id.as_str()))
        .collect();
    assert_eq!(
        engaged.len() as u64,
        truth["engaged_orgs"].as_u64().unwrap()
    );
    assert_eq!(resolved, engaged, "every engaged organization is resolved");
    assert!(
        batches
            .iter()
            .flat_map(|b| &b.engagement)
            .all(|r| !r.ad_account_id.is_empty())
    );
    let Some(Event::CompaniesResolved(c)) = &last(&events).envelope.event else {
        panic!("ends with CompaniesResolved");
    };
    assert_eq!(c.organizations as usize, resolved.len());
    // The engagement cursor is the last complete day (the sandbox's today is 2025-06-30).
    let cp = h.checkpoint(id, "linkedin_engagement").await.unwrap();
    assert_eq!(cp.cursor, "2025-06-29");

    // Nothing new the same day: no analytics call at all.
    h.clear_requests().await;
    let (second, _) = h.sync(id).await;
    assert_eq!(counts(&h.batches(&second).await).get("engagement"), None);
    let log = h.requests(SbProvider::Linkedin).await;
    assert!(
        log.iter().all(|r| r["path"] != "/rest/adAnalytics"),
        "{log:?}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn the_plan_bounds_how_far_back_engagement_is_pulled() {
    let h = Harness::with(connector_support::Options {
        plan: "starter",
        ..Default::default()
    })
    .await;
    let id = h.connect(api::Provider::Linkedin).await;
    let (run, _) = h.sync(id).await;
    let earliest = h
        .batches(&run)
        .await
        .iter()
        .flat_map(|b| b.engagement.iter().map(|r| r.date.clone()))
        .min()
        .unwrap();
    // starter's longest window is 90 days back from the last complete day, 2025-06-29.
    assert!(earliest.as_str() >= "2025-04-01", "{earliest}");
    h.shutdown().await;
}

#[tokio::test]
async fn after_disconnect_and_reconnect_the_next_sync_resumes_without_rereading_a_page() {
    let h = Harness::start().await;
    let id = h.connect(api::Provider::Hubspot).await;
    let (_, first) = h.sync(id).await;
    assert!(failed(&first).is_none());
    let mut grpc = h.grpc().await;
    grpc.disconnect(h.req(api::DisconnectRequest {
        workspace_id: h.ws(),
        integration_id: id.to_string(),
    }))
    .await
    .expect("disconnect");
    h.wait_event(&id.connection_stream(), "ConnectionDisconnected")
        .await;

    // A sync while disconnected does not touch the provider.
    h.clear_requests().await;
    let (_, while_off) = h.sync(id).await;
    let f = failed(&while_off).expect("a sync of a disconnected connection fails");
    assert_eq!(f.kind, ev::FailureKind::Authorization as i32);
    assert!(h.requests(SbProvider::Hubspot).await.is_empty());

    // Reconnect on the same integration.
    let again = grpc
        .reconnect(h.req(api::ReconnectRequest {
            workspace_id: h.ws(),
            integration_id: id.to_string(),
        }))
        .await
        .expect("reconnect")
        .into_inner();
    assert_eq!(again.integration_id, id.to_string());
    let cb = h.follow_authorize(&again.authorize_url).await;
    assert!(h.callback_and_complete(&cb).await.reconnected);
    h.wait_event(&id.connection_stream(), "ConnectionReconnected")
        .await;

    h.clear_requests().await;
    let (run, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    let log = h.requests(SbProvider::Hubspot).await;
    let pages: Vec<&Value> = log
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap_or_default()
                .starts_with("/crm/v3/objects/")
                && !archived_list(r)
        })
        .collect();
    assert!(
        pages.iter().all(|r| r["method"] == "POST"),
        "no list page already synced is read again: {pages:?}"
    );
    assert_eq!(
        counts(&h.batches(&run).await).values().sum::<usize>(),
        2,
        "only the two pipelines, which are re-read whole every time"
    );
    h.shutdown().await;
}

/// Issue 12.1: a record edited in the CRM while an incremental search is being paged moves to the
/// end of the modified order and shifts every later record back one place; paging by offset then
/// never returned the first record of the next page (and no later sync would: it was modified
/// before the new signpost). Every record changed since the signpost arrives.
#[tokio::test]
async fn records_edited_while_a_search_is_paged_are_not_skipped() {
    let h = Harness::start().await;
    let id = h.connect(api::Provider::Hubspot).await;
    let (first, _) = h.sync(id).await;
    let contacts: Vec<String> = h
        .batches(&first)
        .await
        .iter()
        .flat_map(|b| b.contacts.iter().map(|c| c.id.clone()))
        .collect();
    assert!(contacts.len() > 100, "more contacts than one search page");
    // Every contact changes, so the next sync's search runs over two pages of 100...
    for (i, c) in contacts.iter().enumerate() {
        h.admin(
            "PATCH",
            &format!("/crm/contacts/{c}"),
            json!({"title": format!("T{i}")}),
        )
        .await;
    }
    // ...and three of the first page's are edited again right after it was read.
    h.admin(
        "PUT",
        "/providers/hubspot/edit-during-search",
        json!({"object": "contacts", "after_page": 1, "count": 3}),
    )
    .await;
    let (second, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    let got: HashSet<String> = h
        .batches(&second)
        .await
        .iter()
        .flat_map(|b| b.contacts.iter().map(|c| c.id.clone()))
        .collect();
    let missing: Vec<&String> = contacts.iter().filter(|c| !got.contains(*c)).collect();
    assert!(
        missing.is_empty(),
        "changed contacts never pulled: {missing:?}"
    );
    h.shutdown().await;
}
