//! `rp`: the operators' command line for the event log and the bus.
//!
//! Exit codes: 0 success; 1 the infrastructure failed (database, NATS); 2 bad arguments;
//! 3 what was asked for does not exist.

use clap::{Parser, Subcommand};
use rp_platform::config::PlatformConfig;
use rp_platform::contracts::EVENT_TYPES;
use rp_platform::eventlog::{EventStore, ReadFilter, RecordedEvent};
use std::process::ExitCode;

mod client;
mod consumers;
mod keys;
mod output;
mod storage;
mod tokens;
mod workspaces;

#[derive(Parser)]
#[command(
    name = "rp",
    version,
    about = "Revenue Proven operations: event log, replays, consumers, migrations",
    after_help = "Connects with DATABASE_URL and NATS_URL (RP_BUS_PREFIX, RP_BUS_STREAM for the stream).\nExit codes: 0 ok, 1 infrastructure error, 2 bad arguments, 3 not found."
)]
struct Cli {
    /// Machine-readable output: one JSON object per line.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Read and replay the event log.
    Events {
        #[command(subcommand)]
        cmd: EventsCmd,
    },
    /// Each consumer's position, lag and dead-lettered messages.
    Consumers {
        /// List every dead-lettered message with its error.
        #[arg(long)]
        dead_letters: bool,
    },
    /// Create the database if needed and apply the event log's migrations (as the owner).
    Migrate {
        /// Also create (if needed) this PostgreSQL role and grant it what a service needs and
        /// no more: it can append to and read the event log but not update, delete, truncate or
        /// alter it (docs/security.md). Services then connect as it.
        #[arg(long, value_name = "NAME")]
        service_role: Option<String>,
    },
    /// Issue, revoke and list API keys.
    Keys {
        #[command(subcommand)]
        cmd: keys::KeysCmd,
    },
    /// The connector's sealed provider tokens (needs CONNECTOR_TOKEN_KEYS, CONNECTOR_TOKEN_KEY_ID).
    Tokens {
        #[command(subcommand)]
        cmd: tokens::TokensCmd,
    },
    /// Bytes per table (heap, TOAST, indexes) and rows, per owner, and projections ÷ event log
    /// (docs/storage.md).
    Storage {
        /// Also write this measurement to FILE (JSON), to compare a later one with.
        #[arg(long, value_name = "FILE")]
        save: Option<std::path::PathBuf>,
        /// Compare with a measurement saved by --save: each table's size then, and the growth.
        #[arg(long, value_name = "FILE")]
        baseline: Option<std::path::PathBuf>,
    },
    /// Create workspaces.
    Workspaces {
        #[command(subcommand)]
        cmd: workspaces::WorkspacesCmd,
    },
    /// The product's APIs (needs RP_API_KEY): connect, connections, health, sync-now.
    #[command(flatten)]
    Client(client::ClientCmd),
}

#[derive(Subcommand)]
enum EventsCmd {
    /// Events in log order after a position (the newest 20 by default).
    Tail {
        #[arg(long)]
        workspace: Option<String>,
        /// Event type (repeatable), e.g. SyncFailed.
        #[arg(long = "type", value_parser = parse_event_type)]
        types: Vec<String>,
        /// Start after this global position (0: from the beginning).
        #[arg(long, value_parser = clap::value_parser!(i64).range(0..))]
        from: Option<i64>,
        /// At most this many events (without --follow).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        limit: i64,
        /// Keep printing new events as they are appended, until Ctrl-C.
        #[arg(long, short)]
        follow: bool,
    },
    /// One stream's events in version order.
    Stream {
        stream_id: String,
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i64).range(1..))]
        from_version: i64,
    },
    /// Republish events from the log to the bus (safe to run twice: consumers are idempotent
    /// and JetStream drops copies inside its dedup window).
    Replay {
        /// Republish events after this position.
        #[arg(long, value_parser = clap::value_parser!(i64).range(0..))]
        from: i64,
        /// Up to and including this position (default: the end of the log).
        #[arg(long, value_parser = clap::value_parser!(i64).range(0..))]
        to: Option<i64>,
        #[arg(long)]
        workspace: Option<String>,
        #[arg(long = "type", value_parser = parse_event_type)]
        types: Vec<String>,
    },
}

fn parse_event_type(s: &str) -> Result<String, String> {
    if EVENT_TYPES.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "unknown event type; one of: {}",
            EVENT_TYPES.join(", ")
        ))
    }
}

/// An error with the exit code it deserves.
pub struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    pub fn infra(e: impl std::fmt::Display) -> Self {
        Self {
            code: 1,
            message: e.to_string(),
        }
    }
    pub fn usage(e: impl std::fmt::Display) -> Self {
        Self {
            code: 2,
            message: e.to_string(),
        }
    }
    pub fn not_found(e: impl std::fmt::Display) -> Self {
        Self {
            code: 3,
            message: e.to_string(),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    rp_platform::install_crypto_provider();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("rp: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let config = PlatformConfig::from_env().map_err(Failure::usage)?;
    let out = output::Output::new(cli.json);
    match cli.cmd {
        Cmd::Migrate { service_role } => {
            let created = rp_platform::db::ensure_database(&config.database_url)
                .await
                .map_err(Failure::infra)?;
            let pool = rp_platform::db::connect(&config.database_url, 2)
                .await
                .map_err(Failure::infra)?;
            rp_platform::db::migrate(&pool)
                .await
                .map_err(Failure::infra)?;
            if let Some(role) = &service_role {
                rp_platform::db::service_role_name(role).map_err(Failure::usage)?;
                rp_platform::db::grant_service_role(&pool, role)
                    .await
                    .map_err(Failure::infra)?;
                out.message(
                    "service_role",
                    &[("role", role.clone())],
                    &format!("role {role} may append to and read the event log, not change it"),
                );
            }
            out.message(
                "migrated",
                &[("database_created", created.to_string())],
                if created {
                    "created the database and applied the event log migrations"
                } else {
                    "event log migrations applied"
                },
            );
            Ok(())
        }
        Cmd::Events { cmd } => {
            let pool = rp_platform::db::connect(&config.database_url, 2)
                .await
                .map_err(Failure::infra)?;
            let store = EventStore::new(pool);
            events(cmd, &store, &config, &out).await
        }
        Cmd::Consumers { dead_letters } => consumers::show(&config, &out, dead_letters).await,
        Cmd::Keys { cmd } => keys::run(cmd, &config, &out).await,
        Cmd::Storage { save, baseline } => storage::show(&config, &out, save, baseline).await,
        Cmd::Workspaces { cmd } => workspaces::run(cmd, &config, &out).await,
        Cmd::Tokens { cmd } => tokens::run(cmd, &config, &out).await,
        Cmd::Client(cmd) => client::run(cmd, &out).await,
    }
}

async fn events(
    cmd: EventsCmd,
    store: &EventStore,
    config: &PlatformConfig,
    out: &output::Output,
) -> Result<(), Failure> {
    match cmd {
        EventsCmd::Tail {
            workspace,
            types,
            from,
            limit,
            follow,
        } => {
            let filter = ReadFilter {
                event_types: types,
                workspace_id: workspace,
            };
            let mut after = match from {
                Some(p) => p,
                None => {
                    let head = store.head_position().await.map_err(Failure::infra)?;
                    (head - limit).max(0)
                }
            };
            out.event_header();
            let page = store
                .read_all(after, limit, &filter)
                .await
                .map_err(Failure::infra)?;
            print_events(out, &page, &mut after);
            if !follow {
                return Ok(());
            }
            let mut listener = sqlx::postgres::PgListener::connect_with(store.pool())
                .await
                .map_err(Failure::infra)?;
            listener.listen("rp_events").await.map_err(Failure::infra)?;
            loop {
                let page = store
                    .read_all(after, 500, &filter)
                    .await
                    .map_err(Failure::infra)?;
                print_events(out, &page, &mut after);
                if page.len() == 500 {
                    continue;
                }
                tokio::select! {
                    _ = rp_platform::runtime::shutdown_signal() => return Ok(()),
                    r = listener.recv() => { r.map_err(Failure::infra)?; }
                    _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                }
            }
        }
        EventsCmd::Stream {
            stream_id,
            from_version,
        } => {
            if store
                .stream_version(&stream_id)
                .await
                .map_err(Failure::infra)?
                .is_none()
            {
                return Err(Failure::not_found(format!(
                    "no stream {stream_id:?} in the log"
                )));
            }
            out.event_header();
            let mut from = from_version;
            loop {
                let page = store
                    .read_stream(&stream_id, from, 500)
                    .await
                    .map_err(Failure::infra)?;
                let mut ignored = 0;
                print_events(out, &page, &mut ignored);
                match page.last() {
                    Some(last) if page.len() == 500 => from = last.version + 1,
                    _ => return Ok(()),
                }
            }
        }
        EventsCmd::Replay {
            from,
            to,
            workspace,
            types,
        } => {
            let to = to.unwrap_or(i64::MAX);
            if to < from {
                return Err(Failure::usage(format!("--to {to} is before --from {from}")));
            }
            let filter = ReadFilter {
                event_types: types,
                workspace_id: workspace,
            };
            let nats = rp_platform::bus::connect(&config.nats_url, "rp")
                .await
                .map_err(Failure::infra)?;
            let js = async_nats::jetstream::new(nats.clone());
            rp_platform::bus::ensure_stream(&js, &config.bus)
                .await
                .map_err(Failure::infra)?;
            let report = rp_platform::relay::replay(store, &js, &config.bus, from, to, &filter)
                .await
                .map_err(Failure::infra)?;
            let _ = nats.flush().await;
            out.message(
                "replayed",
                &[
                    ("published", report.published.to_string()),
                    ("duplicates", report.duplicates.to_string()),
                    ("last_position", report.last_position.to_string()),
                ],
                &format!(
                    "republished {} events up to position {} ({} were still on the stream and dropped as duplicates)",
                    report.published, report.last_position, report.duplicates
                ),
            );
            Ok(())
        }
    }
}

fn print_events(out: &output::Output, page: &[RecordedEvent], after: &mut i64) {
    for e in page {
        out.event(e);
        *after = e.position;
    }
}
