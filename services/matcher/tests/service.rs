//! The matcher service against real PostgreSQL and NATS: the matching step of a sync cycle,
//! incremental re-matching, manual decisions that win, restart, and the gRPC API.

use matcher::api::MatchesApi;
use matcher::handlers::Matcher;
use rp_platform::consumer::{self, ConsumerConfig, Ordering};
use rp_platform::contracts::api::v1::{
    ListMatchesRequest, ListReviewsRequest, RecordDecisionRequest, matches_client::MatchesClient,
};
use rp_platform::contracts::events::v1::{
    AccountsMatched, CompaniesResolved, CrmCompany, MatchChangeKind, MatchDecision, MatchMethod,
    ObjectType, Organization, PullCompleted, RecordsPulled, SyncStep, envelope::Event,
};
use rp_platform::eventlog::{ExpectedVersion, NewEvent};
use rp_platform::relay::Relay;
use rp_platform::testing::{TestEnv, eventually};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(30);

struct World {
    env: TestEnv,
    ws: String,
    key: String,
    client: MatchesClient<Channel>,
    cancel: CancellationToken,
    consumer_cancel: CancellationToken,
    consumer: Option<tokio::task::JoinHandle<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn org(id: &str, name: &str, website: &str) -> Organization {
    Organization {
        id: id.into(),
        name: name.into(),
        website: website.into(),
        country: "US".into(),
        ..Default::default()
    }
}

fn company(id: &str, name: &str, domain: &str) -> CrmCompany {
    CrmCompany {
        id: id.into(),
        name: name.into(),
        domain: domain.into(),
        country: "US".into(),
        ..Default::default()
    }
}

impl World {
    async fn new() -> Self {
        let env = TestEnv::new().await;
        matcher::store::migrate(&env.pool).await.unwrap();
        let (ws, key) = rp_platform::testing::workspace_with_key(&env, "growth").await;
        let cancel = CancellationToken::new();
        let mut tasks = Vec::new();
        let relay = Relay::new(env.store.clone(), env.js.clone(), env.bus.clone());
        let c = cancel.clone();
        tasks.push(tokio::spawn(async move {
            let _ = relay.run(c).await;
        }));
        let serving = rp_platform::grpc::serve(
            "127.0.0.1:0".parse().unwrap(),
            cancel.clone(),
            rp_platform::grpc::Services::new()
                .service(MatchesApi::new(env.pool.clone()).into_server()),
        )
        .await
        .unwrap();
        let client = MatchesClient::connect(format!("http://{}", serving.local_addr()))
            .await
            .unwrap();
        tasks.push(tokio::spawn(async move {
            let _ = serving.wait().await;
        }));
        let mut w = Self {
            env,
            ws: ws.to_string(),
            key,
            client,
            cancel,
            consumer_cancel: CancellationToken::new(),
            consumer: None,
            tasks,
        };
        w.start_matcher().await;
        w
    }

    /// (Re)starts the matcher consumer with a fresh, empty in-memory cache. The old one stops
    /// first (as a replaced process would: SIGTERM, then the new one starts), so no event can
    /// reach a consumer that is going away.
    async fn start_matcher(&mut self) {
        self.consumer_cancel.cancel();
        if let Some(old) = self.consumer.take() {
            let _ = old.await;
        }
        self.consumer_cancel = CancellationToken::new();
        let (js, bus, pool, c) = (
            self.env.js.clone(),
            self.env.bus.clone(),
            self.env.pool.clone(),
            self.consumer_cancel.clone(),
        );
        self.consumer = Some(tokio::spawn(async move {
            let cfg = ConsumerConfig::new("matcher", Ordering::PerWorkspace)
                .event_types(matcher::handlers::EVENT_TYPES);
            let _ = consumer::run(js, bus, pool, cfg, Arc::new(Matcher::default()), c).await;
        }));
    }

    fn req<T>(&self, msg: T) -> tonic::Request<T> {
        rp_platform::testing::authed(&self.key, msg)
    }

    async fn append(&self, stream: &str, run: &str, e: Event) {
        let ev = NewEvent::new(self.ws.clone(), e).correlation(run.to_string());
        self.env
            .store
            .append(stream, ExpectedVersion::Any, vec![ev])
            .await
            .unwrap();
    }

    async fn pull(&self, run: &str, orgs: Vec<Organization>, companies: Vec<CrmCompany>) {
        if !orgs.is_empty() {
            self.append(
                &format!("records-{run}"),
                run,
                Event::RecordsPulled(RecordsPulled {
                    sync_run_id: run.into(),
                    object_type: ObjectType::LinkedinOrganization as i32,
                    organizations: orgs,
                    ..Default::default()
                }),
            )
            .await;
        }
        if !companies.is_empty() {
            self.append(
                &format!("records-{run}"),
                run,
                Event::RecordsPulled(RecordsPulled {
                    sync_run_id: run.into(),
                    object_type: ObjectType::CrmCompany as i32,
                    companies,
                    ..Default::default()
                }),
            )
            .await;
        }
    }

    async fn matched(&self, stream: &str, nth: usize) -> AccountsMatched {
        eventually(WAIT, "AccountsMatched", || async {
            let events = self.env.store.read_stream(stream, 1, 1000).await.unwrap();
            events
                .iter()
                .filter_map(|e| match e.event() {
                    Some(Event::AccountsMatched(m)) => Some(m.clone()),
                    _ => None,
                })
                .nth(nth)
        })
        .await
    }

    async fn stop(self) {
        self.consumer_cancel.cancel();
        self.cancel.cancel();
        for t in self.consumer.into_iter().chain(self.tasks) {
            let _ = t.await;
        }
        self.env.cleanup().await;
    }
}

fn pairs(m: &AccountsMatched, kind: MatchChangeKind) -> Vec<(String, String, i32)> {
    let mut v: Vec<_> = m
        .changes
        .iter()
        .filter(|c| c.kind == kind as i32)
        .map(|c| (c.linkedin_id.clone(), c.crm_id.clone(), c.method))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_matches_domain_first_then_name_and_later_changes_rematch_only_what_they_touch() {
    let mut w = World::new().await;
    // LinkedIn run: organizations resolved, CRM companies already pulled by an earlier CRM run.
    w.pull(
        "run-1",
        vec![
            org(
                "li-1",
                "Acme Robotics",
                "https://www.acmerobotics.com/about",
            ),
            org("li-2", "Nordlicht Analytics GmbH", ""),
            org(
                "li-3",
                "Zephyr Unmatched Ventures",
                "https://zephyr-unmatched.io",
            ),
        ],
        vec![
            company("crm-1", "ACME Robotics, Inc.", "acmerobotics.com"),
            company("crm-1b", "Acme Robotics (duplicate)", "ACMEROBOTICS.COM"),
            company("crm-2", "Nordlicht Analytics", ""),
            company("crm-9", "Someone Else Ltd", "someone-else.co.uk"),
        ],
    )
    .await;
    w.append(
        "syncrun-run-1",
        "run-1",
        Event::CompaniesResolved(CompaniesResolved {
            sync_run_id: "run-1".into(),
            organizations: 3,
        }),
    )
    .await;
    let m = w.matched("syncrun-run-1", 0).await;
    assert_eq!(
        pairs(&m, MatchChangeKind::New),
        vec![
            ("li-1".into(), "crm-1".into(), MatchMethod::Domain as i32),
            ("li-1".into(), "crm-1b".into(), MatchMethod::Domain as i32),
            ("li-2".into(), "crm-2".into(), MatchMethod::Name as i32),
        ]
    );
    assert_eq!(m.matched, 2);
    assert_eq!(m.remaining_parts, 0);
    let step = w
        .env
        .store
        .read_stream("syncrun-run-1", 1, 100)
        .await
        .unwrap();
    assert!(
        step.iter().any(|e| e.event_type() == "SyncStepStarted"),
        "the matching step is announced"
    );

    // The gRPC API shows the matches with their reasons.
    let listed = w
        .client
        .clone()
        .list_matches(w.req(ListMatchesRequest {
            workspace_id: w.ws.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.matches.len(), 3);
    assert!(listed.matches.iter().all(|m| !m.reason.is_empty()));

    // A CRM run changes one account's domain and adds nothing else: only li-1 is re-matched.
    w.pull(
        "run-2",
        vec![],
        vec![company(
            "crm-1b",
            "Acme Robotics (duplicate)",
            "other-company.com",
        )],
    )
    .await;
    w.append(
        "syncrun-run-2",
        "run-2",
        Event::PullCompleted(PullCompleted {
            sync_run_id: "run-2".into(),
            step: SyncStep::CrmPull as i32,
            counts: vec![],
        }),
    )
    .await;
    let m2 = w.matched("syncrun-run-2", 0).await;
    assert_eq!(
        pairs(&m2, MatchChangeKind::Removed),
        vec![("li-1".into(), "crm-1b".into(), MatchMethod::Domain as i32)]
    );
    assert!(pairs(&m2, MatchChangeKind::New).is_empty());
    assert!(
        m2.changes.iter().all(|c| c.linkedin_id == "li-1"),
        "only the affected company: {:?}",
        m2.changes
    );

    // A person rejects li-2 ↔ crm-2: it goes, and a later sync does not bring it back.
    w.client
        .clone()
        .record_decision(w.req(RecordDecisionRequest {
            workspace_id: w.ws.clone(),
            linkedin_id: "li-2".into(),
            crm_id: "crm-2".into(),
            decision: MatchDecision::Reject as i32,
        }))
        .await
        .unwrap();
    let d = w.matched(&format!("matches-{}", w.ws), 0).await;
    assert_eq!(
        pairs(&d, MatchChangeKind::Removed),
        vec![("li-2".into(), "crm-2".into(), MatchMethod::Name as i32)]
    );
    // ...and links li-3 by hand.
    w.client
        .clone()
        .record_decision(w.req(RecordDecisionRequest {
            workspace_id: w.ws.clone(),
            linkedin_id: "li-3".into(),
            crm_id: "crm-9".into(),
            decision: MatchDecision::Link as i32,
        }))
        .await
        .unwrap();
    let l = w.matched(&format!("matches-{}", w.ws), 1).await;
    assert_eq!(
        pairs(&l, MatchChangeKind::New),
        vec![("li-3".into(), "crm-9".into(), MatchMethod::Manual as i32)]
    );

    // A restarted matcher (empty memory) rebuilds from its projection: the next step finds
    // nothing new to say, and the decisions still hold.
    w.start_matcher().await;
    w.pull(
        "run-3",
        vec![org("li-2", "Nordlicht Analytics GmbH", "")],
        vec![],
    )
    .await;
    w.append(
        "syncrun-run-3",
        "run-3",
        Event::CompaniesResolved(CompaniesResolved {
            sync_run_id: "run-3".into(),
            organizations: 1,
        }),
    )
    .await;
    let m3 = w.matched("syncrun-run-3", 0).await;
    assert!(
        m3.changes.is_empty(),
        "no spurious changes after a rebuild: {:?}",
        m3.changes
    );
    let li2 = w
        .client
        .clone()
        .list_matches(w.req(ListMatchesRequest {
            workspace_id: w.ws.clone(),
            linkedin_id: "li-2".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(li2.matches.is_empty(), "the rejection wins");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_names_go_to_review_with_their_candidates() {
    let w = World::new().await;
    w.pull(
        "run-1",
        vec![org("li-1", "Summit Partners", "")],
        vec![
            company("crm-1", "Summit Partners", "summitpartners.com"),
            company("crm-2", "Summit Partners", "summit-partners.de"),
        ],
    )
    .await;
    w.append(
        "syncrun-run-1",
        "run-1",
        Event::CompaniesResolved(CompaniesResolved {
            sync_run_id: "run-1".into(),
            organizations: 1,
        }),
    )
    .await;
    let m = w.matched("syncrun-run-1", 0).await;
    let reviews = w
        .client
        .clone()
        .list_reviews(w.req(ListReviewsRequest {
            workspace_id: w.ws.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    if m.changes.is_empty() {
        assert_eq!(reviews.reviews.len(), 1);
        assert_eq!(reviews.reviews[0].linkedin_name, "Summit Partners");
        assert_eq!(reviews.reviews[0].candidates.len(), 2);
        assert_eq!(m.needs_review, 1);
    } else {
        // Two accounts with the same name and different trusted domains may be one company's
        // duplicates; either way nothing outside the candidates is matched.
        assert!(
            m.changes
                .iter()
                .all(|c| c.crm_id == "crm-1" || c.crm_id == "crm-2")
        );
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let w = World::new().await;
    let mut c = w.client.clone();
    let e = c
        .list_matches(ListMatchesRequest {
            workspace_id: w.ws.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    let e = c
        .list_matches(w.req(ListMatchesRequest {
            workspace_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    let e = c
        .list_matches(w.req(ListMatchesRequest {
            workspace_id: w.ws.clone(),
            page_size: 5000,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert!(e.message().contains("page_size"));
    let e = c
        .list_matches(w.req(ListMatchesRequest {
            workspace_id: w.ws.clone(),
            page_token: "zz".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert!(e.message().contains("page_token"));
    let e = c
        .record_decision(w.req(RecordDecisionRequest {
            workspace_id: w.ws.clone(),
            linkedin_id: " ".into(),
            crm_id: "crm-1".into(),
            decision: 1,
        }))
        .await
        .unwrap_err();
    assert!(e.message().contains("linkedin_id"), "{}", e.message());
    let e = c
        .record_decision(w.req(RecordDecisionRequest {
            workspace_id: w.ws.clone(),
            linkedin_id: "li-1".into(),
            crm_id: "crm-1".into(),
            decision: 0,
        }))
        .await
        .unwrap_err();
    assert!(e.message().contains("decision"));
    w.stop().await;
}

/// A CRM company deleted in the CRM comes as a tombstone (`deleted: true`, only its id): its
/// matches are removed at the next matching step, and a matcher rebuilt from the projection does
/// not bring them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_company_deleted_in_the_crm_loses_its_matches() {
    let mut w = World::new().await;
    w.pull(
        "run-1",
        vec![
            org("li-1", "Acme Robotics", "https://www.acmerobotics.com"),
            org("li-2", "Nordlicht Analytics GmbH", ""),
        ],
        vec![
            company("crm-1", "ACME Robotics, Inc.", "acmerobotics.com"),
            company("crm-2", "Nordlicht Analytics", ""),
        ],
    )
    .await;
    w.append(
        "syncrun-run-1",
        "run-1",
        Event::CompaniesResolved(CompaniesResolved {
            sync_run_id: "run-1".into(),
            organizations: 2,
        }),
    )
    .await;
    let m = w.matched("syncrun-run-1", 0).await;
    assert_eq!(
        pairs(&m, MatchChangeKind::New),
        vec![
            ("li-1".into(), "crm-1".into(), MatchMethod::Domain as i32),
            ("li-2".into(), "crm-2".into(), MatchMethod::Name as i32),
        ]
    );

    // The CRM sync reports crm-2 deleted.
    w.pull(
        "run-2",
        vec![],
        vec![CrmCompany {
            id: "crm-2".into(),
            deleted: true,
            ..Default::default()
        }],
    )
    .await;
    w.append(
        "syncrun-run-2",
        "run-2",
        Event::PullCompleted(PullCompleted {
            sync_run_id: "run-2".into(),
            step: SyncStep::CrmPull as i32,
            counts: vec![],
        }),
    )
    .await;
    let m2 = w.matched("syncrun-run-2", 0).await;
    assert_eq!(
        pairs(&m2, MatchChangeKind::Removed),
        vec![("li-2".into(), "crm-2".into(), MatchMethod::Name as i32)]
    );
    assert!(pairs(&m2, MatchChangeKind::New).is_empty());
    assert_eq!(m2.matched, 1);

    // A restarted matcher rebuilds its index from the projection: crm-2 stays gone.
    w.start_matcher().await;
    w.append(
        "syncrun-run-3",
        "run-3",
        Event::PullCompleted(PullCompleted {
            sync_run_id: "run-3".into(),
            step: SyncStep::CrmPull as i32,
            counts: vec![],
        }),
    )
    .await;
    let m3 = w.matched("syncrun-run-3", 0).await;
    assert!(m3.changes.is_empty(), "{:?}", m3.changes);
    assert_eq!(m3.matched, 1);
    let listed = w
        .client
        .clone()
        .list_matches(w.req(ListMatchesRequest {
            workspace_id: w.ws.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let crm: Vec<&str> = listed.matches.iter().map(|m| m.crm_id.as_str()).collect();
    assert_eq!(crm, vec!["crm-1"]);
    w.stop().await;
}

/// A decision may only name companies of the caller's workspace, as the matcher knows them
/// (`matcher_linkedin`, `matcher_crm`): a malformed id is INVALID_ARGUMENT naming the field and
/// echoing at most a short prefix; a well-formed id that is not a company of the workspace,
/// including another workspace's, is NOT_FOUND with the same answer as an unknown id. Nothing is
/// stored for a refused decision: no event, no row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_on_ids_that_are_not_companies_of_the_workspace_are_refused_and_store_nothing() {
    let w = World::new().await;
    w.pull(
        "run-1",
        vec![org("li-1", "Acme Robotics", "https://www.acmerobotics.com")],
        vec![company("crm-1", "ACME Robotics, Inc.", "acmerobotics.com")],
    )
    .await;
    // Another workspace's companies.
    let (other, _) = rp_platform::testing::workspace_with_key(&w.env, "growth").await;
    let other = other.to_string();
    for e in [
        Event::RecordsPulled(RecordsPulled {
            sync_run_id: "run-b".into(),
            object_type: ObjectType::LinkedinOrganization as i32,
            organizations: vec![org("li-b", "Bravo", "https://bravo.example")],
            ..Default::default()
        }),
        Event::RecordsPulled(RecordsPulled {
            sync_run_id: "run-b".into(),
            object_type: ObjectType::CrmCompany as i32,
            companies: vec![company("crm-b", "Bravo", "bravo.example")],
            ..Default::default()
        }),
    ] {
        w.env
            .store
            .append(
                "records-run-b",
                ExpectedVersion::Any,
                vec![NewEvent::new(other.clone(), e).correlation("run-b".to_string())],
            )
            .await
            .unwrap();
    }
    eventually(
        WAIT,
        "both workspaces' companies in the projection",
        || async {
            let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM matcher_linkedin) + (SELECT count(*) FROM matcher_crm)",
        )
        .fetch_one(&w.env.pool)
        .await
        .unwrap();
            (n == 4).then_some(())
        },
    )
    .await;

    let decide = |linkedin_id: &str, crm_id: &str| {
        let mut c = w.client.clone();
        let req = w.req(RecordDecisionRequest {
            workspace_id: w.ws.clone(),
            linkedin_id: linkedin_id.into(),
            crm_id: crm_id.into(),
            decision: MatchDecision::Link as i32,
        });
        async move { c.record_decision(req).await }
    };
    let sql = "x'); DELETE FROM matcher_decisions; --";
    let long = "9".repeat(300);
    let malformed = [
        (sql, "crm-1", "linkedin_id"),
        ("li 1", "crm-1", "linkedin_id"),
        ("li-1\n", "crm-1\u{0}", "crm_id"),
        ("li-1", "<script>", "crm_id"),
        (long.as_str(), "crm-1", "linkedin_id"),
        ("li-1", long.as_str(), "crm_id"),
    ];
    for (li, crm, field) in malformed {
        let e = decide(li, crm).await.unwrap_err();
        assert_eq!(
            e.code(),
            tonic::Code::InvalidArgument,
            "{li:?} {crm:?}: {e:?}"
        );
        assert!(
            e.message().starts_with(&format!("{field}: ")),
            "{li:?} {crm:?}: {}",
            e.message()
        );
        assert!(
            !e.message().contains("matcher_decisions"),
            "{}",
            e.message()
        );
        assert!(!e.message().contains(&"9".repeat(40)), "{}", e.message());
        assert!(e.message().len() < 200, "{}", e.message());
    }

    let unknown_li = decide("li-unknown", "crm-1").await.unwrap_err();
    let unknown_crm = decide("li-1", "crm-unknown").await.unwrap_err();
    assert_eq!(unknown_li.code(), tonic::Code::NotFound, "{unknown_li:?}");
    assert_eq!(unknown_crm.code(), tonic::Code::NotFound, "{unknown_crm:?}");
    assert!(unknown_li.message().starts_with("linkedin_id: "));
    assert!(unknown_crm.message().starts_with("crm_id: "));
    let zero = uuid::Uuid::nil().to_string();
    for (li, crm, like) in [
        ("not-a-uuid", "crm-1", &unknown_li),
        (zero.as_str(), "crm-1", &unknown_li),
        ("li-1", zero.as_str(), &unknown_crm),
        ("li-1", "crm-bogus", &unknown_crm),
        // Another workspace's companies: exactly as unknown, nothing about them revealed.
        ("li-b", "crm-1", &unknown_li),
        ("li-1", "crm-b", &unknown_crm),
        ("li-b", "crm-b", &unknown_li),
    ] {
        let e = decide(li, crm).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound, "{li:?} {crm:?}: {e:?}");
        assert_eq!(e.message(), like.message(), "{li:?} {crm:?}");
    }

    let decisions_recorded = || async {
        let events: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE event_type = 'MatchDecisionRecorded'",
        )
        .fetch_one(&w.env.pool)
        .await
        .unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM matcher_decisions")
            .fetch_one(&w.env.pool)
            .await
            .unwrap();
        (events, rows)
    };
    assert_eq!(
        decisions_recorded().await,
        (0, 0),
        "a refusal stores nothing"
    );

    // The workspace's own companies are still decided on (and that is what gets stored).
    decide(" li-1 ", "crm-1").await.unwrap();
    let stored = eventually(WAIT, "the decision applied", || async {
        let r = decisions_recorded().await;
        (r.1 == 1).then_some(r)
    })
    .await;
    assert_eq!(stored, (1, 1));
    w.stop().await;
}

/// Issue 15.3: a read-only key reads matches and reviews but cannot record a decision
/// (PERMISSION_DENIED, saying the key is read-only); nothing is appended. The full key can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_key_reads_matches_but_cannot_record_a_decision() {
    let w = World::new().await;
    w.pull(
        "run-1",
        vec![org("li-1", "Acme Robotics", "https://www.acmerobotics.com")],
        vec![company("crm-1", "ACME Robotics, Inc.", "acmerobotics.com")],
    )
    .await;
    eventually(WAIT, "the companies in the projection", || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM matcher_linkedin) + (SELECT count(*) FROM matcher_crm)",
        )
        .fetch_one(&w.env.pool)
        .await
        .unwrap();
        (n == 2).then_some(())
    })
    .await;
    let ro = rp_platform::apikeys::issue_with_scope(
        &w.env.pool,
        rp_platform::ids::WorkspaceId::parse(&w.ws).unwrap(),
        "auditor",
        rp_platform::apikeys::Scope::ReadOnly,
    )
    .await
    .unwrap()
    .plaintext;
    let as_ro = |msg| rp_platform::testing::authed(&ro, msg);
    let mut c = w.client.clone();
    c.list_matches(rp_platform::testing::authed(
        &ro,
        ListMatchesRequest {
            workspace_id: w.ws.clone(),
            ..Default::default()
        },
    ))
    .await
    .expect("ListMatches with a read-only key");
    c.list_reviews(rp_platform::testing::authed(
        &ro,
        ListReviewsRequest {
            workspace_id: w.ws.clone(),
            ..Default::default()
        },
    ))
    .await
    .expect("ListReviews with a read-only key");

    let events = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events")
            .fetch_one(&w.env.pool)
            .await
            .unwrap()
    };
    let before = events().await;
    let decision = RecordDecisionRequest {
        workspace_id: w.ws.clone(),
        linkedin_id: "li-1".into(),
        crm_id: "crm-1".into(),
        decision: MatchDecision::Reject as i32,
    };
    let e = c
        .record_decision(as_ro(decision.clone()))
        .await
        .expect_err("RecordDecision with a read-only key must be refused");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("read-only"), "{}", e.message());
    assert!(e.message().contains("full"), "{}", e.message());
    let decisions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'MatchDecisionRecorded'",
    )
    .fetch_one(&w.env.pool)
    .await
    .unwrap();
    assert_eq!(decisions, 0, "the refused decision was recorded");
    assert_eq!(events().await, before, "a refused call appended to the log");

    c.record_decision(w.req(decision))
        .await
        .expect("RecordDecision with the full key");
    w.stop().await;
}
