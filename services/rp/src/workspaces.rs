//! `rp workspaces create`: a workspace is born as `WorkspaceCreated` on `workspace-<new id>`.

use crate::Failure;
use crate::output::Output;
use clap::Subcommand;
use rp_platform::config::PlatformConfig;
use rp_platform::contracts::events::v1::{WorkspaceCreated, envelope::Event};
use rp_platform::eventlog::{EventStore, ExpectedVersion, NewEvent};
use rp_platform::ids::WorkspaceId;

#[derive(Subcommand)]
pub enum WorkspacesCmd {
    /// Create a workspace and print its id (API keys and connections belong to one).
    Create {
        /// Display name, e.g. "Acme Inc".
        #[arg(long, value_parser = parse_name)]
        name: String,
        /// Plan name; its lookback windows come from configuration.
        #[arg(long, default_value = "standard", value_parser = parse_plan)]
        plan: String,
    },
}

fn parse_name(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("a workspace needs a name".into());
    }
    if s.chars().count() > 200 {
        return Err("at most 200 characters".into());
    }
    if s.chars().any(char::is_control) {
        return Err("no control characters".into());
    }
    Ok(s.to_string())
}

fn parse_plan(s: &str) -> Result<String, String> {
    let s = s.trim();
    if !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        Ok(s.to_string())
    } else {
        Err("a plan name is 1-40 of a-z, 0-9, '-' and '_' (e.g. standard)".into())
    }
}

pub async fn run(cmd: WorkspacesCmd, config: &PlatformConfig, out: &Output) -> Result<(), Failure> {
    let pool = rp_platform::db::connect(&config.database_url, 2)
        .await
        .map_err(Failure::infra)?;
    let store = EventStore::new(pool);
    match cmd {
        WorkspacesCmd::Create { name, plan } => {
            let id = WorkspaceId::new(uuid::Uuid::new_v4());
            let event = NewEvent::new(
                id.to_string(),
                Event::WorkspaceCreated(WorkspaceCreated {
                    name: name.clone(),
                    plan: plan.clone(),
                }),
            );
            store
                .append(&id.stream(), ExpectedVersion::NoStream, vec![event])
                .await
                .map_err(Failure::infra)?;
            out.message(
                "workspace_created",
                &[
                    ("workspace_id", id.to_string()),
                    ("name", name.clone()),
                    ("plan", plan.clone()),
                ],
                &id.to_string(),
            );
            if !out.json() {
                eprintln!(
                    "Created workspace {name:?} on plan {plan}. Next: rp keys create --workspace {id}"
                );
            }
            Ok(())
        }
    }
}
