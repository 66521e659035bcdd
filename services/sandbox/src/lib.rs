//! Provider sandbox: one HTTP server that plays LinkedIn, HubSpot and Salesforce (APIs and
//! OAuth 2.0 servers) in their real wire shapes, over deterministic generated data, with an
//! admin API for fault injection and ground truth.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use sandbox::{Provider, Sandbox, SandboxConfig};
//! let sb = Sandbox::spawn(SandboxConfig::for_tests()).await?;
//! let hubspot_base = sb.url(Provider::Hubspot); // http://127.0.0.1:PORT/hubspot
//! let salesforce = sb.url(Provider::Salesforce); // http://127.0.0.1:PORT (an org's origin)
//! sb.shutdown().await;
//! # Ok(()) }
//! ```

pub mod config;
pub mod data;
pub mod soql;

mod admin;
mod churn;
mod errors;
mod hubspot;
mod layers;
mod linkedin;
mod linkedin_versions;
mod oauth;
mod persist;
mod restli;
mod salesforce;
mod state;
mod util;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{any, get, post};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{OAuthClient, Provider, RateLimit, SandboxConfig, SearchLimit, Sizes};
use state::{AppState, Inner};

/// A running sandbox. Dropping it stops the server.
pub struct Sandbox {
    addr: SocketAddr,
    base_url: String,
    state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Sandbox {
    /// Generate the data, bind `config.addr` and serve in the background.
    pub async fn spawn(config: SandboxConfig) -> anyhow::Result<Sandbox> {
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding sandbox to {}", config.addr))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let base_url = format!("http://{addr}");
        let anchor = config
            .anchor
            .unwrap_or_else(|| chrono::Utc::now().date_naive());
        let restored = match &config.state_dir {
            Some(dir) => Some(persist::StateDir::open(dir, config.anchor)?),
            None => None,
        };
        let (seed, sizes) = (config.seed, config.sizes);
        let world = tokio::task::spawn_blocking(move || data::generate(seed, sizes, anchor))
            .await
            .context("generating sandbox data")?;
        let state: AppState =
            std::sync::Arc::new(Inner::new(config, base_url.clone(), world, restored));
        let app = app(state.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "sandbox server stopped");
            }
        });
        Ok(Sandbox {
            addr,
            base_url,
            state,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Base URL of one provider (API and OAuth): `http://127.0.0.1:PORT/hubspot`; Salesforce's
    /// is the bare origin `http://127.0.0.1:PORT`, as a Salesforce org's (also served under
    /// `/salesforce`).
    pub fn url(&self, p: Provider) -> String {
        self.state.provider_base(p)
    }

    /// `http://127.0.0.1:PORT/admin`
    pub fn admin_url(&self) -> String {
        format!("{}/admin", self.base_url)
    }

    /// The OAuth client credentials the sandbox accepts for a provider.
    pub fn client(&self, p: Provider) -> &OAuthClient {
        self.state.config.client(p)
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.state.config
    }

    /// The anchor date ("today") of the generated data.
    pub fn anchor(&self) -> chrono::NaiveDate {
        self.state.world().anchor
    }

    /// Stop serving. In-flight requests get a moment to finish; hung ones (timeout outage)
    /// are dropped.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }

    /// Serve until the server stops (for the binary).
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// One provider's routes (OAuth and API) with their layers: log, outage and latency around
/// everything; limits, token and malformed answers around API routes; for LinkedIn, Rest.li
/// query tunnelling. `at_root`: the Salesforce org's origin, which serves the same routes (and
/// an unknown `/services/...` path with Salesforce's 404) beside the other providers' prefixes.
fn provider_routes(state: &AppState, p: Provider, at_root: bool) -> Router {
    let st = (state.clone(), p);
    type R = Router<(AppState, Provider)>;
    let (oauth, api): (R, R) = match p {
        Provider::Linkedin => (
            Router::new()
                .route("/oauth/v2/authorization", get(oauth::authorize))
                .route("/oauth/v2/accessToken", post(oauth::token))
                .route("/oauth/v2/revoke", post(oauth::revoke)),
            // Every GET also takes a POST: a Rest.li query tunnelled in a form body (the
            // tunnel layer turns it back into the GET, or refuses it).
            Router::new()
                .route(
                    "/rest/adAccounts",
                    get(linkedin::ad_accounts).post(linkedin::ad_accounts),
                )
                .route(
                    "/rest/adAccountUsers",
                    get(linkedin::ad_account_users).post(linkedin::ad_account_users),
                )
                .route(
                    "/rest/adAccounts/{id}/adCampaigns",
                    get(linkedin::ad_campaigns).post(linkedin::ad_campaigns),
                )
                .route(
                    "/rest/adAnalytics",
                    get(linkedin::ad_analytics).post(linkedin::ad_analytics),
                )
                .route(
                    "/rest/organizations",
                    get(linkedin::organizations).post(linkedin::organizations),
                )
                .route(
                    "/rest/organizations/{id}",
                    get(linkedin::organization).post(linkedin::organization),
                ),
        ),
        Provider::Hubspot => (
            Router::new()
                .route("/oauth/authorize", get(oauth::authorize))
                .route("/oauth/v1/token", post(oauth::token))
                .route(
                    "/oauth/v1/access-tokens/{token}",
                    get(oauth::hubspot_token_info),
                )
                .route(
                    "/oauth/v1/refresh-tokens/{token}",
                    axum::routing::delete(oauth::hubspot_revoke),
                ),
            Router::new()
                .route("/crm/v3/objects/{type}", get(hubspot::list))
                .route("/crm/v3/objects/{type}/search", post(hubspot::search))
                .route("/crm/v3/objects/{type}/{id}", get(hubspot::get_one))
                .route("/crm/v3/pipelines/{type}", get(hubspot::pipelines))
                .route(
                    "/crm/v4/associations/{from}/{to}/batch/read",
                    post(hubspot::associations_batch),
                ),
        ),
        Provider::Salesforce => (
            Router::new()
                .route("/services/oauth2/authorize", get(oauth::authorize))
                .route("/services/oauth2/token", post(oauth::token))
                .route("/services/oauth2/revoke", post(oauth::revoke))
                .route("/services/data", get(salesforce::versions)),
            Router::new()
                .route("/services/data/{version}/query", get(salesforce::query))
                // Real Salesforce takes the trailing slash too.
                .route("/services/data/{version}/query/", get(salesforce::query))
                .route(
                    "/services/data/{version}/sobjects/{sobject}/deleted/",
                    get(salesforce::deleted),
                )
                .route(
                    "/services/data/{version}/sobjects/{sobject}/updated/",
                    get(salesforce::updated),
                )
                .route(
                    "/services/data/{version}/sobjects",
                    get(salesforce::describe_global),
                )
                .route(
                    "/services/data/{version}/sobjects/",
                    get(salesforce::describe_global),
                )
                .route(
                    "/services/data/{version}/sobjects/{sobject}/describe",
                    get(salesforce::describe),
                )
                .route(
                    "/services/data/{version}/sobjects/{sobject}/describe/",
                    get(salesforce::describe),
                )
                .route(
                    "/services/data/{version}/query/{locator}",
                    get(salesforce::query_more),
                ),
        ),
    };
    let mut api = api.route_layer(from_fn_with_state(st.clone(), layers::api_layer));
    if p == Provider::Linkedin {
        api = api.route_layer(axum::middleware::from_fn(layers::restli_tunnel));
    }
    let mut routes = oauth.merge(api);
    if at_root {
        routes = routes.route(
            "/services/{*rest}",
            any(move || async move { errors::not_found(p) }),
        );
    } else {
        routes = routes.fallback(move || async move { errors::not_found(p) });
    }
    routes
        .method_not_allowed_fallback(move || async move { errors::method_not_allowed(p) })
        .layer(from_fn_with_state(st.clone(), layers::provider_layer))
        .with_state(st)
}

fn app(state: AppState) -> Router {
    let index = {
        let base = state.base_url.clone();
        let [linkedin, hubspot, salesforce] = Provider::ALL.map(|p| state.provider_base(p));
        move || async move {
            axum::Json(serde_json::json!({
                "service": "provider sandbox",
                "linkedin": linkedin,
                "hubspot": hubspot,
                "salesforce": salesforce,
                "admin": format!("{base}/admin"),
            }))
        }
    };
    Router::new()
        .route("/", get(index))
        .nest(
            "/linkedin",
            provider_routes(&state, Provider::Linkedin, false),
        )
        .nest(
            "/hubspot",
            provider_routes(&state, Provider::Hubspot, false),
        )
        .nest(
            "/salesforce",
            provider_routes(&state, Provider::Salesforce, false),
        )
        // A Salesforce org serves its OAuth and REST API at its origin (`instance_url` is a
        // bare origin, `https://yourInstance.my.salesforce.com`): so does the sandbox, beside
        // the `/salesforce` prefix kept for older clients. `/services/...` is no other
        // provider's path.
        .merge(provider_routes(&state, Provider::Salesforce, true))
        .nest("/admin", admin::router(state.clone()))
}
