//! A stand-in `Notifications` service for the tests of the gRPC plumbing (`grpc.rs`,
//! `metrics.rs`): UnreadCount answers 7, MarkRead is NOT_FOUND, List and MarkAllRead are
//! FAILED_PRECONDITION, and its Subscribe stream never ends by itself.

use rp_platform::contracts::api::v1::notifications_server::Notifications;
use rp_platform::contracts::api::v1::*;
use rp_platform::grpc;
use std::pin::Pin;
use tonic::{Request, Response, Status};

pub struct Stub;

#[tonic::async_trait]
impl Notifications for Stub {
    async fn list(
        &self,
        _: Request<ListNotificationsRequest>,
    ) -> Result<Response<ListNotificationsResponse>, Status> {
        Err(grpc::failed_precondition("stub"))
    }
    async fn unread_count(
        &self,
        _: Request<UnreadCountRequest>,
    ) -> Result<Response<UnreadCountResponse>, Status> {
        Ok(Response::new(UnreadCountResponse { unread: 7 }))
    }
    async fn mark_read(
        &self,
        _: Request<MarkReadRequest>,
    ) -> Result<Response<MarkReadResponse>, Status> {
        Err(grpc::not_found("no such notification"))
    }
    async fn mark_all_read(
        &self,
        _: Request<MarkAllReadRequest>,
    ) -> Result<Response<MarkAllReadResponse>, Status> {
        Err(grpc::failed_precondition("stub"))
    }
    type SubscribeStream =
        Pin<Box<dyn futures::Stream<Item = Result<Notification, Status>> + Send + 'static>>;
    async fn subscribe(
        &self,
        _: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        Ok(Response::new(Box::pin(futures::stream::pending())))
    }
}
