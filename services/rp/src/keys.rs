//! `rp keys`: issue, revoke and list the API keys that gRPC calls authenticate with.
//!
//! A key is printed once, when it is created: only its SHA-256 is kept (in the log and in the
//! `api_keys` table), so a lost key is revoked and replaced, never recovered.
//!
//! A key is full (the default) or read-only (`--read-only`): a read-only key reads dashboards,
//! connections, health, runs, matches and notifications, and is refused (`PERMISSION_DENIED`) on
//! every call that changes the workspace ([`apikeys::WRITE_METHODS`]).

use crate::Failure;
use crate::output::Output;
use clap::Subcommand;
use rp_platform::apikeys::{self, ApiKeyError, KeyId, Revocation, Scope};
use rp_platform::config::PlatformConfig;
use rp_platform::ids::WorkspaceId;

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Issue an API key for a workspace. The key is printed once and cannot be shown again.
    Create {
        /// The workspace (UUID) the key acts for.
        #[arg(long, value_parser = parse_workspace)]
        workspace: WorkspaceId,
        /// What the key is for, e.g. "web app" or "ci".
        #[arg(long, default_value = "")]
        label: String,
        /// A read-only key: it can read (dashboards, connections, health, runs, matches,
        /// notifications) but not Sync Now, Disconnect, connect, change schedules, record match
        /// decisions or mark notifications read. Without it the key can do everything.
        #[arg(long)]
        read_only: bool,
    },
    /// Revoke a key: calls that use it are refused from now on.
    Revoke {
        /// The key id, as `rp keys list` shows it.
        #[arg(value_parser = parse_key_id)]
        key_id: KeyId,
    },
    /// A workspace's keys: ids, labels, scopes, when created and revoked (never the secrets).
    List {
        #[arg(long, value_parser = parse_workspace)]
        workspace: WorkspaceId,
    },
}

fn parse_workspace(s: &str) -> Result<WorkspaceId, String> {
    WorkspaceId::parse(s)
}

fn parse_key_id(s: &str) -> Result<KeyId, String> {
    KeyId::parse(s)
}

fn failure(e: ApiKeyError) -> Failure {
    match e {
        ApiKeyError::WorkspaceNotFound(_) | ApiKeyError::KeyNotFound(_) => Failure::not_found(e),
        ApiKeyError::InvalidLabel(_) => Failure::usage(e),
        ApiKeyError::Database(ref db) if is_missing_table(db) => {
            Failure::infra("the api_keys table does not exist yet: run `rp migrate` first")
        }
        ApiKeyError::Database(_) | ApiKeyError::Append(_) => Failure::infra(e),
    }
}

fn is_missing_table(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01"))
}

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

pub async fn run(cmd: KeysCmd, config: &PlatformConfig, out: &Output) -> Result<(), Failure> {
    let pool = rp_platform::db::connect(&config.database_url, 2)
        .await
        .map_err(Failure::infra)?;
    match cmd {
        KeysCmd::Create {
            workspace,
            label,
            read_only,
        } => {
            let scope = if read_only {
                Scope::ReadOnly
            } else {
                Scope::Full
            };
            let key = apikeys::issue_with_scope(&pool, workspace, &label, scope)
                .await
                .map_err(failure)?;
            let what = match key.scope {
                Scope::Full => "API key",
                Scope::ReadOnly => "read-only API key",
            };
            out.message(
                "key_created",
                &[
                    ("key_id", key.key_id.to_string()),
                    ("workspace_id", key.workspace_id.to_string()),
                    ("label", key.label.clone()),
                    ("scope", key.scope.to_string()),
                    ("key", key.plaintext.clone()),
                ],
                &format!(
                    "Created {what} {} for workspace {}.\n\n    {}\n\nThis is the only time the key is shown: store it now. Send it as `authorization: Bearer <key>`.",
                    key.key_id, key.workspace_id, key.plaintext
                ),
            );
            Ok(())
        }
        KeysCmd::Revoke { key_id } => {
            let done = apikeys::revoke(&pool, &key_id).await.map_err(failure)?;
            let (result, ws, sentence) = match done {
                Revocation::Revoked { workspace_id } => (
                    "key_revoked",
                    workspace_id,
                    format!("Revoked API key {key_id}: calls with it are refused from now on."),
                ),
                Revocation::AlreadyRevoked { workspace_id } => (
                    "key_already_revoked",
                    workspace_id,
                    format!("API key {key_id} was already revoked; nothing changed."),
                ),
            };
            out.message(
                result,
                &[
                    ("key_id", key_id.to_string()),
                    ("workspace_id", ws.to_string()),
                ],
                &sentence,
            );
            Ok(())
        }
        KeysCmd::List { workspace } => {
            let keys = apikeys::list(&pool, workspace).await.map_err(failure)?;
            let rows: Vec<Vec<String>> = keys
                .into_iter()
                .map(|k| {
                    vec![
                        k.key_id,
                        k.label,
                        k.scope,
                        time(Some(k.created_at)),
                        time(k.revoked_at),
                    ]
                })
                .collect();
            if rows.is_empty() && !out.json() {
                println!(
                    "Workspace {workspace} has no API keys. Create one with `rp keys create --workspace {workspace}`."
                );
                return Ok(());
            }
            out.table(
                &["KEY_ID", "LABEL", "SCOPE", "CREATED_AT", "REVOKED_AT"],
                &rows,
            );
            Ok(())
        }
    }
}
