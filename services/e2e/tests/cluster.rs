//! `make cluster-test` (issue 16): the platform on a three-node NATS cluster (JetStream, the
//! stream with 3 replicas, `cluster::NatsCluster`, the layout of `infra/nats-cluster.sh`) with two
//! replicas of every service (`System::start_second_replicas`), and [`WORKSPACES`] workspaces
//! syncing LinkedIn and HubSpot at once on small identical data.
//!
//! First an undisturbed round: every run completes, every workspace's dashboard equals the
//! first's (identical data gives identical numbers: this is the oracle of the fault rounds, as in
//! the chaos suite), each replica's handled count is printed (from its `/metrics`) and every
//! replica of the connector, matcher and attribution handled a share, no consumer applied an
//! event of a workspace before an earlier one of the same workspace (per-workspace order across
//! replicas), and the processed marks are one per event and consumer (work never doubled).
//!
//! Then each fault during the sync, each on a fresh cluster and system, injected once the log
//! has passed a third of the reference cycle's events (watched, never slept for):
//! * `kill -9` of one replica (the connector's second: its pull jobs' leases and its consumers'
//!   messages move to the other);
//! * the NATS node that leads the stream stopped (found from the stream's cluster info);
//! * both at once (the matcher's second replica killed and the stream leader stopped).
//!
//! After each: every run completed, no run left live, every dashboard equals the reference,
//! per-workspace order held. Prints a table; fails on any failure. `CLUSTER_WORKSPACES` sets the
//! number of workspaces (default 10). The binaries must be built first.

use e2e::cluster::NatsCluster;
use e2e::tenants::{self, Tenant};
use e2e::{SandboxData, Sizes, System};
use rp_platform::contracts::api::v1 as api;
use rp_platform::testing::{EnvOptions, StorageType, TestEnv, eventually};
use std::time::{Duration, Instant};

const PLAN: &str = "growth";

/// Small data: a sync of it takes a few seconds in a debug build, so a fault lands mid-sync and
/// the suite stays within minutes.
const DATA: SandboxData = SandboxData {
    seed: 16,
    sizes: Sizes {
        companies: 400,
        contacts: 1_600,
        deals: 160,
        engaged_orgs: 60,
        days: 365,
    },
    hubspot_rate_limit: false,
};

/// The sync watchdog's limits, shortened (as in the chaos suite), so that a run whose work a
/// fault lost fails within about a minute and a half instead of hanging the suite.
const STALL_LIMITS: [(&str, &str); 4] = [
    ("CONNECTOR_STALL_REQUESTED", "60s"),
    ("CONNECTOR_STALL_PULL", "60s"),
    ("CONNECTOR_STALL_MATCHING", "60s"),
    ("CONNECTOR_STALL_ATTRIBUTION", "60s"),
];

/// How long every run of a round may take to finish.
const RUN_LIMIT: Duration = Duration::from_secs(240);

fn workspaces() -> usize {
    std::env::var("CLUSTER_WORKSPACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    KillReplica,
    StopStreamLeader,
    Both,
}

struct Round {
    cluster: NatsCluster,
    s: System,
    ts: Vec<Tenant>,
}

impl Round {
    async fn start() -> Self {
        let cluster = NatsCluster::start().await;
        let env = TestEnv::with(EnvOptions {
            nats_url: cluster.url(),
            storage: StorageType::File,
            replicas: 3,
            ..EnvOptions::default()
        })
        .await;
        let vars: Vec<(String, String)> = STALL_LIMITS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut s = System::start_on(env, PLAN, &DATA, &vars, &[]).await;
        s.start_second_replicas().await;
        let ts = tenants::tenants(&s, workspaces(), PLAN).await;
        Self { cluster, s, ts }
    }

    async fn head(&self) -> i64 {
        self.s
            .env
            .store
            .head_position()
            .await
            .unwrap_or_else(|e| panic!("the log's head: {e}"))
    }

    async fn stop(self) {
        self.s.stop().await;
        drop(self.cluster);
    }
}

/// What a round saw.
struct Outcome {
    took: Duration,
    events: i64,
    runs: usize,
    not_completed: usize,
    live: usize,
    differing: usize,
    order_violations: i64,
    doubled: i64,
    handled: Vec<(&'static str, usize, u64)>,
    note: String,
}

async fn round(
    fault: Option<Fault>,
    reference: Option<(&[api::Dashboard], i64)>,
) -> (Outcome, Vec<api::Dashboard>) {
    let mut r = Round::start().await;
    let replicas = r.s.env.bus.replicas;
    let stream = r.s.env.js.get_stream(&r.s.env.bus.stream).await;
    let stream_replicas = match stream {
        Ok(mut st) => st.info().await.map(|i| i.config.num_replicas).unwrap_or(0),
        Err(_) => 0,
    };
    assert_eq!(
        stream_replicas, 3,
        "the stream has 3 replicas (RP_BUS_REPLICAS={replicas})"
    );
    let base = r.head().await;
    let started = Instant::now();
    let runs = tenants::sync_all(&r.s, &r.ts).await;
    let mut note = String::new();
    if let (Some(fault), Some((_, cycle))) = (fault, reference) {
        let point = base + cycle / 3;
        let head = eventually(
            RUN_LIMIT,
            "the log to pass a third of the cycle",
            || async {
                let h = r.head().await;
                (h >= point).then_some(h)
            },
        )
        .await;
        let leader = r
            .cluster
            .stream_leader(&r.s.env.js, &r.s.env.bus.stream)
            .await;
        match fault {
            Fault::KillReplica => {
                r.s.kill_replica("connector", 1).await;
                note = format!("connector replica 2 killed at +{} events", head - base);
            }
            Fault::StopStreamLeader => {
                r.cluster.stop_node(leader).await;
                note = format!(
                    "stream leader {} stopped at +{} events",
                    r.cluster.names()[leader],
                    head - base
                );
            }
            Fault::Both => {
                let (kill, stop) =
                    tokio::join!(r.s.kill_replica("matcher", 1), r.cluster.stop_node(leader));
                let ((), ()) = (kill, stop);
                note = format!(
                    "matcher replica 2 killed and stream leader {} stopped at +{} events",
                    r.cluster.names()[leader],
                    head - base
                );
            }
        }
        if fault != Fault::KillReplica {
            let new_leader = r
                .cluster
                .stream_leader(&r.s.env.js, &r.s.env.bus.stream)
                .await;
            assert_ne!(new_leader, leader, "a new stream leader is elected");
            note += &format!(", {} leads now", r.cluster.names()[new_leader]);
        }
    }
    let finished = tenants::all_finished(&r.s, &r.ts, &runs, RUN_LIMIT).await;
    let took = started.elapsed();
    let not_completed: Vec<&api::SyncRun> =
        finished.iter().filter(|f| f.state != "completed").collect();
    for f in &not_completed {
        println!(
            "  run {} of {} ended {}: {:?} {}",
            f.sync_run_id, f.integration_id, f.state, f.failure_kind, f.failure_message
        );
    }
    let events = r.head().await - base;
    let live = tenants::live_runs(&r.s, &r.ts).await.len();
    let first = tenants::dashboards(&r.s, &r.ts[0]).await;
    let oracle: &[api::Dashboard] = reference.map_or(first.as_slice(), |(d, _)| d);
    let differing = tenants::differing(&r.s, &r.ts, oracle).await;
    let order_violations = tenants::order_violations(&r.s).await;
    // Marks are unique per (consumer, event) by the primary key; this counts events of the
    // log some consumer applied twice under two names, which would double a dashboard.
    let doubled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT consumer, position FROM processed_events
           GROUP BY consumer, position HAVING count(*) > 1) d",
    )
    .fetch_one(&r.s.env.pool)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let handled = tenants::handled_per_replica(&r.s).await;
    let processed = tenants::processed(&r.s).await;
    println!("  processed marks per consumer: {processed:?}");
    let outcome = Outcome {
        took,
        events,
        runs: runs.len(),
        not_completed: not_completed.len(),
        live,
        differing,
        order_violations,
        doubled,
        handled,
        note,
    };
    r.stop().await;
    (outcome, first)
}

fn print(name: &str, o: &Outcome) {
    println!(
        "{name:<22} {:>6.1} s  {:>5} events  runs {:>3} (not completed {})  live {}  dashboards \
         differing {}  order violations {}  doubled {}  {}",
        o.took.as_secs_f64(),
        o.events,
        o.runs,
        o.not_completed,
        o.live,
        o.differing,
        o.order_violations,
        o.doubled,
        o.note
    );
    let per: Vec<String> = o
        .handled
        .iter()
        .map(|(n, r, c)| format!("{n}#{}={c}", r + 1))
        .collect();
    println!("{:<22} handled per replica: {}", "", per.join(" "));
}

fn ok(o: &Outcome) -> bool {
    o.not_completed == 0
        && o.live == 0
        && o.differing == 0
        && o.order_violations == 0
        && o.doubled == 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "make cluster-test: a three-node NATS cluster and two replicas of every service"]
async fn two_replicas_of_every_service_on_a_nats_cluster_share_the_work_and_survive_faults() {
    let n = workspaces();
    println!("{n} workspaces x (LinkedIn + HubSpot), two replicas of every service, NATS x3, R3");
    let (reference, dashboards) = round(None, None).await;
    print("undisturbed", &reference);
    assert!(ok(&reference), "the undisturbed round");
    assert!(
        dashboards
            .iter()
            .any(|d| d.deal_counts.as_ref().is_some_and(|c| c.total > 0)),
        "the reference dashboard has deals"
    );
    for service in ["connector", "matcher", "attribution"] {
        for replica in 0..2 {
            let c = reference
                .handled
                .iter()
                .find(|(n, r, _)| *n == service && *r == replica)
                .map_or(0, |(_, _, c)| *c);
            assert!(c > 0, "{service} replica {} handled nothing", replica + 1);
        }
    }
    let mut failed = Vec::new();
    for (name, fault) in [
        ("kill -9 a replica", Fault::KillReplica),
        ("stop stream leader", Fault::StopStreamLeader),
        ("both at once", Fault::Both),
    ] {
        let (o, _) = round(Some(fault), Some((&dashboards, reference.events))).await;
        print(name, &o);
        if !ok(&o) {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
}
