//! The consumer runtime against real PostgreSQL and NATS JetStream: idempotency, crash between
//! commit and ack, dead letters, per-workspace order across replicas, graceful shutdown, and one
//! trace across a hop.

use async_nats::jetstream::consumer::PullConsumer;
use rp_platform::consumer::{
    self, ConsumerConfig, Handler, HandlerContext, HandlerError, Ordering,
};
use rp_platform::contracts::events::v1::{SyncRequested, SyncStarted, envelope::Event};
use rp_platform::eventlog::{ExpectedVersion, NewEvent, ReadFilter, RecordedEvent};
use rp_platform::relay::{self, Relay};
use rp_platform::testing::{TestEnv, eventually};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

/// Records every event it handles in `seen` (its projection), in the handler's transaction.
#[derive(Default)]
struct Recorder {
    calls: AtomicUsize,
}

impl Handler for Recorder {
    async fn handle(
        &self,
        ctx: &mut HandlerContext,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, AtomicOrdering::SeqCst);
        let trace = rp_platform::telemetry::trace_id(&tracing::Span::current()).unwrap_or_default();
        sqlx::query(
            "INSERT INTO seen (event_id, workspace_id, position, trace_id) VALUES ($1, $2, $3, $4)",
        )
        .bind(event.event_id())
        .bind(event.workspace_id())
        .bind(event.position)
        .bind(trace)
        .execute(&mut *ctx.tx)
        .await?;
        Ok(())
    }
}

async fn setup_projection(env: &TestEnv) {
    sqlx::query(
        "CREATE TABLE seen (seq BIGSERIAL PRIMARY KEY, event_id UUID NOT NULL, \
         workspace_id TEXT NOT NULL, position BIGINT NOT NULL, trace_id TEXT NOT NULL)",
    )
    .execute(&env.pool)
    .await
    .unwrap();
}

async fn seen_count(env: &TestEnv) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM seen")
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

fn requested(ws: &str, i: usize) -> NewEvent {
    NewEvent::new(
        ws,
        Event::SyncRequested(SyncRequested {
            sync_run_id: format!("run-{i}"),
            ..Default::default()
        }),
    )
}

async fn append_and_relay(env: &TestEnv, events: Vec<NewEvent>) {
    for e in events {
        env.store
            .append("s", ExpectedVersion::Any, vec![e])
            .await
            .unwrap();
    }
    Relay::new(env.store.clone(), env.js.clone(), env.bus.clone())
        .publish_pending()
        .await
        .unwrap();
}

fn fast(name: &str, ordering: Ordering) -> ConsumerConfig {
    let mut cfg = ConsumerConfig::new(name, ordering);
    cfg.max_deliver = 3;
    cfg.retry_delays = vec![Duration::from_millis(50)];
    cfg.ack_wait = Duration::from_secs(1);
    cfg
}

fn start<H: Handler>(
    env: &TestEnv,
    cfg: ConsumerConfig,
    handler: Arc<H>,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), consumer::ConsumerError>>,
) {
    let cancel = CancellationToken::new();
    let task = tokio::spawn(consumer::run(
        env.js.clone(),
        env.bus.clone(),
        env.pool.clone(),
        cfg,
        handler,
        cancel.clone(),
    ));
    (cancel, task)
}

async fn settled(env: &TestEnv, durable: &str) -> bool {
    let stream = env.js.get_stream(&env.bus.stream).await.unwrap();
    let Ok(mut c) = stream
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>(durable)
        .await
    else {
        return false;
    };
    let _: &PullConsumer = &c;
    let info = c.info().await.unwrap();
    info.num_pending == 0 && info.num_ack_pending == 0
}

#[tokio::test]
async fn the_same_message_delivered_twice_is_applied_once() {
    let env = TestEnv::new().await;
    setup_projection(&env).await;
    append_and_relay(&env, vec![requested("w1", 1), requested("w1", 2)]).await;
    // Publish both events again under other message ids, so JetStream stores real duplicates.
    let events = env
        .store
        .read_all(0, 10, &ReadFilter::default())
        .await
        .unwrap();
    for e in &events {
        let (mut h, body) = rp_platform::bus::message_for(e, false);
        h.insert("Nats-Msg-Id", format!("again-{}", e.event_id()).as_str());
        env.js
            .publish_with_headers(env.bus.subject(e.workspace_id(), e.event_type()), h, body)
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let handler = Arc::new(Recorder::default());
    let (cancel, task) = start(
        &env,
        fast("dup", Ordering::Unordered { concurrency: 4 }),
        handler.clone(),
    );
    eventually(WAIT, "all four messages acked", || async {
        settled(&env, "dup").await.then_some(())
    })
    .await;
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(seen_count(&env).await, 2);
    assert_eq!(
        handler.calls.load(AtomicOrdering::SeqCst),
        2,
        "the handler ran once per event"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_crash_between_commit_and_ack_does_not_apply_twice() {
    let env = TestEnv::new().await;
    setup_projection(&env).await;
    append_and_relay(&env, vec![requested("w1", 1)]).await;
    let handler = Arc::new(Recorder::default());
    let cfg = fast("crash", Ordering::Unordered { concurrency: 1 });
    cfg.faults
        .skip_ack_after_commit
        .store(1, AtomicOrdering::SeqCst);
    let (cancel, task) = start(&env, cfg, handler.clone());
    // The first delivery commits but is never acked; the server redelivers after ack_wait,
    // and the redelivery is acked without running the handler again.
    eventually(WAIT, "the redelivery to be acked", || async {
        settled(&env, "crash").await.then_some(())
    })
    .await;
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(seen_count(&env).await, 1);
    assert_eq!(handler.calls.load(AtomicOrdering::SeqCst), 1);
    env.cleanup().await;
}

struct Failing {
    permanent: bool,
    calls: AtomicU64,
}

impl Handler for Failing {
    async fn handle(
        &self,
        _ctx: &mut HandlerContext,
        _event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, AtomicOrdering::SeqCst);
        if self.permanent {
            Err(HandlerError::Reject("sync run id is not a UUID".into()))
        } else {
            Err(HandlerError::Retry("downstream unavailable".into()))
        }
    }
}

#[tokio::test]
async fn a_message_that_exhausts_its_retries_is_dead_lettered_with_its_error() {
    let env = TestEnv::new().await;
    append_and_relay(&env, vec![requested("w1", 1)]).await;
    let handler = Arc::new(Failing {
        permanent: false,
        calls: AtomicU64::new(0),
    });
    let (cancel, task) = start(
        &env,
        fast("dl", Ordering::Unordered { concurrency: 1 }),
        handler.clone(),
    );
    let dead = eventually(WAIT, "a dead letter", || async {
        let d = consumer::dead_letters(&env.pool, Some("dl")).await.unwrap();
        (!d.is_empty()).then_some(d)
    })
    .await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].deliveries, 3);
    assert_eq!(dead[0].error, "downstream unavailable");
    assert_eq!(dead[0].event_type, "SyncRequested");
    eventually(WAIT, "the message to be terminated", || async {
        settled(&env, "dl").await.then_some(())
    })
    .await;
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(handler.calls.load(AtomicOrdering::SeqCst), 3);
    // Whoever owns the event's causal chain learns of it from the log: EventDeadLettered, with
    // the event's workspace and correlation, once (not again for a redelivery).
    let told = env
        .store
        .read_stream("deadletters-w1", 0, 10)
        .await
        .unwrap();
    assert_eq!(told.len(), 1, "{told:?}");
    let Some(Event::EventDeadLettered(d)) = told[0].event() else {
        panic!("{told:?}")
    };
    assert_eq!(
        (d.consumer.as_str(), d.event_type.as_str()),
        ("dl", "SyncRequested")
    );
    assert_eq!(d.error, "downstream unavailable");
    assert_eq!(
        d.event_id,
        dead[0].event_id.map(|i| i.to_string()).unwrap_or_default()
    );
    let original = env.store.read_stream("s", 0, 10).await.unwrap();
    assert_eq!(
        told[0].meta().correlation_id,
        original[0].meta().correlation_id
    );
    assert_eq!(
        told[0].meta().causation_id,
        original[0].event_id().to_string()
    );
    env.cleanup().await;
}

#[tokio::test]
async fn rejected_and_undecodable_messages_are_dead_lettered_at_once() {
    let env = TestEnv::new().await;
    append_and_relay(&env, vec![requested("w1", 1)]).await;
    // A message on our subjects that is not an event at all.
    env.js
        .publish(
            env.bus.subject("w1", "SyncRequested"),
            "not protobuf".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let handler = Arc::new(Failing {
        permanent: true,
        calls: AtomicU64::new(0),
    });
    let (cancel, task) = start(
        &env,
        fast("rej", Ordering::Unordered { concurrency: 2 }),
        handler.clone(),
    );
    let dead = eventually(WAIT, "two dead letters", || async {
        let d = consumer::dead_letters(&env.pool, Some("rej"))
            .await
            .unwrap();
        (d.len() == 2).then_some(d)
    })
    .await;
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert!(dead.iter().all(|d| d.deliveries == 1));
    assert!(dead.iter().any(|d| d.error == "sync run id is not a UUID"));
    assert!(
        dead.iter()
            .any(|d| d.error.contains("no Rp-Position header"))
    );
    assert_eq!(handler.calls.load(AtomicOrdering::SeqCst), 1);
    env.cleanup().await;
}

/// Handles slowly and unevenly, so that without ordering later events would overtake.
struct Jittery(Recorder);

impl Handler for Jittery {
    async fn handle(
        &self,
        ctx: &mut HandlerContext,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        let jitter = (event.position * 7919 % 5) as u64;
        tokio::time::sleep(Duration::from_millis(jitter)).await;
        self.0.handle(ctx, event).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_workspace_order_holds_across_two_replicas() {
    let env = TestEnv::new().await;
    setup_projection(&env).await;
    let workspaces = ["ws-a", "ws-b", "ws-c", "ws-d", "ws-e"];
    let events: Vec<NewEvent> = (0..150).map(|i| requested(workspaces[i % 5], i)).collect();
    append_and_relay(&env, events).await;
    let handler = Arc::new(Jittery(Recorder::default()));
    let cfg = fast("ordered", Ordering::PerWorkspace);
    let (c1, t1) = start(&env, cfg.clone(), handler.clone());
    let (c2, t2) = start(&env, cfg, handler.clone());
    eventually(WAIT, "150 events handled", || async {
        (seen_count(&env).await == 150).then_some(())
    })
    .await;
    c1.cancel();
    c2.cancel();
    t1.await.unwrap().unwrap();
    t2.await.unwrap().unwrap();
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT workspace_id, position FROM seen ORDER BY seq")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    let mut last: HashMap<String, i64> = HashMap::new();
    for (ws, pos) in &rows {
        let prev = last.insert(ws.clone(), *pos).unwrap_or(0);
        assert!(*pos > prev, "{ws}: position {pos} handled after {prev}");
    }
    assert_eq!(
        handler.0.calls.load(AtomicOrdering::SeqCst),
        150,
        "no double processing"
    );
    env.cleanup().await;
}

/// Blocks inside the handler until released.
struct Gate {
    entered: Notify,
    release: Notify,
    inner: Recorder,
}

impl Handler for Gate {
    async fn handle(
        &self,
        ctx: &mut HandlerContext,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        self.entered.notify_one();
        self.release.notified().await;
        self.inner.handle(ctx, event).await
    }
}

#[tokio::test]
async fn shutdown_finishes_in_flight_work_and_acks() {
    let env = TestEnv::new().await;
    setup_projection(&env).await;
    append_and_relay(&env, vec![requested("w1", 1)]).await;
    let gate = Arc::new(Gate {
        entered: Notify::new(),
        release: Notify::new(),
        inner: Recorder::default(),
    });
    let (cancel, task) = start(
        &env,
        fast("graceful", Ordering::Unordered { concurrency: 1 }),
        gate.clone(),
    );
    tokio::time::timeout(WAIT, gate.entered.notified())
        .await
        .unwrap();
    // SIGTERM arrives while the handler is mid-flight...
    cancel.cancel();
    assert!(!task.is_finished());
    gate.release.notify_one();
    // ...and the runtime finishes it, acks, and returns cleanly.
    tokio::time::timeout(WAIT, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(seen_count(&env).await, 1);
    assert!(
        settled(&env, "graceful").await,
        "the in-flight message was acked"
    );
    env.cleanup().await;
}

/// Emits a SyncStarted for every SyncRequested, in the same transaction.
struct Starter;

impl Handler for Starter {
    async fn handle(
        &self,
        ctx: &mut HandlerContext,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        let Some(Event::SyncRequested(req)) = event.event() else {
            return Ok(());
        };
        let started = ctx.new_event(Event::SyncStarted(SyncStarted {
            sync_run_id: req.sync_run_id.clone(),
            ..Default::default()
        }));
        ctx.emit(
            format!("syncrun-{}", req.sync_run_id),
            ExpectedVersion::Any,
            vec![started],
        );
        Ok(())
    }
}

#[tokio::test]
async fn one_trace_and_one_causal_chain_across_a_hop() {
    let env = TestEnv::new().await;
    setup_projection(&env).await;
    // A request span appends SyncRequested...
    let span = tracing::info_span!("sync_now");
    let trace = rp_platform::telemetry::trace_id(&span).expect("spans carry trace ids");
    {
        let _g = span.enter();
        env.store
            .append(
                "syncrun-run-1",
                ExpectedVersion::NoStream,
                vec![requested("w1", 1)],
            )
            .await
            .unwrap();
    }
    let cancel = CancellationToken::new();
    let relay_task = tokio::spawn(
        Relay::new(env.store.clone(), env.js.clone(), env.bus.clone()).run(cancel.clone()),
    );
    // ...a consumer reacts by emitting SyncStarted, and another records what it sees.
    let c1 = tokio::spawn(consumer::run(
        env.js.clone(),
        env.bus.clone(),
        env.pool.clone(),
        fast("starter", Ordering::PerWorkspace).event_types(&["SyncRequested"]),
        Arc::new(Starter),
        cancel.clone(),
    ));
    let c2 = tokio::spawn(consumer::run(
        env.js.clone(),
        env.bus.clone(),
        env.pool.clone(),
        fast("recorder", Ordering::PerWorkspace).event_types(&["SyncStarted"]),
        Arc::new(Recorder::default()),
        cancel.clone(),
    ));
    let seen_trace: String = eventually(WAIT, "SyncStarted handled", || async {
        sqlx::query_scalar("SELECT trace_id FROM seen")
            .fetch_optional(&env.pool)
            .await
            .unwrap()
    })
    .await;
    cancel.cancel();
    relay_task.await.unwrap().unwrap();
    c1.await.unwrap().unwrap();
    c2.await.unwrap().unwrap();
    assert_eq!(seen_trace, trace, "two hops later, still the same trace");

    let log = env.store.read_stream("syncrun-run-1", 1, 10).await.unwrap();
    assert_eq!(log.len(), 2);
    let (req, started) = (&log[0], &log[1]);
    assert_eq!(started.event_type(), "SyncStarted");
    assert_eq!(started.meta().causation_id, req.event_id().to_string());
    assert_eq!(started.meta().correlation_id, req.meta().correlation_id);
    assert_eq!(
        rp_platform::telemetry::trace_id_of_traceparent(&started.meta().traceparent),
        Some(trace.as_str())
    );
    // And a replay of the whole log changes nothing for consumers that already handled it.
    let report = relay::replay(
        &env.store,
        &env.js,
        &env.bus,
        0,
        i64::MAX,
        &ReadFilter::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.published, 2);
    env.cleanup().await;
}

/// Fails every time; on the final allowed delivery it takes PostgreSQL away (cuts the proxy the
/// consumer's pool goes through), so the dead letter cannot be written.
struct FailsThenCutsTheDatabase {
    calls: AtomicUsize,
    cut_on_call: usize,
    proxy: Arc<rp_platform::testing::DbProxy>,
}

impl Handler for FailsThenCutsTheDatabase {
    async fn handle(&self, _: &mut HandlerContext, _: &RecordedEvent) -> Result<(), HandlerError> {
        let n = self.calls.fetch_add(1, AtomicOrdering::SeqCst) + 1;
        if n == self.cut_on_call {
            self.proxy.cut();
        }
        Err(HandlerError::Retry(format!("failure {n}")))
    }
}

/// Issue 12.2: on the final allowed delivery the dead letter must be written before the server
/// forgets the message. With PostgreSQL unreachable across that delivery the message used to
/// vanish (NAK past MaxDeliver: never redelivered, no dead letter); now it is kept until the
/// dead letter is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_across_the_final_delivery_loses_nothing() {
    let env = TestEnv::new().await;
    let proxy = Arc::new(rp_platform::testing::DbProxy::start(&env.database_url).await);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(1))
        .connect(&proxy.url(&env.database_url))
        .await
        .unwrap();
    let cfg = fast("final", Ordering::PerWorkspace);
    let stats = cfg.stats.clone();
    let handler = Arc::new(FailsThenCutsTheDatabase {
        calls: AtomicUsize::new(0),
        cut_on_call: cfg.max_deliver as usize,
        proxy: proxy.clone(),
    });
    let cancel = CancellationToken::new();
    let task = tokio::spawn(consumer::run(
        env.js.clone(),
        env.bus.clone(),
        pool,
        cfg,
        handler.clone(),
        cancel.clone(),
    ));
    append_and_relay(&env, vec![requested("ws-final", 1)]).await;
    eventually(WAIT, "the dead letter's write to fail", || async {
        (stats
            .dead_letter_write_failures
            .load(AtomicOrdering::SeqCst)
            >= 1)
            .then_some(())
    })
    .await;
    proxy.restore().await;
    let dead = eventually(
        WAIT,
        "the message dead-lettered once the database is back",
        || async {
            let d = consumer::dead_letters(&env.pool, Some("final"))
                .await
                .unwrap();
            (!d.is_empty()).then_some(d)
        },
    )
    .await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].error.starts_with("failure"), "{dead:?}");
    cancel.cancel();
    let _ = task.await;
    env.cleanup().await;
}

/// Issue 12.8: a consumer whose durable is deleted on the server used to stop for good, silently.
/// It creates the durable again, says so, and carries on (what it had handled is skipped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_durable_is_created_again_and_consumption_resumes() {
    let env = TestEnv::new().await;
    setup_projection(&env).await;
    let cfg = fast("recreate", Ordering::PerWorkspace);
    let stats = cfg.stats.clone();
    let (cancel, task) = start(&env, cfg, Arc::new(Recorder::default()));
    append_and_relay(
        &env,
        (0..4).map(|i| requested(&format!("ws-{i}"), i)).collect(),
    )
    .await;
    eventually(WAIT, "the first events handled", || async {
        (seen_count(&env).await == 4).then_some(())
    })
    .await;
    let stream = env.js.get_stream(&env.bus.stream).await.unwrap();
    for p in 0..env.bus.partitions {
        let _ = stream.delete_consumer(&format!("recreate-p{p}")).await;
    }
    append_and_relay(
        &env,
        (4..8).map(|i| requested(&format!("ws-{i}"), i)).collect(),
    )
    .await;
    eventually(WAIT, "the events after the deletion handled", || async {
        (seen_count(&env).await == 8).then_some(())
    })
    .await;
    assert!(stats.durables_recreated.load(AtomicOrdering::SeqCst) >= 1);
    cancel.cancel();
    let _ = task.await;
    env.cleanup().await;
}

/// Durables made by an earlier version (a server-side MaxDeliver and BackOff) are brought to the
/// runtime's settings on start, so the last-delivery fix reaches existing deployments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_durable_is_updated_to_an_unlimited_server_side_max_deliver() {
    let env = TestEnv::new().await;
    setup_projection(&env).await;
    let stream = env.js.get_stream(&env.bus.stream).await.unwrap();
    let durable = "older-p0".to_string();
    stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some(durable.clone()),
            filter_subject: env.bus.partition_subjects(0),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(1),
            max_deliver: 3,
            backoff: vec![Duration::from_secs(1), Duration::from_secs(2)],
            max_ack_pending: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let (cancel, task) = start(
        &env,
        fast("older", Ordering::PerWorkspace),
        Arc::new(Recorder::default()),
    );
    eventually(WAIT, "the durable updated", || async {
        let mut c: PullConsumer = stream.get_consumer(&durable).await.ok()?;
        let info = c.info().await.ok()?;
        (info.config.max_deliver == -1).then_some(())
    })
    .await;
    cancel.cancel();
    let _ = task.await;
    env.cleanup().await;
}

/// Republishes `events` under new message ids (as a replay past the dedup window does).
async fn republish(env: &TestEnv, events: &[RecordedEvent], tag: &str) {
    for e in events {
        let (mut h, body) = rp_platform::bus::message_for(e, true);
        h.insert("Nats-Msg-Id", format!("{tag}-{}", e.event_id()).as_str());
        env.js
            .publish_with_headers(env.bus.subject(e.workspace_id(), e.event_type()), h, body)
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

/// Issue 12.10: processed marks are pruned past their retention without weakening idempotency.
/// The consumer's floor (the highest pruned position) keeps a redelivery or replay of a pruned
/// event from being applied twice, while a replayed dead letter is still handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_marks_still_stop_a_replay_from_applying_twice() {
    let env = TestEnv::new().await;
    setup_projection(&env).await;
    append_and_relay(&env, (0..4).map(|i| requested("ws-r", i)).collect()).await;
    let handler = Arc::new(Recorder::default());
    let (cancel, task) = start(
        &env,
        fast("ret", Ordering::Unordered { concurrency: 4 }),
        handler.clone(),
    );
    eventually(WAIT, "the events handled", || async {
        (seen_count(&env).await == 4).then_some(())
    })
    .await;
    // Forty days later the marks are past the retention (30-day stream + 7 days) and pruned.
    sqlx::query("UPDATE processed_events SET processed_at = now() - interval '40 days'")
        .execute(&env.pool)
        .await
        .unwrap();
    let retention = consumer::Retention::for_stream(env.bus.max_age);
    let pruned = consumer::prune(&env.pool, retention).await.unwrap();
    assert_eq!(pruned.processed_marks, 4);
    let marks: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(marks, 0, "the table stays small");
    // An operator replays them: nothing is applied twice.
    let events = env
        .store
        .read_all(0, 10, &ReadFilter::default())
        .await
        .unwrap();
    republish(&env, &events, "replay").await;
    eventually(WAIT, "the replay consumed", || async {
        settled(&env, "ret").await.then_some(())
    })
    .await;
    assert_eq!(
        seen_count(&env).await,
        4,
        "a replay below the floor is skipped"
    );
    assert_eq!(handler.calls.load(AtomicOrdering::SeqCst), 4);
    // New events are handled as ever.
    append_and_relay(&env, vec![requested("ws-r", 9)]).await;
    eventually(WAIT, "a new event handled", || async {
        (seen_count(&env).await == 5).then_some(())
    })
    .await;
    cancel.cancel();
    let _ = task.await;
    env.cleanup().await;
}

#[test]
fn a_marks_retention_within_the_streams_max_age_is_refused() {
    let max_age = Duration::from_secs(30 * 86_400);
    let r = consumer::Retention::for_stream(max_age);
    assert!(r.processed > max_age);
    assert!(r.checked(max_age).is_ok());
    let short = consumer::Retention {
        processed: Duration::from_secs(29 * 86_400),
        ..r
    };
    let e = short.checked(max_age).unwrap_err();
    assert!(e.to_string().contains("RP_PROCESSED_RETENTION"), "{e}");
}

/// A handler that meets the database outage (the pool's wait for a connection runs out) on each
/// of its first `outage_calls` deliveries, then works: recorded in `seen`.
struct MeetsAnOutage {
    calls: AtomicUsize,
    outage_calls: usize,
    inner: Recorder,
}

impl Handler for MeetsAnOutage {
    async fn handle(
        &self,
        ctx: &mut HandlerContext,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        if self.calls.fetch_add(1, AtomicOrdering::SeqCst) < self.outage_calls {
            return Err(HandlerError::Database(sqlx::Error::PoolTimedOut));
        }
        self.inner.handle(ctx, event).await
    }
}

/// The database away for longer than the whole retry schedule is not the message's fault: the
/// delivery is retried, on the schedule's last delay, for as long as the outage lasts, and
/// handled once the database is back; nothing is dead-lettered (so no run fails for it). Found
/// by `make chaos` (docs/reliability.md): a matcher RecordsPulled whose last allowed delivery
/// began during the outage failed on the pool's wait just after the database came back, was
/// dead-lettered, and its run failed. Here every allowed delivery and two more meet the outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_longer_than_the_retry_schedule_is_waited_out_not_dead_lettered() {
    let env = TestEnv::new().await;
    setup_projection(&env).await;
    let cfg = fast("outage", Ordering::PerWorkspace);
    let stats = cfg.stats.clone();
    let handler = Arc::new(MeetsAnOutage {
        calls: AtomicUsize::new(0),
        outage_calls: cfg.max_deliver as usize + 2,
        inner: Recorder::default(),
    });
    let (cancel, task) = start(&env, cfg, handler.clone());
    append_and_relay(&env, vec![requested("ws-outage", 1)]).await;
    eventually(WAIT, "the event handled or dead-lettered", || async {
        let dead = consumer::dead_letters(&env.pool, Some("outage"))
            .await
            .unwrap();
        (seen_count(&env).await == 1 || !dead.is_empty()).then_some(())
    })
    .await;
    let dead = consumer::dead_letters(&env.pool, Some("outage"))
        .await
        .unwrap();
    assert!(dead.is_empty(), "dead-lettered for the outage: {dead:?}");
    assert_eq!(
        seen_count(&env).await,
        1,
        "handled once the database is back"
    );
    assert_eq!(stats.dead_lettered.load(AtomicOrdering::SeqCst), 0);
    cancel.cancel();
    let _ = task.await;
    env.cleanup().await;
}
