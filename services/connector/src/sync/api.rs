//! gRPC `rp.api.v1.Sync`: connection health for the Connections page, Sync Now, schedules and
//! sync run history. Every call is authenticated with the workspace's API key.

use super::handlers::{self, RequestError, SyncRequest};
use super::schedule::{Clock, DailySchedule, ScheduleError};
use super::store;
use super::watch::{Change, HealthHub};
use chrono::{DateTime, Utc};
use futures::Stream;
use rp_platform::apikeys::{self, Caller};
use rp_platform::contracts::api::v1::{
    ConnectionHealth, GetConnectionHealthRequest, GetSyncRunRequest, IntegrationHealth,
    ListSyncRunsRequest, ListSyncRunsResponse, SetSyncScheduleRequest, SyncNowRequest,
    SyncNowResponse, SyncRun, sync_server,
};
use rp_platform::contracts::events::v1::{SyncScheduleSet, SyncTrigger, envelope::Event};
use rp_platform::eventlog::{ExpectedVersion, NewEvent};
use rp_platform::grpc;
use rp_platform::ids::{IntegrationId, SyncRunId, WorkspaceId};
use rp_platform::paging::{self, PageSize};
use rp_platform::streams::{self, OpenStreams, StreamLimits};
use sqlx::PgPool;
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

const RUNS_PAGE: PageSize = PageSize::new(20, 100);
const RUNS_TOKEN: &str = "runs1";

pub struct SyncApi<C: Clock> {
    pool: PgPool,
    clock: Arc<C>,
    /// Open Watch streams: capped per key and workspace, ended on shutdown and revocation.
    streams: OpenStreams,
    /// The process's one health listener, fanned out to every Watch.
    hub: Arc<HealthHub>,
}

/// An integration of the caller's workspace, as the log says it is now.
struct Owned {
    id: IntegrationId,
    workspace: WorkspaceId,
    facts: super::domain::ConnectionFacts,
}

impl<C: Clock> SyncApi<C> {
    /// With the default stream limits and no shutdown; a service gives its own with
    /// [`SyncApi::with_streams`].
    pub fn new(pool: PgPool, clock: Arc<C>) -> Self {
        let streams = OpenStreams::new(
            pool.clone(),
            StreamLimits::default(),
            CancellationToken::new(),
        );
        Self::build(pool, clock, streams)
    }

    fn build(pool: PgPool, clock: Arc<C>, streams: OpenStreams) -> Self {
        let hub = Arc::new(HealthHub::new(pool.clone(), streams.shutdown()));
        Self {
            pool,
            clock,
            streams,
            hub,
        }
    }

    /// Watch streams counted and ended by `streams` (the process's limits and shutdown).
    pub fn with_streams(self, streams: OpenStreams) -> Self {
        Self::build(self.pool, self.clock, streams)
    }

    pub fn into_server(self) -> sync_server::SyncServer<Self> {
        sync_server::SyncServer::new(self)
    }

    async fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        apikeys::authenticate(&self.pool, req).await
    }

    /// The integration the request names, checked against the caller's workspace.
    async fn owned_integration(&self, caller: &Caller, raw_id: &str) -> Result<Owned, Status> {
        let id = IntegrationId::parse(raw_id)
            .map_err(|e| grpc::invalid_argument("integration_id", e))?;
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| grpc::unavailable("reading the integration", &e))?;
        let (workspace, facts) = store::connection_facts(&mut conn, id)
            .await
            .map_err(|e| grpc::unavailable("reading the integration", &e))?
            .ok_or_else(|| no_integration(id))?;
        // Another workspace's integration answers exactly as an unknown one: ids of other
        // workspaces cannot be probed.
        if workspace != caller.workspace_id {
            return Err(no_integration(id));
        }
        Ok(Owned {
            id,
            workspace,
            facts,
        })
    }

    async fn health(&self, workspace: WorkspaceId) -> Result<ConnectionHealth, Status> {
        store::workspace_health(&self.pool, workspace, self.clock.now())
            .await
            .map_err(db("reading connection health"))
    }
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
        Ok(Response::new(self.health(ws).await?))
    }

    type WatchConnectionHealthStream = HealthStream;

    async fn watch_connection_health(
        &self,
        request: Request<GetConnectionHealthRequest>,
    ) -> Result<Response<Self::WatchConnectionHealthStream>, Status> {
        let caller = self.caller(&request).await?;
        let ws = caller.authorize(&request.get_ref().workspace_id)?;
        let permit = self.streams.open(&caller)?;
        // Subscribed before the first read, so a change committed meanwhile is not missed.
        let mut changes = self
            .hub
            .subscribe()
            .await
            .map_err(db("watching connection health"))?;
        let (pool, clock) = (self.pool.clone(), self.clock.clone());
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let channel_payload = ws.to_string();
        tokio::spawn(async move {
            let mut last: Option<ConnectionHealth> = None;
            loop {
                let health = match store::workspace_health(&pool, ws, clock.now()).await {
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
                    use tokio::sync::broadcast::error::RecvError;
                    tokio::select! {
                        _ = tx.closed() => return,
                        c = changes.recv() => match c {
                            Ok(Change::Workspace(w)) if w == channel_payload => break,
                            Ok(Change::Workspace(_)) => continue,
                            // Changes may have been missed: read again.
                            Ok(Change::Everything) | Err(RecvError::Lagged(_)) => break,
                            // The hub stopped: the service is shutting down.
                            Err(RecvError::Closed) => return,
                        }
                    }
                }
            }
        });
        let stream: HealthStream = Box::pin(streams::guard(
            permit,
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ));
        Ok(Response::new(stream))
    }

    async fn sync_now(
        &self,
        request: Request<SyncNowRequest>,
    ) -> Result<Response<SyncNowResponse>, Status> {
        let caller = self.caller(&request).await?;
        let owned = self
            .owned_integration(&caller, &request.get_ref().integration_id)
            .await?;
        // The log was read once, just now: a disconnected integration is refused without
        // another read (the request re-checks under the integration's lock).
        if !owned.facts.connected {
            return Err(disconnected(owned.facts.provider_name()));
        }
        let span = tracing::info_span!("sync_now", integration_id = %owned.id, workspace_id = %owned.workspace);
        let req = SyncRequest {
            integration: owned.id,
            caller_workspace: Some(caller.workspace_id),
            trigger: SyncTrigger::Manual,
            requested_by: format!("api-key:{}", caller.key_id),
            scheduled_for: None,
        };
        let r = {
            use tracing::Instrument;
            handlers::request_sync(&self.pool, &req, self.clock.now())
                .instrument(span)
                .await
        };
        match r {
            Ok(r) => Ok(Response::new(SyncNowResponse {
                sync_run_id: r.sync_run_id.to_string(),
                joined_running: r.joined_running,
            })),
            Err(RequestError::Disconnected { provider }) => Err(disconnected(provider)),
            Err(RequestError::NotFound(id) | RequestError::OtherWorkspace(id)) => {
                Err(no_integration(id))
            }
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
            ScheduleError::BadTime => grpc::invalid_argument("local_time", e),
            ScheduleError::BadZone => grpc::invalid_argument("time_zone", e),
        })?;
        let owned = self.owned_integration(&caller, &r.integration_id).await?;
        let now = self.clock.now();
        let mut set = NewEvent::new(
            owned.workspace.to_string(),
            Event::SyncScheduleSet(SyncScheduleSet {
                local_time: schedule.local_time_string(),
                time_zone: schedule.zone_name().to_string(),
                next_scheduled_sync_at: Some(rp_platform::contracts::timestamp(
                    schedule.next_slot_after(now),
                )),
            }),
        )
        .integration(owned.id.to_string());
        set.occurred_at = now;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("setting the schedule"))?;
        // Apply to the projection in the same transaction, so the answer shows the new time.
        store::set_schedule(&mut tx, owned.id, &schedule, now)
            .await
            .map_err(db("setting the schedule"))?;
        rp_platform::eventlog::append_in(
            &mut tx,
            &owned.id.connection_stream(),
            ExpectedVersion::Any,
            vec![set],
        )
        .await
        .map_err(|e| grpc::unavailable("setting the schedule", &e))?;
        tx.commit().await.map_err(db("setting the schedule"))?;
        let id = owned.id.to_string();
        self.health(owned.workspace)
            .await?
            .integrations
            .into_iter()
            .find(|i| i.integration_id == id)
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
        let limit = RUNS_PAGE.parse(r.page_size)?;
        let owned = self.owned_integration(&caller, &r.integration_id).await?;
        // Page token: the integration, then the last run of the previous page (newest first).
        let after = match paging::decode_token(RUNS_TOKEN, &r.page_token, 3)? {
            None => None,
            Some(f) => {
                if f[0] != owned.id.to_string() {
                    return Err(paging::foreign_token());
                }
                let micros: i64 = f[1].parse().map_err(|_| paging::bad_token())?;
                let t =
                    DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(paging::bad_token)?;
                Some((t, f[2].clone()))
            }
        };
        let (runs, more) = store::list_runs(&self.pool, owned.id, after, limit)
            .await
            .map_err(db("listing sync runs"))?;
        let next_page_token = match runs.last() {
            Some(last) if more => {
                let micros = last
                    .requested_at
                    .as_ref()
                    .and_then(rp_platform::contracts::from_timestamp)
                    .map_or(0, |t| t.timestamp_micros());
                paging::encode_token(
                    RUNS_TOKEN,
                    &[
                        &owned.id.to_string(),
                        &micros.to_string(),
                        &last.sync_run_id,
                    ],
                )
            }
            _ => String::new(),
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
        let raw = request.get_ref().sync_run_id.trim();
        let id = uuid::Uuid::parse_str(raw)
            .ok()
            .and_then(|u| SyncRunId::parse(&u.to_string()).ok())
            .ok_or_else(|| grpc::invalid_argument("sync_run_id", "must be the run's UUID"))?;
        let (_, run) = store::get_run(&self.pool, &id)
            .await
            .map_err(db("reading the sync run"))?
            .filter(|(workspace, _)| *workspace == caller.workspace_id)
            .ok_or_else(|| grpc::not_found(format!("no sync run {id}")))?;
        Ok(Response::new(run))
    }
}

/// An unknown integration, or another workspace's: the same answer.
fn no_integration(id: IntegrationId) -> Status {
    grpc::not_found(format!("no integration {id} in this workspace"))
}

fn disconnected(provider: &str) -> Status {
    grpc::failed_precondition(format!(
        "{provider} is disconnected, so it cannot sync: reconnect it on the Connections page (click Reconnect and complete the sign-in), then sync again"
    ))
}
