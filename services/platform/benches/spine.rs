//! The spine's benchmark (`make bench`): append throughput, catch-up reads, and commit-to-consume
//! latency, each beside a raw baseline measured in the same run on the same machine.
//!
//! Targets (issue 2): batched append >= 20,000 events/s and >= 0.5 of raw INSERT; catch-up read
//! >= 100,000 events/s; commit-to-consume p99 <= 50 ms at 1,000 events/s.

use futures::StreamExt;
use rp_platform::consumer::{
    self, ConsumerConfig, Handler, HandlerContext, HandlerError, Ordering,
};
use rp_platform::contracts::events::v1::{
    EngagementRow, ObjectType, RecordsPulled, envelope::Event,
};
use rp_platform::eventlog::{EventStore, ExpectedVersion, NewEvent, ReadFilter, RecordedEvent};
use rp_platform::relay::Relay;
use rp_platform::testing::TestEnv;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn event(ws: &str, i: usize) -> NewEvent {
    // A realistic small event: one RecordsPulled with a few engagement rows (~300 bytes).
    NewEvent::new(
        ws,
        Event::RecordsPulled(RecordsPulled {
            sync_run_id: format!("run-{}", i / 1000),
            object_type: ObjectType::LinkedinEngagement as i32,
            batch_seq: i as u32,
            engagement: (0..3)
                .map(|k| EngagementRow {
                    organization_id: format!("{}", 10_000 + i + k),
                    campaign_id: "5501".into(),
                    date: "2026-11-01".into(),
                    impressions: 120,
                    clicks: 4,
                    engagements: 9,
                    ad_account_id: "508000".into(),
                })
                .collect(),
            ..Default::default()
        }),
    )
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn raw_table(env: &TestEnv) {
    sqlx::query(
        "CREATE TABLE raw_events (id BIGSERIAL PRIMARY KEY, event_id UUID NOT NULL UNIQUE, \
         stream_id TEXT NOT NULL, version BIGINT NOT NULL, event_type TEXT NOT NULL, \
         workspace_id TEXT NOT NULL, occurred_at TIMESTAMPTZ NOT NULL, payload BYTEA NOT NULL)",
    )
    .execute(&env.pool)
    .await
    .expect("raw table");
}

async fn raw_insert(env: &TestEnv, events: &[NewEvent], offset: i64) {
    use prost::Message;
    let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.event_id).collect();
    let versions: Vec<i64> = (0..events.len() as i64).map(|v| offset + v).collect();
    let types: Vec<String> = events.iter().map(|e| e.type_name().to_string()).collect();
    let ws: Vec<String> = events.iter().map(|e| e.workspace_id.clone()).collect();
    let at: Vec<chrono::DateTime<chrono::Utc>> = events.iter().map(|e| e.occurred_at).collect();
    let payloads: Vec<Vec<u8>> = events
        .iter()
        .map(|e| {
            rp_platform::contracts::events::v1::Envelope {
                meta: None,
                event: Some(e.event.clone()),
            }
            .encode_to_vec()
        })
        .collect();
    sqlx::query(
        "INSERT INTO raw_events (event_id, stream_id, version, event_type, workspace_id, occurred_at, payload) \
         SELECT t.* FROM UNNEST($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::timestamptz[], $7::bytea[]) \
         AS t(event_id, stream_id, version, event_type, workspace_id, occurred_at, payload)",
    )
    .bind(&ids)
    .bind(vec!["bench".to_string(); events.len()])
    .bind(&versions)
    .bind(&types)
    .bind(&ws)
    .bind(&at)
    .bind(&payloads)
    .execute(&env.pool)
    .await
    .expect("raw insert");
}

struct Timed {
    committed: Arc<Mutex<HashMap<uuid::Uuid, Instant>>>,
    latencies: Arc<Mutex<Vec<Duration>>>,
}

impl Handler for Timed {
    async fn handle(
        &self,
        _ctx: &mut HandlerContext,
        e: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        let now = Instant::now();
        let started = self
            .committed
            .lock()
            .ok()
            .and_then(|m| m.get(&e.event_id()).copied());
        if let (Some(t), Ok(mut l)) = (started, self.latencies.lock()) {
            l.push(now.saturating_duration_since(t));
        }
        Ok(())
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let env = TestEnv::new().await;
    let mut out = Vec::<String>::new();
    let mut say = |s: String| {
        println!("{s}");
        out.push(s);
    };
    say(format!(
        "machine: {}; date {}",
        rp_platform::testing::machine(),
        chrono::Utc::now().format("%Y-%m-%d")
    ));

    // --- append throughput ------------------------------------------------------------------
    raw_table(&env).await;
    let singles = 2_000;
    let evs: Vec<NewEvent> = (0..singles).map(|i| event("ws-bench", i)).collect();
    let t = Instant::now();
    for e in &evs {
        env.store
            .append("single", ExpectedVersion::Any, vec![e.clone()])
            .await
            .expect("append");
    }
    let single = rate(singles, t.elapsed());
    let raw_evs: Vec<NewEvent> = (0..singles).map(|i| event("ws-bench", i)).collect();
    let t = Instant::now();
    for (i, e) in raw_evs.iter().enumerate() {
        raw_insert(&env, std::slice::from_ref(e), i as i64).await;
    }
    let raw_single = rate(singles, t.elapsed());
    say(format!(
        "append, single events:   {single:>9.0} events/s   raw INSERT {raw_single:>9.0}/s   ratio {:.2}",
        single / raw_single
    ));

    let batches = 500;
    let batch_evs: Vec<Vec<NewEvent>> = (0..batches)
        .map(|b| (0..100).map(|i| event("ws-bench", b * 100 + i)).collect())
        .collect();
    let t = Instant::now();
    for (b, batch) in batch_evs.into_iter().enumerate() {
        env.store
            .append(&format!("batch-{}", b % 50), ExpectedVersion::Any, batch)
            .await
            .expect("append batch");
    }
    let batched = rate(batches * 100, t.elapsed());
    let raw_batches: Vec<Vec<NewEvent>> = (0..batches)
        .map(|b| (0..100).map(|i| event("ws-bench", b * 100 + i)).collect())
        .collect();
    let t = Instant::now();
    for (b, batch) in raw_batches.iter().enumerate() {
        raw_insert(&env, batch, 10_000 + (b * 100) as i64).await;
    }
    let raw_batched = rate(batches * 100, t.elapsed());
    say(format!(
        "append, batches of 100:  {batched:>9.0} events/s   raw INSERT {raw_batched:>9.0}/s   ratio {:.2}   (target >= 20000/s and >= 0.5)",
        batched / raw_batched
    ));

    // --- catch-up read ------------------------------------------------------------------------
    let total = env.store.head_position().await.expect("head");
    let t = Instant::now();
    let mut after = 0;
    let mut n = 0usize;
    loop {
        let page = env
            .store
            .read_all(after, 1000, &ReadFilter::default())
            .await
            .expect("read");
        let Some(last) = page.last() else { break };
        after = last.position;
        n += page.len();
    }
    let read = rate(n, t.elapsed());
    // Raw baseline: the same kind of rows, paged the same way, from the plain table, undecoded.
    let t = Instant::now();
    let mut after = 0i64;
    let mut raw_n = 0usize;
    loop {
        let page: Vec<(i64, String, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT id, stream_id, version, payload FROM raw_events WHERE id > $1 ORDER BY id LIMIT 1000",
        )
        .bind(after)
        .fetch_all(&env.pool)
        .await
        .expect("raw read");
        let Some(last) = page.last() else { break };
        after = last.0;
        raw_n += page.len();
    }
    let raw_read = rate(raw_n, t.elapsed());
    say(format!(
        "catch-up read (decoded): {read:>9.0} events/s   over {n} of {total} events   raw SELECT {raw_read:>9.0}/s over {raw_n}   ratio {:.2}   (target >= 100000/s)",
        read / raw_read
    ));

    // --- commit-to-consume latency at 1,000 events/s --------------------------------------------
    // A fresh log and stream, so the consumer is not working through the events above first.
    env.cleanup().await;
    let env = TestEnv::new().await;
    // As deployed, the writers (say, the connector), the relay and the consumer (say, the
    // matcher) are separate processes with their own connection pools: writers queueing for
    // the append lock must not starve the consumer of connections.
    let writer_store = EventStore::new(
        rp_platform::db::connect(&env.database_url, 16)
            .await
            .expect("writer pool"),
    );
    let relay_store = EventStore::new(
        rp_platform::db::connect(&env.database_url, 2)
            .await
            .expect("relay pool"),
    );
    let relay = Relay::new(relay_store, env.js.clone(), env.bus.clone());
    let cancel = CancellationToken::new();
    let relay_task = tokio::spawn(relay.run(cancel.clone()));
    let committed = Arc::new(Mutex::new(HashMap::new()));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let mut cfg = ConsumerConfig::new("bench", Ordering::Unordered { concurrency: 64 });
    cfg.event_types = vec!["RecordsPulled".into()];
    // Only the new events: start the consumer at the current end of the stream.
    let consumer_task = tokio::spawn(consumer::run(
        env.js.clone(),
        env.bus.clone(),
        env.pool.clone(),
        cfg,
        Arc::new(Timed {
            committed: committed.clone(),
            latencies: latencies.clone(),
        }),
        cancel.clone(),
    ));
    let seconds = 5;
    let per_sec = 1000;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_sec));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut writers = tokio::task::JoinSet::new();
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    for i in 0..(seconds * per_sec) as usize {
        tick.tick().await;
        let (store, committed, sem) = (writer_store.clone(), committed.clone(), sem.clone());
        writers.spawn(async move {
            let _p = sem.acquire().await;
            let e = event("ws-latency", i);
            let id = e.event_id;
            store
                .append(&format!("lat-{}", i % 64), ExpectedVersion::Any, vec![e])
                .await
                .expect("append");
            if let Ok(mut m) = committed.lock() {
                m.insert(id, Instant::now());
            }
        });
    }
    while writers.join_next().await.is_some() {}
    let expected = (seconds * per_sec) as usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    while latencies.lock().map(|l| l.len()).unwrap_or(0) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    let _ = relay_task.await;
    let _ = consumer_task.await;
    let mut lat = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort();

    // Raw baseline: JetStream publish straight to a pull consumer, same payloads, same rate.
    let raw_stream = format!("RAW_{}", env.id);
    let raw_subject = format!("raw{}.x", env.id);
    let js = env.js.clone();
    let stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: raw_stream.clone(),
            subjects: vec![raw_subject.clone()],
            storage: async_nats::jetstream::stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .expect("raw stream");
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("raw".into()),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("raw consumer");
    let sent = Arc::new(Mutex::new(HashMap::<u64, Instant>::new()));
    let raw_lat = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let (sent, raw_lat) = (sent.clone(), raw_lat.clone());
        tokio::spawn(async move {
            let mut msgs = consumer.messages().await.expect("messages");
            let mut got = 0;
            while got < expected {
                let Some(Ok(m)) = msgs.next().await else {
                    break;
                };
                let now = Instant::now();
                let key: u64 = std::str::from_utf8(&m.payload[..20])
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                if let (Some(t), Ok(mut l)) = (
                    sent.lock().ok().and_then(|s| s.get(&key).copied()),
                    raw_lat.lock(),
                ) {
                    l.push(now.saturating_duration_since(t));
                }
                let _ = m.ack().await;
                got += 1;
            }
        })
    };
    let body = {
        use prost::Message;
        rp_platform::contracts::events::v1::Envelope {
            meta: None,
            event: Some(event("ws", 1).event),
        }
        .encode_to_vec()
    };
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_sec));
    for i in 0..expected as u64 {
        tick.tick().await;
        let mut payload = format!("{i:>20}").into_bytes();
        payload.extend_from_slice(&body);
        let js = js.clone();
        let (sent, subject) = (sent.clone(), raw_subject.clone());
        if let Ok(mut s) = sent.lock() {
            s.insert(i, Instant::now());
        }
        tokio::spawn(async move {
            if let Ok(ack) = js.publish(subject, payload.into()).await {
                let _ = ack.await;
            }
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(60), reader).await;
    let _ = js.delete_stream(&raw_stream).await;
    let mut raw = raw_lat.lock().map(|l| l.clone()).unwrap_or_default();
    raw.sort();
    say(format!(
        "commit-to-consume at {per_sec}/s: p50 {:>6.1} ms  p99 {:>6.1} ms  ({} of {expected} measured)   raw JetStream publish-to-consume p50 {:>5.1} ms  p99 {:>5.1} ms   p99 ratio {:.1}   (target p99 <= 50 ms)",
        pct(&lat, 0.5).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() * 1e3,
        lat.len(),
        pct(&raw, 0.5).as_secs_f64() * 1e3,
        pct(&raw, 0.99).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() / pct(&raw, 0.99).as_secs_f64().max(1e-6),
    ));
    env.cleanup().await;
}
