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

/// Every message of `stream` on `js`, in stream order.
async fn all_messages(
    js: &async_nats::jetstream::Context,
    stream: &str,
) -> Vec<async_nats::jetstream::message::StreamMessage> {
    let mut s = js.get_stream(stream).await.unwrap();
    let last = s.info().await.unwrap().state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        if let Ok(m) = s.get_raw_message(seq).await {
            out.push(m);
        }
    }
    out
}

/// A broker crash while a page is in flight loses some of its messages and stores later ones
/// after the reconnect; resending the page must still leave every partition in log order
/// (issue 12.6: consumers would otherwise see PullCompleted before its last RecordsPulled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_crash_mid_page_never_reorders_a_partition() {
    let env = TestEnv::new().await;
    let mut nats = rp_platform::testing::PrivateNats::start().await;
    let client = rp_platform::bus::connect(&nats.url(), "relay-order")
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let bus = rp_platform::bus::BusConfig {
        storage: async_nats::jetstream::stream::StorageType::File,
        ..env.bus.clone()
    };
    rp_platform::bus::ensure_stream(&js, &bus).await.unwrap();
    const N: usize = 20_000;
    let workspaces: Vec<String> = (0..8).map(|i| format!("ws-{i}")).collect();
    let refs: Vec<&str> = workspaces.iter().map(String::as_str).collect();
    append_many(&env, N, &refs).await;

    let cancel = CancellationToken::new();
    let relay = Relay::new(env.store.clone(), js.clone(), bus.clone()).with_page(5_000);
    let c = cancel.clone();
    let task = tokio::spawn(async move { relay.run(c).await });
    let count = |js: async_nats::jetstream::Context, name: String| async move {
        match js.get_stream(&name).await {
            Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        }
    };
    // Crash the broker while the relay is in the middle of the log.
    eventually(Duration::from_secs(60), "the relay to be under way", || {
        let f = count(js.clone(), bus.stream.clone());
        async move { (f.await > 500).then_some(()) }
    })
    .await;
    nats.crash_and_restart().await;
    eventually(
        Duration::from_secs(120),
        "every event on the stream",
        || {
            let f = count(js.clone(), bus.stream.clone());
            async move { (f.await >= N as u64).then_some(()) }
        },
    )
    .await;
    cancel.cancel();
    let _ = task.await;

    let messages = all_messages(&js, &bus.stream).await;
    let mut last: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let mut seen = HashSet::new();
    for m in &messages {
        let position: i64 = header(m, headers::POSITION).parse().unwrap();
        assert!(seen.insert(position), "position {position} stored twice");
        let partition = m.subject.split('.').nth(2).unwrap_or_default().to_string();
        let before = last.insert(partition.clone(), position).unwrap_or(0);
        assert!(
            before < position,
            "partition {partition}: position {position} stored after {before}"
        );
    }
    assert_eq!(seen.len(), N, "every event once");
    env.cleanup().await;
}

/// What the ordered publish relies on in the broker: a resent event already on the stream is
/// acknowledged as a duplicate even when its expected-last-message no longer holds, so resuming
/// inside a region the broker stored (but whose acks were lost) costs no extra round.
#[tokio::test]
async fn a_resent_duplicate_is_acknowledged_whatever_it_expected() {
    let env = TestEnv::new().await;
    append_many(&env, 3, &["ws-a"]).await;
    let page = env
        .store
        .read_all(0, 10, &ReadFilter::default())
        .await
        .unwrap();
    let first = relay::publish_in_order(&env.js, &env.bus, &page).await;
    assert!(first.error.is_none(), "{:?}", first.error);
    assert_eq!((first.acked, first.duplicates), (3, 0));
    // Resume "from the second": it carries no expectation, the third expects the second while
    // the stream's last is the third.
    let again = relay::publish_in_order(&env.js, &env.bus, &page[1..]).await;
    assert!(again.error.is_none(), "{:?}", again.error);
    assert_eq!((again.acked, again.duplicates), (2, 2));
    assert_eq!(stream_len(&env).await, 3);
    env.cleanup().await;
}
