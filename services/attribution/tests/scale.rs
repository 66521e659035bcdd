//! The attribution step at the size of the typical workspace (docs/benchmarks.md: 5,000 engaged
//! organizations over 365 days, ~30 engagement rows each, 50,000 companies, 20,000 deals), on the
//! enterprise plan (four windows). Ignored by default (it takes a while on a small machine):
//! `cargo test -p attribution --release --test scale -- --ignored --nocapture`.

use attribution::config::Settings;
use attribution::domain::HalfLife;
use attribution::handlers;
use chrono::{Days, NaiveDate, TimeZone, Utc};
use rp_platform::contracts::events::v1::{
    AccountsMatched, CrmDeal, EngagementRow, Envelope, EventMeta, MatchChange, MatchChangeKind,
    RecordsPulled, WorkspaceCreated, envelope::Event,
};
use rp_platform::contracts::timestamp;
use rp_platform::eventlog::RecordedEvent;
use rp_platform::plans::{DEFAULT_PLANS, Plans};
use rp_platform::testing::TestEnv;
use std::time::Instant;

fn recorded(position: i64, ws: &str, at: chrono::DateTime<Utc>, event: Event) -> RecordedEvent {
    RecordedEvent {
        position,
        stream_id: "s".into(),
        version: position,
        recorded_at: at,
        envelope: Envelope {
            meta: Some(EventMeta {
                event_id: uuid::Uuid::now_v7().to_string(),
                workspace_id: ws.into(),
                occurred_at: Some(timestamp(at)),
                ..Default::default()
            }),
            event: Some(event),
        },
    }
}

/// A small deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[tokio::test]
#[ignore = "a benchmark: run it with --ignored --nocapture"]
async fn the_attribution_step_of_a_typical_workspace() {
    let env = TestEnv::new().await;
    attribution::store::migrate(&env.pool).await.unwrap();
    let settings = Settings {
        plans: Plans::parse(DEFAULT_PLANS).unwrap(),
        half_life: HalfLife::default(),
    };
    let ws = uuid::Uuid::new_v4().to_string();
    let as_of = Utc.with_ymd_and_hms(2026, 6, 30, 12, 0, 0).unwrap();
    let today = NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut events = vec![recorded(
        1,
        &ws,
        as_of,
        Event::WorkspaceCreated(WorkspaceCreated {
            name: "Typical".into(),
            plan: "enterprise".into(),
        }),
    )];
    // Engagement: 5,000 organizations, ~22 active days a year, 1-3 campaigns of 8.
    let mut rows = Vec::new();
    for org in 0..5_000u64 {
        let campaigns = 1 + rng.below(3);
        for _ in 0..(15 + rng.below(16)) {
            let day = today - Days::new(rng.below(365));
            for c in 0..campaigns {
                rows.push(EngagementRow {
                    organization_id: format!("{}", 100_000 + org),
                    campaign_id: format!("{}", 600 + (org + c) % 8),
                    date: day.format("%Y-%m-%d").to_string(),
                    impressions: 1 + rng.below(400) as i64,
                    clicks: rng.below(20) as i64,
                    engagements: rng.below(40) as i64,
                    ad_account_id: "1".into(),
                });
            }
        }
    }
    let n_rows = rows.len();
    for chunk in rows.chunks(5_000) {
        let n = events.len() as i64 + 1;
        events.push(recorded(
            n,
            &ws,
            as_of,
            Event::RecordsPulled(RecordsPulled {
                engagement: chunk.to_vec(),
                ..Default::default()
            }),
        ));
    }
    // 20,000 deals, 45% on the 3,500 matched organizations' companies.
    let mut deals = Vec::new();
    for i in 0..20_000u64 {
        let company = if rng.below(100) < 45 {
            rng.below(3_500)
        } else {
            rng.below(50_000)
        };
        let created = as_of - chrono::Duration::days(1 + rng.below(400) as i64);
        let stage = ["s-open", "s-won", "s-lost"][rng.below(3) as usize];
        deals.push(CrmDeal {
            id: format!("{}", 9_000_000 + i),
            amount: format!("{}.{:02}", 1_000 + rng.below(90_000), rng.below(100)),
            currency: "USD".into(),
            stage_id: stage.into(),
            pipeline_id: "p1".into(),
            created_at: Some(timestamp(created)),
            closed_at: (stage != "s-open")
                .then(|| timestamp(created + chrono::Duration::days(rng.below(60) as i64))),
            company_ids: vec![format!("c{company}")],
            ..Default::default()
        });
    }
    for chunk in deals.chunks(2_000) {
        let n = events.len() as i64 + 1;
        events.push(recorded(
            n,
            &ws,
            as_of,
            Event::RecordsPulled(RecordsPulled {
                deals: chunk.to_vec(),
                pipelines: vec![pipeline()],
                ..Default::default()
            }),
        ));
    }
    let changes: Vec<MatchChange> = (0..3_500u64)
        .map(|o| MatchChange {
            kind: MatchChangeKind::New as i32,
            linkedin_id: format!("{}", 100_000 + o),
            crm_id: format!("c{o}"),
            method: 1,
            score: 1.0,
            reason: "domain".into(),
        })
        .collect();
    let n = events.len() as i64 + 1;
    events.push(recorded(
        n,
        &ws,
        as_of,
        Event::AccountsMatched(AccountsMatched {
            sync_run_id: "run-1".into(),
            changes,
            ..Default::default()
        }),
    ));

    // Into the log (staged batches are read back from it), then through the handler.
    let stream = "records-run-1";
    for e in &events {
        let Some(event) = e.event().cloned() else {
            continue;
        };
        let mut new = rp_platform::eventlog::NewEvent::new(ws.clone(), event);
        new.occurred_at = as_of;
        env.store
            .append(
                stream,
                rp_platform::eventlog::ExpectedVersion::Any,
                vec![new],
            )
            .await
            .unwrap();
    }
    let logged = env
        .store
        .read_all(0, 10_000, &Default::default())
        .await
        .unwrap();
    let (last, records) = logged.split_last().unwrap();
    let t = Instant::now();
    let mut tx = env.pool.begin().await.unwrap();
    for e in records {
        handlers::apply(&mut tx, e, &settings).await.unwrap();
    }
    tx.commit().await.unwrap();
    let projection = t.elapsed();
    let t = Instant::now();
    let mut tx = env.pool.begin().await.unwrap();
    let switched = handlers::apply(&mut tx, last, &settings).await.unwrap();
    tx.commit().await.unwrap();
    let step = t.elapsed();
    assert!(switched.is_some());
    let size: i64 = sqlx::query_scalar(
        "SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c WHERE c.relname LIKE 'attribution_%' AND c.relkind = 'r'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    println!(
        "typical workspace: {n_rows} engagement rows, {} deals; staging {:.1}s; attribution step (apply the records, 4 windows) {:.1}s; tables {} MB",
        deals.len(),
        projection.as_secs_f64(),
        step.as_secs_f64(),
        size / 1_000_000
    );
    env.cleanup().await;
}

fn pipeline() -> rp_platform::contracts::events::v1::CrmPipeline {
    use rp_platform::contracts::events::v1::{CrmPipeline, CrmPipelineStage, StageKind};
    let s = |id: &str, kind: StageKind| CrmPipelineStage {
        id: id.into(),
        kind: kind as i32,
        ..Default::default()
    };
    CrmPipeline {
        id: "p1".into(),
        label: "Sales".into(),
        stages: vec![
            s("s-open", StageKind::Open),
            s("s-won", StageKind::Won),
            s("s-lost", StageKind::Lost),
        ],
    }
}
