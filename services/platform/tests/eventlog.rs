//! The event log against a real PostgreSQL: versions, conflicts, append-only, and the race test
//! for "a reader following by position never skips an event".

use chrono::{DateTime, Utc};
use prost::Message;
use rp_platform::contracts::events::v1::{Envelope, SyncRequested, envelope::Event};
use rp_platform::eventlog::{
    self, AppendError, ExpectedVersion, NewEvent, ReadFilter, RecordedEvent, append_in,
};
use rp_platform::testing::TestEnv;
use sqlx::PgConnection;
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

/// The raw reads the services used to write themselves, decoded the way they decoded them:
/// `SELECT position, stream_id, version, recorded_at, payload FROM events ...` with `$1..` bound
/// to `args` in order.
async fn raw_read(conn: &mut PgConnection, sql: &str, args: RawArgs) -> Vec<RecordedEvent> {
    type Row = (i64, String, i64, DateTime<Utc>, Vec<u8>);
    let full =
        format!("SELECT position, stream_id, version, recorded_at, payload FROM events {sql}");
    let mut q = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(full));
    for a in args.0 {
        q = match a {
            Arg::Int(i) => q.bind(i),
            Arg::Ints(v) => q.bind(v),
            Arg::Text(t) => q.bind(t),
            Arg::Texts(v) => q.bind(v),
        };
    }
    q.fetch_all(&mut *conn)
        .await
        .unwrap()
        .into_iter()
        .map(
            |(position, stream_id, version, recorded_at, payload)| RecordedEvent {
                position,
                stream_id,
                version,
                recorded_at,
                envelope: Envelope::decode(payload.as_slice()).unwrap(),
            },
        )
        .collect()
}

enum Arg {
    Int(i64),
    Ints(Vec<i64>),
    Text(String),
    Texts(Vec<String>),
}

struct RawArgs(Vec<Arg>);

macro_rules! args {
    ($($a:expr),* $(,)?) => { RawArgs(vec![$($a),*]) };
}

/// What a test compares: everything a reader returns, field by field, so a failure says which.
fn summary(events: &[RecordedEvent]) -> Vec<(i64, String, i64, &'static str, String)> {
    events
        .iter()
        .map(|e| {
            (
                e.position,
                e.stream_id.clone(),
                e.version,
                e.event_type(),
                e.workspace_id().to_string(),
            )
        })
        .collect()
}

fn assert_same(what: &str, readers: Vec<RecordedEvent>, raw: Vec<RecordedEvent>) {
    assert_eq!(
        summary(&readers),
        summary(&raw),
        "{what}: positions, streams, versions"
    );
    // Envelopes and recorded_at too: the whole RecordedEvent.
    assert_eq!(readers, raw, "{what}: envelopes");
}

/// Each in-transaction reader returns exactly what the raw SQL read it replaced returned: the
/// attribution consumer's read of staged positions (missing ones included), the notification
/// rebuild's read by event types in pages, and stream reads; inside a transaction that has
/// appended events of its own, which both must see.
#[tokio::test]
async fn in_transaction_readers_return_what_the_raw_reads_they_replaced_did() {
    let env = TestEnv::new().await;
    let started = |ws: &str, run: &str| {
        NewEvent::new(
            ws,
            Event::SyncStarted(rp_platform::contracts::events::v1::SyncStarted {
                sync_run_id: run.into(),
                ..Default::default()
            }),
        )
    };
    // Committed: three streams, two types, two workspaces, interleaved.
    for i in 0..12 {
        let ws = if i % 3 == 0 { "w1" } else { "w2" };
        let run = format!("r{}", i % 3);
        let e = if i % 2 == 0 {
            sync_requested(ws, &run)
        } else {
            started(ws, &run)
        };
        env.store
            .append(&format!("syncrun-{run}"), ExpectedVersion::Any, vec![e])
            .await
            .unwrap();
    }
    let mut tx = env.pool.begin().await.unwrap();
    // Uncommitted, in the reading transaction: the readers must see them as the raw SQL does.
    append_in(
        &mut tx,
        "syncrun-r0",
        ExpectedVersion::Any,
        vec![sync_requested("w1", "r0"), started("w2", "r0")],
    )
    .await
    .unwrap();
    let head: i64 = 14;

    // read_stream_in: from a version, limited; a missing stream; a version past the end.
    for (stream, from, limit) in [
        ("syncrun-r0", 1, i64::MAX),
        ("syncrun-r0", 2, 3),
        ("syncrun-r1", 3, 100),
        ("syncrun-r2", 99, 10),
        ("syncrun-nope", 1, 10),
    ] {
        let got = eventlog::read_stream_in(&mut tx, stream, from, limit)
            .await
            .unwrap();
        let raw = raw_read(
            &mut tx,
            "WHERE stream_id = $1 AND version >= $2 ORDER BY version LIMIT $3",
            args![Arg::Text(stream.into()), Arg::Int(from), Arg::Int(limit)],
        )
        .await;
        assert_same(
            &format!("read_stream_in({stream}, {from}, {limit})"),
            got,
            raw,
        );
    }
    assert_eq!(
        eventlog::read_stream_in(&mut tx, "syncrun-r0", 2, 3)
            .await
            .unwrap()
            .iter()
            .map(|e| e.version)
            .collect::<Vec<_>>(),
        vec![2, 3, 4]
    );

    // read_whole_stream_in: every version of the stream, the uncommitted ones included.
    for stream in ["syncrun-r0", "syncrun-r1", "syncrun-nope"] {
        let got = eventlog::read_whole_stream_in(&mut tx, stream)
            .await
            .unwrap();
        let raw = raw_read(
            &mut tx,
            "WHERE stream_id = $1 ORDER BY version",
            args![Arg::Text(stream.into())],
        )
        .await;
        assert_same(&format!("read_whole_stream_in({stream})"), got, raw);
    }
    assert_eq!(
        eventlog::read_whole_stream_in(&mut tx, "syncrun-r0")
            .await
            .unwrap()
            .len(),
        6
    );

    // read_positions_in: the attribution consumer's read of staged positions. Missing positions
    // (0, negative, past the head) are left out, duplicates and disorder do not matter.
    for positions in [
        vec![3, 1, 2],
        vec![5, 5, 9999, 0, -1, 13, 14],
        vec![head + 1, head + 2],
        vec![],
        (1..=head).rev().collect(),
    ] {
        let got = eventlog::read_positions_in(&mut tx, &positions)
            .await
            .unwrap();
        let raw = raw_read(
            &mut tx,
            "WHERE position = ANY($1) ORDER BY position",
            args![Arg::Ints(positions.clone())],
        )
        .await;
        assert_same(&format!("read_positions_in({positions:?})"), got, raw);
    }
    assert_eq!(
        eventlog::read_positions_in(&mut tx, &[5, 5, 9999, 0, -1, 13, 14])
            .await
            .unwrap()
            .iter()
            .map(|e| e.position)
            .collect::<Vec<_>>(),
        vec![5, 13, 14]
    );

    // read_range_in, each filter shape, paged from the start as the rebuilds page, and bounded
    // above: the notification rebuild's read by types (a type that is not in the log included).
    let types = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    let shapes: Vec<(ReadFilter, &str)> = vec![
        (ReadFilter::default(), ""),
        (
            ReadFilter {
                event_types: types(&["SyncRequested", "NoSuchEvent"]),
                workspace_id: None,
            },
            " AND event_type = ANY($4)",
        ),
        (
            ReadFilter {
                event_types: types(&["NoSuchEvent"]),
                workspace_id: None,
            },
            " AND event_type = ANY($4)",
        ),
        (
            ReadFilter {
                event_types: vec![],
                workspace_id: Some("w1".into()),
            },
            " AND workspace_id = $4",
        ),
        (
            ReadFilter {
                event_types: types(&["SyncStarted"]),
                workspace_id: Some("w2".into()),
            },
            " AND event_type = ANY($4) AND workspace_id = $5",
        ),
    ];
    for (filter, sql) in &shapes {
        for (up_to, limit) in [(i64::MAX, 1000), (i64::MAX, 2), (9, 3)] {
            let mut after = 0;
            let mut pages = 0;
            loop {
                let got = eventlog::read_range_in(&mut tx, after, up_to, limit, filter)
                    .await
                    .unwrap();
                let mut a = args![Arg::Int(after), Arg::Int(up_to), Arg::Int(limit)];
                if !filter.event_types.is_empty() {
                    a.0.push(Arg::Texts(filter.event_types.clone()));
                }
                if let Some(ws) = &filter.workspace_id {
                    a.0.push(Arg::Text(ws.clone()));
                }
                let raw = raw_read(
                    &mut tx,
                    &format!(
                        "WHERE position > $1 AND position <= $2{sql} ORDER BY position LIMIT $3"
                    ),
                    a,
                )
                .await;
                let last = got.last().map(|e| e.position);
                assert_same(
                    &format!("read_range_in({after}, {up_to}, {limit}, {filter:?})"),
                    got,
                    raw,
                );
                let Some(last) = last else { break };
                after = last;
                pages += 1;
                assert!(pages <= head, "paging does not end");
            }
        }
    }
    // And the filters do filter (so the comparisons above are not all empty).
    let got = eventlog::read_range_in(&mut tx, 0, i64::MAX, 1000, &shapes[1].0)
        .await
        .unwrap();
    assert_eq!(got.len(), 7);
    assert!(got.iter().all(|e| e.event_type() == "SyncRequested"));
    let got = eventlog::read_range_in(&mut tx, 0, i64::MAX, 1000, &shapes[4].0)
        .await
        .unwrap();
    assert!(!got.is_empty());
    assert!(
        got.iter()
            .all(|e| e.event_type() == "SyncStarted" && e.workspace_id() == "w2")
    );

    tx.rollback().await.unwrap();
    env.cleanup().await;
}

/// Issue 12.9: a writer that stops mid-append (its process SIGSTOPped or cut off, holding the
/// log-wide append lock in an open transaction) used to block every append for ever. Service
/// sessions carry `idle_in_transaction_session_timeout`, so the server ends the stalled session
/// and releases the lock within that time, and the others carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_writer_stops_blocking_the_log_within_the_timeout() {
    let env = TestEnv::new().await;
    let limits = rp_platform::db::SessionLimits {
        idle_in_transaction: Duration::from_secs(1),
        ..Default::default()
    };
    let stalled_pool = rp_platform::db::connect_with(&env.database_url, 1, limits)
        .await
        .unwrap();
    let mut stalled = stalled_pool.begin().await.unwrap();
    rp_platform::eventlog::append_in(
        &mut stalled,
        "stalled",
        ExpectedVersion::Any,
        vec![sync_requested("ws-a", "run-stalled")],
    )
    .await
    .unwrap();
    // The writer now says nothing more, holding the append lock. Another writer's append waits
    // for it, and must get through once the server has ended the stalled session.
    let other = tokio::time::timeout(
        Duration::from_secs(30),
        env.store.append(
            "other",
            ExpectedVersion::Any,
            vec![sync_requested("ws-b", "run-other")],
        ),
    )
    .await;
    assert!(
        matches!(other, Ok(Ok(_))),
        "the other append got through: {other:?}"
    );
    // The stalled writer's work is gone with its session, never half in the log.
    assert!(stalled.commit().await.is_err());
    assert_eq!(env.store.stream_version("stalled").await.unwrap(), None);
    env.cleanup().await;
}

/// Issue 12.7: an event the bus cannot carry is never appended (it would wedge the relay and stop
/// delivery for everyone); the append is refused, saying why, and the log carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_larger_than_the_bus_carries_is_refused_and_the_log_carries_on() {
    let env = TestEnv::new().await;
    let huge = NewEvent::new(
        "ws-a",
        Event::SyncRequested(SyncRequested {
            sync_run_id: "run-huge".into(),
            requested_by: "x".repeat(1_200_000),
            ..Default::default()
        }),
    );
    let err = env
        .store
        .append(
            "huge",
            ExpectedVersion::Any,
            vec![sync_requested("ws-a", "ok-1"), huge],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppendError::TooLarge { bytes, .. } if bytes > 1_200_000),
        "{err}"
    );
    assert!(err.to_string().contains("larger than"), "{err}");
    assert_eq!(
        env.store.stream_version("huge").await.unwrap(),
        None,
        "all or nothing"
    );
    // The log and the bus carry on.
    env.store
        .append(
            "huge",
            ExpectedVersion::Any,
            vec![sync_requested("ws-a", "ok-2")],
        )
        .await
        .unwrap();
    let relay = rp_platform::relay::Relay::new(env.store.clone(), env.js.clone(), env.bus.clone());
    assert_eq!(relay.publish_pending().await.unwrap(), 1);
    env.cleanup().await;
}
