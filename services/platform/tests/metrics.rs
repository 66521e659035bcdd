//! The metrics a Prometheus server sees: `GET /metrics` answers OpenMetrics text, and every gRPC
//! server counts its calls by method and status code and gauges its open streams (the layer
//! `grpc::serve` puts in front of every server).

mod stub;

use rp_platform::contracts::api::v1::notifications_server::NotificationsServer;
use rp_platform::contracts::api::v1::*;
use rp_platform::grpc::{self, Services};
use rp_platform::testing::eventually;
use std::net::SocketAddr;
use std::time::Duration;
use stub::Stub;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tonic::Request;
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(10);

async fn start() -> (CancellationToken, Channel) {
    rp_platform::install_crypto_provider();
    let cancel = CancellationToken::new();
    let serving = grpc::serve(
        "127.0.0.1:0".parse().unwrap(),
        cancel.clone(),
        Services::new().service(NotificationsServer::new(Stub)),
    )
    .await
    .unwrap();
    let channel = Channel::from_shared(format!("http://{}", serving.local_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (cancel, channel)
}

/// The value of the sample `series` (name and labels, as printed) in the process' metrics.
fn sample(series: &str) -> Option<f64> {
    let text = rp_platform::metrics::encode_all().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn handled(method: &str, code: &str) -> f64 {
    sample(&format!(
        r#"rp_grpc_server_handled_total{{grpc_service="rp.api.v1.Notifications",grpc_method="{method}",grpc_code="{code}"}}"#
    ))
    .unwrap_or(0.0)
}

fn open_streams(method: &str) -> f64 {
    sample(&format!(
        r#"rp_grpc_server_open_streams{{grpc_service="rp.api.v1.Notifications",grpc_method="{method}"}}"#
    ))
    .unwrap_or(0.0)
}

#[tokio::test]
async fn unary_calls_are_counted_by_method_and_status_code() {
    let (cancel, channel) = start().await;
    let mut client = notifications_client::NotificationsClient::new(channel);
    for _ in 0..2 {
        client
            .unread_count(UnreadCountRequest::default())
            .await
            .unwrap();
    }
    let refused = client
        .mark_read(MarkReadRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound);
    // Counted when the call ended, which is before the client saw its end.
    assert_eq!(handled("UnreadCount", "OK"), 2.0);
    assert_eq!(handled("MarkRead", "NOT_FOUND"), 1.0);
    cancel.cancel();
}

#[tokio::test]
async fn a_made_up_method_is_counted_without_growing_the_labels() {
    let (cancel, channel) = start().await;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/rp.api.v1.Notifications/DropEverything");
    let codec = tonic_prost::ProstCodec::<UnreadCountRequest, UnreadCountResponse>::default();
    let err = grpc
        .unary(Request::new(UnreadCountRequest::default()), path, codec)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    let text = rp_platform::metrics::encode_all().unwrap();
    assert!(!text.contains("DropEverything"), "{text}");
    assert!(
        sample(
            r#"rp_grpc_server_handled_total{grpc_service="unknown",grpc_method="unknown",grpc_code="UNIMPLEMENTED"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    cancel.cancel();
}

#[tokio::test]
async fn an_open_stream_is_gauged_until_the_client_leaves() {
    let (cancel, channel) = start().await;
    let mut client = notifications_client::NotificationsClient::new(channel);
    let stream = client
        .subscribe(SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(open_streams("Subscribe"), 1.0);
    drop(stream);
    eventually(WAIT, "the stream's end to be seen", || async {
        (open_streams("Subscribe") == 0.0).then_some(())
    })
    .await;
    assert_eq!(handled("Subscribe", "CANCELLED"), 1.0);
    cancel.cancel();
}

/// `GET path` on `addr` over HTTP/1.0; the status line, headers and body.
async fn get(addr: SocketAddr, path: &str) -> String {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn the_endpoint_answers_openmetrics_text_until_shutdown() {
    let cancel = CancellationToken::new();
    let server = rp_platform::metrics::serve("127.0.0.1:0".parse().unwrap(), cancel.clone())
        .await
        .unwrap();
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    rp_platform::metrics::relay().published.inc_by(3);
    let answer = get(addr, "/metrics").await;
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{answer}"
    );
    assert!(answer.contains("# TYPE rp_relay_published_events counter"));
    assert!(
        answer.contains("rp_relay_published_events_total 3"),
        "{answer}"
    );
    assert!(answer.ends_with("# EOF\n"));
    assert!(get(addr, "/other").await.starts_with("HTTP/1.0 404"));

    // The port is taken while it serves: a second server there says so, naming the address.
    let taken = rp_platform::metrics::serve(addr, CancellationToken::new())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(taken.contains(&addr.to_string()), "{taken}");

    cancel.cancel();
    tokio::time::timeout(WAIT, server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
