//! `grpc::serve` as a client sees it: health reports every service by name, reflection describes
//! them from our contracts (so `grpcurl` needs no .proto files), and shutdown follows the
//! cancellation token, even with a stream open that never ends on its own.

mod stub;

use futures::StreamExt;
use rp_platform::contracts::api::v1::notifications_server::NotificationsServer;
use rp_platform::contracts::api::v1::*;
use rp_platform::grpc::{self, Services};
use std::net::SocketAddr;
use std::time::Duration;
use stub::Stub;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

const WAIT: Duration = Duration::from_secs(10);

async fn start(grace: Duration) -> (grpc::Serving, CancellationToken, Channel) {
    rp_platform::install_crypto_provider();
    let cancel = CancellationToken::new();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let serving = grpc::serve(
        addr,
        cancel.clone(),
        Services::new()
            .service(NotificationsServer::new(Stub))
            .shutdown_grace(grace),
    )
    .await
    .unwrap();
    assert_ne!(serving.local_addr().port(), 0, "the real port is exposed");
    let channel = Channel::from_shared(format!("http://{}", serving.local_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (serving, cancel, channel)
}

async fn check(channel: &Channel, service: &str) -> Result<HealthCheckResponse, Status> {
    HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map(Response::into_inner)
}

async fn reflect(channel: &Channel, request: MessageRequest) -> ServerReflectionResponse {
    let mut client = ServerReflectionClient::new(channel.clone());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut responses = client
        .server_reflection_info(futures::stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    responses.next().await.unwrap().unwrap()
}

#[tokio::test]
async fn health_reports_the_server_and_each_service_serving() {
    let (serving, cancel, channel) = start(grpc::DEFAULT_SHUTDOWN_GRACE).await;
    for service in ["", "rp.api.v1.Notifications"] {
        let r = check(&channel, service).await.unwrap();
        assert_eq!(r.status(), ServingStatus::Serving, "{service:?}");
    }
    let unknown = check(&channel, "rp.api.v1.Nope").await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    // And the service itself is routed.
    let n = rp_platform::contracts::api::v1::notifications_client::NotificationsClient::new(
        channel.clone(),
    )
    .unread_count(UnreadCountRequest::default())
    .await
    .unwrap();
    assert_eq!(n.into_inner().unread, 7);
    cancel.cancel();
    tokio::time::timeout(WAIT, serving.wait())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn reflection_lists_the_served_services_and_describes_them_from_our_contracts() {
    let (serving, cancel, channel) = start(grpc::DEFAULT_SHUTDOWN_GRACE).await;
    let listed = reflect(&channel, MessageRequest::ListServices(String::new())).await;
    let Some(MessageResponse::ListServicesResponse(list)) = listed.message_response else {
        panic!("expected a service list, got {listed:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "rp.api.v1.Notifications",
        ]
    );

    let file = reflect(
        &channel,
        MessageRequest::FileContainingSymbol("rp.api.v1.Notifications".into()),
    )
    .await;
    let Some(MessageResponse::FileDescriptorResponse(fds)) = file.message_response else {
        panic!("expected a file descriptor, got {file:?}");
    };
    let files: Vec<prost_types::FileDescriptorProto> = fds
        .file_descriptor_proto
        .iter()
        .map(|raw| prost::Message::decode(raw.as_slice()).unwrap())
        .collect();
    let notifications = files
        .iter()
        .find(|f| f.name() == "rp/api/v1/notifications.proto")
        .expect("the notifications contract");
    let methods: Vec<&str> = notifications.service[0]
        .method
        .iter()
        .map(|m| m.name())
        .collect();
    assert_eq!(
        methods,
        [
            "List",
            "UnreadCount",
            "MarkRead",
            "MarkAllRead",
            "Subscribe"
        ]
    );
    // Its imports can be fetched too (grpcurl asks for them by name), so every type resolves.
    assert_eq!(
        notifications.dependency,
        ["google/protobuf/timestamp.proto"]
    );
    let dep = reflect(
        &channel,
        MessageRequest::FileByFilename("google/protobuf/timestamp.proto".into()),
    )
    .await;
    assert!(
        matches!(dep.message_response, Some(MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()),
        "{dep:?}"
    );

    // The older v1alpha protocol (still the default of some grpcurl builds) answers too.
    let mut alpha =
        tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient::new(
            channel.clone(),
        );
    use tonic_reflection::pb::v1alpha as a;
    let mut r = alpha
        .server_reflection_info(futures::stream::iter([a::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(a::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        }]))
        .await
        .unwrap()
        .into_inner();
    let first = r.next().await.unwrap().unwrap();
    assert!(matches!(
        first.message_response,
        Some(a::server_reflection_response::MessageResponse::ListServicesResponse(ref l))
            if l.service.iter().any(|s| s.name == "rp.api.v1.Notifications")
    ));
    cancel.cancel();
    tokio::time::timeout(WAIT, serving.wait())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn cancel_turns_health_not_serving_and_ends_watchers_then_the_server_stops() {
    let (serving, cancel, channel) = start(grpc::DEFAULT_SHUTDOWN_GRACE).await;
    let mut watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest {
            service: "rp.api.v1.Notifications".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);
    cancel.cancel();
    let mut seen = Vec::new();
    while let Some(Ok(m)) = tokio::time::timeout(WAIT, watch.next()).await.unwrap() {
        seen.push(m.status());
    }
    assert_eq!(seen.last(), Some(&ServingStatus::NotServing), "{seen:?}");
    // Well inside the 10 s grace: nothing was left open.
    tokio::time::timeout(Duration::from_secs(5), serving.wait())
        .await
        .expect("a clean shutdown does not wait for the grace period")
        .unwrap();
    let refused = check(&channel, "").await;
    assert!(refused.is_err(), "the listener is closed");
}

#[tokio::test]
async fn shutdown_does_not_wait_past_the_grace_period_for_a_stream_that_never_ends() {
    let (serving, cancel, channel) = start(Duration::from_millis(300)).await;
    let _stream =
        rp_platform::contracts::api::v1::notifications_client::NotificationsClient::new(channel)
            .subscribe(SubscribeRequest::default())
            .await
            .unwrap()
            .into_inner();
    cancel.cancel();
    tokio::time::timeout(WAIT, serving.wait())
        .await
        .expect("shutdown is bounded by the grace period")
        .unwrap();
}
