//! Issue 12.7: one record larger than the bus can carry (a 1.2 MB company name) used to be
//! appended whole and refused by NATS for ever, wedging the relay for everyone. It is left out
//! and reported as bad data, naming it; every other record syncs, and every event of the run
//! reaches the bus.

mod connector_support;

use connector_support::{Harness, counts, failed};
use rp_platform::contracts::api::v1 as api;
use rp_platform::contracts::events::v1::FailureKind;
use rp_platform::testing::eventually;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_too_large_to_travel_is_left_out_reported_and_the_rest_syncs() {
    let h = Harness::start().await;
    let id = h.connect(api::Provider::Hubspot).await;
    let huge = h
        .admin(
            "POST",
            "/crm/companies",
            json!({"name": "x".repeat(1_200_000), "website": "https://huge.example"}),
        )
        .await;
    let huge_id = huge["hubspot_id"].as_str().unwrap().to_string();
    let truth = h.truth_counts().await;

    let (run, events) = h.sync(id).await;
    let f = failed(&events).expect("the run reports the record it left out");
    assert_eq!(f.kind, FailureKind::BadPayload as i32, "{f:?}");
    assert!(
        f.message.contains(&huge_id) && f.message.contains("left out"),
        "{}",
        f.message
    );
    assert!(f.next_attempt_at.is_some() || f.message.contains("next sync"));
    // Everything else arrived.
    let got = counts(&h.batches(&run).await);
    assert_eq!(
        got["companies"] as u64,
        truth["companies"].as_u64().unwrap() - 1,
        "every other company"
    );
    assert_eq!(got["contacts"] as u64, truth["contacts"].as_u64().unwrap());
    assert_eq!(got["deals"] as u64, truth["deals"].as_u64().unwrap());
    // The relay is not wedged: the run's last event reaches the bus.
    let last = events.last().expect("events").event_id().to_string();
    eventually(
        Duration::from_secs(30),
        "the run's events on the bus",
        || async {
            h.env
                .stream_messages()
                .await
                .iter()
                .any(|m| {
                    m.headers
                        .get(rp_platform::bus::headers::EVENT_ID)
                        .is_some_and(|v| v.as_str() == last)
                })
                .then_some(())
        },
    )
    .await;
    h.shutdown().await;
}
