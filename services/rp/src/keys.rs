//! `rp keys`: issue, revoke and list the API keys that gRPC calls authenticate with.
//!
//! A key is printed once, when it is created: only its SHA-256 is kept (in the log and in the
//! `api_keys` table), so a lost key is revoked and replaced, never recovered.

use crate::Failure;
use crate::output::Output;
use clap::Subcommand;
use rp_platform::apikeys::{self, ApiKeyError, KeyId, Revocation};
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
    },
    /// Revoke a key: calls that use it are refused from now on.
    Revoke {
        /// The key id, as `rp keys list` shows it.
        #[arg(value_parser = parse_key_id)]
        key_id: KeyId,
    },
    /// A workspace's keys: ids, labels, when created and revoked (never the secrets).
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
        KeysCmd::Create { workspace, label } => {
            let key = apikeys::issue(&pool, workspace, &label)
                .await
                .map_err(failure)?;
            out.message(
                "key_created",
                &[
                    ("key_id", key.key_id.to_string()),
                    ("workspace_id", key.workspace_id.to_string()),
                    ("label", key.label.clone()),
                    ("key", key.plaintext.clone()),
                ],
                &format!(
                    "Created API key {} for workspace {}.\n\n    {}\n\nThis is the only time the key is shown: store it now. Send it as `authorization: Bearer <key>`.",
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
            out.table(&["KEY_ID", "LABEL", "CREATED_AT", "REVOKED_AT"], &rows);
            Ok(())
        }
    }
}
