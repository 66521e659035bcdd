//! Events in, notifications out: the consumer that turns connection and sync events into
//! NotificationRaised / NotificationResolved on `notifications-<workspace>`.
//!
//! Per-workspace order (one workspace's events are handled in log order), so "is an incident
//! already open?" is answered by the projection as of the previous event. The projection
//! writes, the processed mark and the emitted events commit in one transaction (consumer
//! runtime), so a redelivered event raises nothing twice.

use crate::domain::{
    self, AccountChange, ConnectionsLink, Decision, DisconnectReason, Fact, FailureKind,
};
use crate::store;
use rp_platform::consumer::{ConsumerConfig, Handler, HandlerContext, HandlerError, Ordering};
use rp_platform::contracts::events::v1::{
    self as ev, NotificationRaised, NotificationResolved, NotificationUpdated, envelope::Event,
};
use rp_platform::eventlog::{ExpectedVersion, RecordedEvent};
use rp_platform::provider::Provider;
use uuid::Uuid;

/// Durable consumer name (and key of its processed marks).
pub const CONSUMER: &str = "notification";

/// What the handler listens to.
pub const EVENT_TYPES: &[&str] = &[
    "ConnectionConnected",
    "ConnectionReconnected",
    "ConnectionDisconnected",
    "SyncStarted",
    "SyncFailed",
    "SyncCompleted",
    "SyncScheduleSet",
];

pub fn consumer_config() -> ConsumerConfig {
    ConsumerConfig::new(CONSUMER, Ordering::PerWorkspace).event_types(EVENT_TYPES)
}

pub struct NotificationHandler {
    link: ConnectionsLink,
}

impl NotificationHandler {
    pub fn new(link: ConnectionsLink) -> Self {
        Self { link }
    }
}

fn failure_kind(k: ev::FailureKind) -> FailureKind {
    match k {
        ev::FailureKind::ProviderOutage => FailureKind::ProviderOutage,
        ev::FailureKind::BadPayload => FailureKind::BadPayload,
        ev::FailureKind::Authorization => FailureKind::Authorization,
        ev::FailureKind::RateLimited => FailureKind::RateLimited,
        ev::FailureKind::Internal => FailureKind::Internal,
        ev::FailureKind::ApiVersion => FailureKind::ApiVersion,
        ev::FailureKind::Stalled => FailureKind::Stalled,
        ev::FailureKind::Unspecified => FailureKind::Unspecified,
    }
}

fn failure_kind_event(k: FailureKind) -> ev::FailureKind {
    match k {
        FailureKind::ProviderOutage => ev::FailureKind::ProviderOutage,
        FailureKind::BadPayload => ev::FailureKind::BadPayload,
        FailureKind::Authorization => ev::FailureKind::Authorization,
        FailureKind::RateLimited => ev::FailureKind::RateLimited,
        FailureKind::Internal => ev::FailureKind::Internal,
        FailureKind::ApiVersion => ev::FailureKind::ApiVersion,
        FailureKind::Stalled => ev::FailureKind::Stalled,
        FailureKind::Unspecified => ev::FailureKind::Unspecified,
    }
}

/// A promise as the events carry it: the failure kind and the time the text names.
fn promise_fields(
    promise: Option<domain::Promise>,
) -> (i32, Option<chrono::DateTime<chrono::Utc>>) {
    promise.map_or((ev::FailureKind::Unspecified as i32, None), |p| {
        (failure_kind_event(p.kind) as i32, p.next_attempt_at)
    })
}

fn disconnect_reason(r: ev::DisconnectReason) -> DisconnectReason {
    match r {
        ev::DisconnectReason::UserRequested => DisconnectReason::UserRequested,
        ev::DisconnectReason::AuthorizationRevoked => DisconnectReason::AuthorizationRevoked,
        ev::DisconnectReason::AuthorizationExpired => DisconnectReason::AuthorizationExpired,
        ev::DisconnectReason::AuthorizationExpiredOrRevoked => {
            DisconnectReason::AuthorizationExpiredOrRevoked
        }
        ev::DisconnectReason::Unspecified => DisconnectReason::Unspecified,
    }
}

/// The fact an event states about its integration, for the events that state one.
fn fact_of(event: &Event) -> Option<Fact> {
    match event {
        Event::SyncFailed(f) => Some(Fact::SyncFailed {
            kind: failure_kind(f.kind()),
            next_attempt_at: f
                .next_attempt_at
                .as_ref()
                .and_then(rp_platform::contracts::from_timestamp),
        }),
        Event::ConnectionDisconnected(d) => Some(Fact::Disconnected {
            reason: disconnect_reason(d.reason()),
            provider_message: d.provider_message.clone(),
        }),
        Event::ConnectionReconnected(r) => Some(Fact::Reconnected {
            account_change: (!r.previous_external_account_id.is_empty()).then(|| AccountChange {
                previous: r.previous_external_account_id.clone(),
                current: r.external_account_id.clone(),
            }),
        }),
        Event::SyncCompleted(_) => Some(Fact::SyncCompleted),
        Event::SyncScheduleSet(s) => Some(Fact::ScheduleChanged {
            next_scheduled_sync_at: s
                .next_scheduled_sync_at
                .as_ref()
                .and_then(rp_platform::contracts::from_timestamp),
        }),
        _ => None,
    }
}

impl Handler for NotificationHandler {
    async fn handle(
        &self,
        ctx: &mut HandlerContext,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        // An event type newer than this reader: nothing to do.
        let Some(body) = event.event() else {
            return Ok(());
        };
        let workspace_id = rp_platform::consumer::workspace_of(event)?;
        let integration_id = event.meta().integration_id.clone();

        let named = store::provider_in(body);
        if let (Some(p), false) = (named, integration_id.is_empty()) {
            store::learn_provider(&mut ctx.tx, &integration_id, workspace_id, p)
                .await
                .map_err(retry)?;
        }
        let Some(fact) = fact_of(body) else {
            return Ok(());
        };
        if integration_id.is_empty() {
            return match fact {
                // A notification must say which integration: this is a producer's bug, for
                // operators to see in the dead letters.
                Fact::SyncFailed { .. } | Fact::Disconnected { .. } => {
                    Err(HandlerError::Reject(format!(
                        "{} has no integration_id: cannot tell the user which integration was affected",
                        event.event_type()
                    )))
                }
                Fact::Reconnected { .. } | Fact::SyncCompleted | Fact::ScheduleChanged { .. } => {
                    tracing::warn!(
                        event_type = event.event_type(),
                        "event without integration_id: it ends no incident"
                    );
                    Ok(())
                }
            };
        }

        let provider = match named {
            Some(p) => Some(p),
            None => store::provider_of(&mut ctx.tx, &integration_id)
                .await
                .map_err(retry)?,
        };
        let open = store::open_incidents(&mut ctx.tx, workspace_id, &integration_id)
            .await
            .map_err(retry)?;
        let now = event
            .meta()
            .occurred_at
            .as_ref()
            .and_then(rp_platform::contracts::from_timestamp)
            .unwrap_or(event.recorded_at);
        let subject = domain::Subject {
            integration_id,
            provider,
        };
        let decisions = domain::decide(&open, &subject, &fact, now);

        let mut emitted = Vec::with_capacity(decisions.len());
        for decision in decisions {
            let (body, what) = match decision {
                Decision::Raise(d) => {
                    let id = Uuid::now_v7();
                    let (failure_kind, next_attempt_at) = promise_fields(d.promise);
                    tracing::info!(notification_id = %id, kind = d.kind.code(), incident = %d.incident, "notification raised");
                    (
                        Event::NotificationRaised(NotificationRaised {
                            notification_id: id.to_string(),
                            provider: provider.map_or(ev::Provider::Unspecified, Provider::to_event)
                                as i32,
                            incident_key: d.incident.to_string(),
                            title: d.title,
                            body: d.body,
                            action: d.action,
                            link: self.link.as_str().to_string(),
                            kind: d.kind.code().to_string(),
                            resolves_notification_id: d
                                .resolves
                                .map(|r| r.to_string())
                                .unwrap_or_default(),
                            failure_kind,
                            next_attempt_at: next_attempt_at.map(rp_platform::contracts::timestamp),
                        }),
                        "raised",
                    )
                }
                Decision::Update {
                    notification_id,
                    draft,
                } => {
                    tracing::info!(notification_id = %notification_id, incident = %draft.incident, "notification updated: what it promised changed");
                    let (failure_kind, next_attempt_at) = promise_fields(draft.promise);
                    (
                        Event::NotificationUpdated(NotificationUpdated {
                            notification_id: notification_id.to_string(),
                            incident_key: draft.incident.to_string(),
                            title: draft.title,
                            body: draft.body,
                            action: draft.action,
                            failure_kind,
                            next_attempt_at: next_attempt_at.map(rp_platform::contracts::timestamp),
                        }),
                        "updated",
                    )
                }
                Decision::Resolve {
                    notification_id,
                    incident,
                } => {
                    tracing::info!(notification_id = %notification_id, incident = %incident, "incident resolved");
                    (
                        Event::NotificationResolved(NotificationResolved {
                            notification_id: notification_id.to_string(),
                            incident_key: incident.to_string(),
                        }),
                        "resolved",
                    )
                }
            };
            let new = ctx.new_event(body);
            let changed = store::apply(
                &mut ctx.tx,
                workspace_id,
                &new.integration_id,
                new.occurred_at,
                &new.event,
            )
            .await
            .map_err(retry)?;
            tracing::debug!(what, changed, "applied to the projection");
            emitted.push(new);
        }
        ctx.emit(
            workspace_id.notifications_stream(),
            ExpectedVersion::Any,
            emitted,
        );
        Ok(())
    }
}

fn retry(e: store::StoreError) -> HandlerError {
    match e {
        store::StoreError::Database(db) => HandlerError::Database(db),
        other => HandlerError::Retry(other.to_string()),
    }
}
