//! `connector-bench`: the connector's pull benchmark (docs/benchmarks.md, "Connector").
//! Run it with `cargo bench -p connector --bench connector-bench [-- --scale N --skip-limited]`.
//!
//! Runs against the local PostgreSQL (`RP_BENCH_DATABASE_URL`, a server URL; default
//! `postgres://postgres@127.0.0.1:5432/postgres`; a fresh database is created and dropped) and a
//! provider sandbox it starts in this process. Each pull runs in a child process
//! (this executable with the argument `pull`), so its peak RSS (VmHWM) is the pull's alone.
//!
//! 1. The typical workspace (50,000 companies, 200,000 contacts, 20,000 deals, 5,000 engaged
//!    organizations over 365 days), limits off: first-sync throughput per provider, and the
//!    sandbox's raw serving rate for the same HubSpot and Salesforce pages, measured in the same
//!    run with a plain HTTP loop.
//! 2. 1% of the CRM records changed: incremental sync time.
//! 3. HubSpot-like limits on (100 requests / 10 s): share of each full window used, 429s.
//! 4. Peak RSS of the pull at 1x and `--scale` times the typical size (default 10).
//!
//! Flags: `--scale N` (default 10; 0 skips the large run), `--skip-limited`.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use connector::Connector;
use connector::config::{ConnectorConfig, ProviderSettings, ProvidersConfig, PullConfig};
use connector::crypto::KeyRing;
use connector::domain::provider::{Provider, Secret};
use connector::domain::{IntegrationId, SyncRunId};
use connector::pull::{NoSchedule, execute_job};
use connector::store::{self, NewJob};
use rp_platform::contracts::events::v1::envelope::Event;
use rp_platform::eventlog::EventStore;
use rp_platform::plans::{DEFAULT_PLANS, Plans};
use sandbox::{Provider as SbProvider, RateLimit, Sandbox, SandboxConfig, Sizes};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const USAGE: &str =
    "usage: cargo bench -p connector --bench connector-bench -- [--scale N] [--skip-limited]
  --scale N        size of the large run, in typical workspaces (default 10; 0 skips it)
  --skip-limited   skip the run with HubSpot-like rate limits on";

const KEY: &str = "k1:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

fn server_url() -> String {
    std::env::var("RP_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn with_database(server: &str, db: &str) -> String {
    let base = server.split('?').next().unwrap_or(server);
    let (head, _) = base.rsplit_once('/').unwrap_or((base, ""));
    format!("{head}/{db}")
}

/// What the child process needs, as environment variables (the connector's own).
fn child_env(sb: &Sandbox, database_url: &str) -> Vec<(String, String)> {
    let mut env = vec![
        ("BENCH_DATABASE_URL".to_string(), database_url.to_string()),
        ("CONNECTOR_TOKEN_KEYS".into(), KEY.into()),
        ("CONNECTOR_TOKEN_KEY_ID".into(), "k1".into()),
        (
            "CONNECTOR_PROVIDER_CLOCK_URL".into(),
            format!("{}/clock", sb.admin_url()),
        ),
        (
            "CONNECTOR_REDIRECT_URL".into(),
            "http://127.0.0.1:9/oauth/callback".into(),
        ),
        (
            "RUST_LOG".into(),
            std::env::var("BENCH_CHILD_LOG").unwrap_or_else(|_| "warn".into()),
        ),
    ];
    for (p, prefix) in [
        (SbProvider::Linkedin, "LINKEDIN"),
        (SbProvider::Hubspot, "HUBSPOT"),
        (SbProvider::Salesforce, "SALESFORCE"),
    ] {
        let c = sb.client(p);
        env.push((format!("{prefix}_API_BASE"), sb.url(p)));
        env.push((format!("{prefix}_AUTH_BASE"), sb.url(p)));
        env.push((format!("{prefix}_CLIENT_ID"), c.client_id.clone()));
        env.push((format!("{prefix}_CLIENT_SECRET"), c.client_secret.clone()));
    }
    env
}

fn parent_config(sb: &Sandbox) -> anyhow::Result<ConnectorConfig> {
    let settings = |p: SbProvider| {
        let c = sb.client(p);
        ProviderSettings {
            api_base: sb.url(p),
            auth_base: sb.url(p),
            client_id: c.client_id.clone(),
            client_secret: Secret::new(c.client_secret.clone()),
        }
    };
    let (id, key) = KEY.split_once(':').ok_or_else(|| anyhow!("bad key"))?;
    Ok(ConnectorConfig {
        grpc_addr: "127.0.0.1:0".parse()?,
        http_addr: "127.0.0.1:0".parse()?,
        redirect_url: "http://127.0.0.1:9/oauth/callback".into(),
        connections_page: "http://localhost:3000/workspace/connections".into(),
        providers: ProvidersConfig {
            linkedin_api_version: connector::providers::linkedin::DEFAULT_VERSION.into(),
            linkedin: settings(SbProvider::Linkedin),
            hubspot: settings(SbProvider::Hubspot),
            salesforce: settings(SbProvider::Salesforce),
            http_timeout: Duration::from_secs(30),
            attempts: 4,
            retry_delay: Duration::from_millis(200),
            linkedin_analytics_cap: connector::providers::linkedin::ANALYTICS_CAP,
            max_response_bytes: connector::providers::DEFAULT_MAX_RESPONSE_BYTES,
            max_pages: connector::providers::DEFAULT_MAX_PAGES,
            max_retry_after: connector::providers::hubspot::DEFAULT_MAX_RETRY_AFTER,
        },
        keys: KeyRing::parse(&format!("{id}:{key}"), id).map_err(|e| anyhow!(e))?,
        oauth_state_ttl: Duration::from_secs(600),
        refresh_margin: Duration::from_secs(300),
        signpost_margin: Duration::from_secs(300),
        provider_clock_url: Some(format!("{}/clock", sb.admin_url())),
        plans: Plans::parse(DEFAULT_PLANS).map_err(|e| anyhow!(e))?,
        callback_rate: rp_platform::ratelimit::Rate::new(10, 60),
        pull: PullConfig {
            concurrency: 1,
            lease: Duration::from_secs(60),
            heartbeat: Duration::from_secs(20),
            retry_for: Duration::from_secs(120),
            poll: Duration::from_secs(1),
            max_attempts: 3,
        },
    })
}

/// One bench database with a workspace and a connector to drive the connect flow.
struct Bench {
    server: String,
    db_name: String,
    database_url: String,
    pool: sqlx::PgPool,
    connector: Connector,
    workspace: Uuid,
    http: reqwest::Client,
}

impl Bench {
    async fn new(sb: &Sandbox) -> anyhow::Result<Self> {
        rp_platform::install_crypto_provider();
        let server = server_url();
        let db_name = format!(
            "rp_bench_connector_{}",
            &Uuid::new_v4().simple().to_string()[..8]
        );
        let database_url = with_database(&server, &db_name);
        rp_platform::db::ensure_database(&database_url).await?;
        let pool = rp_platform::db::connect(&database_url, 8).await?;
        rp_platform::db::migrate(&pool).await?;
        store::migrate(&pool).await?;
        let connector = Connector::new(
            pool.clone(),
            EventStore::new(pool.clone()),
            parent_config(sb)?,
            Arc::new(NoSchedule),
        )?;
        let workspace = Uuid::new_v4();
        let mut conn = pool.acquire().await?;
        store::set_plan(&mut conn, workspace, "enterprise").await?;
        Ok(Self {
            server,
            db_name,
            database_url,
            pool,
            connector,
            workspace,
            http: connector::providers::http_client(Duration::from_secs(60))?,
        })
    }

    async fn connect(&self, p: Provider) -> anyhow::Result<IntegrationId> {
        let auth = self
            .connector
            .flow
            .start_connect(self.workspace, p)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let resp = self.http.get(&auth.url).send().await?;
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow!("authorize did not redirect"))?
            .to_string();
        let query = location.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let outcome = self
            .connector
            .flow
            .complete(query)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let connector::connect::CallbackOutcome::Authorized { completion, .. } = outcome else {
            bail!("connecting {p} failed: {outcome:?}");
        };
        let hash = connector::domain::oauth_state::hash(&completion)
            .ok_or_else(|| anyhow!("a malformed completion handle"))?;
        self.connector
            .flow
            .finish(self.workspace, &hash)
            .await
            .map_err(|e| anyhow!("completing {p}: {e}"))?;
        Ok(auth.integration_id)
    }

    /// Queues a pull and runs it in a child process; returns what the child measured.
    async fn pull(&self, sb: &Sandbox, id: IntegrationId) -> anyhow::Result<PullResult> {
        let run = SyncRunId::generate();
        let mut conn = self.pool.acquire().await?;
        store::enqueue_job(
            &mut conn,
            &NewJob {
                sync_run_id: run.to_string(),
                integration_id: id,
                workspace_id: self.workspace,
                correlation_id: run.to_string(),
                causation_id: Uuid::now_v7().to_string(),
                traceparent: String::new(),
                tracestate: String::new(),
            },
        )
        .await?;
        drop(conn);
        let exe = std::env::current_exe()?;
        let out = tokio::process::Command::new(exe)
            .arg("pull")
            .envs(child_env(sb, &self.database_url))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .output()
            .await
            .context("running the pull child")?;
        if !out.status.success() {
            bail!("pull child failed: {:?}", out.status);
        }
        // The child logs (RUST_LOG) on stdout too; its result is the last line.
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let result = lines.pop().unwrap_or_default();
        for l in lines {
            eprintln!("  child: {l}");
        }
        let v: Value = serde_json::from_str(result).context("child output")?;
        let store = EventStore::new(self.pool.clone());
        let events = store.read_stream(&run.run_stream(), 1, 1000).await?;
        let mut records = 0u64;
        let mut outcome = "unfinished".to_string();
        for e in &events {
            match e.event() {
                Some(Event::PullCompleted(p)) => {
                    records += p.counts.iter().map(|c| c.records).sum::<u64>();
                    outcome = "completed".into();
                }
                Some(Event::CompaniesResolved(c)) => {
                    records += c.organizations;
                    outcome = "completed".into();
                }
                Some(Event::SyncFailed(f)) => outcome = format!("failed: {}", f.message),
                _ => {}
            }
        }
        Ok(PullResult {
            records,
            secs: v["secs"].as_f64().unwrap_or(0.0),
            vmhwm_mb: v["vmhwm_kb"].as_f64().unwrap_or(0.0) / 1024.0,
            outcome,
        })
    }

    async fn drop_db(self) {
        self.pool.close().await;
        if let Ok(admin) = rp_platform::db::connect(&self.server, 1).await {
            let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.db_name);
            let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&admin).await;
        }
    }
}

#[derive(Debug)]
struct PullResult {
    records: u64,
    secs: f64,
    vmhwm_mb: f64,
    outcome: String,
}

impl PullResult {
    fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.records as f64 / self.secs
        } else {
            0.0
        }
    }
}

fn vmhwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// The child: claims the one queued job and runs it.
async fn child() -> anyhow::Result<()> {
    rp_platform::install_crypto_provider();
    let _telemetry = rp_platform::telemetry::init("connector-bench")?;
    let url = std::env::var("BENCH_DATABASE_URL")?;
    let config = ConnectorConfig::from_env()?;
    let pool = rp_platform::db::connect(&url, 8).await?;
    let connector = Connector::new(
        pool.clone(),
        EventStore::new(pool.clone()),
        config,
        Arc::new(NoSchedule),
    )?;
    let owner = format!("bench-{}", std::process::id());
    let job = store::claim_job(&pool, &owner, Duration::from_secs(60))
        .await?
        .ok_or_else(|| anyhow!("no job to run"))?;
    let t = Instant::now();
    execute_job(connector.pull.clone(), owner, job, CancellationToken::new()).await;
    let secs = t.elapsed().as_secs_f64();
    println!("{}", json!({"secs": secs, "vmhwm_kb": vmhwm_kb()}));
    Ok(())
}

async fn admin(
    http: &reqwest::Client,
    sb: &Sandbox,
    method: &str,
    path: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let m = reqwest::Method::from_bytes(method.as_bytes())?;
    let mut rb = http.request(m, format!("{}{path}", sb.admin_url()));
    if !body.is_null() {
        rb = rb.json(&body);
    }
    let resp = rb.send().await?;
    if !resp.status().is_success() {
        bail!("{method} {path}: {}", resp.status());
    }
    Ok(resp.json().await?)
}

/// The sandbox's raw serving rate for the HubSpot list pages the first sync reads: the same
/// requests, one at a time, bodies read but not parsed.
async fn raw_hubspot(
    http: &reqwest::Client,
    sb: &Sandbox,
    token: &str,
) -> anyhow::Result<(u64, f64)> {
    let base = sb.url(SbProvider::Hubspot);
    let t = Instant::now();
    let mut records = 0u64;
    for (object, props) in [
        (
            "companies",
            "name,domain,website,country,createdate,hs_lastmodifieddate",
        ),
        (
            "deals",
            "dealname,amount,deal_currency_code,dealstage,pipeline,createdate,closedate,hs_lastmodifieddate",
        ),
        (
            "contacts",
            "email,firstname,lastname,jobtitle,associatedcompanyid,lastmodifieddate",
        ),
    ] {
        let mut after: Option<String> = None;
        loop {
            let mut q = vec![
                ("limit", "100".to_string()),
                ("properties", props.to_string()),
            ];
            if object == "deals" {
                q.push(("associations", "companies".into()));
            }
            if let Some(a) = &after {
                q.push(("after", a.clone()));
            }
            let body = http
                .get(format!("{base}/crm/v3/objects/{object}"))
                .query(&q)
                .bearer_auth(token)
                .send()
                .await?
                .bytes()
                .await?;
            let text = std::str::from_utf8(&body)?;
            records += text.matches("\"archived\"").count() as u64;
            after = text
                .split("\"after\":\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .map(String::from);
            if after.is_none() {
                break;
            }
        }
    }
    Ok((records, t.elapsed().as_secs_f64()))
}

/// The same for Salesforce's query batches.
async fn raw_salesforce(
    http: &reqwest::Client,
    sb: &Sandbox,
    token: &str,
) -> anyhow::Result<(u64, f64)> {
    let base = sb.url(SbProvider::Salesforce);
    let t = Instant::now();
    let mut records = 0u64;
    for soql in [
        "SELECT Id, Name, Website, BillingCountry, CreatedDate, SystemModstamp FROM Account ORDER BY SystemModstamp ASC, Id ASC",
        "SELECT Id, Name, AccountId, Amount, CurrencyIsoCode, StageName, CloseDate, CreatedDate, IsClosed, IsWon, SystemModstamp FROM Opportunity ORDER BY SystemModstamp ASC, Id ASC",
        "SELECT Id, FirstName, LastName, Email, Title, AccountId, SystemModstamp FROM Contact ORDER BY SystemModstamp ASC, Id ASC",
    ] {
        let mut url = format!("{base}/services/data/v60.0/query");
        let mut first = true;
        loop {
            let mut rb = http.get(&url).bearer_auth(token);
            if first {
                rb = rb.query(&[("q", soql)]);
            }
            first = false;
            let body = rb.send().await?.bytes().await?;
            let text = std::str::from_utf8(&body)?;
            records += text.matches("\"attributes\"").count() as u64;
            match text
                .split("\"nextRecordsUrl\":\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
            {
                Some(next) => url = format!("{base}{next}"),
                None => break,
            }
        }
    }
    Ok((records, t.elapsed().as_secs_f64()))
}

async fn access_token(b: &Bench, id: IntegrationId) -> anyhow::Result<String> {
    let a = b
        .connector
        .vault
        .access(id, &connector::vault::Cause::default())
        .await?;
    Ok(a.token.expose().to_string())
}

fn sizes_times(n: usize) -> Sizes {
    let t = Sizes::TYPICAL;
    Sizes {
        companies: t.companies * n,
        contacts: t.contacts * n,
        deals: t.deals * n,
        engaged_orgs: t.engaged_orgs * n,
        days: t.days,
    }
}

fn unlimited(sizes: Sizes) -> SandboxConfig {
    SandboxConfig {
        sizes,
        hubspot_rate_limit: None,
        salesforce_daily_limit: None,
        request_log_capacity: 10_000,
        ..SandboxConfig::default()
    }
}

async fn typical(report: &mut Vec<String>) -> anyhow::Result<Vec<(Provider, f64)>> {
    let t = Instant::now();
    let sb = Sandbox::spawn(unlimited(Sizes::TYPICAL)).await?;
    eprintln!("sandbox (typical) up in {:.1}s", t.elapsed().as_secs_f64());
    let b = Bench::new(&sb).await?;
    let mut rss = Vec::new();
    report.push("### First sync, typical workspace, limits off\n".into());
    report.push("| provider | records | time | records/s | raw serving rate (same pages, records/s) | ratio | pull peak RSS |".into());
    report.push("|---|---:|---:|---:|---:|---:|---:|".into());
    let mut ids = Vec::new();
    for p in [Provider::Hubspot, Provider::Salesforce, Provider::Linkedin] {
        let id = b.connect(p).await?;
        let r = b.pull(&sb, id).await?;
        eprintln!("{p}: {r:?}");
        let raw = match p {
            Provider::Hubspot => {
                Some(raw_hubspot(&b.http, &sb, &access_token(&b, id).await?).await?)
            }
            Provider::Salesforce => {
                Some(raw_salesforce(&b.http, &sb, &access_token(&b, id).await?).await?)
            }
            Provider::Linkedin => None,
        };
        let (raw_rate, ratio) = match raw {
            Some((n, secs)) if secs > 0.0 => {
                let rr = n as f64 / secs;
                (format!("{rr:.0}"), format!("{:.0}%", 100.0 * r.rate() / rr))
            }
            _ => ("-".into(), "-".into()),
        };
        report.push(format!(
            "| {p} | {} | {:.1} s | {:.0} | {raw_rate} | {ratio} | {:.0} MB |{}",
            r.records,
            r.secs,
            r.rate(),
            r.vmhwm_mb,
            if r.outcome == "completed" {
                String::new()
            } else {
                format!(" {}", r.outcome)
            }
        ));
        rss.push((p, r.vmhwm_mb));
        ids.push((p, id));
    }
    let stats = admin(&b.http, &sb, "GET", "/stats", Value::Null).await?;
    report.push(format!(
        "\nSandbox `/admin/stats` over the whole run: {} requests, {:.0} requests/s averaged over its uptime.\n",
        stats["all_requests"], stats["requests_per_sec"].as_f64().unwrap_or(0.0)
    ));

    // 1% of CRM records change, then incremental syncs.
    let t = Instant::now();
    let s = Sizes::TYPICAL;
    let mut patches = Vec::new();
    for k in 0..s.companies / 100 {
        patches.push((
            format!("/crm/companies/{}", 7_000_000_001u64 + (k * 100) as u64),
            json!({"name": format!("Renamed {k}")}),
        ));
    }
    for k in 0..s.contacts / 100 {
        patches.push((
            format!("/crm/contacts/{}", 100_001u64 + (k * 100) as u64),
            json!({"title": format!("Title {k}")}),
        ));
    }
    for k in 0..s.deals / 100 {
        patches.push((
            format!("/crm/deals/{}", 9_000_000_001u64 + (k * 100) as u64),
            json!({"name": format!("Deal {k}")}),
        ));
    }
    let changed = patches.len();
    for chunk in patches.chunks(16) {
        let futs = chunk
            .iter()
            .map(|(path, body)| admin(&b.http, &sb, "PATCH", path, body.clone()));
        for r in futures::future::join_all(futs).await {
            r?;
        }
    }
    eprintln!(
        "{changed} records changed in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    report.push(format!(
        "### Incremental sync after 1% of CRM records changed ({changed} records)\n"
    ));
    report.push("| provider | records pulled | time |".into());
    report.push("|---|---:|---:|".into());
    for (p, id) in ids.iter().filter(|(p, _)| *p != Provider::Linkedin) {
        let r = b.pull(&sb, *id).await?;
        eprintln!("{p} incremental: {r:?}");
        report.push(format!("| {p} | {} | {:.2} s |", r.records, r.secs));
    }
    if let Some((_, id)) = ids.iter().find(|(p, _)| *p == Provider::Linkedin) {
        let r = b.pull(&sb, *id).await?;
        report.push(format!(
            "| LinkedIn (nothing new the same day) | {} | {:.2} s |",
            r.records, r.secs
        ));
    }
    b.drop_db().await;
    drop(sb);
    Ok(rss)
}

async fn limited(report: &mut Vec<String>) -> anyhow::Result<()> {
    let sizes = Sizes {
        companies: 10_000,
        contacts: 40_000,
        deals: 4_000,
        engaged_orgs: 100,
        days: 30,
    };
    let limit = RateLimit::HUBSPOT_DEFAULT;
    let sb = Sandbox::spawn(SandboxConfig {
        sizes,
        hubspot_rate_limit: Some(limit),
        salesforce_daily_limit: None,
        ..SandboxConfig::default()
    })
    .await?;
    let b = Bench::new(&sb).await?;
    let id = b.connect(Provider::Hubspot).await?;
    admin(&b.http, &sb, "DELETE", "/requests", Value::Null).await?;
    let r = b.pull(&sb, id).await?;
    eprintln!("limited: {r:?}");
    let status = admin(&b.http, &sb, "GET", "/providers/hubspot", Value::Null).await?;
    let log = admin(
        &b.http,
        &sb,
        "GET",
        "/requests?provider=hubspot",
        Value::Null,
    )
    .await?;
    let times: Vec<i64> = log["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with("/crm")))
        .filter_map(|r| {
            r["time"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        })
        .map(|t| t.timestamp_millis())
        .collect();
    let interval = limit.interval_ms as i64;
    let (first, last) = (
        times.iter().copied().min().unwrap_or(0),
        times.iter().copied().max().unwrap_or(0),
    );
    let full_windows = (last - first) / interval;
    let mut shares = Vec::new();
    for w in 0..full_windows {
        let (a, z) = (first + w * interval, first + (w + 1) * interval);
        let n = times.iter().filter(|t| **t >= a && **t < z).count();
        shares.push(n as f64 / f64::from(limit.max));
    }
    let avg = if shares.is_empty() {
        0.0
    } else {
        shares.iter().sum::<f64>() / shares.len() as f64
    };
    let min = shares.iter().copied().fold(f64::INFINITY, f64::min);
    report.push(format!(
        "\n### HubSpot limits on ({} requests / {} s), first sync of {} companies, {} contacts, {} deals\n",
        limit.max, limit.interval_ms / 1000, sizes.companies, sizes.contacts, sizes.deals
    ));
    report.push("| API requests | time | budget used per full 10 s window (avg / min) | peak window | 429 responses |".into());
    report.push("|---:|---:|---:|---:|---:|".into());
    report.push(format!(
        "| {} | {:.1} s | {:.0}% / {:.0}% ({} windows) | {} / {} | {} |",
        status["api_requests"],
        r.secs,
        avg * 100.0,
        if min.is_finite() { min * 100.0 } else { 0.0 },
        shares.len(),
        status["peak_window"],
        limit.max,
        status["rejected"]
    ));

    // An incremental sync under the same limits: its pages are searches, which HubSpot limits
    // on their own (5 per second) and answers without rate-limit headers.
    let edited = 2_000usize;
    let http = &b.http;
    for chunk in (0..edited).collect::<Vec<_>>().chunks(50) {
        let sb = &sb;
        let patches = chunk.iter().map(|&i| async move {
            let path = format!("/crm/contacts/{}", 100_001 + i);
            admin(
                http,
                sb,
                "PATCH",
                &path,
                serde_json::json!({"title": format!("Edited {i}")}),
            )
            .await
        });
        for r in futures::future::join_all(patches).await {
            r?;
        }
    }
    let before = admin(&b.http, &sb, "GET", "/providers/hubspot", Value::Null).await?;
    let inc = b.pull(&sb, id).await?;
    eprintln!("limited, incremental: {inc:?}");
    let after = admin(&b.http, &sb, "GET", "/providers/hubspot", Value::Null).await?;
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    report.push(format!(
        "\nIncremental sync after {edited} contacts were edited, same limits (searches: 5 per second, no rate-limit headers):\n"
    ));
    report.push("| API requests | records | time | search peak window | 429 responses |".into());
    report.push("|---:|---:|---:|---:|---:|".into());
    report.push(format!(
        "| {} | {} | {:.1} s | {} / {} | {} |",
        n(&after, "api_requests") - n(&before, "api_requests"),
        inc.records,
        inc.secs,
        after["search_peak_window"],
        after["search_limit"]["max"],
        n(&after, "rejected") - n(&before, "rejected"),
    ));
    b.drop_db().await;
    Ok(())
}

async fn large(
    report: &mut Vec<String>,
    scale: usize,
    rss_1x: &[(Provider, f64)],
) -> anyhow::Result<()> {
    let t = Instant::now();
    let sb = Sandbox::spawn(unlimited(sizes_times(scale))).await?;
    eprintln!("sandbox ({scale}x) up in {:.1}s", t.elapsed().as_secs_f64());
    let b = Bench::new(&sb).await?;
    report.push(format!(
        "\n### Peak RSS of a first-sync pull at 1x and {scale}x the typical size\n"
    ));
    report.push(format!(
        "| provider | records at {scale}x | time | records/s | peak RSS 1x | peak RSS {scale}x |"
    ));
    report.push("|---|---:|---:|---:|---:|---:|".into());
    for p in [Provider::Hubspot, Provider::Linkedin, Provider::Salesforce] {
        let id = b.connect(p).await?;
        let r = b.pull(&sb, id).await?;
        eprintln!("{p} at {scale}x: {r:?}");
        let one = rss_1x
            .iter()
            .find(|(q, _)| *q == p)
            .map_or(0.0, |(_, m)| *m);
        report.push(format!(
            "| {p} | {} | {:.1} s | {:.0} | {one:.0} MB | {:.0} MB |",
            r.records,
            r.secs,
            r.rate(),
            r.vmhwm_mb
        ));
    }
    b.drop_db().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench` to every bench target; it means nothing here.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("pull") {
        return child().await;
    }
    let mut scale = 10usize;
    let mut skip_limited = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--scale" => {
                scale = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| anyhow!("--scale N"))?
            }
            "--skip-limited" => skip_limited = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let mut report = vec![format!(
        "Measured {} on {}, release build, sandbox in the bench process, each pull in its own process, PostgreSQL local.\n",
        chrono::Utc::now().format("%Y-%m-%d"),
        rp_platform::testing::machine()
    )];
    let rss = typical(&mut report).await?;
    if !skip_limited {
        limited(&mut report).await?;
    }
    if scale > 1 {
        large(&mut report, scale, &rss).await?;
    }
    println!("{}", report.join("\n"));
    Ok(())
}
