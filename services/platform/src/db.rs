//! PostgreSQL connections and the platform's migrations.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    Url(String),
    #[error("cannot reach PostgreSQL at {target}: {message}")]
    Connect { target: String, message: String },
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("PostgreSQL: {0}")]
    Query(#[from] sqlx::Error),
}

fn options(url: &str) -> Result<PgConnectOptions, DbError> {
    PgConnectOptions::from_str(url)
        .map(|o| o.disable_statement_logging())
        .map_err(|e| DbError::Url(e.to_string()))
}

fn describe(o: &PgConnectOptions) -> String {
    format!(
        "{}:{}/{}",
        o.get_host(),
        o.get_port(),
        o.get_database().unwrap_or("")
    )
}

/// Limits every service session carries, so that one stalled session (a process stopped or cut
/// off mid-transaction) cannot hold the log's append lock, or any lock, for ever; `Duration::ZERO`
/// turns one off. From `RP_DB_STATEMENT_TIMEOUT`, `RP_DB_LOCK_TIMEOUT` and
/// `RP_DB_IDLE_IN_TRANSACTION_TIMEOUT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// The longest one statement may run (PostgreSQL `statement_timeout`).
    pub statement_timeout: Duration,
    /// The longest a statement waits for a lock, the append lock included (`lock_timeout`).
    pub lock_timeout: Duration,
    /// The longest a transaction may sit idle before the server ends the session and releases
    /// its locks (`idle_in_transaction_session_timeout`).
    pub idle_in_transaction: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            statement_timeout: Duration::from_secs(600),
            lock_timeout: Duration::from_secs(60),
            idle_in_transaction: Duration::from_secs(60),
        }
    }
}

impl SessionLimits {
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        let d = Self::default();
        Ok(Self {
            statement_timeout: crate::config::duration_or(
                "RP_DB_STATEMENT_TIMEOUT",
                d.statement_timeout,
            )?,
            lock_timeout: crate::config::duration_or("RP_DB_LOCK_TIMEOUT", d.lock_timeout)?,
            idle_in_transaction: crate::config::duration_or(
                "RP_DB_IDLE_IN_TRANSACTION_TIMEOUT",
                d.idle_in_transaction,
            )?,
        })
    }

    fn apply(&self, opts: PgConnectOptions) -> PgConnectOptions {
        let ms = |d: Duration| d.as_millis().to_string();
        opts.options([
            ("statement_timeout", ms(self.statement_timeout)),
            ("lock_timeout", ms(self.lock_timeout)),
            (
                "idle_in_transaction_session_timeout",
                ms(self.idle_in_transaction),
            ),
        ])
    }
}

/// A connection pool with the default [`SessionLimits`]; fails within a few seconds, naming the
/// server, when it is not reachable.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, DbError> {
    connect_with(url, max_connections, SessionLimits::default()).await
}

/// A connection pool whose sessions carry `limits`.
pub async fn connect_with(
    url: &str,
    max_connections: u32,
    limits: SessionLimits,
) -> Result<PgPool, DbError> {
    let opts = limits.apply(options(url)?);
    let target = describe(&opts);
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await
        .map_err(|e| DbError::Connect {
            target,
            message: e.to_string(),
        })
}

/// Creates the database named in `url` when it does not exist (connecting to the server's
/// `postgres` database to do so).
pub async fn ensure_database(url: &str) -> Result<bool, DbError> {
    let opts = options(url)?;
    let Some(name) = opts.get_database().map(str::to_string) else {
        return Ok(false);
    };
    let admin = opts.clone().database("postgres");
    let target = describe(&admin);
    let mut conn = admin.connect().await.map_err(|e| DbError::Connect {
        target,
        message: e.to_string(),
    })?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await?;
    if exists {
        return Ok(false);
    }
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    match sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
        .execute(&mut conn)
        .await
    {
        Ok(_) => Ok(true),
        // another process created it meanwhile
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Applies the platform's migrations (event log, relay checkpoints, consumer bookkeeping).
/// Services apply their own projection migrations beside these; each migrator ignores the
/// others' entries.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator.run(pool).await?;
    Ok(())
}

/// A PostgreSQL role name we create and quote ourselves: lower-case letters, digits and `_`,
/// starting with a letter or `_`, at most 63 characters (no quoting tricks possible).
pub fn service_role_name(name: &str) -> Result<&str, String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok && !name.starts_with("pg_") {
        Ok(name)
    } else {
        Err(format!(
            "{:?} is not a role name we create: lower-case letters, digits and _, at most 63, not pg_…",
            name.chars().take(80).collect::<String>()
        ))
    }
}

/// Tables a service may insert into and read, never change: the event log.
pub const APPEND_ONLY_TABLES: [&str; 1] = ["events"];

/// Least privilege (issue 15.7): creates `role` (LOGIN, no password: give it one, or a
/// certificate, out of band) when it does not exist, and grants it what a service needs in this
/// database and nothing more: read and write the projections, read and append to the event log
/// ([`APPEND_ONLY_TABLES`]) but not update, delete or truncate it, use sequences, run our
/// functions. Tables the current user (the owner, who runs migrations) creates later are granted
/// the same way (default privileges). The role owns nothing, so it cannot alter a table, disable
/// a trigger or create one. Run as the owner, after the migrations (`rp migrate --service-role`).
pub async fn grant_service_role(pool: &PgPool, role: &str) -> Result<(), DbError> {
    let role = service_role_name(role).map_err(|m| DbError::Connect {
        target: "the service role".into(),
        message: m,
    })?;
    let mut tx = pool.begin().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(role)
            .fetch_one(&mut *tx)
            .await?;
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut *tx)
        .await?;
    let db = db.replace('"', "\"\"");
    let mut statements = Vec::new();
    if !exists {
        statements.push(format!(
            "CREATE ROLE \"{role}\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS"
        ));
    }
    statements.extend([
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC".to_string(),
        format!("GRANT CONNECT, TEMPORARY ON DATABASE \"{db}\" TO \"{role}\""),
        format!("GRANT USAGE ON SCHEMA public TO \"{role}\""),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO \"{role}\""),
        format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO \"{role}\""),
        format!("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO \"{role}\""),
        format!("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO \"{role}\""),
        format!("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO \"{role}\""),
        format!("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO \"{role}\""),
    ]);
    for table in APPEND_ONLY_TABLES {
        statements.push(format!(
            "REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES ON {table} FROM \"{role}\""
        ));
    }
    for s in statements {
        sqlx::query(sqlx::AssertSqlSafe(s))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
