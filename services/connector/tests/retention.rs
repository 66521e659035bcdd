//! Issue 12.10: the connector's own tables do not grow without bound. Finished pull jobs past
//! their retention leave when a new job is queued; OAuth states a day past their expiry leave
//! when a new flow starts (store.rs).

use connector::domain::IntegrationId;
use connector::store::{self, NewJob, PULL_JOB_RETENTION_DAYS};
use rp_platform::testing::TestEnv;

fn job(run: &str) -> NewJob {
    NewJob {
        sync_run_id: run.into(),
        integration_id: IntegrationId::generate(),
        workspace_id: uuid::Uuid::new_v4(),
        correlation_id: run.into(),
        causation_id: String::new(),
        traceparent: String::new(),
        tracestate: String::new(),
    }
}

#[tokio::test]
async fn finished_pull_jobs_past_their_retention_are_pruned_and_nothing_else() {
    let env = TestEnv::new().await;
    store::migrate(&env.pool).await.unwrap();
    let mut conn = env.pool.acquire().await.unwrap();
    for run in ["old-done", "old-failed", "old-running", "recent-done"] {
        assert!(store::enqueue_job(&mut conn, &job(run)).await.unwrap());
    }
    let age = |days: i32| format!("now() - interval '{days} days'");
    for (run, state, finished) in [
        ("old-done", "done", age(PULL_JOB_RETENTION_DAYS + 1)),
        ("old-failed", "failed", age(PULL_JOB_RETENTION_DAYS + 5)),
        ("recent-done", "done", age(PULL_JOB_RETENTION_DAYS - 1)),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE pull_jobs SET state = '{state}', finished_at = {finished} WHERE sync_run_id = '{run}'"
        )))
        .execute(&mut *conn)
        .await
        .unwrap();
    }
    // A long-running job is never pruned, whatever its age.
    sqlx::query(
        "UPDATE pull_jobs SET state = 'running', lease_owner = 'w', lease_until = now(), \
         created_at = now() - interval '90 days' WHERE sync_run_id = 'old-running'",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    assert!(store::enqueue_job(&mut conn, &job("new")).await.unwrap());
    let left: Vec<String> =
        sqlx::query_scalar("SELECT sync_run_id FROM pull_jobs ORDER BY sync_run_id")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    assert_eq!(left, ["new", "old-running", "recent-done"]);
    drop(conn);
    env.cleanup().await;
}
