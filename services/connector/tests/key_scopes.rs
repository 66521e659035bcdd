//! Issue 15.3, key scopes, against the real connector gRPC servers (`Connections`, `Sync`) and
//! PostgreSQL: a read-only key reads connections, health and runs, and every method that would
//! change the workspace (Sync Now, Disconnect, schedule, connect, reconnect) answers
//! PERMISSION_DENIED saying the key is read-only, without appending anything to the log. A full
//! key of the same workspace still does all of it.

mod connector_support;

use connector::sync::api::SyncApi;
use connector::sync::schedule::ManualClock;
use connector_support::Harness;
use rp_platform::apikeys::{self, Scope};
use rp_platform::contracts::api::v1::sync_client::SyncClient;
use rp_platform::contracts::api::v1::*;
use rp_platform::contracts::events::v1::{self as ev, ConnectionConnected, envelope::Event};
use rp_platform::eventlog::{ExpectedVersion, NewEvent};
use rp_platform::grpc::{self, Services};
use rp_platform::ids::WorkspaceId;
use rp_platform::testing::authed;
use std::sync::Arc;
use tonic::{Code, Status};

async fn event_count(h: &Harness) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&h.env.pool)
        .await
        .unwrap()
}

fn refused_as_read_only<T: std::fmt::Debug>(what: &str, r: Result<T, Status>) {
    let e = r.expect_err(&format!("{what} with a read-only key must be refused"));
    assert_eq!(e.code(), Code::PermissionDenied, "{what}: {e:?}");
    assert!(e.message().contains("read-only"), "{what}: {}", e.message());
    assert!(e.message().contains("full"), "{what}: {}", e.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_key_reads_the_connector_but_cannot_change_anything() {
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
    let mut sync = SyncClient::connect(format!("http://{}", serving.local_addr()))
        .await
        .unwrap();
    let mut conns = h.grpc().await;
    let ws = h.ws();
    // One integration in the Connections table (a connect started with the full key), and one
    // the log says is connected (what Sync reads).
    let pending = conns
        .start_connect(h.req(StartConnectRequest {
            workspace_id: ws.clone(),
            provider: Provider::Hubspot as i32,
        }))
        .await
        .expect("StartConnect with a full key")
        .into_inner()
        .integration_id;
    let integration = uuid::Uuid::new_v4().to_string();
    h.env
        .store
        .append(
            &format!("connection-{integration}"),
            ExpectedVersion::NoStream,
            vec![
                NewEvent::new(
                    ws.clone(),
                    Event::ConnectionConnected(ConnectionConnected {
                        provider: ev::Provider::Hubspot as i32,
                        ..Default::default()
                    }),
                )
                .integration(integration.clone()),
            ],
        )
        .await
        .unwrap();
    let ro = apikeys::issue_with_scope(
        &h.env.pool,
        WorkspaceId::new(h.workspace),
        "dashboard screen",
        Scope::ReadOnly,
    )
    .await
    .unwrap()
    .plaintext;

    // Reads answer.
    conns
        .list_connections(authed(
            &ro,
            ListConnectionsRequest {
                workspace_id: ws.clone(),
            },
        ))
        .await
        .expect("ListConnections with a read-only key");
    conns
        .get_connection(authed(
            &ro,
            GetConnectionRequest {
                workspace_id: ws.clone(),
                integration_id: pending.clone(),
            },
        ))
        .await
        .expect("GetConnection with a read-only key");
    sync.get_connection_health(authed(
        &ro,
        GetConnectionHealthRequest {
            workspace_id: ws.clone(),
        },
    ))
    .await
    .expect("GetConnectionHealth with a read-only key");
    sync.list_sync_runs(authed(
        &ro,
        ListSyncRunsRequest {
            integration_id: integration.clone(),
            ..Default::default()
        },
    ))
    .await
    .expect("ListSyncRuns with a read-only key");

    // Writes are refused, and append nothing.
    let before = event_count(&h).await;
    refused_as_read_only(
        "SyncNow",
        sync.sync_now(authed(
            &ro,
            SyncNowRequest {
                integration_id: integration.clone(),
            },
        ))
        .await,
    );
    refused_as_read_only(
        "SetSyncSchedule",
        sync.set_sync_schedule(authed(
            &ro,
            SetSyncScheduleRequest {
                integration_id: integration.clone(),
                local_time: "06:00".into(),
                time_zone: "Europe/Berlin".into(),
            },
        ))
        .await,
    );
    refused_as_read_only(
        "Disconnect",
        conns
            .disconnect(authed(
                &ro,
                DisconnectRequest {
                    workspace_id: ws.clone(),
                    integration_id: pending.clone(),
                },
            ))
            .await,
    );
    refused_as_read_only(
        "StartConnect",
        conns
            .start_connect(authed(
                &ro,
                StartConnectRequest {
                    workspace_id: ws.clone(),
                    provider: Provider::Linkedin as i32,
                },
            ))
            .await,
    );
    refused_as_read_only(
        "Reconnect",
        conns
            .reconnect(authed(
                &ro,
                ReconnectRequest {
                    workspace_id: ws.clone(),
                    integration_id: pending.clone(),
                },
            ))
            .await,
    );
    assert_eq!(
        event_count(&h).await,
        before,
        "a refused call appended to the event log"
    );
    let still = conns
        .get_connection(authed(
            &ro,
            GetConnectionRequest {
                workspace_id: ws.clone(),
                integration_id: pending.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        still.status,
        ConnectionStatus::Pending as i32,
        "Disconnect was refused: the connection is as it was"
    );

    // The workspace's full key still changes things.
    sync.sync_now(h.req(SyncNowRequest {
        integration_id: integration.clone(),
    }))
    .await
    .expect("SyncNow with a full key");
    assert!(event_count(&h).await > before);

    h.shutdown().await;
}
