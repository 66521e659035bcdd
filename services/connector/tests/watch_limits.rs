//! Issue 15, items 1 and 3: one API key holding many `WatchConnectionHealth` streams must not take
//! the service down for other workspaces, and a revoked key's streams end within seconds.
//! Against real PostgreSQL (the test pool has 20 connections, as a service's has 16).

use connector::sync::api::SyncApi;
use connector::sync::schedule::ManualClock;
use rp_platform::apikeys::{self, KeyId};
use rp_platform::contracts::api::v1::{GetConnectionHealthRequest, sync_client::SyncClient};
use rp_platform::grpc::{self, Services};
use rp_platform::streams::{OpenStreams, StreamLimits};
use rp_platform::testing::{TestEnv, authed, eventually, workspace_with_key};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(30);

struct World {
    env: TestEnv,
    cancel: CancellationToken,
    addr: std::net::SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl World {
    async fn new(limits: StreamLimits) -> Self {
        let env = TestEnv::new().await;
        connector::store::migrate(&env.pool).await.unwrap();
        let cancel = CancellationToken::new();
        let clock = ManualClock::new(chrono::Utc::now());
        let api = SyncApi::new(env.pool.clone(), Arc::new(clock)).with_streams(OpenStreams::new(
            env.pool.clone(),
            limits,
            cancel.clone(),
        ));
        let serving = grpc::serve(
            "127.0.0.1:0".parse().unwrap(),
            cancel.clone(),
            Services::new().service(api.into_server()),
        )
        .await
        .unwrap();
        let addr = serving.local_addr();
        let server = tokio::spawn(async move {
            let _ = serving.wait().await;
        });
        Self {
            env,
            cancel,
            addr,
            server,
        }
    }

    async fn client(&self) -> SyncClient<Channel> {
        SyncClient::connect(format!("http://{}", self.addr))
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.cancel.cancel();
        let _ = tokio::time::timeout(WAIT, self.server).await;
        self.env.cleanup().await;
    }
}

type Watch = tonic::Streaming<rp_platform::contracts::api::v1::ConnectionHealth>;

/// Opens a Watch and reads its first message (so it is really open).
async fn open_watch(mut c: SyncClient<Channel>, key: String, ws: String) -> Result<Watch, Status> {
    let mut s = c
        .watch_connection_health(authed(
            &key,
            GetConnectionHealthRequest { workspace_id: ws },
        ))
        .await?
        .into_inner();
    match s.message().await? {
        Some(_) => Ok(s),
        None => Err(Status::internal(
            "the stream ended before its first message",
        )),
    }
}

use tonic::Status;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_watches_from_one_key_leave_other_workspaces_answering() {
    let limits = StreamLimits::default();
    let w = World::new(limits).await;
    let (ws_a, key_a) = workspace_with_key(&w.env, "growth").await;
    let (ws_b, key_b) = workspace_with_key(&w.env, "growth").await;

    // 200 Watch calls from one key, over 4 connections, all at once.
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(w.client().await);
    }
    let opens: Vec<_> = (0..200)
        .map(|i| {
            let (c, k, ws) = (channels[i % 4].clone(), key_a.clone(), ws_a.clone());
            tokio::spawn(async move {
                tokio::time::timeout(Duration::from_secs(20), open_watch(c, k, ws)).await
            })
        })
        .collect();

    // Meanwhile (and after), another workspace's calls answer within normal latency.
    let mut b = w.client().await;
    for i in 0..10 {
        let t = Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            b.get_connection_health(authed(
                &key_b,
                GetConnectionHealthRequest {
                    workspace_id: ws_b.clone(),
                },
            )),
        )
        .await;
        let took = t.elapsed();
        assert!(
            matches!(r, Ok(Ok(_))),
            "call {i} of the other workspace failed while one key opened 200 watches: {r:?}"
        );
        assert!(
            took < Duration::from_secs(2),
            "call {i} of the other workspace took {took:?}"
        );
    }

    let mut open = Vec::new();
    let mut refused = 0;
    for o in opens {
        match o.await.unwrap() {
            Ok(Ok(s)) => open.push(s),
            Ok(Err(e)) => {
                assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
                assert!(e.message().contains("streams open"), "{}", e.message());
                refused += 1;
            }
            Err(_) => panic!("a Watch call neither opened nor was refused within 20 s"),
        }
    }
    assert_eq!(open.len(), limits.per_key, "the per-key cap");
    assert_eq!(refused, 200 - limits.per_key);

    // The other workspace still watches and calls within normal latency with 32 streams open.
    let t = Instant::now();
    let mut other = open_watch(w.client().await, key_b.clone(), ws_b.clone())
        .await
        .expect("another workspace's key opens a Watch");
    assert!(t.elapsed() < Duration::from_secs(2));

    // A stream closed frees its place.
    open.pop();
    eventually(WAIT, "a place freed by a closed stream", || {
        let (c, k, ws) = (channels[0].clone(), key_a.clone(), ws_a.clone());
        async move { open_watch(c, k, ws).await.ok() }
    })
    .await;

    // Shutdown ends every open stream (tonic waits for open calls otherwise).
    w.cancel.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(8), async {
        for s in open.iter_mut().chain(std::iter::once(&mut other)) {
            while let Ok(Some(_)) = s.message().await {}
        }
    })
    .await;
    assert!(ended.is_ok(), "open streams did not end on shutdown");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_keys_watch_streams_end_within_seconds() {
    let limits = StreamLimits {
        recheck: Duration::from_millis(500),
        ..StreamLimits::default()
    };
    let w = World::new(limits).await;
    let (ws, key) = workspace_with_key(&w.env, "growth").await;
    let (ws_b, key_b) = workspace_with_key(&w.env, "growth").await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(
            open_watch(w.client().await, key.clone(), ws.clone())
                .await
                .unwrap(),
        );
    }
    let mut unaffected = open_watch(w.client().await, key_b.clone(), ws_b.clone())
        .await
        .unwrap();
    let key_id = KeyId::parse(&key["rpk_".len().."rpk_".len() + 32]).unwrap();
    apikeys::revoke(&w.env.pool, &key_id).await.unwrap();

    let t = Instant::now();
    for s in &mut streams {
        let end = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match s.message().await {
                    Ok(Some(_)) => continue,
                    other => return other,
                }
            }
        })
        .await
        .expect("a revoked key's stream ends within 10 s");
        let e = end.expect_err("it ends with a status saying why");
        assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
        assert!(e.message().contains("revoked"), "{}", e.message());
    }
    assert!(t.elapsed() < Duration::from_secs(10));
    // Another key's stream stays open.
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), unaffected.message())
            .await
            .is_err(),
        "another key's stream is left open"
    );
    w.stop().await;
}
