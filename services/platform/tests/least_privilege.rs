//! Least privilege in PostgreSQL (issue 15.7): the owner migrates; a service connects as a role
//! that can append to and read the event log and keep its projections, but cannot change
//! history: UPDATE, DELETE, TRUNCATE and ALTER TABLE … DISABLE TRIGGER on `events` fail (the
//! superuser, by contrast, can switch the append-only trigger off).

use std::str::FromStr;

use rp_platform::apikeys;
use rp_platform::contracts::events::v1::{WorkspaceCreated, envelope::Event};
use rp_platform::eventlog::{EventStore, ExpectedVersion, NewEvent};
use rp_platform::ids::WorkspaceId;
use rp_platform::testing::TestEnv;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

fn workspace_created() -> Event {
    Event::WorkspaceCreated(WorkspaceCreated {
        name: "Acme".into(),
        plan: "growth".into(),
    })
}

async fn refused(pool: &sqlx::PgPool, sql: &str) -> String {
    match sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(pool)
        .await
    {
        Ok(r) => panic!(
            "{sql} succeeded as the service role ({} rows)",
            r.rows_affected()
        ),
        Err(sqlx::Error::Database(e)) => {
            assert_eq!(e.code().as_deref(), Some("42501"), "{sql}: {e}");
            e.message().to_string()
        }
        Err(e) => panic!("{sql}: {e}"),
    }
}

#[tokio::test]
async fn the_service_role_appends_and_reads_but_cannot_change_history() {
    let env = TestEnv::new().await;
    let role = format!(
        "rp_svc_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    rp_platform::db::grant_service_role(&env.pool, &role)
        .await
        .expect("the owner creates and grants the role");
    // Twice is fine (a second `rp migrate --service-role`).
    rp_platform::db::grant_service_role(&env.pool, &role)
        .await
        .unwrap();

    let opts = PgConnectOptions::from_str(&env.database_url)
        .unwrap()
        .username(&role);
    let svc = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(opts)
        .await
        .expect("the service connects as its role");
    let superuser: bool =
        sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&svc)
            .await
            .unwrap();
    assert!(!superuser);

    // The service's normal work: append, read, keep a projection (API keys: insert, update).
    let store = EventStore::new(svc.clone());
    let ws = WorkspaceId::new(uuid::Uuid::new_v4());
    store
        .append(
            &ws.stream(),
            ExpectedVersion::NoStream,
            vec![NewEvent::new(ws.to_string(), workspace_created())],
        )
        .await
        .expect("append as the service role");
    assert_eq!(
        store.read_stream(&ws.stream(), 1, 10).await.unwrap().len(),
        1
    );
    let key = apikeys::issue(&svc, ws, "svc")
        .await
        .expect("projection insert");
    apikeys::revoke(&svc, &key.key_id)
        .await
        .expect("projection update");

    // History cannot change.
    let m = refused(&svc, "UPDATE events SET event_type = 'Forged'").await;
    assert!(m.contains("permission denied"), "{m}");
    let m = refused(&svc, "DELETE FROM events").await;
    assert!(m.contains("permission denied"), "{m}");
    let m = refused(&svc, "TRUNCATE events").await;
    assert!(m.contains("permission denied"), "{m}");
    let m = refused(
        &svc,
        "ALTER TABLE events DISABLE TRIGGER events_append_only",
    )
    .await;
    assert!(m.contains("must be owner"), "{m}");
    refused(&svc, "DROP TRIGGER events_append_only ON events").await;
    refused(&svc, "CREATE TABLE forged (x int)").await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'Forged'")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);

    // The contrast: the superuser services used to connect as can switch the trigger off.
    let mut tx = env.pool.begin().await.unwrap();
    sqlx::query("ALTER TABLE events DISABLE TRIGGER events_append_only")
        .execute(&mut *tx)
        .await
        .expect("a superuser can disable the append-only trigger");
    tx.rollback().await.unwrap();

    svc.close().await;
    for s in [
        format!("DROP OWNED BY \"{role}\""),
        format!("DROP ROLE \"{role}\""),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(s))
            .execute(&env.pool)
            .await
            .unwrap();
    }
}

#[test]
fn role_names_cannot_smuggle_sql() {
    use rp_platform::db::service_role_name;
    assert!(service_role_name("rp_service").is_ok());
    for bad in [
        "",
        "Rp",
        "a\"; DROP TABLE events; --",
        "pg_read_all_data",
        "1abc",
        &"a".repeat(64),
    ] {
        assert!(service_role_name(bad).is_err(), "{bad}");
    }
}

/// A service started as the role migrates through `RP_MIGRATE_DATABASE_URL` (the owner); as the
/// role alone it cannot (it may not create tables), and says so.
#[tokio::test]
async fn a_service_runs_as_the_role_and_migrates_as_the_owner() {
    let env = TestEnv::new().await;
    let role = format!(
        "rp_svc_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    rp_platform::db::grant_service_role(&env.pool, &role)
        .await
        .unwrap();
    let as_role = with_user(&env.database_url, &role);

    let mut cfg = env.platform_config();
    cfg.database_url = as_role.clone();
    let Err(e) = rp_platform::runtime::Service::connect("least-privilege", cfg.clone()).await
    else {
        panic!("the role alone ran the migrations");
    };
    assert!(format!("{e:#}").contains("permission denied"), "{e:#}");

    cfg.migrate_database_url = Some(env.database_url.clone());
    let svc = rp_platform::runtime::Service::connect("least-privilege", cfg)
        .await
        .expect("starts as the role, migrating as the owner");
    let user: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&svc.pool)
        .await
        .unwrap();
    assert_eq!(user, role);
    let ws = WorkspaceId::new(uuid::Uuid::new_v4());
    svc.store
        .append(
            &ws.stream(),
            ExpectedVersion::NoStream,
            vec![NewEvent::new(ws.to_string(), workspace_created())],
        )
        .await
        .expect("the service appends as the role");
    svc.cancel.cancel();
    svc.wait().await.unwrap();
    svc_cleanup(&env, &role).await;
}

async fn svc_cleanup(env: &TestEnv, role: &str) {
    for s in [
        format!("DROP OWNED BY \"{role}\""),
        format!("DROP ROLE \"{role}\""),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(s))
            .execute(&env.pool)
            .await
            .unwrap();
    }
}

/// `url` with `user` (no password: the machine's PostgreSQL trusts local connections).
fn with_user(url: &str, user: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = match rest.split_once('/') {
        Some((auth, _)) if auth.contains('@') => rest.split_once('@').unwrap().1,
        _ => rest,
    };
    format!("{scheme}://{user}@{host}")
}
