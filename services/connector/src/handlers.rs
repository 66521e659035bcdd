//! Events in: SyncRequested becomes a pull job (the pull itself runs in the pull worker, outside
//! this transaction: it takes minutes, and appends inside a handler's transaction would hold the
//! log's append lock all that time); WorkspaceCreated records the workspace's plan.
//!
//! A sync of an integration that is not connected is not pulled: the run ends at once with
//! SyncFailed (authorization), in this handler's transaction.

use chrono::Utc;
use rp_platform::consumer::{ConsumerConfig, Handler, HandlerContext, HandlerError, Ordering};
use rp_platform::contracts::events::v1::{FailureKind, SyncStep, envelope::Event};
use rp_platform::eventlog::{ExpectedVersion, RecordedEvent};
use uuid::Uuid;

use crate::domain::failure::disconnected_message;
use crate::domain::{ConnectionStatus, DisconnectReason, IntegrationId, SyncRunId};
use crate::store::{self, NewJob};
use crate::sync::domain::{Command, Failure, decide};

/// The connector's consumer: per-workspace order, only the events it handles.
pub fn consumer_config() -> ConsumerConfig {
    ConsumerConfig::new("connector", Ordering::PerWorkspace)
        .event_types(&["SyncRequested", "WorkspaceCreated"])
}

#[derive(Debug, Default)]
pub struct SyncRequests;

/// Ends the run as failed, through the run's own rules (a run that already ended stays so).
async fn fail_run(
    ctx: &mut HandlerContext,
    run: &SyncRunId,
    kind: FailureKind,
    message: String,
    integration_id: &str,
) -> Result<(), HandlerError> {
    let current = crate::sync::store::load_run(&mut ctx.tx, run, i64::MAX)
        .await
        .map_err(|e| HandlerError::Retry(e.to_string()))?
        .after;
    let failure = Failure {
        kind,
        step: SyncStep::Unspecified,
        message,
        location: String::new(),
        next_attempt_at: None,
    };
    let Ok(events) = decide(&current, Command::Fail(failure), Utc::now()) else {
        return Ok(());
    };
    let events = events
        .into_iter()
        .map(|e| ctx.new_event(e).integration(integration_id.to_string()))
        .collect();
    ctx.emit(run.run_stream(), ExpectedVersion::Any, events);
    Ok(())
}

impl Handler for SyncRequests {
    async fn handle(
        &self,
        ctx: &mut HandlerContext,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        match event.event() {
            Some(Event::WorkspaceCreated(w)) => {
                let Ok(ws) = Uuid::parse_str(event.workspace_id()) else {
                    return Err(HandlerError::Reject(format!(
                        "WorkspaceCreated for workspace {:?}, which is not a UUID",
                        event.workspace_id()
                    )));
                };
                store::set_plan(&mut ctx.tx, ws, w.plan.trim()).await?;
                Ok(())
            }
            Some(Event::SyncRequested(r)) => {
                let run = SyncRunId::parse(&r.sync_run_id).map_err(HandlerError::Reject)?;
                let meta = event.meta().clone();
                let (Ok(ws), Ok(id)) = (
                    Uuid::parse_str(&meta.workspace_id),
                    IntegrationId::parse(&meta.integration_id),
                ) else {
                    fail_run(
                        ctx,
                        &run,
                        FailureKind::Internal,
                        format!(
                            "this sync names no valid workspace and integration (workspace {:?}, integration {:?})",
                            meta.workspace_id, meta.integration_id
                        ),
                        &meta.integration_id,
                    )
                    .await?;
                    return Ok(());
                };
                let conn = store::connection(&mut ctx.tx, id).await?;
                match conn {
                    Some(c) if c.workspace_id == ws && c.status == ConnectionStatus::Connected => {
                        let correlation_id = if meta.correlation_id.is_empty() {
                            run.to_string()
                        } else {
                            meta.correlation_id.clone()
                        };
                        let job = NewJob {
                            sync_run_id: run.to_string(),
                            integration_id: id,
                            workspace_id: ws,
                            correlation_id,
                            causation_id: event.event_id().to_string(),
                            traceparent: meta.traceparent.clone(),
                            tracestate: meta.tracestate.clone(),
                        };
                        if store::enqueue_job(&mut ctx.tx, &job).await? {
                            tracing::info!(sync_run_id = %run, integration_id = %id, "pull queued");
                        }
                    }
                    Some(c) if c.workspace_id == ws => {
                        let message = match c.status {
                            ConnectionStatus::Disconnected => disconnected_message(
                                c.provider,
                                c.disconnect_reason
                                    .unwrap_or(DisconnectReason::UserRequested),
                                &c.provider_message,
                            ),
                            _ => format!(
                                "{} is not connected yet: connect it on the Connections page.",
                                c.provider
                            ),
                        };
                        tracing::info!(sync_run_id = %run, integration_id = %id, status = c.status.as_str(), "sync of a connection that is not connected: not pulled");
                        fail_run(
                            ctx,
                            &run,
                            FailureKind::Authorization,
                            message,
                            &meta.integration_id,
                        )
                        .await?;
                    }
                    _ => {
                        fail_run(
                            ctx,
                            &run,
                            FailureKind::Authorization,
                            format!(
                                "workspace {ws} has no integration {id}: connect it on the Connections page."
                            ),
                            &meta.integration_id,
                        )
                    .await?;
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
