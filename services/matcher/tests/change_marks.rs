//! Changed records are found by their stamp (`matcher_changes`) above the workspace's
//! `matched_through` mark (migration 20261207600004, docs/storage.md). The claim: no record
//! stamped before a matching step moves the mark can commit after it and be skipped. An upsert
//! whose transaction is still open when a matching step starts holds the workspace's row in
//! share mode, so the step waits for it and then takes its record.

use matcher::domain::Change;
use rp_platform::contracts::events::v1::CrmCompany;
use rp_platform::ids::WorkspaceId;
use rp_platform::testing::{TestEnv, eventually};
use std::time::Duration;

fn company(id: &str, name: &str) -> CrmCompany {
    CrmCompany {
        id: id.into(),
        name: name.into(),
        domain: format!("{name}.example").to_lowercase(),
        ..Default::default()
    }
}

fn crm_ids(changes: &[Change]) -> Vec<String> {
    let mut ids: Vec<String> = changes
        .iter()
        .filter_map(|c| match c {
            Change::UpsertCrm(a) => Some(a.id.to_string()),
            _ => None,
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_record_upserted_while_a_matching_step_starts_is_taken_not_skipped() {
    let env = TestEnv::new().await;
    matcher::store::migrate(&env.pool)
        .await
        .expect("migrations");
    let ws = WorkspaceId::parse("0195f0a0-0000-7000-8000-000000000016").expect("a workspace id");

    // A first record, taken by a first step: the mark moves past it.
    let mut tx = env.pool.begin().await.expect("begin");
    matcher::store::upsert_companies(&mut tx, ws, &[company("1", "Acme")])
        .await
        .expect("upsert");
    tx.commit().await.expect("commit");
    let mut step = env.pool.begin().await.expect("begin");
    matcher::store::lock_workspace(&mut step, ws)
        .await
        .expect("lock");
    let first = matcher::store::take_dirty(&mut step, ws)
        .await
        .expect("take");
    step.commit().await.expect("commit");
    assert_eq!(crm_ids(&first), vec!["1"]);

    // An upsert stamps record 2 and stays open ...
    let mut upsert = env.pool.begin().await.expect("begin");
    matcher::store::upsert_companies(&mut upsert, ws, &[company("2", "Globex")])
        .await
        .expect("upsert");
    // ... while a matching step starts: it must wait for the upsert, not take nothing and move
    // the mark past record 2's stamp.
    let pool = env.pool.clone();
    let step = tokio::spawn(async move {
        let mut tx = pool.begin().await.expect("begin");
        matcher::store::lock_workspace(&mut tx, ws)
            .await
            .expect("lock");
        let taken = matcher::store::take_dirty(&mut tx, ws).await.expect("take");
        tx.commit().await.expect("commit");
        taken
    });
    eventually(
        Duration::from_secs(30),
        "the matching step to wait for the upsert's lock",
        || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&env.pool)
            .await
            .ok()?;
            (waiting > 0).then_some(())
        },
    )
    .await;
    assert!(!step.is_finished(), "the step waited for the open upsert");
    upsert.commit().await.expect("commit");
    let taken = step.await.expect("the step");
    assert_eq!(
        crm_ids(&taken),
        vec!["2"],
        "record 2 is taken once it commits"
    );

    // Nothing is taken twice.
    let mut tx = env.pool.begin().await.expect("begin");
    matcher::store::lock_workspace(&mut tx, ws)
        .await
        .expect("lock");
    assert!(
        matcher::store::take_dirty(&mut tx, ws)
            .await
            .expect("take")
            .is_empty()
    );
    tx.commit().await.expect("commit");
    env.cleanup().await;
}
