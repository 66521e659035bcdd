//! gRPC `rp.api.v1.Sync`: connection health for the Connections page, Sync Now, schedules and
//! sync run history. Every call is authenticated with the workspace's API key.

use crate::runs::{self, RequestError, SyncRequest};
use crate::schedule::{Clock, DailySchedule};
use chrono::{DateTime, Utc};
use futures::Stream;
use rp_platform::apikeys::{self, Caller};
use rp_platform::contracts::api::v1::{
    ConnectionHealth, ConnectionStatus, GetConnectionHealthRequest, GetSyncRunRequest,
    IntegrationHealth, ListSyncRunsRequest, ListSyncRunsResponse, SetSyncScheduleRequest,
    SyncNowRequest, SyncNowResponse, SyncRun, SyncRunStep, sync_server,
};
use rp_platform::contracts::events::v1::{SyncScheduleSet, SyncTrigger, envelope::Event};
use rp_platform::contracts::timestamp;
use rp_platform::eventlog::{ExpectedVersion, NewEvent};
use rp_platform::grpc;
use sqlx::PgPool;
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct SyncApi<C: Clock> {
    pool: PgPool,
    clock: Arc<C>,
}

impl<C: Clock> SyncApi<C> {
    pub fn new(pool: PgPool, clock: Arc<C>) -> Self {
        Self { pool, clock }
    }

    pub fn into_server(self) -> sync_server::SyncServer<Self> {
        sync_server::SyncServer::new(self)
    }

    async fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        apikeys::authenticate(&self.pool, req.metadata()).await
    }

    /// The workspace of an integration, checked against the caller's.
    async fn owned_integration(
        &self,
        caller: &Caller,
        integration_id: &str,
    ) -> Result<String, Status> {
        if uuid::Uuid::parse_str(integration_id).is_err() {
            return Err(grpc::invalid_argument(
                "integration_id",
                "must be the integration's UUID",
            ));
        }
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| grpc::unavailable("reading the integration", &e))?;
        let facts = runs::connection_facts(&mut conn, integration_id)
            .await
            .map_err(|e| grpc::unavailable("reading the integration", &e))?
            .ok_or_else(|| grpc::not_found(format!("no integration {integration_id}")))?;
        caller.authorize(&facts.workspace_id)?;
        Ok(facts.workspace_id)
    }
}

type Row = (
    String,
    i32,
    bool,
    i32,
    String,
    String,
    String,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    String,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<i32>,
);

/// The health of one workspace's integrations at `now`.
pub async fn workspace_health(
    pool: &PgPool,
    workspace_id: &str,
    now: DateTime<Utc>,
) -> Result<ConnectionHealth, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT i.integration_id, i.provider, i.connected, i.disconnect_reason, i.provider_message, \
                i.schedule_local_time, i.schedule_time_zone, i.last_success_at, i.last_attempt_at, \
                i.last_outcome, i.active_run_id, i.catch_up_at, r.current_step \
         FROM sync_integrations i LEFT JOIN sync_runs r ON r.sync_run_id = i.active_run_id \
         WHERE i.workspace_id = $1 ORDER BY i.provider, i.integration_id",
    )
    .bind(workspace_id)
    .fetch_all(pool)
    .await?;
    let integrations = rows
        .into_iter()
        .map(
            |(
                id,
                provider,
                connected,
                reason,
                message,
                t,
                z,
                success,
                attempt,
                outcome,
                active,
                catch_up,
                step,
            )| {
                let schedule = DailySchedule::parse(&t, &z).ok();
                let next = if connected {
                    catch_up.or_else(|| schedule.map(|s| s.next_slot_after(now)))
                } else {
                    None
                };
                IntegrationHealth {
                    integration_id: id,
                    provider,
                    status: if connected {
                        ConnectionStatus::Connected
                    } else {
                        ConnectionStatus::Disconnected
                    } as i32,
                    disconnect_reason: if connected {
                        String::new()
                    } else {
                        runs::disconnect_reason_words(reason, provider)
                    },
                    provider_message: if connected { String::new() } else { message },
                    last_successful_sync_at: success.map(timestamp),
                    last_attempt_at: attempt.map(timestamp),
                    last_attempt_outcome: outcome,
                    next_scheduled_sync_at: next.map(timestamp),
                    schedule_local_time: t,
                    schedule_time_zone: z,
                    running_sync_run_id: active.unwrap_or_default(),
                    current_step: step.unwrap_or(0),
                }
            },
        )
        .collect();
    Ok(ConnectionHealth {
        workspace_id: workspace_id.to_string(),
        integrations,
    })
}

type RunRow = (
    String,
    String,
    i32,
    i32,
    String,
    i32,
    i32,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    String,
);

const RUN_COLUMNS: &str = "sync_run_id, integration_id, provider, trigger, state, current_step, failure_kind, \
     failure_message, failure_location, requested_at, started_at, finished_at, next_attempt_at, workspace_id";

async fn load_run(pool: &PgPool, r: RunRow) -> Result<SyncRun, sqlx::Error> {
    type StepRow = (i32, DateTime<Utc>, Option<DateTime<Utc>>, i64);
    let steps: Vec<StepRow> = sqlx::query_as(
        "SELECT step, started_at, completed_at, records FROM sync_run_steps WHERE sync_run_id = $1 ORDER BY started_at, step",
    )
    .bind(&r.0)
    .fetch_all(pool)
    .await?;
    Ok(SyncRun {
        sync_run_id: r.0,
        integration_id: r.1,
        provider: r.2,
        trigger: r.3,
        state: r.4,
        current_step: r.5,
        failure_kind: r.6,
        failure_message: r.7,
        failure_location: r.8,
        requested_at: Some(timestamp(r.9)),
        started_at: r.10.map(timestamp),
        finished_at: r.11.map(timestamp),
        next_attempt_at: r.12.map(timestamp),
        workspace_id: r.13,
        steps: steps
            .into_iter()
            .map(|(step, s, c, n)| SyncRunStep {
                step,
                started_at: Some(timestamp(s)),
                completed_at: c.map(timestamp),
                records: n.max(0) as u64,
            })
            .collect(),
    })
}

fn db(op: &'static str) -> impl Fn(sqlx::Error) -> Status {
    move |e| grpc::unavailable(op, &e)
}

pub type HealthStream = Pin<Box<dyn Stream<Item = Result<ConnectionHealth, Status>> + Send>>;

#[tonic::async_trait]
impl<C: Clock> sync_server::Sync for SyncApi<C> {
    async fn get_connection_health(
        &self,
        request: Request<GetConnectionHealthRequest>,
    ) -> Result<Response<ConnectionHealth>, Status> {
        let caller = self.caller(&request).await?;
        let ws = caller.authorize(&request.get_ref().workspace_id)?;
        let health = workspace_health(&self.pool, &ws.to_string(), self.clock.now())
            .await
            .map_err(db("reading connection health"))?;
        Ok(Response::new(health))
    }

    type WatchConnectionHealthStream = HealthStream;

    async fn watch_connection_health(
        &self,
        request: Request<GetConnectionHealthRequest>,
    ) -> Result<Response<Self::WatchConnectionHealthStream>, Status> {
        let caller = self.caller(&request).await?;
        let ws = caller
            .authorize(&request.get_ref().workspace_id)?
            .to_string();
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool)
            .await
            .map_err(db("watching connection health"))?;
        listener
            .listen(runs::HEALTH_CHANNEL)
            .await
            .map_err(db("watching connection health"))?;
        let (pool, clock) = (self.pool.clone(), self.clock.clone());
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let mut last: Option<ConnectionHealth> = None;
            loop {
                let health = match workspace_health(&pool, &ws, clock.now()).await {
                    Ok(h) => h,
                    Err(e) => {
                        let _ = tx
                            .send(Err(grpc::unavailable("reading connection health", &e)))
                            .await;
                        return;
                    }
                };
                if last.as_ref() != Some(&health) {
                    if tx.send(Ok(health.clone())).await.is_err() {
                        return; // the client went away
                    }
                    last = Some(health);
                }
                // Wait for a change in this workspace (or the client leaving).
                loop {
                    tokio::select! {
                        _ = tx.closed() => return,
                        n = listener.recv() => match n {
                            Ok(n) if n.payload() == ws => break,
                            Ok(_) => continue,
                            Err(e) => {
                                let _ = tx.send(Err(grpc::unavailable("watching connection health", &e))).await;
                                return;
                            }
                        }
                    }
                }
            }
        });
        let stream: HealthStream = Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx));
        Ok(Response::new(stream))
    }

    async fn sync_now(
        &self,
        request: Request<SyncNowRequest>,
    ) -> Result<Response<SyncNowResponse>, Status> {
        let caller = self.caller(&request).await?;
        let integration_id = request.get_ref().integration_id.trim().to_string();
        self.owned_integration(&caller, &integration_id).await?;
        let span = tracing::info_span!("sync_now", integration_id = %integration_id, workspace_id = %caller.workspace_id);
        let _entered = span.enter();
        let req = SyncRequest {
            integration_id,
            caller_workspace: Some(caller.workspace_id.to_string()),
            trigger: SyncTrigger::Manual,
            requested_by: format!("api-key:{}", caller.key_id),
            scheduled_for: None,
        };
        drop(_entered);
        let r = {
            use tracing::Instrument;
            runs::request_sync(&self.pool, &req, self.clock.now())
                .instrument(span)
                .await
        };
        match r {
            Ok(r) => Ok(Response::new(SyncNowResponse {
                sync_run_id: r.sync_run_id,
                joined_running: r.joined_running,
            })),
            Err(RequestError::Disconnected { provider }) => {
                Err(grpc::failed_precondition(format!(
                    "{provider} is disconnected, so it cannot sync: reconnect it on the Connections page (click Reconnect and complete the sign-in), then sync again"
                )))
            }
            Err(RequestError::NotFound(id)) => Err(grpc::not_found(format!("no integration {id}"))),
            Err(RequestError::OtherWorkspace { .. }) => Err(grpc::permission_denied(
                "this integration belongs to another workspace",
            )),
            Err(e) => Err(grpc::unavailable("requesting the sync", &e)),
        }
    }

    async fn set_sync_schedule(
        &self,
        request: Request<SetSyncScheduleRequest>,
    ) -> Result<Response<IntegrationHealth>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.get_ref();
        let schedule = DailySchedule::parse(&r.local_time, &r.time_zone).map_err(|e| match e {
            crate::schedule::ScheduleError::BadTime => grpc::invalid_argument("local_time", e),
            crate::schedule::ScheduleError::BadZone => grpc::invalid_argument("time_zone", e),
        })?;
        let integration_id = r.integration_id.trim().to_string();
        let ws = self.owned_integration(&caller, &integration_id).await?;
        let set = NewEvent::new(
            ws.clone(),
            Event::SyncScheduleSet(SyncScheduleSet {
                local_time: schedule.local_time_string(),
                time_zone: schedule.zone_name().to_string(),
            }),
        )
        .integration(integration_id.clone());
        let mut set = set;
        set.occurred_at = self.clock.now();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("setting the schedule"))?;
        // Apply to the projection in the same transaction, so the answer shows the new time.
        sqlx::query(
            "UPDATE sync_integrations SET schedule_local_time = $2, schedule_time_zone = $3, \
             handled_slot = GREATEST(handled_slot, $4), catch_up_at = NULL, updated_at = now() WHERE integration_id = $1",
        )
        .bind(&integration_id)
        .bind(schedule.local_time_string())
        .bind(schedule.zone_name())
        .bind(schedule.last_slot_at_or_before(self.clock.now()))
        .execute(&mut *tx)
        .await
        .map_err(db("setting the schedule"))?;
        rp_platform::eventlog::append_in(
            &mut tx,
            &format!("connection-{integration_id}"),
            ExpectedVersion::Any,
            vec![set],
        )
        .await
        .map_err(|e| grpc::unavailable("setting the schedule", &e))?;
        tx.commit().await.map_err(db("setting the schedule"))?;
        let health = workspace_health(&self.pool, &ws, self.clock.now())
            .await
            .map_err(db("reading connection health"))?;
        health
            .integrations
            .into_iter()
            .find(|i| i.integration_id == integration_id)
            .map(Response::new)
            .ok_or_else(|| {
                grpc::failed_precondition(
                    "the integration is not known to the scheduler yet; try again in a moment",
                )
            })
    }

    async fn list_sync_runs(
        &self,
        request: Request<ListSyncRunsRequest>,
    ) -> Result<Response<ListSyncRunsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.get_ref();
        let page_size = match r.page_size {
            0 => 20,
            n @ 1..=100 => n,
            _ => {
                return Err(grpc::invalid_argument(
                    "page_size",
                    "must be between 1 and 100 (0 means 20)",
                ));
            }
        };
        let integration_id = r.integration_id.trim().to_string();
        self.owned_integration(&caller, &integration_id).await?;
        // Page token: "<requested_at rfc3339>|<run id>" of the last run of the previous page.
        let after: Option<(DateTime<Utc>, String)> = if r.page_token.is_empty() {
            None
        } else {
            let bad = || grpc::invalid_argument("page_token", "is not a token this API returned");
            let (t, id) = r.page_token.split_once('|').ok_or_else(bad)?;
            let t = DateTime::parse_from_rfc3339(t)
                .map_err(|_| bad())?
                .with_timezone(&Utc);
            Some((t, id.to_string()))
        };
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM sync_runs WHERE integration_id = $1 \
             AND ($2::timestamptz IS NULL OR (requested_at, sync_run_id) < ($2, $3)) \
             ORDER BY requested_at DESC, sync_run_id DESC LIMIT $4"
        );
        let rows: Vec<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(&integration_id)
            .bind(after.as_ref().map(|a| a.0))
            .bind(after.as_ref().map(|a| a.1.clone()).unwrap_or_default())
            .bind(i64::from(page_size) + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing sync runs"))?;
        let more = rows.len() > page_size as usize;
        let mut runs = Vec::new();
        for row in rows.into_iter().take(page_size as usize) {
            runs.push(
                load_run(&self.pool, row)
                    .await
                    .map_err(db("listing sync runs"))?,
            );
        }
        let next_page_token = if more {
            runs.last()
                .and_then(|r| {
                    let t = r
                        .requested_at
                        .as_ref()
                        .and_then(rp_platform::contracts::from_timestamp)?;
                    Some(format!(
                        "{}|{}",
                        t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                        r.sync_run_id
                    ))
                })
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(ListSyncRunsResponse {
            runs,
            next_page_token,
        }))
    }

    async fn get_sync_run(
        &self,
        request: Request<GetSyncRunRequest>,
    ) -> Result<Response<SyncRun>, Status> {
        let caller = self.caller(&request).await?;
        let id = request.get_ref().sync_run_id.trim().to_string();
        if uuid::Uuid::parse_str(&id).is_err() {
            return Err(grpc::invalid_argument(
                "sync_run_id",
                "must be the run's UUID",
            ));
        }
        let sql = format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE sync_run_id = $1");
        let row: Option<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(&id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading the sync run"))?;
        let Some(run) = row else {
            return Err(grpc::not_found(format!("no sync run {id}")));
        };
        caller.authorize(&run.13)?;
        Ok(Response::new(
            load_run(&self.pool, run)
                .await
                .map_err(db("reading the sync run"))?,
        ))
    }
}
