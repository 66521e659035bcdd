//! The edge as a browser uses it: gRPC-Web over HTTP/1.1 in, gRPC over HTTP/2 to a real tonic
//! server out, the answer (streams too) translated back; the key forwarded, other origins and
//! services refused; the page served for its routes.

use bytes::Bytes;
use prost::Message;
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use web::grpc_web::Forward;

const KEY: &str = "Bearer rp_test_key";

/// A tonic server with the standard health service, refusing calls without [`KEY`] as the
/// services refuse calls without an API key.
async fn backend() -> SocketAddr {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("rp.api.v1.Sync", tonic_health::ServingStatus::Serving)
        .await;
    std::mem::forget(reporter); // keeps Watch streams open for the test's life
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let check = |req: tonic::Request<()>| match req.metadata().get("authorization") {
        Some(v) if v == KEY => Ok(req),
        _ => Err(tonic::Status::unauthenticated(
            "send your API key as authorization: Bearer <key>",
        )),
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(tonic::service::InterceptorLayer::new(check))
            .add_service(health)
            .serve_with_incoming(tokio_stream_of(listener)),
    );
    addr
}

fn tokio_stream_of(l: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(l)
}

/// An axum origin forwarding `grpc.health.v1.Health` to `backend`, as the edge forwards
/// `rp.api.v1.*`.
async fn edge_to(backend: SocketAddr) -> String {
    let forward = Forward::new([(
        "grpc.health.v1.Health",
        "health",
        format!("http://{backend}"),
    )])
    .unwrap();
    let app =
        axum::Router::new().route_service("/grpc.health.v1.Health/{method}", forward.grpc_web());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn frame(msg: &impl Message) -> Vec<u8> {
    let body = msg.encode_to_vec();
    let mut f = vec![0u8];
    f.extend_from_slice(&(body.len() as u32).to_be_bytes());
    f.extend_from_slice(&body);
    f
}

/// The data messages and the trailers of a gRPC-Web body.
fn unframe(mut b: &[u8]) -> (Vec<Bytes>, String) {
    let (mut data, mut trailers) = (Vec::new(), String::new());
    while b.len() >= 5 {
        let len = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
        let payload = &b[5..5 + len];
        if b[0] & 0x80 != 0 {
            trailers.push_str(&String::from_utf8_lossy(payload));
        } else {
            data.push(Bytes::copy_from_slice(payload));
        }
        b = &b[5 + len..];
    }
    (data, trailers)
}

fn http1() -> reqwest::Client {
    rp_platform::install_crypto_provider();
    reqwest::Client::builder().http1_only().build().unwrap()
}

fn call(url: &str, method: &str, key: Option<&str>, msg: &impl Message) -> reqwest::RequestBuilder {
    let client = http1();
    let mut r = client
        .post(format!("{url}/grpc.health.v1.Health/{method}"))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(frame(msg));
    if let Some(k) = key {
        r = r.header("authorization", k);
    }
    r
}

#[tokio::test]
async fn a_grpc_web_call_reaches_the_backend_with_its_key_and_comes_back_translated() {
    let url = edge_to(backend().await).await;
    let req = HealthCheckRequest {
        service: "rp.api.v1.Sync".into(),
    };
    let res = call(&url, "Check", Some(KEY), &req).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/grpc-web+proto");
    let (data, trailers) = unframe(&res.bytes().await.unwrap());
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let answer = HealthCheckResponse::decode(data[0].clone()).unwrap();
    assert_eq!(answer.status, 1, "SERVING");
}

#[tokio::test]
async fn without_the_key_the_backends_refusal_and_message_reach_the_browser() {
    let url = edge_to(backend().await).await;
    let res = call(&url, "Check", None, &HealthCheckRequest::default())
        .send()
        .await
        .unwrap();
    let status = res
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_string());
    let message = res
        .headers()
        .get("grpc-message")
        .map(|v| v.to_str().unwrap().to_string());
    let (_, trailers) = unframe(&res.bytes().await.unwrap());
    let all = format!("{status:?} {message:?} {trailers}");
    assert!(all.contains("16"), "UNAUTHENTICATED: {all}");
    assert!(
        all.contains("API%20key") || all.contains("API key"),
        "{all}"
    );
}

#[tokio::test]
async fn a_server_stream_passes_through_message_by_message_while_it_stays_open() {
    let url = edge_to(backend().await).await;
    let req = HealthCheckRequest {
        service: "rp.api.v1.Sync".into(),
    };
    let mut res = call(&url, "Watch", Some(KEY), &req).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // The first message arrives although the stream never ends (the status stays SERVING).
    let mut got = Vec::new();
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let chunk = res.chunk().await.unwrap().expect("the stream stays open");
            got.extend_from_slice(&chunk);
            let (data, trailers) = unframe(&got);
            assert!(trailers.is_empty(), "the stream must not end: {trailers}");
            if let Some(d) = data.first() {
                return HealthCheckResponse::decode(d.clone()).unwrap();
            }
        }
    })
    .await
    .expect("the first streamed message within 10 s");
    assert_eq!(first.status, 1);
}

fn config(assets: &std::path::Path, connector: &str) -> web::Config {
    web::Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        assets_dir: assets.to_path_buf(),
        connector: connector.into(),
        matcher: "http://127.0.0.1:1".into(),
        attribution: "http://127.0.0.1:1".into(),
        notification: "http://127.0.0.1:1".into(),
        demo_env: None,
        backend_ca: None,
    }
}

async fn start(config: web::Config) -> String {
    let serving = web::serve(&config, CancellationToken::new()).await.unwrap();
    format!("http://{}", serving.local_addr)
}

fn built_page() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rp-web-assets-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><title>RP</title>").unwrap();
    std::fs::write(dir.join("assets/app.js"), "console.log(1)").unwrap();
    dir
}

#[tokio::test]
async fn the_page_is_served_for_its_routes_with_a_strict_policy_and_nothing_else_is() {
    let url = start(config(&built_page(), "http://127.0.0.1:1")).await;
    let http = http1();
    for path in [
        "/",
        "/workspace/connections?status=authorized",
        "/dashboard",
    ] {
        let res = http.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(
            res.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("connect-src 'self'")
        );
        assert!(res.text().await.unwrap().contains("<title>RP</title>"));
    }
    let js = http
        .get(format!("{url}/assets/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    for path in [
        "/assets/nope.js",
        "/../Cargo.toml",
        "/assets/../../Cargo.toml",
    ] {
        let res = http.get(format!("{url}{path}")).send().await.unwrap();
        assert_ne!(
            res.text().await.unwrap(),
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap(),
            "{path}"
        );
    }
    let res = http
        .post(format!("{url}/demo/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        404,
        "no demo workspace unless WEB_DEMO_ENV is set"
    );
}

#[tokio::test]
async fn other_services_other_origins_and_unreachable_backends_get_an_answer_the_page_can_show() {
    let url = start(config(&built_page(), "http://127.0.0.1:1")).await;
    let http = http1();
    let grpc_web = |path: &str| {
        http.post(format!("{url}{path}"))
            .header("content-type", "application/grpc-web+proto")
            .body(frame(&HealthCheckRequest::default()))
    };
    // Health and reflection stay internal.
    let res = grpc_web("/grpc.health.v1.Health/Check")
        .send()
        .await
        .unwrap();
    assert_ne!(res.status(), 200, "not a route of the edge");
    // The connector is down: UNAVAILABLE, naming it.
    let res = grpc_web("/rp.api.v1.Sync/GetConnectionHealth")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["grpc-status"], "14");
    assert!(
        res.headers()["grpc-message"]
            .to_str()
            .unwrap()
            .contains("connector")
    );
    // Another site's page cannot call the API through a visitor's browser.
    let res = grpc_web("/rp.api.v1.Sync/GetConnectionHealth")
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn the_demo_workspace_is_handed_to_this_machine_in_a_post_body_only_when_configured() {
    let dir = built_page();
    let demo = dir.join("demo.env");
    std::fs::write(&demo, "WS=ws-1\nRP_API_KEY=rp_demo_key\n").unwrap();
    let mut c = config(&dir, "http://127.0.0.1:1");
    c.demo_env = Some(demo);
    let url = start(c).await;
    let http = http1();
    let res = http
        .post(format!("{url}/demo/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["workspace_id"], "ws-1");
    assert_eq!(body["api_key"], "rp_demo_key");
    let res = http
        .post(format!("{url}/demo/session"))
        .header("host", "rebound.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "not under another name");
    let res = http
        .get(format!("{url}/demo/session"))
        .send()
        .await
        .unwrap();
    assert_ne!(res.status(), 200, "never by GET (a link or an image)");
}
