//! Deletions: a record deleted (HubSpot: archived) in the CRM is reported once, as a tombstone
//! in the run's RecordsPulled (`deleted: true`), by the next sync, incremental or after a
//! reconnect; the deletion checkpoint keeps the sync after that from reporting it again.

mod connector_support;

use connector_support::{Harness, failed};
use rp_platform::contracts::api::v1 as api;
use sandbox::Provider as SbProvider;
use serde_json::Value;

/// The (object, id) pairs a run reported deleted, and every deleted record has only its id and
/// deletion time.
async fn deleted_in(h: &Harness, run: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for b in h.batches(run).await {
        for c in b.companies.iter().filter(|c| c.deleted) {
            assert!(c.name.is_empty() && c.modified_at.is_some(), "{c:?}");
            out.push(("company", c.id.clone()));
        }
        for d in b.deals.iter().filter(|d| d.deleted) {
            assert!(d.amount.is_empty() && d.modified_at.is_some(), "{d:?}");
            out.push(("deal", d.id.clone()));
        }
        for c in b.contacts.iter().filter(|c| c.deleted) {
            out.push(("contact", c.id.clone()));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_record_archived_in_hubspot_is_reported_once_and_not_again() {
    let h = Harness::start().await;
    let id = h.connect(api::Provider::Hubspot).await;
    let (first, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    assert!(deleted_in(&h, &first).await.is_empty());

    // Archived in HubSpot: one company, one deal.
    h.admin("DELETE", "/crm/companies/7000000004", Value::Null)
        .await;
    h.admin("DELETE", "/crm/deals/9000000002", Value::Null)
        .await;

    let (second, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    assert_eq!(
        deleted_in(&h, &second).await,
        vec![
            ("company", "7000000004".to_string()),
            ("deal", "9000000002".to_string())
        ]
    );
    // Read from HubSpot's archived list, and checkpointed.
    let log = h.requests(SbProvider::Hubspot).await;
    assert!(
        log.iter().any(|r| r["path"] == "/crm/v3/objects/companies"
            && r["query"]
                .as_str()
                .unwrap_or_default()
                .contains("archived=true")),
        "{log:?}"
    );
    let cp = h
        .checkpoint(id, "crm_company_deletions")
        .await
        .expect("a deletion checkpoint");
    assert_eq!(cp.sync_run_id, second);
    assert!(
        cp.boundary_ids.iter().any(|b| b.starts_with("7000000004@")),
        "the deletion is at the signpost's boundary: {:?}",
        cp.boundary_ids
    );

    // The next sync reports nothing again.
    let (third, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    assert!(deleted_in(&h, &third).await.is_empty());

    // A deletion while disconnected is reported by the first sync after the reconnect.
    let mut grpc = h.grpc().await;
    grpc.disconnect(h.req(api::DisconnectRequest {
        workspace_id: h.ws(),
        integration_id: id.to_string(),
    }))
    .await
    .expect("disconnect");
    h.wait_event(&id.connection_stream(), "ConnectionDisconnected")
        .await;
    h.admin("DELETE", "/crm/contacts/100005", Value::Null).await;
    let again = grpc
        .reconnect(h.req(api::ReconnectRequest {
            workspace_id: h.ws(),
            integration_id: id.to_string(),
        }))
        .await
        .expect("reconnect")
        .into_inner();
    let cb = h.follow_authorize(&again.authorize_url).await;
    assert!(h.callback_and_complete(&cb).await.reconnected);
    h.wait_event(&id.connection_stream(), "ConnectionReconnected")
        .await;
    let (fourth, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    assert_eq!(
        deleted_in(&h, &fourth).await,
        vec![("contact", "100005".to_string())]
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_record_deleted_in_salesforce_is_reported_once_and_not_again() {
    let h = Harness::start().await;
    let id = h.connect(api::Provider::Salesforce).await;
    let (first, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    assert!(deleted_in(&h, &first).await.is_empty());

    let account = h
        .admin("DELETE", "/crm/companies/7000000004", Value::Null)
        .await["salesforce_id"]
        .as_str()
        .unwrap()
        .to_string();
    let opportunity = h
        .admin("DELETE", "/crm/deals/9000000002", Value::Null)
        .await["salesforce_id"]
        .as_str()
        .unwrap()
        .to_string();

    let (second, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    assert_eq!(
        deleted_in(&h, &second).await,
        vec![("company", account), ("deal", opportunity)]
    );
    let log = h.requests(SbProvider::Salesforce).await;
    assert!(
        log.iter().any(|r| r["path"]
            .as_str()
            .unwrap_or_default()
            .ends_with("/sobjects/Account/deleted/")),
        "{log:?}"
    );

    let (third, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    assert!(deleted_in(&h, &third).await.is_empty());
    h.shutdown().await;
}
