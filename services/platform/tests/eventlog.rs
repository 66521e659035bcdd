//! The event log against a real PostgreSQL: versions, conflicts, append-only, and the race test
//! for "a reader following by position never skips an event".

use rp_platform::contracts::events::v1::{SyncRequested, envelope::Event};
use rp_platform::eventlog::{AppendError, ExpectedVersion, NewEvent, ReadFilter, append_in};
use rp_platform::testing::TestEnv;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn sync_requested(ws: &str, run: &str) -> NewEvent {
    NewEvent::new(
        ws,
        Event::SyncRequested(SyncRequested {
            sync_run_id: run.into(),
            ..Default::default()
        }),
    )
}

#[tokio::test]
async fn append_checks_the_expected_version() {
    let env = TestEnv::new().await;
    let s = &env.store;

    // Given an empty log, when appending to a new stream expecting no stream, it starts at 1.
    let a = s
        .append(
            "syncrun-1",
            ExpectedVersion::NoStream,
            vec![sync_requested("w", "1")],
        )
        .await
        .unwrap();
    assert_eq!(a.stream_version, 1);

    // A second "no stream" append conflicts and says where the stream is.
    let err = s
        .append(
            "syncrun-1",
            ExpectedVersion::NoStream,
            vec![sync_requested("w", "1")],
        )
        .await
        .unwrap_err();
    match err {
        AppendError::Conflict { actual, .. } => assert_eq!(actual, Some(1)),
        other => panic!("expected a conflict, got {other}"),
    }
    // A stale exact version conflicts; the right one appends.
    assert!(matches!(
        s.append(
            "syncrun-1",
            ExpectedVersion::Exact(0),
            vec![sync_requested("w", "1")]
        )
        .await,
        Err(AppendError::Conflict { .. })
    ));
    let b = s
        .append(
            "syncrun-1",
            ExpectedVersion::Exact(1),
            vec![sync_requested("w", "1"), sync_requested("w", "1")],
        )
        .await
        .unwrap();
    assert_eq!(b.stream_version, 3);
    assert_eq!(b.last_position - b.first_position, 1);
    // Exact on a missing stream conflicts with "no stream".
    assert!(matches!(
        s.append(
            "syncrun-2",
            ExpectedVersion::Exact(1),
            vec![sync_requested("w", "2")]
        )
        .await,
        Err(AppendError::Conflict { actual: None, .. })
    ));
    // Any appends wherever the stream is.
    let c = s
        .append(
            "syncrun-1",
            ExpectedVersion::Any,
            vec![sync_requested("w", "1")],
        )
        .await
        .unwrap();
    assert_eq!(c.stream_version, 4);

    let events = s.read_stream("syncrun-1", 2, 100).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    assert!(events.iter().all(|e| e.event_type() == "SyncRequested"));
    env.cleanup().await;
}

#[tokio::test]
async fn a_batch_is_all_or_nothing() {
    let env = TestEnv::new().await;
    let first = sync_requested("w", "1");
    env.store
        .append("s-a", ExpectedVersion::Any, vec![first.clone()])
        .await
        .unwrap();
    // A batch whose last event reuses an existing id fails as a whole.
    let batch = vec![sync_requested("w", "2"), sync_requested("w", "3"), first];
    let err = env
        .store
        .append("s-b", ExpectedVersion::NoStream, batch)
        .await
        .unwrap_err();
    assert!(matches!(err, AppendError::DuplicateEventId(_)), "{err}");
    assert_eq!(env.store.stream_version("s-b").await.unwrap(), None);
    assert_eq!(env.store.head_position().await.unwrap(), 1);
    assert!(matches!(
        env.store.append("s-b", ExpectedVersion::Any, vec![]).await,
        Err(AppendError::Empty)
    ));
    env.cleanup().await;
}

#[tokio::test]
async fn the_database_refuses_update_delete_and_truncate() {
    let env = TestEnv::new().await;
    env.store
        .append("s", ExpectedVersion::Any, vec![sync_requested("w", "1")])
        .await
        .unwrap();
    for sql in [
        "UPDATE events SET event_type = 'X'",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let err = sqlx::query(sql).execute(&env.pool).await.unwrap_err();
        assert!(
            err.to_string().contains("append-only"),
            "{sql} should be refused, got {err}"
        );
    }
    assert_eq!(env.store.head_position().await.unwrap(), 1);
    env.cleanup().await;
}

#[tokio::test]
async fn reads_filter_by_type_and_workspace_in_pages() {
    let env = TestEnv::new().await;
    for i in 0..30 {
        let ws = if i % 3 == 0 { "w1" } else { "w2" };
        let ev = if i % 2 == 0 {
            sync_requested(ws, &i.to_string())
        } else {
            NewEvent::new(
                ws,
                Event::SyncStarted(rp_platform::contracts::events::v1::SyncStarted {
                    sync_run_id: i.to_string(),
                    ..Default::default()
                }),
            )
        };
        env.store
            .append(&format!("syncrun-{i}"), ExpectedVersion::NoStream, vec![ev])
            .await
            .unwrap();
    }
    // Each filter shape has its own statement: check all four, paging by 2.
    let read_everything = |filter: ReadFilter| {
        let store = env.store.clone();
        async move {
            let mut seen = Vec::new();
            let mut after = 0;
            loop {
                let page = store.read_all(after, 2, &filter).await.unwrap();
                let Some(last) = page.last() else { break };
                after = last.position;
                seen.extend(page);
            }
            assert!(seen.windows(2).all(|w| w[0].position < w[1].position));
            seen
        }
    };
    assert_eq!(read_everything(ReadFilter::default()).await.len(), 30);

    let of_type = read_everything(ReadFilter {
        event_types: vec!["SyncRequested".into()],
        workspace_id: None,
    })
    .await;
    assert_eq!(of_type.len(), 15);
    assert!(of_type.iter().all(|e| e.event_type() == "SyncRequested"));

    let of_workspace = read_everything(ReadFilter {
        event_types: vec![],
        workspace_id: Some("w1".into()),
    })
    .await;
    assert_eq!(of_workspace.len(), 10);
    assert!(of_workspace.iter().all(|e| e.workspace_id() == "w1"));

    let seen = read_everything(ReadFilter {
        event_types: vec!["SyncRequested".into()],
        workspace_id: Some("w1".into()),
    })
    .await;
    // i in 0..30 with i % 3 == 0 and i % 2 == 0: 0, 6, 12, 18, 24
    assert_eq!(seen.len(), 5);
    assert!(
        seen.iter()
            .all(|e| e.workspace_id() == "w1" && e.event_type() == "SyncRequested")
    );
    env.cleanup().await;
}

/// Many concurrent writers (some holding their transaction open after appending, some rolling
/// back), and a reader following the log by position the whole time: the reader must see every
/// committed event exactly once, and each stream's events in version order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_following_reader_sees_every_committed_event_exactly_once() {
    let env = TestEnv::new().await;
    let writers = 12;
    let appends_per_writer = 40;
    let done = Arc::new(AtomicBool::new(false));

    let reader = {
        let store = env.store.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen: Vec<(i64, String, i64, uuid::Uuid)> = Vec::new();
            let mut after = 0;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let page = store
                    .read_all(after, 7, &ReadFilter::default())
                    .await
                    .unwrap();
                for e in &page {
                    seen.push((e.position, e.stream_id.clone(), e.version, e.event_id()));
                }
                if let Some(last) = page.last() {
                    after = last.position;
                } else if finished {
                    // One more read after the writers finished found nothing: caught up.
                    break;
                } else {
                    tokio::task::yield_now().await;
                }
            }
            seen
        })
    };

    let mut handles = Vec::new();
    for w in 0..writers {
        let store = env.store.clone();
        handles.push(tokio::spawn(async move {
            let mut committed = Vec::new();
            for i in 0..appends_per_writer {
                let mut tx = store.pool().begin().await.unwrap();
                // Half the writers share a few hot streams, the others have their own.
                let stream = if w % 2 == 0 {
                    format!("hot-{}", i % 3)
                } else {
                    format!("own-{w}")
                };
                let n = 1 + (i % 3);
                let events: Vec<NewEvent> = (0..n)
                    .map(|_| sync_requested("w", &format!("{w}-{i}")))
                    .collect();
                let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.event_id).collect();
                append_in(&mut tx, &stream, ExpectedVersion::Any, events)
                    .await
                    .unwrap();
                // Deliberate interleaving: keep the transaction open a little after appending,
                // so that later transactions queue behind it, and roll some back.
                if (w + i) % 4 == 0 {
                    tokio::time::sleep(Duration::from_millis(((w * 7 + i) % 5) as u64)).await;
                }
                if (w * 31 + i) % 9 == 0 {
                    tx.rollback().await.unwrap();
                } else {
                    tx.commit().await.unwrap();
                    committed.extend(ids);
                }
            }
            committed
        }));
    }
    let mut committed = HashSet::new();
    for h in handles {
        committed.extend(h.await.unwrap());
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.await.unwrap();

    let seen_ids: Vec<uuid::Uuid> = seen.iter().map(|s| s.3).collect();
    let unique: HashSet<uuid::Uuid> = seen_ids.iter().copied().collect();
    assert_eq!(unique.len(), seen_ids.len(), "an event was seen twice");
    assert_eq!(unique, committed, "the reader missed or invented events");
    // Per stream, versions ascend in the order the reader saw them, without gaps.
    let mut last_version: HashMap<String, i64> = HashMap::new();
    for (_, stream, version, _) in &seen {
        let prev = last_version.insert(stream.clone(), *version).unwrap_or(0);
        assert_eq!(*version, prev + 1, "stream {stream} out of order");
    }
    env.cleanup().await;
}
