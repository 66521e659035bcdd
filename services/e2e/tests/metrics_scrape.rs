//! A real Prometheus scrapes the running system: every service's `/metrics` is up, a LinkedIn
//! and a HubSpot sync show in the sync, provider, consumer and gRPC metrics, and the alert rules
//! of `infra/prometheus/alerts.yml` load and evaluate against them. Prometheus is Debian's
//! (`infra/dev-up.sh` installs it); the test starts its own server on a free port with its own
//! storage, scraping every second, and asks its HTTP API until the series are there.

use e2e::{SandboxData, Sizes, System, WAIT, free_port};
use rp_platform::contracts::api::v1 as api;
use rp_platform::testing::eventually;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

const SANDBOX: SandboxData = SandboxData {
    seed: 42,
    sizes: Sizes::TINY,
    hubspot_rate_limit: true,
};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The prometheus binary, installed by `infra/dev-up.sh` when missing (as `make test` does
/// first); `None` when it is not installed and cannot be.
fn prometheus_binary() -> Option<PathBuf> {
    let find = || {
        ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    };
    if let Some(p) = find() {
        return Some(p);
    }
    let root = repo_root();
    let status = std::process::Command::new("bash")
        .arg(root.join("infra/dev-up.sh"))
        .current_dir(&root)
        .status();
    eprintln!("prometheus was not installed; infra/dev-up.sh: {status:?}");
    find()
}

/// A Prometheus server of the test's own: killed and its storage removed on drop.
struct Prometheus {
    child: tokio::process::Child,
    dir: PathBuf,
    url: String,
    http: reqwest::Client,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Prometheus {
    /// Starts `bin` scraping every `(job, address)` each second, with the repository's alert rules.
    async fn start(bin: &Path, targets: &[(&'static str, String)]) -> Self {
        let dir = std::env::temp_dir().join(format!("rp-prometheus-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("data"))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let rules = repo_root().join("infra/prometheus/alerts.yml");
        let mut config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\nscrape_configs:\n",
            rules.display()
        );
        for (job, addr) in targets {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['{addr}']\n"
            ));
        }
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap_or_else(|e| panic!("writing config: {e}"));
        let listen = format!("127.0.0.1:{}", free_port());
        let child = tokio::process::Command::new(bin)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .arg("--log.level=warn")
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let p = Self {
            child,
            dir,
            url: format!("http://{listen}"),
            http: reqwest::Client::new(),
        };
        eventually(WAIT, "Prometheus to be ready", || async {
            let r = p.http.get(format!("{}/-/ready", p.url)).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
        p
    }

    /// `GET /api/v1/<path>` with `query`; the answer's `data`, or `None` if it did not answer
    /// with success.
    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Option<Value> {
        let r = self
            .http
            .get(format!("{}/api/v1/{path}", self.url))
            .query(query)
            .send()
            .await
            .ok()?;
        let v: Value = r.json().await.ok()?;
        (v["status"] == "success").then(|| v["data"].clone())
    }

    /// An instant query's samples: each series' labels and value.
    async fn query(&self, promql: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let Some(data) = self.api("query", &[("query", promql)]).await else {
            return Vec::new();
        };
        data["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| {
                let labels = s["metric"]
                    .as_object()?
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect();
                let value = s["value"][1].as_str()?.parse().ok()?;
                Some((labels, value))
            })
            .collect()
    }

    /// Waits until `promql` answers samples that satisfy `pred`; returns them.
    async fn until<F>(
        &self,
        what: &str,
        promql: &str,
        pred: F,
    ) -> Vec<(BTreeMap<String, String>, f64)>
    where
        F: Fn(&[(BTreeMap<String, String>, f64)]) -> bool,
    {
        eventually(WAIT, &format!("{what} ({promql})"), || async {
            let samples = self.query(promql).await;
            pred(&samples).then_some(samples)
        })
        .await
    }
}

/// The value of the sample whose `label` is `value`.
fn value_of(samples: &[(BTreeMap<String, String>, f64)], label: &str, value: &str) -> f64 {
    samples
        .iter()
        .find(|(l, _)| l.get(label).map(String::as_str) == Some(value))
        .map_or(0.0, |(_, v)| *v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_service_through_a_linkedin_and_hubspot_sync() {
    let Some(bin) = prometheus_binary() else {
        eprintln!(
            "SKIPPED: prometheus is not installed and infra/dev-up.sh could not install it \
             (it installs as root from Debian's packages): apt-get install prometheus"
        );
        return;
    };
    let s = System::start("growth", &SANDBOX).await;
    let prom = Prometheus::start(&bin, &s.metrics).await;
    let jobs: BTreeSet<&str> = s.metrics.iter().map(|(job, _)| *job).collect();

    let up = prom
        .until("every service scraped", "up", |samples| {
            samples.len() == jobs.len() && samples.iter().all(|(_, v)| *v == 1.0)
        })
        .await;
    let scraped: BTreeSet<&str> = up
        .iter()
        .filter_map(|(l, _)| l.get("job").map(String::as_str))
        .collect();
    assert_eq!(scraped, jobs);

    // The help page's daily order: LinkedIn first, then HubSpot.
    let linkedin = s.connect(api::Provider::Linkedin).await;
    s.sync_to_completion(&linkedin).await;
    let hubspot = s.connect(api::Provider::Hubspot).await;
    s.sync_to_completion(&hubspot).await;
    // One call of every other service's API, so each gRPC server has something to count.
    s.notifications_list().await;
    s.attribution
        .clone()
        .get_dashboard(s.req(api::GetDashboardRequest {
            workspace_id: s.workspace_id.clone(),
            window_days: 30,
            model: api::AttributionModel::Linear as i32,
        }))
        .await
        .unwrap_or_else(|e| panic!("GetDashboard: {e}"));
    s.matches
        .clone()
        .list_matches(s.req(api::ListMatchesRequest {
            workspace_id: s.workspace_id.clone(),
            ..Default::default()
        }))
        .await
        .unwrap_or_else(|e| panic!("ListMatches: {e}"));

    // Both runs completed, each under its provider.
    let runs = prom
        .until(
            "a completed run of each provider",
            r#"sum by (provider) (rp_sync_runs_total{job="connector",outcome="completed",trigger="manual"})"#,
            |v| value_of(v, "provider", "linkedin") >= 1.0 && value_of(v, "provider", "hubspot") >= 1.0,
        )
        .await;
    assert!(runs.iter().map(|(_, v)| v).sum::<f64>() >= 2.0, "{runs:?}");
    prom.until(
        "each sync step timed",
        r#"sum by (step) (rp_sync_step_duration_seconds_count{job="connector"})"#,
        |v| {
            ["linkedin_pull", "crm_pull", "matching", "attribution"]
                .iter()
                .all(|step| value_of(v, "step", step) >= 1.0)
        },
    )
    .await;
    prom.until(
        "requests to both providers",
        r#"sum by (provider) (rp_provider_requests_total{job="connector"})"#,
        |v| value_of(v, "provider", "linkedin") > 0.0 && value_of(v, "provider", "hubspot") > 0.0,
    )
    .await;
    // Every consumer of every service handled events; the dead-letter counter of each is
    // there (at 0), so a DeadLetter alert sees its first one.
    let consumers = [
        ("connector", "connector"),
        ("connector", "sync-orchestrator"),
        ("matcher", "matcher"),
        ("attribution", "attribution"),
        ("notification", "notification"),
    ];
    prom.until(
        "each consumer's handling time",
        "rp_consumer_handle_duration_seconds_count",
        |v| {
            consumers.iter().all(|(job, consumer)| {
                v.iter().any(|(l, n)| {
                    l.get("job").map(String::as_str) == Some(*job)
                        && l.get("consumer").map(String::as_str) == Some(*consumer)
                        && *n > 0.0
                })
            })
        },
    )
    .await;
    let dead = prom.query("rp_consumer_dead_letters_total").await;
    assert_eq!(dead.len(), consumers.len(), "{dead:?}");
    assert!(dead.iter().all(|(_, v)| *v == 0.0), "{dead:?}");
    // gRPC calls, by method and code, on every server.
    prom.until(
        "gRPC calls counted on every server",
        r#"sum by (job) (rp_grpc_server_handled_total{grpc_code="OK"})"#,
        |v| jobs.iter().all(|job| value_of(v, "job", job) > 0.0),
    )
    .await;
    prom.until(
        "Sync Now counted",
        r#"rp_grpc_server_handled_total{job="connector",grpc_service="rp.api.v1.Sync",grpc_method="SyncNow",grpc_code="OK"}"#,
        |v| v.first().is_some_and(|(_, n)| *n >= 2.0),
    )
    .await;
    // Exactly one relay leads, whichever process it is in, and it caught up.
    prom.until("one relay leader", "sum(rp_relay_leader)", |v| {
        v.first().is_some_and(|(_, n)| *n == 1.0)
    })
    .await;
    prom.until("the relay caught up", "max(rp_relay_lag_events)", |v| {
        v.first().is_some_and(|(_, n)| *n == 0.0)
    })
    .await;

    // The alert rules loaded, evaluate without error against these series, and none fires
    // after a healthy sync (a burst of consumer lag may leave one pending, never firing: every
    // rule waits at least a minute).
    let groups = eventually(WAIT, "the alert rules evaluated", || async {
        let data = prom.api("rules", &[]).await?;
        let groups = data["groups"].as_array()?.clone();
        let rules: Vec<&Value> = groups
            .iter()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        (!rules.is_empty()
            && rules
                .iter()
                .all(|r| r["lastEvaluation"] != "0001-01-01T00:00:00Z"))
        .then_some(groups)
    })
    .await;
    for rule in groups
        .iter()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
    {
        assert_eq!(rule["health"], "ok", "{rule}");
        assert_ne!(rule["state"], "firing", "{rule}");
    }

    drop(prom);
    s.stop().await;
}

/// A malformed metrics address stops each service at startup, naming the variable.
#[tokio::test]
async fn a_malformed_metrics_address_stops_every_service_at_startup() {
    for service in ["connector", "matcher", "attribution", "notification"] {
        let var = format!("{}_METRICS_ADDR", service.to_uppercase());
        let bin = e2e::bin_dir().join(service);
        assert!(bin.exists(), "{} is not built", bin.display());
        let run = tokio::process::Command::new(&bin)
            .env(&var, "localhost:metrics")
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .unwrap_or_else(|_| panic!("{service} did not stop on a malformed {var}"))
            .unwrap_or_else(|e| panic!("cannot run {service}: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{service}: {stderr}");
        assert!(
            stderr.contains(&var) && stderr.contains("host:port"),
            "{service} names {var}: {stderr}"
        );
    }
}
