//! Issue 15.6: with the services serving TLS (RP_GRPC_TLS_CERT/KEY), the edge forwards to them
//! over TLS, trusting the CA in `RP_GRPC_TLS_CA` (`Config::backend_ca`).

use bytes::Bytes;
use prost::Message;
use rp_platform::grpc::{Services, serve};
use rp_platform::testing::TestCertificates;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use web::grpc_web::Forward;

fn frame(msg: &impl Message) -> Vec<u8> {
    let body = msg.encode_to_vec();
    let mut out = vec![0u8];
    out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// The first data frame's payload and the trailers frame, as text.
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

async fn edge(forward: Forward) -> String {
    let app =
        axum::Router::new().route_service("/grpc.health.v1.Health/{method}", forward.grpc_web());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn check(edge: &str) -> (u16, String, Option<i32>) {
    let res = reqwest::Client::builder()
        .http1_only()
        .build()
        .unwrap()
        .post(format!("{edge}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(frame(&HealthCheckRequest::default()))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let (data, trailers) = unframe(&res.bytes().await.unwrap());
    let answer = data
        .first()
        .map(|d| HealthCheckResponse::decode(d.clone()).unwrap().status);
    (status, trailers, answer)
}

#[tokio::test]
async fn the_edge_forwards_to_a_tls_service_trusting_its_ca() {
    rp_platform::install_crypto_provider();
    let certs = TestCertificates::new();
    let cancel = CancellationToken::new();
    let serving = serve(
        "127.0.0.1:0".parse().unwrap(),
        cancel.clone(),
        Services::new().tls(certs.server_tls()),
    )
    .await
    .unwrap();
    let backend = format!("https://127.0.0.1:{}", serving.local_addr().port());

    let trusted = Forward::with_ca(
        [("grpc.health.v1.Health", "health", backend.clone())],
        Some(certs.ca_pem.as_bytes()),
    )
    .unwrap();
    let (status, trailers, answer) = check(&edge(trusted).await).await;
    assert_eq!(status, 200);
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    assert_eq!(answer, Some(1), "SERVING, over TLS");

    // Trusting another CA: the service is not reached.
    let other = TestCertificates::new();
    let strange = Forward::with_ca(
        [("grpc.health.v1.Health", "health", backend.clone())],
        Some(other.ca_pem.as_bytes()),
    )
    .unwrap();
    let (_, trailers, answer) = check(&edge(strange).await).await;
    assert_eq!(answer, None);
    assert!(!trailers.contains("grpc-status:0"), "{trailers}");

    cancel.cancel();
    serving.wait().await.unwrap();
}
