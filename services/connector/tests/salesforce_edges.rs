//! Salesforce's edges (issue 12, item 5): its deletion index lags, so a deletion checkpoint set
//! to the request's `end` skips deletions indexed late; and its `SystemModstamp` has whole
//! seconds, so a boundary key made of id and stamp cannot tell two edits of one second apart.

mod connector_support;

use connector_support::{Harness, failed};
use rp_platform::contracts::api::v1 as api;
use serde_json::{Value, json};

/// The Salesforce ids of the companies a run reported deleted.
async fn deleted_companies(h: &Harness, run: &str) -> Vec<String> {
    h.batches(run)
        .await
        .iter()
        .flat_map(|b| &b.companies)
        .filter(|c| c.deleted)
        .map(|c| c.id.clone())
        .collect()
}

/// The versions (website) of one company a run took.
async fn versions_of(h: &Harness, run: &str, id: &str) -> Vec<String> {
    h.batches(run)
        .await
        .iter()
        .flat_map(|b| &b.companies)
        .filter(|c| c.id == id && !c.deleted)
        .map(|c| c.website.clone())
        .collect()
}

#[tokio::test]
async fn a_deletion_indexed_late_is_reported_by_a_later_sync() {
    let h = Harness::start().await;
    let id = h.connect(api::Provider::Salesforce).await;
    let (first, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    assert!(deleted_companies(&h, &first).await.is_empty());

    // Salesforce's deletion index runs ten minutes behind (more than the signpost margin).
    h.admin(
        "PUT",
        "/providers/salesforce/deleted-index-lag",
        json!({"seconds": 600}),
    )
    .await;
    let account = h
        .admin("DELETE", "/crm/companies/7000000004", Value::Null)
        .await["salesforce_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Five minutes later a sync runs: the deletion is not in the index yet.
    h.admin("POST", "/clock/advance", json!({"seconds": 300}))
        .await;
    let (second, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    assert!(
        deleted_companies(&h, &second).await.is_empty(),
        "the index does not have it yet"
    );

    // Ten minutes later the index has caught up with it: the next sync reports it.
    h.admin("POST", "/clock/advance", json!({"seconds": 600}))
        .await;
    let (third, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    assert_eq!(
        deleted_companies(&h, &third).await,
        vec![account.clone()],
        "a deletion the index listed late is still reported"
    );

    // ...once.
    h.admin("POST", "/clock/advance", json!({"seconds": 60}))
        .await;
    let (fourth, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    assert!(deleted_companies(&h, &fourth).await.is_empty());
    h.shutdown().await;
}

#[tokio::test]
async fn a_second_edit_in_the_same_second_across_a_sync_arrives() {
    let h = Harness::start().await;
    let id = h.connect(api::Provider::Salesforce).await;
    let (first, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    let account = h.batches(&first).await[0].companies[4].id.clone();

    // An edit, read by the next sync; right after its Account query the user saves again
    // within the same second: both versions show the same SystemModstamp.
    h.admin(
        "PATCH",
        &format!("/crm/companies/{account}"),
        json!({"website": "https://first.example"}),
    )
    .await;
    h.admin(
        "PUT",
        "/providers/salesforce/edit-after-query",
        json!({"id": account, "website": "https://second.example"}),
    )
    .await;
    let (second, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    assert_eq!(
        versions_of(&h, &second, &account).await,
        vec!["https://first.example"]
    );
    let sb = h
        .admin("GET", &format!("/crm/companies/{account}"), Value::Null)
        .await;
    assert_eq!(sb["website"], "https://second.example", "{sb}");

    // The next sync takes the second version: it is a new version, not the boundary record
    // the last sync took.
    let (third, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    assert_eq!(
        versions_of(&h, &third, &account).await,
        vec!["https://second.example"],
        "the second edit of the second is not lost"
    );

    // And the one after that does not take it again.
    let (fourth, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    assert!(versions_of(&h, &fourth, &account).await.is_empty());
    h.shutdown().await;
}
