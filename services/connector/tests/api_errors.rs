//! Issue 15.4, the connector's methods (`Connections`, `Sync`), table-driven: an error never
//! echoes unbounded input, PERMISSION_DENIED never names the other workspace, another
//! workspace's integration or run answers exactly like an unknown one (NOT_FOUND), and an id
//! that is not a UUID is INVALID_ARGUMENT.

mod connector_support;

use connector::sync::api::SyncApi;
use connector::sync::schedule::ManualClock;
use connector_support::Harness;
use futures::future::BoxFuture;
use rp_platform::contracts::api::v1::connections_client::ConnectionsClient;
use rp_platform::contracts::api::v1::sync_client::SyncClient;
use rp_platform::contracts::api::v1::*;
use rp_platform::contracts::events::v1::{self as ev, ConnectionConnected, envelope::Event};
use rp_platform::eventlog::{ExpectedVersion, NewEvent};
use rp_platform::grpc::{self, Services};
use rp_platform::testing::{authed, workspace_with_key};
use std::sync::Arc;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Longest error message any method may answer, whatever it was sent.
const MAX_MESSAGE: usize = 1024;

#[derive(Clone)]
struct Clients {
    conns: ConnectionsClient<Channel>,
    sync: SyncClient<Channel>,
    key: String,
}

/// A request builder per method: (workspace_id, id) -> the call's outcome.
type Call = Box<dyn Fn(Clients, String, String) -> BoxFuture<'static, Result<(), Status>>>;

fn methods() -> Vec<(&'static str, Call)> {
    fn ok<T>(r: Result<tonic::Response<T>, Status>) -> Result<(), Status> {
        r.map(|_| ())
    }
    vec![
        (
            "Connections/StartConnect",
            Box::new(|mut c: Clients, ws, _| {
                Box::pin(async move {
                    ok(c.conns
                        .start_connect(authed(
                            &c.key,
                            StartConnectRequest {
                                workspace_id: ws,
                                provider: Provider::Hubspot as i32,
                            },
                        ))
                        .await)
                })
            }),
        ),
        (
            "Connections/Reconnect",
            Box::new(|mut c: Clients, ws, id| {
                Box::pin(async move {
                    ok(c.conns
                        .reconnect(authed(
                            &c.key,
                            ReconnectRequest {
                                workspace_id: ws,
                                integration_id: id,
                            },
                        ))
                        .await)
                })
            }),
        ),
        (
            "Connections/Disconnect",
            Box::new(|mut c: Clients, ws, id| {
                Box::pin(async move {
                    ok(c.conns
                        .disconnect(authed(
                            &c.key,
                            DisconnectRequest {
                                workspace_id: ws,
                                integration_id: id,
                            },
                        ))
                        .await)
                })
            }),
        ),
        (
            "Connections/ListConnections",
            Box::new(|mut c: Clients, ws, _| {
                Box::pin(async move {
                    ok(c.conns
                        .list_connections(authed(
                            &c.key,
                            ListConnectionsRequest { workspace_id: ws },
                        ))
                        .await)
                })
            }),
        ),
        (
            "Connections/GetConnection",
            Box::new(|mut c: Clients, ws, id| {
                Box::pin(async move {
                    ok(c.conns
                        .get_connection(authed(
                            &c.key,
                            GetConnectionRequest {
                                workspace_id: ws,
                                integration_id: id,
                            },
                        ))
                        .await)
                })
            }),
        ),
        (
            "Sync/GetConnectionHealth",
            Box::new(|mut c: Clients, ws, _| {
                Box::pin(async move {
                    ok(c.sync
                        .get_connection_health(authed(
                            &c.key,
                            GetConnectionHealthRequest { workspace_id: ws },
                        ))
                        .await)
                })
            }),
        ),
        (
            "Sync/WatchConnectionHealth",
            Box::new(|mut c: Clients, ws, _| {
                Box::pin(async move {
                    ok(c.sync
                        .watch_connection_health(authed(
                            &c.key,
                            GetConnectionHealthRequest { workspace_id: ws },
                        ))
                        .await)
                })
            }),
        ),
    ]
}

/// Methods naming an integration (no workspace field): (integration_id) -> outcome.
type IdCall = Box<dyn Fn(Clients, String) -> BoxFuture<'static, Result<(), Status>>>;

fn integration_methods() -> Vec<(&'static str, IdCall)> {
    fn ok<T>(r: Result<tonic::Response<T>, Status>) -> Result<(), Status> {
        r.map(|_| ())
    }
    vec![
        (
            "Sync/SyncNow",
            Box::new(|mut c: Clients, id| {
                Box::pin(async move {
                    ok(c.sync
                        .sync_now(authed(&c.key, SyncNowRequest { integration_id: id }))
                        .await)
                })
            }),
        ),
        (
            "Sync/SetSyncSchedule",
            Box::new(|mut c: Clients, id| {
                Box::pin(async move {
                    ok(c.sync
                        .set_sync_schedule(authed(
                            &c.key,
                            SetSyncScheduleRequest {
                                integration_id: id,
                                local_time: "02:00".into(),
                                time_zone: "Europe/Paris".into(),
                            },
                        ))
                        .await)
                })
            }),
        ),
        (
            "Sync/ListSyncRuns",
            Box::new(|mut c: Clients, id| {
                Box::pin(async move {
                    ok(c.sync
                        .list_sync_runs(authed(
                            &c.key,
                            ListSyncRunsRequest {
                                integration_id: id,
                                page_size: 0,
                                page_token: String::new(),
                            },
                        ))
                        .await)
                })
            }),
        ),
    ]
}

fn huge() -> String {
    "9".repeat(1 << 20)
}

fn bounded(what: &str, e: &Status) {
    assert!(
        e.message().len() <= MAX_MESSAGE,
        "{what}: a {}-byte message ({:?}...)",
        e.message().len(),
        &e.message()[..80.min(e.message().len())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connector_method_answers_bounded_and_alike_for_foreign_and_unknown_ids() {
    let h = Harness::start().await;
    let sync_api = SyncApi::new(
        h.env.pool.clone(),
        Arc::new(ManualClock::new(chrono::Utc::now())),
    );
    let serving = grpc::serve(
        "127.0.0.1:0".parse().unwrap(),
        h.svc.as_ref().unwrap().cancel.clone(),
        Services::new().service(sync_api.into_server()),
    )
    .await
    .unwrap();
    let a = Clients {
        conns: h.grpc().await,
        sync: SyncClient::connect(format!("http://{}", serving.local_addr()))
            .await
            .unwrap(),
        key: h.api_key.clone(),
    };
    let ws_a = h.ws();
    let (ws_b, key_b) = workspace_with_key(&h.env, "growth").await;
    let b = Clients {
        key: key_b.clone(),
        ..a.clone()
    };
    // Workspace B's integration: one in the Connections table (a connect started) and one the
    // log says is connected (what Sync reads).
    let b_pending = b
        .conns
        .clone()
        .start_connect(authed(
            &key_b,
            StartConnectRequest {
                workspace_id: ws_b.clone(),
                provider: Provider::Hubspot as i32,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .integration_id;
    let b_connected = uuid::Uuid::new_v4().to_string();
    h.env
        .store
        .append(
            &format!("connection-{b_connected}"),
            ExpectedVersion::NoStream,
            vec![
                NewEvent::new(
                    ws_b.clone(),
                    Event::ConnectionConnected(ConnectionConnected {
                        provider: ev::Provider::Hubspot as i32,
                        ..Default::default()
                    }),
                )
                .integration(b_connected.clone()),
            ],
        )
        .await
        .unwrap();
    let unknown = uuid::Uuid::new_v4().to_string();

    for (name, call) in methods() {
        // Another workspace: PERMISSION_DENIED, never naming it.
        let e = call(a.clone(), ws_b.clone(), unknown.clone())
            .await
            .expect_err(name);
        assert_eq!(e.code(), Code::PermissionDenied, "{name}: {e:?}");
        assert!(
            !e.message().contains(&ws_b),
            "{name} names the other workspace: {}",
            e.message()
        );
        // A megabyte workspace id: INVALID_ARGUMENT, bounded.
        let e = call(a.clone(), huge(), unknown.clone())
            .await
            .expect_err(name);
        assert_eq!(e.code(), Code::InvalidArgument, "{name}");
        bounded(name, &e);
        let e = call(a.clone(), "not-a-uuid".into(), unknown.clone())
            .await
            .expect_err(name);
        assert_eq!(e.code(), Code::InvalidArgument, "{name}");
        if !name.ends_with("Reconnect")
            && !name.ends_with("Disconnect")
            && !name.ends_with("GetConnection")
        {
            continue;
        }
        // Integration ids: a megabyte, not a UUID, unknown, another workspace's.
        let e = call(a.clone(), ws_a.clone(), huge()).await.expect_err(name);
        assert_eq!(e.code(), Code::InvalidArgument, "{name}");
        bounded(name, &e);
        let e = call(a.clone(), ws_a.clone(), "not-a-uuid".into())
            .await
            .expect_err(name);
        assert_eq!(e.code(), Code::InvalidArgument, "{name}");
        let as_unknown = call(a.clone(), ws_a.clone(), unknown.clone())
            .await
            .expect_err(name);
        let as_foreign = call(a.clone(), ws_a.clone(), b_pending.clone())
            .await
            .expect_err(name);
        assert_eq!(as_unknown.code(), Code::NotFound, "{name}: {as_unknown:?}");
        assert_eq!(
            as_foreign.code(),
            as_unknown.code(),
            "{name}: {as_foreign:?}"
        );
        assert_eq!(
            as_foreign.message().replace(&b_pending, "<id>"),
            as_unknown.message().replace(&unknown, "<id>"),
            "{name}"
        );
    }

    for (name, call) in integration_methods() {
        let e = call(a.clone(), huge()).await.expect_err(name);
        assert_eq!(e.code(), Code::InvalidArgument, "{name}");
        bounded(name, &e);
        let e = call(a.clone(), "not-a-uuid".into()).await.expect_err(name);
        assert_eq!(e.code(), Code::InvalidArgument, "{name}");
        let as_unknown = call(a.clone(), unknown.clone()).await.expect_err(name);
        let as_foreign = call(a.clone(), b_connected.clone()).await.expect_err(name);
        assert_eq!(as_unknown.code(), Code::NotFound, "{name}: {as_unknown:?}");
        assert_eq!(as_foreign.code(), Code::NotFound, "{name}: {as_foreign:?}");
        assert_eq!(
            as_foreign.message().replace(&b_connected, "<id>"),
            as_unknown.message().replace(&unknown, "<id>"),
            "{name}"
        );
        assert!(!as_foreign.message().contains(&ws_b), "{name}");
    }

    // GetSyncRun: B's run answers A like an unknown run; a megabyte id is bounded.
    let b_run = b
        .sync
        .clone()
        .sync_now(authed(
            &key_b,
            SyncNowRequest {
                integration_id: b_connected.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .sync_run_id;
    let get = |c: Clients, id: String| async move {
        c.sync
            .clone()
            .get_sync_run(authed(&c.key, GetSyncRunRequest { sync_run_id: id }))
            .await
    };
    rp_platform::testing::eventually(connector_support::WAIT, "B's run readable by B", || {
        let (b, id) = (b.clone(), b_run.clone());
        async move { get(b, id).await.ok() }
    })
    .await;
    let e = get(a.clone(), huge()).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    bounded("Sync/GetSyncRun", &e);
    let as_unknown = get(a.clone(), unknown.clone()).await.unwrap_err();
    let as_foreign = get(a.clone(), b_run.clone()).await.unwrap_err();
    assert_eq!(as_unknown.code(), Code::NotFound);
    assert_eq!(as_foreign.code(), Code::NotFound, "{as_foreign:?}");
    assert_eq!(
        as_foreign.message().replace(&b_run, "<id>"),
        as_unknown.message().replace(&unknown, "<id>")
    );

    // Every string field of SetSyncSchedule at a megabyte: bounded.
    for (t, z) in [(huge(), "UTC".to_string()), ("02:00".into(), huge())] {
        let e = a
            .sync
            .clone()
            .set_sync_schedule(authed(
                &a.key,
                SetSyncScheduleRequest {
                    integration_id: b_connected.clone(),
                    local_time: t,
                    time_zone: z,
                },
            ))
            .await
            .unwrap_err();
        bounded("Sync/SetSyncSchedule", &e);
    }
    // A megabyte page token: bounded.
    let e = a
        .sync
        .clone()
        .list_sync_runs(authed(
            &a.key,
            ListSyncRunsRequest {
                integration_id: unknown.clone(),
                page_size: 0,
                page_token: huge(),
            },
        ))
        .await
        .unwrap_err();
    bounded("Sync/ListSyncRuns page_token", &e);
    // A megabyte key: bounded.
    let e = a
        .sync
        .clone()
        .get_connection_health(authed(
            &format!("rpk_{}", huge()),
            GetConnectionHealthRequest {
                workspace_id: ws_a.clone(),
            },
        ))
        .await;
    if let Err(e) = e {
        bounded("a megabyte key", &e);
    }
    h.shutdown().await;
}
