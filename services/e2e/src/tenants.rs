//! Many workspaces on one [`System`], for the cluster suite (`tests/cluster.rs`) and the load
//! benchmark (`tests/load.rs`): each workspace with its own API key, LinkedIn and HubSpot
//! connected through the real OAuth flow, all on the same sandbox data, so every workspace's
//! dashboard must equal every other's and the reference's (identical data gives identical
//! numbers). Also what those suites read of the processes: handled counts per replica (from each
//! process's `/metrics`), peak memory (`VmHWM`), and the per-workspace order of every consumer.

use crate::{System, WAIT};
use futures::StreamExt;
use rp_platform::contracts::api::v1 as api;
use rp_platform::testing::{authed, eventually};
use std::collections::BTreeMap;
use std::time::Duration;

/// The growth plan's lookback windows (`RP_PLANS`' default).
pub const WINDOWS: [u32; 3] = [30, 90, 180];
pub const MODELS: [api::AttributionModel; 5] = [
    api::AttributionModel::FirstTouch,
    api::AttributionModel::LastTouch,
    api::AttributionModel::Linear,
    api::AttributionModel::TimeDecay,
    api::AttributionModel::UShaped,
];

/// How many requests of the harness run at once (connects, Sync Now, polls).
const AT_ONCE: usize = 16;

/// One workspace, its key, and its two integrations.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub workspace_id: String,
    pub key: String,
    pub linkedin: String,
    pub hubspot: String,
}

impl Tenant {
    pub fn req<T>(&self, msg: T) -> tonic::Request<T> {
        authed(&self.key, msg)
    }

    pub fn integrations(&self) -> [&str; 2] {
        [&self.linkedin, &self.hubspot]
    }
}

/// `n` workspaces on `plan` (the system's own first), each with LinkedIn and HubSpot connected,
/// and every daily slot moved twelve hours away (no scheduled sync joins in).
pub async fn tenants(s: &System, n: usize, plan: &str) -> Vec<Tenant> {
    let made: Vec<(String, String)> = futures::stream::iter(0..n)
        .map(|i| async move {
            if i == 0 {
                return (s.workspace_id.clone(), s.api_key().to_string());
            }
            let name = format!("ws{i}");
            let ws = s
                .rp(&[
                    "--json",
                    "workspaces",
                    "create",
                    "--name",
                    &name,
                    "--plan",
                    plan,
                ])
                .await;
            let ws = ws["workspace_id"].as_str().unwrap_or_default().to_string();
            let key = s
                .rp(&[
                    "--json",
                    "keys",
                    "create",
                    "--workspace",
                    &ws,
                    "--label",
                    "load",
                ])
                .await;
            (ws, key["key"].as_str().unwrap_or_default().to_string())
        })
        .buffered(4)
        .collect()
        .await;
    let away = (chrono_like_now_plus_hours(12)).to_string();
    futures::stream::iter(made)
        .map(|(workspace_id, key)| {
            let away = away.clone();
            async move {
                let linkedin = connect(s, &workspace_id, &key, api::Provider::Linkedin).await;
                let hubspot = connect(s, &workspace_id, &key, api::Provider::Hubspot).await;
                let t = Tenant {
                    workspace_id,
                    key,
                    linkedin,
                    hubspot,
                };
                for id in t.integrations() {
                    set_schedule(s, &t, id, &away).await;
                }
                t
            }
        })
        .buffered(AT_ONCE)
        .collect()
        .await
}

/// `HH:MM` in UTC, `hours` from now (no chrono in the library: the harness needs only this).
fn chrono_like_now_plus_hours(hours: u64) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + hours * 3600;
    let day = secs % 86_400;
    format!("{:02}:{:02}", day / 3600, (day % 3600) / 60)
}

/// Sets an integration's daily slot (`HH:MM`, UTC).
pub async fn set_schedule(s: &System, t: &Tenant, integration_id: &str, local_time: &str) {
    s.sync
        .clone()
        .set_sync_schedule(t.req(api::SetSyncScheduleRequest {
            integration_id: integration_id.to_string(),
            local_time: local_time.to_string(),
            time_zone: "UTC".into(),
        }))
        .await
        .unwrap_or_else(|e| panic!("SetSyncSchedule: {e}"));
}

/// Connects `provider` for the workspace through the OAuth flow; its integration id once
/// Connected.
async fn connect(s: &System, workspace_id: &str, key: &str, provider: api::Provider) -> String {
    let started = s
        .connections
        .clone()
        .start_connect(authed(
            key,
            api::StartConnectRequest {
                workspace_id: workspace_id.to_string(),
                provider: provider as i32,
            },
        ))
        .await
        .unwrap_or_else(|e| panic!("StartConnect({provider:?}): {e}"))
        .into_inner();
    s.complete_oauth_as(workspace_id, key, &started.authorize_url)
        .await;
    let id = started.integration_id;
    eventually(WAIT, "the integration to be Connected", || async {
        let h = s
            .sync
            .clone()
            .get_connection_health(authed(
                key,
                api::GetConnectionHealthRequest {
                    workspace_id: workspace_id.to_string(),
                },
            ))
            .await
            .ok()?
            .into_inner();
        h.integrations
            .iter()
            .any(|h| h.integration_id == id && h.status == api::ConnectionStatus::Connected as i32)
            .then_some(())
    })
    .await;
    id
}

/// Sync Now on every integration of every workspace, at once; (tenant index, run id) pairs.
pub async fn sync_all(s: &System, ts: &[Tenant]) -> Vec<(usize, String)> {
    let asks: Vec<(usize, String)> = ts
        .iter()
        .enumerate()
        .flat_map(|(i, t)| t.integrations().map(|id| (i, id.to_string())))
        .collect();
    futures::stream::iter(asks)
        .map(|(i, id)| async move {
            let r = s
                .sync
                .clone()
                .sync_now(ts[i].req(api::SyncNowRequest {
                    integration_id: id.clone(),
                }))
                .await
                .unwrap_or_else(|e| panic!("SyncNow({id}): {e}"))
                .into_inner();
            (i, r.sync_run_id)
        })
        .buffered(AT_ONCE)
        .collect()
        .await
}

/// A run once it has finished, whichever way, within `limit` (a gRPC error, a replica away,
/// counts as not yet).
pub async fn finished(s: &System, t: &Tenant, run: &str, limit: Duration) -> api::SyncRun {
    s.finished_run_as(&t.key, run, limit).await
}

/// Every run finished (in the order of `runs`).
pub async fn all_finished(
    s: &System,
    ts: &[Tenant],
    runs: &[(usize, String)],
    limit: Duration,
) -> Vec<api::SyncRun> {
    futures::stream::iter(runs)
        .map(|(i, run)| finished(s, &ts[*i], run, limit))
        .buffered(AT_ONCE)
        .collect()
        .await
}

/// Every run of the integration (newest first, the first 100).
pub async fn runs_of(s: &System, t: &Tenant, integration: &str) -> Vec<api::SyncRun> {
    s.sync
        .clone()
        .list_sync_runs(t.req(api::ListSyncRunsRequest {
            integration_id: integration.into(),
            page_size: 100,
            page_token: String::new(),
        }))
        .await
        .unwrap_or_else(|e| panic!("ListSyncRuns: {e}"))
        .into_inner()
        .runs
}

/// Runs of any workspace still live (neither completed, failed nor interrupted).
pub async fn live_runs(s: &System, ts: &[Tenant]) -> Vec<api::SyncRun> {
    let mut out = Vec::new();
    for t in ts {
        for id in t.integrations() {
            out.extend(
                runs_of(s, t, id).await.into_iter().filter(|r| {
                    !matches!(r.state.as_str(), "completed" | "failed" | "interrupted")
                }),
            );
        }
    }
    out
}

/// Every dashboard number of the workspace, for every window and model, without what names the
/// workspace or the moment (workspace, run, as-of time, version): the chaos suite's oracle.
pub async fn dashboards(s: &System, t: &Tenant) -> Vec<api::Dashboard> {
    s.dashboards_of(&t.workspace_id, &t.key, &WINDOWS).await
}

/// How many workspaces' dashboards differ from `reference`.
pub async fn differing(s: &System, ts: &[Tenant], reference: &[api::Dashboard]) -> usize {
    let all: Vec<Vec<api::Dashboard>> = futures::stream::iter(ts)
        .map(|t| dashboards(s, t))
        .buffered(AT_ONCE)
        .collect()
        .await;
    all.iter().filter(|d| d.as_slice() != reference).count()
}

/// What one service process handled: the sum of its `rp_consumer_handle_duration_seconds_count`
/// (every delivery its consumers ran a handler for, redeliveries included).
pub async fn handled(metrics_addr: &str) -> u64 {
    let Ok(resp) = reqwest::get(format!("http://{metrics_addr}/metrics")).await else {
        return 0;
    };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("rp_consumer_handle_duration_seconds_count"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Each running process's handled count: (service, replica, count).
pub async fn handled_per_replica(s: &System) -> Vec<(&'static str, usize, u64)> {
    let mut out = Vec::new();
    for (name, replica, _, addr) in s.processes() {
        out.push((name, replica, handled(&addr).await));
    }
    out
}

/// The events each consumer applied (its processed marks), by consumer.
pub async fn processed(s: &System) -> BTreeMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(
        "SELECT consumer, count(*) FROM processed_events GROUP BY consumer",
    )
    .fetch_all(&s.env.pool)
    .await
    .unwrap_or_else(|e| panic!("processed_events: {e}"))
    .into_iter()
    .collect()
}

/// Events some consumer applied before an earlier event of the same workspace (by the time its
/// transaction began, `processed_at`): per-workspace order broken. Must be 0, whichever replica
/// handled which.
pub async fn order_violations(s: &System) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM (
           SELECT p.processed_at,
                  lag(p.processed_at) OVER (PARTITION BY p.consumer, e.workspace_id
                                            ORDER BY p.position) AS before
             FROM processed_events p JOIN events e ON e.position = p.position) x
          WHERE processed_at < before",
    )
    .fetch_one(&s.env.pool)
    .await
    .unwrap_or_else(|e| panic!("the order check: {e}"))
}

/// A process's peak resident memory (`VmHWM`), in KiB.
pub fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
