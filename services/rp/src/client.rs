//! `rp connect`, `rp connections`, `rp health`, `rp sync-now`: the product's gRPC APIs from the
//! command line, as the web app calls them (with an API key).

use crate::Failure;
use crate::output::Output;
use clap::{Subcommand, ValueEnum};
use rp_platform::contracts::api::v1::{
    AttributionModel, CompleteConnectRequest, GetConnectionHealthRequest, GetDashboardRequest,
    GetSyncRunRequest, ListConnectionsRequest, MetricTotal, Provider, StartConnectRequest,
    SyncNowRequest, attribution_client::AttributionClient, connections_client::ConnectionsClient,
    sync_client::SyncClient,
};
use rp_platform::contracts::events::v1::SyncStep;
use rp_platform::contracts::from_timestamp;
use tonic::transport::Channel;

#[derive(Clone, Copy, ValueEnum)]
pub enum ProviderArg {
    Linkedin,
    Hubspot,
    Salesforce,
}

impl ProviderArg {
    fn api(self) -> Provider {
        match self {
            ProviderArg::Linkedin => Provider::Linkedin,
            ProviderArg::Hubspot => Provider::Hubspot,
            ProviderArg::Salesforce => Provider::Salesforce,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ModelArg {
    FirstTouch,
    LastTouch,
    Linear,
    TimeDecay,
    UShaped,
}

impl ModelArg {
    fn api(self) -> AttributionModel {
        match self {
            ModelArg::FirstTouch => AttributionModel::FirstTouch,
            ModelArg::LastTouch => AttributionModel::LastTouch,
            ModelArg::Linear => AttributionModel::Linear,
            ModelArg::TimeDecay => AttributionModel::TimeDecay,
            ModelArg::UShaped => AttributionModel::UShaped,
        }
    }
}

#[derive(Subcommand)]
pub enum ClientCmd {
    /// Connect an integration: starts the OAuth flow, follows it through the provider sandbox
    /// (which consents at once) and completes it with this key (CompleteConnect). Against a real
    /// provider, use --print-url and open the URL in a browser signed in to the workspace's
    /// Connections page, which completes it.
    Connect {
        #[arg(long)]
        workspace: String,
        #[arg(long, value_enum)]
        provider: ProviderArg,
        /// Only print the authorize URL; do not follow it.
        #[arg(long)]
        print_url: bool,
    },
    /// The workspace's connections.
    Connections {
        #[arg(long)]
        workspace: String,
    },
    /// Connection health, as the Connections page shows it.
    Health {
        #[arg(long)]
        workspace: String,
    },
    /// The dashboard numbers for a lookback window and attribution model.
    Dashboard {
        #[arg(long)]
        workspace: String,
        /// Lookback window in days (one of the workspace plan's windows).
        #[arg(long, default_value_t = 30)]
        window: u32,
        #[arg(long, value_enum, default_value = "linear")]
        model: ModelArg,
    },
    /// Sync an integration now; with --wait, until the sync finishes.
    SyncNow {
        #[arg(long)]
        integration: String,
        #[arg(long)]
        wait: bool,
    },
}

/// Where the services listen and the key to call them with.
struct Endpoints {
    connector: String,
    attribution: String,
    key: String,
}

impl Endpoints {
    fn from_env() -> Result<Self, Failure> {
        let key = std::env::var("RP_API_KEY").map_err(|_| {
            Failure::usage("RP_API_KEY is not set: create a key with `rp keys create --workspace <id>` and export RP_API_KEY")
        })?;
        Ok(Self {
            connector: rp_platform::config::var_or("RP_CONNECTOR_GRPC", "http://127.0.0.1:50051"),
            attribution: rp_platform::config::var_or(
                "RP_ATTRIBUTION_GRPC",
                "http://127.0.0.1:50053",
            ),
            key,
        })
    }
}

fn request<T>(key: &str, msg: T) -> Result<tonic::Request<T>, Failure> {
    let mut r = tonic::Request::new(msg);
    let v = format!("Bearer {key}")
        .parse()
        .map_err(|_| Failure::usage("RP_API_KEY has characters that cannot go in a header"))?;
    r.metadata_mut().insert("authorization", v);
    Ok(r)
}

fn status(s: tonic::Status) -> Failure {
    match s.code() {
        tonic::Code::NotFound => Failure::not_found(s.message()),
        tonic::Code::InvalidArgument
        | tonic::Code::FailedPrecondition
        | tonic::Code::PermissionDenied
        | tonic::Code::Unauthenticated => {
            Failure::usage(format!("{:?}: {}", s.code(), s.message()))
        }
        _ => Failure::infra(format!("{:?}: {}", s.code(), s.message())),
    }
}

/// A channel to one service: TLS when the address is `https://`, trusting the CA in
/// `RP_GRPC_TLS_CA` (a PEM file; the services serve TLS with `RP_GRPC_TLS_CERT`/`RP_GRPC_TLS_KEY`).
async fn channel(url: &str) -> Result<Channel, Failure> {
    let mut endpoint = Channel::from_shared(url.to_string())
        .map_err(|e| Failure::usage(format!("bad gRPC address {url}: {e}")))?;
    let ca = std::env::var("RP_GRPC_TLS_CA")
        .ok()
        .filter(|v| !v.trim().is_empty());
    if url.starts_with("https://") {
        let ca = ca.ok_or_else(|| {
            Failure::usage(format!(
                "{url} is https: set RP_GRPC_TLS_CA to the PEM file of the CA that signed the services' certificate"
            ))
        })?;
        let pem =
            std::fs::read(&ca).map_err(|e| Failure::usage(format!("RP_GRPC_TLS_CA {ca}: {e}")))?;
        rp_platform::install_crypto_provider();
        endpoint = endpoint
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
            )
            .map_err(|e| Failure::usage(format!("RP_GRPC_TLS_CA {ca}: {e}")))?;
    } else if ca.is_some() {
        return Err(Failure::usage(format!(
            "RP_GRPC_TLS_CA is set but {url} is plaintext: use an https:// address"
        )));
    }
    endpoint
        .connect()
        .await
        .map_err(|e| Failure::infra(format!("cannot reach {url}: {e}")))
}

fn ts(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref().and_then(from_timestamp).map_or("-".into(), |t| {
        t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    })
}

fn step_name(step: i32) -> &'static str {
    match SyncStep::try_from(step) {
        Ok(SyncStep::LinkedinPull) => "LinkedIn pull",
        Ok(SyncStep::CompanyResolution) => "company resolution",
        Ok(SyncStep::CrmPull) => "CRM pull",
        Ok(SyncStep::Matching) => "matching",
        Ok(SyncStep::Attribution) => "attribution",
        _ => "-",
    }
}

pub async fn run(cmd: ClientCmd, out: &Output) -> Result<(), Failure> {
    let ep = Endpoints::from_env()?;
    match cmd {
        ClientCmd::Connect {
            workspace,
            provider,
            print_url,
        } => {
            let mut c = ConnectionsClient::new(channel(&ep.connector).await?);
            let started = c
                .start_connect(request(
                    &ep.key,
                    StartConnectRequest {
                        workspace_id: workspace.clone(),
                        provider: provider.api() as i32,
                    },
                )?)
                .await
                .map_err(status)?
                .into_inner();
            if print_url {
                out.message(
                    "authorize",
                    &[
                        ("integration_id", started.integration_id.clone()),
                        ("authorize_url", started.authorize_url.clone()),
                    ],
                    &format!(
                        "integration {}\nopen: {}",
                        started.integration_id, started.authorize_url
                    ),
                );
                return Ok(());
            }
            let landed = follow_oauth(&started.authorize_url).await?;
            // The callback hands the page a single-use completion; completing it takes a key of
            // the workspace that started the flow, as the Connections page does.
            let param = |k: &str| {
                reqwest::Url::parse(&landed).ok().and_then(|u| {
                    u.query_pairs()
                        .find(|(q, _)| q == k)
                        .map(|(_, v)| v.into_owned())
                })
            };
            let Some(completion) = param("completion") else {
                return Err(Failure::infra(format!(
                    "connecting did not complete: {} ({}); the browser would land on {landed}",
                    param("status").unwrap_or_default(),
                    param("reason").unwrap_or_default()
                )));
            };
            let done = c
                .complete_connect(request(
                    &ep.key,
                    CompleteConnectRequest {
                        workspace_id: workspace,
                        completion,
                    },
                )?)
                .await
                .map_err(status)?
                .into_inner();
            let how = if done.reconnected {
                "connected again"
            } else {
                "connected"
            };
            out.message(
                "connected",
                &[
                    ("integration_id", started.integration_id.clone()),
                    ("reconnected", done.reconnected.to_string()),
                    ("account_changed", done.account_changed.to_string()),
                ],
                &format!("integration {} {how}", started.integration_id),
            );
            Ok(())
        }
        ClientCmd::Connections { workspace } => {
            let mut c = ConnectionsClient::new(channel(&ep.connector).await?);
            let list = c
                .list_connections(request(
                    &ep.key,
                    ListConnectionsRequest {
                        workspace_id: workspace,
                    },
                )?)
                .await
                .map_err(status)?
                .into_inner();
            let rows = list
                .connections
                .iter()
                .map(|c| {
                    vec![
                        c.integration_id.clone(),
                        format!(
                            "{:?}",
                            Provider::try_from(c.provider).unwrap_or(Provider::Unspecified)
                        ),
                        format!(
                            "{:?}",
                            rp_platform::contracts::api::v1::ConnectionStatus::try_from(c.status)
                                .unwrap_or_default()
                        ),
                        ts(&c.connected_at),
                    ]
                })
                .collect::<Vec<_>>();
            out.table(
                &["INTEGRATION", "PROVIDER", "STATUS", "CONNECTED_AT"],
                &rows,
            );
            Ok(())
        }
        ClientCmd::Health { workspace } => {
            let mut c = SyncClient::new(channel(&ep.connector).await?);
            let h = c
                .get_connection_health(request(
                    &ep.key,
                    GetConnectionHealthRequest {
                        workspace_id: workspace,
                    },
                )?)
                .await
                .map_err(status)?
                .into_inner();
            let rows = h
                .integrations
                .iter()
                .map(|i| {
                    let status = if i.status
                        == rp_platform::contracts::api::v1::ConnectionStatus::Connected as i32
                    {
                        "Connected".to_string()
                    } else {
                        format!("Disconnected ({})", i.disconnect_reason)
                    };
                    vec![
                        i.integration_id.clone(),
                        format!(
                            "{:?}",
                            rp_platform::contracts::events::v1::Provider::try_from(i.provider)
                                .unwrap_or_default()
                        ),
                        status,
                        ts(&i.last_successful_sync_at),
                        format!("{} {}", ts(&i.last_attempt_at), i.last_attempt_outcome),
                        ts(&i.next_scheduled_sync_at),
                        if i.running_sync_run_id.is_empty() {
                            "-".into()
                        } else {
                            step_name(i.current_step).into()
                        },
                    ]
                })
                .collect::<Vec<_>>();
            out.table(
                &[
                    "INTEGRATION",
                    "PROVIDER",
                    "STATUS",
                    "LAST_SYNC",
                    "LAST_ATTEMPT",
                    "NEXT_SYNC",
                    "RUNNING_STEP",
                ],
                &rows,
            );
            Ok(())
        }
        ClientCmd::Dashboard {
            workspace,
            window,
            model,
        } => {
            let mut c = AttributionClient::new(channel(&ep.attribution).await?);
            let d = c
                .get_dashboard(request(
                    &ep.key,
                    GetDashboardRequest {
                        workspace_id: workspace,
                        window_days: window,
                        model: model.api() as i32,
                    },
                )?)
                .await
                .map_err(status)?
                .into_inner();
            let money = |m: &Option<MetricTotal>| {
                m.as_ref().map_or("-".to_string(), |m| {
                    let sums: Vec<String> = m
                        .amounts
                        .iter()
                        .map(|a| format!("{} {}", a.amount, a.currency))
                        .collect();
                    format!(
                        "{} deals: {}",
                        m.deals,
                        if sums.is_empty() {
                            "0".into()
                        } else {
                            sums.join(" + ")
                        }
                    )
                })
            };
            let c = d.companies.unwrap_or_default();
            let counts = d.deal_counts.unwrap_or_default();
            let days = d.days_to_deal.unwrap_or_default();
            let rows = vec![
                vec!["as of".into(), ts(&d.as_of)],
                vec![
                    "window / model".into(),
                    format!(
                        "{} days / {:?}",
                        d.window_days,
                        AttributionModel::try_from(d.model).unwrap_or_default()
                    ),
                ],
                vec!["engaged companies".into(), c.engaged_companies.to_string()],
                vec![
                    "matched accounts".into(),
                    format!(
                        "{} companies → {} accounts ({:.1}% matched)",
                        c.matched_companies,
                        c.matched_accounts,
                        c.match_rate * 100.0
                    ),
                ],
                vec!["influenced pipeline".into(), money(&d.influenced_pipeline)],
                vec!["influenced revenue".into(), money(&d.influenced_revenue)],
                vec!["sourced pipeline".into(), money(&d.sourced_pipeline)],
                vec![
                    "deals (open/won/lost)".into(),
                    format!(
                        "{} ({}/{}/{})",
                        counts.total, counts.open, counts.won, counts.lost
                    ),
                ],
                vec![
                    "days from first engagement to deal".into(),
                    format!(
                        "avg {} / median {}",
                        days.average.map_or("-".into(), |v| format!("{v:.1}")),
                        days.median.map_or("-".into(), |v| format!("{v:.1}"))
                    ),
                ],
                vec![
                    "campaigns credited".into(),
                    d.campaign_credits.len().to_string(),
                ],
            ];
            out.table(&["METRIC", "VALUE"], &rows);
            Ok(())
        }
        ClientCmd::SyncNow { integration, wait } => {
            let mut c = SyncClient::new(channel(&ep.connector).await?);
            let r = c
                .sync_now(request(
                    &ep.key,
                    SyncNowRequest {
                        integration_id: integration,
                    },
                )?)
                .await
                .map_err(status)?
                .into_inner();
            if !wait {
                out.message(
                    "sync_requested",
                    &[
                        ("sync_run_id", r.sync_run_id.clone()),
                        ("joined_running", r.joined_running.to_string()),
                    ],
                    &format!(
                        "sync {} {}",
                        r.sync_run_id,
                        if r.joined_running {
                            "was already running: joined it"
                        } else {
                            "started in the background"
                        }
                    ),
                );
                return Ok(());
            }
            // Follow the run by watching the workspace's health (pushed on every change).
            let run = c
                .get_sync_run(request(
                    &ep.key,
                    GetSyncRunRequest {
                        sync_run_id: r.sync_run_id.clone(),
                    },
                )?)
                .await
                .map_err(status)?
                .into_inner();
            let ws = run.workspace_id.clone();
            let mut stream = c
                .watch_connection_health(request(
                    &ep.key,
                    GetConnectionHealthRequest { workspace_id: ws },
                )?)
                .await
                .map_err(status)?
                .into_inner();
            loop {
                let run = c
                    .get_sync_run(request(
                        &ep.key,
                        GetSyncRunRequest {
                            sync_run_id: r.sync_run_id.clone(),
                        },
                    )?)
                    .await
                    .map_err(status)?
                    .into_inner();
                if matches!(run.state.as_str(), "completed" | "failed" | "interrupted") {
                    let steps: Vec<String> = run
                        .steps
                        .iter()
                        .map(|s| format!("{} ({} records)", step_name(s.step), s.records))
                        .collect();
                    out.message(
                        "sync_finished",
                        &[
                            ("sync_run_id", run.sync_run_id.clone()),
                            ("state", run.state.clone()),
                            ("failure", run.failure_message.clone()),
                        ],
                        &format!(
                            "sync {} {}: {}{}",
                            run.sync_run_id,
                            run.state,
                            steps.join(" → "),
                            if run.failure_message.is_empty() {
                                String::new()
                            } else {
                                format!(" — {}", run.failure_message)
                            }
                        ),
                    );
                    return if run.state == "completed" {
                        Ok(())
                    } else {
                        Err(Failure::infra(format!("the sync {}", run.state)))
                    };
                }
                match stream.message().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => {
                        return Err(Failure::infra(
                            "the health stream ended before the sync finished",
                        ));
                    }
                    Err(s) => return Err(status(s)),
                }
            }
        }
    }
}

/// Follows the OAuth redirects (provider authorize → our callback → the app's Connections page)
/// and returns where the browser would land.
async fn follow_oauth(authorize_url: &str) -> Result<String, Failure> {
    rp_platform::install_crypto_provider();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(Failure::infra)?;
    let mut url = authorize_url.to_string();
    let app = rp_platform::config::var_or("RP_APP_BASE_URL", "http://localhost:3000");
    for _ in 0..5 {
        if url.starts_with(&app) {
            return Ok(url);
        }
        let resp = http
            .get(&url)
            .send()
            .await
            .map_err(|e| Failure::infra(format!("{url}: {e}")))?;
        let Some(next) = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
        else {
            let code = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(Failure::infra(format!(
                "the OAuth flow stopped at {url} ({code}): {body}"
            )));
        };
        url = next.to_string();
    }
    Err(Failure::infra("too many redirects in the OAuth flow"))
}
