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
