//! The relay against real PostgreSQL and NATS JetStream: every event reaches the stream once,
//! in order, with its metadata, across crashes and replays.

use rp_platform::bus::headers;
use rp_platform::contracts::events::v1::{SyncRequested, envelope::Event};
use rp_platform::eventlog::{ExpectedVersion, NewEvent, ReadFilter};
use rp_platform::relay::{self, Relay};
use rp_platform::testing::{TestEnv, eventually};
use std::collections::HashSet;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

async fn append_many(env: &TestEnv, n: usize, workspaces: &[&str]) {
    let mut batch = Vec::new();
    for i in 0..n {
        let ws = workspaces[i % workspaces.len()];
        batch.push(
            NewEvent::new(
                ws,
                Event::SyncRequested(SyncRequested {
                    sync_run_id: format!("run-{i}"),
                    ..Default::default()
                }),
            )
            .integration("int-1"),
        );
        if batch.len() == 50 {
            env.store
                .append("bulk", ExpectedVersion::Any, std::mem::take(&mut batch))
                .await
                .unwrap();
        }
    }
    if !batch.is_empty() {
        env.store
            .append("bulk", ExpectedVersion::Any, batch)
            .await
            .unwrap();
    }
}

fn header(m: &async_nats::jetstream::message::StreamMessage, name: &str) -> String {
    m.headers
        .get(name)
        .map(|v| v.as_str().to_string())
        .unwrap_or_default()
}

async fn stream_len(env: &TestEnv) -> u64 {
    let mut s = env.js.get_stream(&env.bus.stream).await.unwrap();
    s.info().await.unwrap().state.messages
}

#[tokio::test]
async fn publishes_every_event_in_order_with_its_metadata() {
    let env = TestEnv::new().await;
    append_many(&env, 120, &["ws-a", "ws-b"]).await;
    let relay = Relay::new(env.store.clone(), env.js.clone(), env.bus.clone()).with_page(25);
    assert_eq!(relay.publish_pending().await.unwrap(), 120);
    assert_eq!(relay.checkpoint().await.unwrap(), 120);

    let msgs = env.stream_messages().await;
    assert_eq!(msgs.len(), 120);
    let positions: Vec<i64> = msgs
        .iter()
        .map(|m| header(m, headers::POSITION).parse().unwrap())
        .collect();
    assert_eq!(positions, (1..=120).collect::<Vec<_>>());
    let logged = env
        .store
        .read_all(0, 1000, &ReadFilter::default())
        .await
        .unwrap();
    for (m, e) in msgs.iter().zip(&logged) {
        let id = e.event_id().to_string();
        assert_eq!(header(m, headers::MSG_ID), id);
        assert_eq!(header(m, headers::EVENT_ID), id);
        assert_eq!(header(m, headers::EVENT_TYPE), "SyncRequested");
        assert_eq!(header(m, headers::WORKSPACE_ID), e.workspace_id());
        assert_eq!(header(m, headers::INTEGRATION_ID), "int-1");
        assert_eq!(header(m, headers::CORRELATION_ID), e.meta().correlation_id);
        assert_eq!(
            m.subject.as_str(),
            env.bus.subject(e.workspace_id(), "SyncRequested")
        );
    }
    // Nothing new: a second pass publishes nothing.
    assert_eq!(relay.publish_pending().await.unwrap(), 0);
    env.cleanup().await;
}

#[tokio::test]
async fn a_relay_killed_mid_stream_resumes_and_nothing_is_lost_or_doubled() {
    let env = TestEnv::new().await;
    append_many(&env, 2000, &["ws-a", "ws-b", "ws-c"]).await;

    // Start a relay and kill it (abort the task: no clean shutdown) part-way through.
    let relay = Relay::new(env.store.clone(), env.js.clone(), env.bus.clone()).with_page(20);
    let task = tokio::spawn(relay.clone().run(CancellationToken::new()));
    let reached = eventually(Duration::from_secs(30), "the relay to publish part", || {
        let relay = relay.clone();
        async move {
            let cp = relay.checkpoint().await.unwrap();
            (cp > 0).then_some(cp)
        }
    })
    .await;
    task.abort();
    let _ = task.await;
    assert!(
        reached < 2000,
        "the relay should have been killed mid-stream"
    );

    // Simulate the worst case too: a page published whose checkpoint was never written.
    let cp = relay.checkpoint().await.unwrap();
    let unsaved = env
        .store
        .read_all(cp, 40, &ReadFilter::default())
        .await
        .unwrap();
    relay::publish_page(&env.js, &env.bus, &unsaved, false)
        .await
        .unwrap();

    // A new relay (a restarted process) takes over from the checkpoint.
    let cancel = CancellationToken::new();
    let task = tokio::spawn(
        Relay::new(env.store.clone(), env.js.clone(), env.bus.clone())
            .with_page(20)
            .run(cancel.clone()),
    );
    eventually(
        Duration::from_secs(60),
        "all 2000 events on the stream",
        || {
            let relay = relay.clone();
            async move { (relay.checkpoint().await.unwrap() == 2000).then_some(()) }
        },
    )
    .await;
    cancel.cancel();
    task.await.unwrap().unwrap();

    assert_eq!(stream_len(&env).await, 2000);
    let msgs = env.stream_messages().await;
    let ids: HashSet<String> = msgs.iter().map(|m| header(m, headers::EVENT_ID)).collect();
    assert_eq!(ids.len(), 2000, "every event exactly once");
    env.cleanup().await;
}

#[tokio::test]
async fn replay_is_safe_to_run_twice() {
    let env = TestEnv::new().await;
    append_many(&env, 60, &["ws-a", "ws-b"]).await;
    let relay = Relay::new(env.store.clone(), env.js.clone(), env.bus.clone());
    relay.publish_pending().await.unwrap();

    let only_a = ReadFilter {
        workspace_id: Some("ws-a".into()),
        ..Default::default()
    };
    for _ in 0..2 {
        let report = relay::replay(&env.store, &env.js, &env.bus, 10, 40, &only_a)
            .await
            .unwrap();
        assert_eq!(report.published, 15, "positions 11..=40 of ws-a");
        assert_eq!(
            report.duplicates, 15,
            "already on the stream: dropped by dedup"
        );
    }
    assert_eq!(stream_len(&env).await, 60);
    env.cleanup().await;
}
