//! The `rp.api.v1.Notifications` gRPC service: the notification bell.
//!
//! Every call is authenticated with an API key and may only name the key's own workspace.
//! Subscribe streams are capped per API key and workspace and end on shutdown and when their key
//! is revoked ([`rp_platform::streams`]). Subscribe is fed by core NATS subscriptions on the
//! workspace's NotificationRaised and NotificationUpdated subjects, but what it pushes is read from
//! the projection by the message's notification id, never taken from the message (a forged
//! message on the bus names no notification of the workspace and is dropped; an update is sent
//! as the notification again, same id, new text): the relay publishes an event only after it is committed to the log, so the bell never shows
//! a notification that was rolled back, and every replica of the service sees every workspace's
//! notifications whichever replica raised them (a per-process broadcast channel would see only
//! its own).

use crate::domain::NotificationKind as Kind;
use crate::store::{self, Cursor, MarkRead, NotificationRow};
use futures::{Stream, StreamExt};
use rp_platform::apikeys::{self, Caller};
use rp_platform::bus::{BusConfig, headers};
use rp_platform::contracts::api::v1::notifications_server::Notifications;
use rp_platform::contracts::api::v1::{
    ListNotificationsRequest, ListNotificationsResponse, MarkAllReadRequest, MarkAllReadResponse,
    MarkReadRequest, MarkReadResponse, Notification, NotificationKind, SubscribeRequest,
    UnreadCountRequest, UnreadCountResponse,
};
use rp_platform::contracts::events::v1::envelope::Event;
use rp_platform::contracts::timestamp;
use rp_platform::grpc;
use rp_platform::ids::WorkspaceId;
use rp_platform::paging::{self, PageSize};
use rp_platform::provider::Provider;
use rp_platform::streams::{self, OpenStreams, StreamLimits};
use sqlx::PgPool;
use std::collections::{HashSet, VecDeque};
use std::pin::Pin;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use uuid::Uuid;

/// List: 20 notifications by default, at most 100.
pub const PAGE_SIZE: PageSize = PageSize::new(20, 100);

/// The listing's tag in its page tokens ([`rp_platform::paging`]).
const TOKEN_TAG: &str = "notifications-1";

#[derive(Clone)]
pub struct NotificationsApi {
    pool: PgPool,
    nats: async_nats::Client,
    bus: BusConfig,
    /// Open Subscribe streams: capped per key and workspace, ended on shutdown (the service's
    /// token) and when their key is revoked.
    streams: OpenStreams,
}

impl NotificationsApi {
    pub fn new(
        pool: PgPool,
        nats: async_nats::Client,
        bus: BusConfig,
        cancel: CancellationToken,
    ) -> Self {
        Self::with_limits(pool, nats, bus, cancel, StreamLimits::default())
    }

    /// [`NotificationsApi::new`] with the process's stream limits (`RP_GRPC_MAX_STREAMS_*`).
    pub fn with_limits(
        pool: PgPool,
        nats: async_nats::Client,
        bus: BusConfig,
        cancel: CancellationToken,
        limits: StreamLimits,
    ) -> Self {
        Self {
            streams: OpenStreams::new(pool.clone(), limits, cancel),
            pool,
            nats,
            bus,
        }
    }

    /// Authenticates the call and checks the workspace it names; records both on the span.
    async fn authorize<T>(
        &self,
        request: &Request<T>,
        workspace_id: &str,
    ) -> Result<(Caller, WorkspaceId), Status> {
        let caller = apikeys::authenticate(&self.pool, request).await?;
        let span = tracing::Span::current();
        span.record("key_id", caller.key_id.as_str());
        let ws = caller.authorize(workspace_id)?;
        span.record("workspace_id", tracing::field::display(ws));
        Ok((caller, ws))
    }
}

fn span(method: &'static str) -> tracing::Span {
    tracing::info_span!(
        "grpc",
        rpc.service = "rp.api.v1.Notifications",
        rpc.method = method,
        workspace_id = tracing::field::Empty,
        key_id = tracing::field::Empty,
    )
}

/// The next page's token: the last row's sort key, bound to the listing it came from (workspace
/// and unread_only), so a token is not replayed elsewhere.
fn encode_token(ws: WorkspaceId, unread_only: bool, c: Cursor) -> String {
    paging::encode_token(
        TOKEN_TAG,
        &[
            &ws.to_string(),
            &u8::from(unread_only).to_string(),
            &c.raised_at.timestamp_micros().to_string(),
            &c.notification_id.to_string(),
        ],
    )
}

fn decode_token(token: &str, ws: WorkspaceId, unread_only: bool) -> Result<Option<Cursor>, Status> {
    let Some(fields) = paging::decode_token(TOKEN_TAG, token, 4)? else {
        return Ok(None);
    };
    let [token_ws, token_unread, micros, id] = &fields[..] else {
        return Err(paging::bad_token());
    };
    if *token_ws != ws.to_string() || *token_unread != u8::from(unread_only).to_string() {
        return Err(paging::foreign_token());
    }
    let raised_at = micros
        .parse::<i64>()
        .ok()
        .and_then(chrono::DateTime::from_timestamp_micros)
        .ok_or_else(paging::bad_token)?;
    let notification_id = Uuid::parse_str(id).map_err(|_| paging::bad_token())?;
    Ok(Some(Cursor {
        raised_at,
        notification_id,
    }))
}

fn kind(code: &str) -> NotificationKind {
    match Kind::from_code(code) {
        Some(Kind::SyncInterrupted) => NotificationKind::SyncInterrupted,
        Some(Kind::ConnectionDisconnected) => NotificationKind::ConnectionDisconnected,
        Some(Kind::Resolved) => NotificationKind::Resolved,
        Some(Kind::AccountChanged) => NotificationKind::AccountChanged,
        None => NotificationKind::Unspecified,
    }
}

fn from_row(r: NotificationRow) -> Notification {
    Notification {
        notification_id: r.notification_id.to_string(),
        workspace_id: r.workspace_id.to_string(),
        integration_id: r.integration_id,
        provider: Provider::from_slug(&r.provider)
            .map(|p| p.display_name().to_string())
            .unwrap_or_default(),
        kind: kind(&r.kind) as i32,
        incident_key: r.incident_key,
        title: r.title,
        body: r.body,
        action: r.action,
        link: r.link,
        raised_at: Some(timestamp(r.raised_at)),
        read_at: r.read_at.map(timestamp),
        resolved_at: r.resolved_at.map(timestamp),
        resolves_notification_id: r
            .resolves_notification_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        updated_at: r.updated_at.map(timestamp),
    }
}

/// Which notification a message on a notification subject names. The message's own text is
/// never shown: anyone who can publish on the bus could forge it (issue 15.5). The bell pushes
/// the notification as the projection has it, which the handler committed with the event before
/// the relay published it; an id the projection does not hold in the workspace is dropped.
struct Pushed(Uuid);

/// A NotificationRaised or NotificationUpdated from the bus, and its event id (what a relay's
/// republish repeats).
fn from_message(msg: &async_nats::Message) -> Option<(String, Pushed)> {
    let replay = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::REPLAY))
        .is_some_and(|v| v.as_str() == "true");
    if replay {
        return None;
    }
    let event = match rp_platform::bus::decode_message(msg) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, subject = %msg.subject, "undecodable message on a notification subject");
            return None;
        }
    };
    let meta = event.meta();
    let id = match event.event() {
        Some(Event::NotificationRaised(n)) => &n.notification_id,
        Some(Event::NotificationUpdated(u)) => &u.notification_id,
        _ => return None,
    };
    let id = Uuid::parse_str(id).ok()?;
    Some((meta.event_id.clone(), Pushed(id)))
}

/// Remembers the last few event ids pushed, so a relay republishing a page after a crash does not
/// ring the bell twice.
struct Recent {
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl Recent {
    const CAPACITY: usize = 512;

    fn new() -> Self {
        Self {
            order: VecDeque::new(),
            set: HashSet::new(),
        }
    }

    /// True the first time an id is seen.
    fn first_time(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() == Self::CAPACITY
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.order.push_back(id.to_string());
        self.set.insert(id.to_string());
        true
    }
}

pub type NotificationStream = Pin<Box<dyn Stream<Item = Result<Notification, Status>> + Send>>;

#[tonic::async_trait]
impl Notifications for NotificationsApi {
    async fn list(
        &self,
        request: Request<ListNotificationsRequest>,
    ) -> Result<Response<ListNotificationsResponse>, Status> {
        async {
            let (_, ws) = self
                .authorize(&request, &request.get_ref().workspace_id)
                .await?;
            let req = request.get_ref();
            let limit = PAGE_SIZE.parse(req.page_size)?;
            let after = decode_token(&req.page_token, ws, req.unread_only)?;
            let (rows, next) = store::list(&self.pool, ws, req.unread_only, after, limit)
                .await
                .map_err(|e| grpc::unavailable("listing notifications", &e))?;
            Ok(Response::new(ListNotificationsResponse {
                notifications: rows.into_iter().map(from_row).collect(),
                next_page_token: next
                    .map(|c| encode_token(ws, req.unread_only, c))
                    .unwrap_or_default(),
            }))
        }
        .instrument(span("List"))
        .await
    }

    async fn unread_count(
        &self,
        request: Request<UnreadCountRequest>,
    ) -> Result<Response<UnreadCountResponse>, Status> {
        async {
            let (_, ws) = self
                .authorize(&request, &request.get_ref().workspace_id)
                .await?;
            let unread = store::unread_count(&self.pool, ws)
                .await
                .map_err(|e| grpc::unavailable("counting unread notifications", &e))?;
            Ok(Response::new(UnreadCountResponse { unread }))
        }
        .instrument(span("UnreadCount"))
        .await
    }

    async fn mark_read(
        &self,
        request: Request<MarkReadRequest>,
    ) -> Result<Response<MarkReadResponse>, Status> {
        async {
            let (_, ws) = self
                .authorize(&request, &request.get_ref().workspace_id)
                .await?;
            let raw = request.get_ref().notification_id.trim();
            let id = Uuid::parse_str(raw).map_err(|_| {
                grpc::invalid_argument(
                    "notification_id",
                    format!(
                        "must be a notification id (a UUID) as List returns it (got {:?})",
                        rp_platform::ids::shorten(raw)
                    ),
                )
            })?;
            let done = store::mark_read(&self.pool, ws, id)
                .await
                .map_err(|e| grpc::unavailable("marking the notification read", &e))?;
            if done == MarkRead::NotFound {
                return Err(grpc::not_found(format!(
                    "workspace {ws} has no notification {id}"
                )));
            }
            let unread = store::unread_count(&self.pool, ws)
                .await
                .map_err(|e| grpc::unavailable("counting unread notifications", &e))?;
            Ok(Response::new(MarkReadResponse { unread }))
        }
        .instrument(span("MarkRead"))
        .await
    }

    async fn mark_all_read(
        &self,
        request: Request<MarkAllReadRequest>,
    ) -> Result<Response<MarkAllReadResponse>, Status> {
        async {
            let (_, ws) = self
                .authorize(&request, &request.get_ref().workspace_id)
                .await?;
            let marked = store::mark_all_read(&self.pool, ws)
                .await
                .map_err(|e| grpc::unavailable("marking notifications read", &e))?;
            let unread = store::unread_count(&self.pool, ws)
                .await
                .map_err(|e| grpc::unavailable("counting unread notifications", &e))?;
            Ok(Response::new(MarkAllReadResponse {
                marked: i64::try_from(marked).unwrap_or(i64::MAX),
                unread,
            }))
        }
        .instrument(span("MarkAllRead"))
        .await
    }

    type SubscribeStream = NotificationStream;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        async {
            let (caller, ws) = self
                .authorize(&request, &request.get_ref().workspace_id)
                .await?;
            let permit = self.streams.open(&caller)?;
            let mut subs = Vec::new();
            for event_type in ["NotificationRaised", "NotificationUpdated"] {
                let subject = self.bus.subject(&ws.to_string(), event_type);
                subs.push(
                    self.nats
                        .subscribe(subject)
                        .await
                        .map_err(|e| grpc::unavailable("subscribing to notifications", &e))?,
                );
            }
            // The server knows the subscription before the client gets its response: nothing
            // raised after Subscribe returns is missed.
            self.nats
                .flush()
                .await
                .map_err(|e| grpc::unavailable("subscribing to notifications", &e))?;
            tracing::info!("bell subscribed");
            let mut recent = Recent::new();
            let pool = self.pool.clone();
            let stream = futures::stream::select_all(subs)
                .filter_map(move |msg| {
                    let item = from_message(&msg)
                        .filter(|(event_id, _)| recent.first_time(event_id))
                        .map(|(_, pushed)| pushed);
                    futures::future::ready(item)
                })
                .filter_map(move |pushed| {
                    let pool = pool.clone();
                    async move {
                        let Pushed(id) = pushed;
                        match store::get(&pool, ws, id).await {
                            Ok(Some(row)) => Some(Ok(from_row(row))),
                            Ok(None) => {
                                tracing::warn!(notification_id = %id, "a notification message names a notification the workspace does not have: not pushed (forged?)");
                                None
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, notification_id = %id, "a notification could not be read; the client's next List shows it");
                                None
                            }
                        }
                    }
                });
            let stream: NotificationStream = Box::pin(streams::guard(permit, stream));
            Ok(Response::new(stream))
        }
        .instrument(span("Subscribe"))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> WorkspaceId {
        WorkspaceId::new(Uuid::new_v4())
    }

    #[test]
    fn page_sizes_default_and_are_bounded() {
        assert_eq!(PAGE_SIZE.parse(0).unwrap(), 20);
        assert_eq!(PAGE_SIZE.parse(100).unwrap(), 100);
        for bad in [-1, 101, i32::MAX] {
            let e = PAGE_SIZE.parse(bad).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert!(e.message().starts_with("page_size: "), "{}", e.message());
        }
    }

    #[test]
    fn page_tokens_round_trip_and_are_bound_to_their_listing() {
        let w = ws();
        let c = Cursor {
            raised_at: chrono::DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap(),
            notification_id: Uuid::now_v7(),
        };
        let t = encode_token(w, true, c);
        assert_eq!(decode_token(&t, w, true).unwrap(), Some(c));
        assert_eq!(decode_token("", w, true).unwrap(), None);
        for (token, w2, unread) in [
            (t.clone(), ws(), true),
            (t.clone(), w, false),
            ("garbage!".to_string(), w, true),
            (paging::encode_token("v2", &["x", "1", "2", "3"]), w, true),
            (
                paging::encode_token(TOKEN_TAG, &[&w.to_string(), "1", "x", "y"]),
                w,
                true,
            ),
        ] {
            let e = decode_token(&token, w2, unread).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert!(e.message().starts_with("page_token: "), "{}", e.message());
        }
        // Another workspace's or filter's token says so.
        for (w2, unread) in [(ws(), true), (w, false)] {
            let e = decode_token(&t, w2, unread).unwrap_err();
            assert_eq!(e.message(), paging::foreign_token().message());
        }
    }

    #[test]
    fn recent_ids_are_pushed_once() {
        let mut r = Recent::new();
        assert!(r.first_time("a"));
        assert!(!r.first_time("a"));
        for i in 0..Recent::CAPACITY {
            r.first_time(&i.to_string());
        }
        assert!(
            r.first_time("a"),
            "old ids are forgotten, memory stays bounded"
        );
    }
}
