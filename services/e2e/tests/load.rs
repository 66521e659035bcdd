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

/// CPU seconds (user + system) a process has used: `/proc/<pid>/stat` fields 14 and 15.
fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command may hold spaces: fields count from after its closing parenthesis.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // After ")": state is field 3, so utime (14) and stime (15) are at 11 and 12.
    (ticks(11) + ticks(12)) / 100.0
}

/// The pids of every process whose command name is `comm` (`postgres`, `nats-server`).
fn pids_named(comm: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .collect()
}

/// Who used the CPU during a phase: each service, PostgreSQL (all its backends), nats-server, the
/// provider sandbox serving every pull, and this process (the harness).
struct CpuMeter {
    parts: Vec<(String, Vec<u32>)>,
    start: Vec<f64>,
    at: Instant,
}

impl CpuMeter {
    fn start(s: &System) -> Self {
        let mut parts: Vec<(String, Vec<u32>)> = s
            .processes()
            .into_iter()
            .map(|(name, _, pid, _)| (name.to_string(), vec![pid]))
            .collect();
        parts.push(("postgres".into(), pids_named("postgres")));
        parts.push(("nats-server".into(), pids_named("nats-server")));
        parts.push(("sandbox".into(), s.sandbox_pid().into_iter().collect()));
        parts.push(("harness".into(), vec![std::process::id()]));
        let start = parts.iter().map(|(_, p)| Self::sum(p)).collect();
        Self {
            parts,
            start,
            at: Instant::now(),
        }
    }

    fn sum(pids: &[u32]) -> f64 {
        pids.iter().map(|p| cpu_secs(*p)).sum()
    }

    /// `name cpu-s (share of the machine)` for each part, and the machine's total share.
    fn report(&self) -> String {
        let wall = self.at.elapsed().as_secs_f64().max(0.001);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let mut total = 0.0;
        let mut out: Vec<String> = self
            .parts
            .iter()
            .zip(&self.start)
            .map(|((name, pids), start)| {
                let used = (Self::sum(pids) - start).max(0.0);
                total += used;
                format!("{name} {used:.0} s ({:.0}%)", 100.0 * used / (wall * cores))
            })
            .collect();
        out.push(format!(
            "all {:.0}% of {cores} cores over {wall:.0} s",
            100.0 * total / (wall * cores)
        ));
        out.join(", ")
    }
}

/// What this test's database backends were doing, sampled every 250 ms until stopped: the mean
/// number of backends active, waiting on the log's append lock (the advisory lock every append
/// takes), on other locks, on I/O, and running (no wait).
struct DbSampler {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<[f64; 6]>,
}

impl DbSampler {
    fn start(s: &System) -> Self {
        let pool = s.env.pool.clone();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            // active, append lock, other locks, LWLock, I/O, samples
            let mut acc = [0.0f64; 6];
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                let row: Result<(i64, i64, i64, i64, i64), _> = sqlx::query_as(
                    "SELECT count(*) FILTER (WHERE state = 'active'), \
                        count(*) FILTER (WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'), \
                        count(*) FILTER (WHERE wait_event_type = 'Lock' AND wait_event <> 'advisory'), \
                        count(*) FILTER (WHERE wait_event_type = 'LWLock'), \
                        count(*) FILTER (WHERE wait_event_type = 'IO') \
                     FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
                .fetch_one(&pool)
                .await;
                if let Ok((a, adv, lock, lw, io)) = row {
                    for (slot, v) in acc.iter_mut().zip([a, adv, lock, lw, io]) {
                        *slot += v as f64;
                    }
                    acc[5] += 1.0;
                }
            }
            acc
        });
        Self { stop, task }
    }

    async fn report(self) -> String {
        let _ = self.stop.send(true);
        let acc = self.task.await.unwrap_or_default();
        let n = acc[5].max(1.0);
        format!(
            "database backends on average: {:.1} active, {:.2} waiting on the log's append lock, {:.2} on other locks, {:.2} on LWLocks, {:.2} on I/O ({} samples)",
            acc[0] / n,
            acc[1] / n,
            acc[2] / n,
            acc[3] / n,
            acc[4] / n,
            acc[5]
        )
    }
}

async fn level(n: usize) -> bool {
    let data = data();
    let limit = Duration::from_secs(var("LOAD_RUN_LIMIT_SECS", 1_200));
    // Every tenant's "browser" is this process: one client address for 2N OAuth callbacks, as
    // behind a proxy, so the callback's per-address rate is sized for it (docs/security.md).
    let connector_vars = [
        (
            "CONNECTOR_CALLBACK_RATE_PER_ADDR".to_string(),
            "1000".to_string(),
        ),
        (
            "CONNECTOR_CALLBACK_BURST_PER_ADDR".to_string(),
            "5000".to_string(),
        ),
    ];
    let s = System::start_on(TestEnv::new().await, PLAN, &data, &[], &connector_vars).await;
    let t0 = Instant::now();
    let ts = tenants::tenants(&s, n, PLAN).await;
    println!(
        "N={n}: {} workspaces connected in {:.1} s ({} companies each)",
        ts.len(),
        t0.elapsed().as_secs_f64(),
        data.sizes.companies
    );

    // 1. Sync Now on every integration.
    let cpu = CpuMeter::start(&s);
    let db = DbSampler::start(&s);
    let runs = tenants::sync_all(&s, &ts).await;
    let done = tenants::all_finished(&s, &ts, &runs, limit).await;
    let (cpu, db) = (cpu.report(), db.report().await);
    let mut failures = done.iter().filter(|r| r.state != "completed").count();
    let (rpm, p50, p95, max) = figures(&done);
    println!(
        "  Sync Now    {:>5} runs  {rpm:>7.1} runs/min  p50 {p50:>6.1} s  p95 {p95:>6.1} s  max {max:>6.1} s  failed {failures}",
        done.len()
    );
    println!("    CPU: {cpu}");
    println!("    {db}");

    // 2. The shared daily slot.
    // Far enough ahead for every schedule to be set first (about 20 ms each, one at a time).
    let (slot, wait) = slot_after(Duration::from_secs(45 + (n as u64 * 2) / 20));
    for t in &ts {
        for id in t.integrations() {
            tenants::set_schedule(&s, t, id, &slot).await;
        }
    }
    let cpu = CpuMeter::start(&s);
    let db = DbSampler::start(&s);
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
    // The slot phase includes the wait for the slot's minute (up to ~1.75 min of idle).
    println!("    CPU (with the wait for the slot): {}", cpu.report());
    println!("    {}", db.report().await);
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
