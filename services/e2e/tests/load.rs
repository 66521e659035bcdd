//! `make load` (issue 16): N workspaces at once on one machine, for each N of `LOAD_WORKSPACES`
//! (default `10,100`; `10,100,1000` for the whole curve), each on a fresh system (one process of
//! every service, the machine's PostgreSQL and nats-server), all on the same small data
//! (`LOAD_COMPANIES`, default 300, the rest in the typical workspace's proportions), LinkedIn and
//! HubSpot connected through OAuth:
//!
//! 1. Sync Now on every integration at once;
//! 2. then the shared daily slot: every integration's schedule set to the same minute, and the
//!    scheduler fires each exactly once.
//!
//! For each phase it prints runs per minute (runs / from the first request to the last
//! completion), p50/p95/max run duration (requested to finished), and after both: every service's
//! peak memory (`VmHWM`), the dashboards that differ from the first workspace's (identical data:
//! must be 0), and failures (runs not completed, scheduled runs not exactly one per integration:
//! must be 0). Fails on any difference or failure. A benchmark: run it in a release build, not
//! part of `make test`; figures go to docs/benchmarks.md by hand, with machine and date.

use e2e::tenants::{self, Tenant};
use e2e::{SandboxData, Sizes, System};
use rp_platform::contracts::api::v1 as api;
use rp_platform::contracts::events::v1::SyncTrigger;
use rp_platform::testing::{TestEnv, eventually, machine};
use std::time::{Duration, Instant};

const PLAN: &str = "growth";

fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn data() -> SandboxData {
    let companies: usize = var("LOAD_COMPANIES", 300);
    SandboxData {
        seed: 16,
        sizes: Sizes {
            companies,
            contacts: companies * 4,
            deals: (companies / 10).max(1),
            engaged_orgs: (companies / 10).max(1),
            days: 365,
        },
        hubspot_rate_limit: false,
    }
}

fn ts_ms(t: &Option<prost_types::Timestamp>) -> i64 {
    t.as_ref()
        .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// Runs per minute and p50/p95/max duration (s) of finished runs.
fn figures(runs: &[api::SyncRun]) -> (f64, f64, f64, f64) {
    let first = runs
        .iter()
        .map(|r| ts_ms(&r.requested_at))
        .min()
        .unwrap_or(0);
    let last = runs
        .iter()
        .map(|r| ts_ms(&r.finished_at))
        .max()
        .unwrap_or(0);
    let span = ((last - first).max(1)) as f64 / 1000.0;
    let mut d: Vec<f64> = runs
        .iter()
        .map(|r| (ts_ms(&r.finished_at) - ts_ms(&r.requested_at)) as f64 / 1000.0)
        .collect();
    d.sort_by(f64::total_cmp);
    let at = |q: f64| {
        d.get(((d.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0.0)
    };
    (
        runs.len() as f64 * 60.0 / span,
        at(0.5),
        at(0.95),
        d.last().copied().unwrap_or(0.0),
    )
}

/// `HH:MM` (UTC) of the first whole minute at least `ahead` from now.
fn slot_after(ahead: Duration) -> (String, u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let at = (now + ahead.as_secs()).div_ceil(60) * 60;
    let day = at % 86_400;
    (
        format!("{:02}:{:02}", day / 3600, (day % 3600) / 60),
        at - now,
    )
}

async fn scheduled_runs(s: &System, t: &Tenant, id: &str) -> Vec<api::SyncRun> {
    tenants::runs_of(s, t, id)
        .await
        .into_iter()
        .filter(|r| {
            r.trigger == SyncTrigger::Scheduled as i32 || r.trigger == SyncTrigger::CatchUp as i32
        })
        .collect()
}

async fn level(n: usize) -> bool {
    let data = data();
    let limit = Duration::from_secs(var("LOAD_RUN_LIMIT_SECS", 1_200));
    let s = System::start_on(TestEnv::new().await, PLAN, &data, &[], &[]).await;
    let t0 = Instant::now();
    let ts = tenants::tenants(&s, n, PLAN).await;
    println!(
        "N={n}: {} workspaces connected in {:.1} s ({} companies each)",
        ts.len(),
        t0.elapsed().as_secs_f64(),
        data.sizes.companies
    );

    // 1. Sync Now on every integration.
    let runs = tenants::sync_all(&s, &ts).await;
    let done = tenants::all_finished(&s, &ts, &runs, limit).await;
    let mut failures = done.iter().filter(|r| r.state != "completed").count();
    let (rpm, p50, p95, max) = figures(&done);
    println!(
        "  Sync Now    {:>5} runs  {rpm:>7.1} runs/min  p50 {p50:>6.1} s  p95 {p95:>6.1} s  max {max:>6.1} s  failed {failures}",
        done.len()
    );

    // 2. The shared daily slot.
    let (slot, wait) = slot_after(Duration::from_secs(45));
    for t in &ts {
        for id in t.integrations() {
            tenants::set_schedule(&s, t, id, &slot).await;
        }
    }
    let fired: Vec<api::SyncRun> = {
        let mut out = Vec::new();
        let deadline = limit + Duration::from_secs(wait + 60);
        for t in &ts {
            for id in t.integrations() {
                let run = eventually(deadline, "the daily slot's run to finish", || async {
                    let r = scheduled_runs(&s, t, id).await;
                    let f = r.first()?;
                    matches!(f.state.as_str(), "completed" | "failed" | "interrupted")
                        .then(|| f.clone())
                })
                .await;
                out.push(run);
            }
        }
        out
    };
    let mut not_once = 0;
    for t in &ts {
        for id in t.integrations() {
            if scheduled_runs(&s, t, id).await.len() != 1 {
                not_once += 1;
            }
        }
    }
    let slot_failed = fired.iter().filter(|r| r.state != "completed").count();
    failures += slot_failed + not_once;
    let (rpm, p50, p95, max) = figures(&fired);
    println!(
        "  daily slot  {:>5} runs  {rpm:>7.1} runs/min  p50 {p50:>6.1} s  p95 {p95:>6.1} s  max {max:>6.1} s  failed {slot_failed}  not exactly once {not_once}  (slot {slot} UTC)",
        fired.len()
    );
    let live = tenants::live_runs(&s, &ts).await.len();
    let reference = tenants::dashboards(&s, &ts[0]).await;
    let differing = tenants::differing(&s, &ts, &reference).await;
    let mut peaks = Vec::new();
    for (name, _, pid, _) in s.processes() {
        let kib = tenants::peak_kib(pid).unwrap_or(0);
        peaks.push(format!("{name} {} MiB", kib / 1024));
    }
    println!(
        "  peak memory: {}; dashboards differing {differing}; live runs {live}; failures {failures}",
        peaks.join(", ")
    );
    s.stop().await;
    differing == 0 && failures == 0 && live == 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "make load: a benchmark"]
async fn n_workspaces_at_once() {
    let levels: Vec<usize> = std::env::var("LOAD_WORKSPACES")
        .unwrap_or_else(|_| "10,100".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    println!("make load on {}", machine());
    let mut ok = true;
    for n in levels {
        ok &= level(n).await;
    }
    assert!(ok, "a level had differing dashboards or failures");
}
