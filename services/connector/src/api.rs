//! The `rp.api.v1.Connections` gRPC service. Every call is authenticated with an API key and may
//! only name the key's own workspace. Responses never carry a token.

use std::sync::Arc;

use rp_platform::apikeys;
use rp_platform::contracts::api::v1::connections_server::Connections;
use rp_platform::contracts::api::v1::{
    CompleteConnectRequest, CompleteConnectResponse, Connection, DisconnectRequest,
    GetConnectionRequest, ListConnectionsRequest, ListConnectionsResponse, ReconnectRequest,
    StartConnectRequest, StartConnectResponse,
};
use rp_platform::contracts::timestamp;
use rp_platform::grpc;
use rp_platform::ids::WorkspaceId;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::connect::{Authorization, ConnectFlow, FlowError};
use crate::domain::{IntegrationId, Provider, oauth_state};
use crate::store::ConnectionRow;

#[derive(Clone)]
pub struct ConnectionsApi {
    flow: Arc<ConnectFlow>,
}

impl ConnectionsApi {
    pub fn new(flow: Arc<ConnectFlow>) -> Self {
        Self { flow }
    }

    /// Authenticates the call and checks the workspace it names. This is the one line to change
    /// for another authentication scheme.
    async fn authorize<T>(
        &self,
        request: &Request<T>,
        workspace_id: &str,
    ) -> Result<WorkspaceId, Status> {
        let caller = apikeys::authenticate(self.flow.pool(), request).await?;
        let span = tracing::Span::current();
        span.record("key_id", caller.key_id.as_str());
        let ws = caller.authorize(workspace_id)?;
        span.record("workspace_id", tracing::field::display(ws));
        Ok(ws)
    }
}

fn span(method: &'static str) -> tracing::Span {
    tracing::info_span!(
        "grpc",
        rpc.service = "rp.api.v1.Connections",
        rpc.method = method,
        workspace_id = tracing::field::Empty,
        key_id = tracing::field::Empty,
        integration_id = tracing::field::Empty,
    )
}

/// The one place flow errors become gRPC statuses.
fn status(e: FlowError) -> Status {
    match e {
        FlowError::NotFound(m) => grpc::not_found(m),
        FlowError::FailedPrecondition(m) => grpc::failed_precondition(m),
        FlowError::ProviderUnavailable(m) => Status::unavailable(m),
        FlowError::Infra { operation, cause } => grpc::unavailable(operation, &cause),
    }
}

fn integration(field: &str, value: &str) -> Result<IntegrationId, Status> {
    let id = IntegrationId::parse(value).map_err(|why| grpc::invalid_argument(field, why))?;
    tracing::Span::current().record("integration_id", tracing::field::display(id));
    Ok(id)
}

fn started(a: Authorization) -> StartConnectResponse {
    StartConnectResponse {
        integration_id: a.integration_id.to_string(),
        authorize_url: a.url,
        expires_at: Some(timestamp(a.expires_at)),
    }
}

/// A connection as the API shows it. Tokens are not in the row, so they cannot leak here.
pub fn to_api(c: &ConnectionRow) -> Connection {
    Connection {
        integration_id: c.integration_id.to_string(),
        workspace_id: c.workspace_id.to_string(),
        provider: c.provider.to_api() as i32,
        status: c.status.to_api() as i32,
        external_account_id: c.external_account_id.clone(),
        scopes: c.scopes.clone(),
        connected_at: c.connected_at.map(timestamp),
        authorized_at: c.authorized_at.map(timestamp),
        disconnected_at: c.disconnected_at.map(timestamp),
        disconnect_reason: c.disconnect_reason.map_or(0, |r| r.to_api() as i32),
        provider_message: c.provider_message.clone(),
    }
}

#[tonic::async_trait]
impl Connections for ConnectionsApi {
    async fn start_connect(
        &self,
        request: Request<StartConnectRequest>,
    ) -> Result<Response<StartConnectResponse>, Status> {
        async {
            let ws = self.authorize(&request, &request.get_ref().workspace_id).await?;
            let provider = Provider::from_api(request.get_ref().provider).ok_or_else(|| {
                grpc::invalid_argument(
                    "provider",
                    format!(
                        "must be PROVIDER_LINKEDIN, PROVIDER_HUBSPOT or PROVIDER_SALESFORCE (got {})",
                        request.get_ref().provider
                    ),
                )
            })?;
            let auth = self
                .flow
                .start_connect(ws.as_uuid(), provider)
                .await
                .map_err(status)?;
            Ok(Response::new(started(auth)))
        }
        .instrument(span("StartConnect"))
        .await
    }

    async fn complete_connect(
        &self,
        request: Request<CompleteConnectRequest>,
    ) -> Result<Response<CompleteConnectResponse>, Status> {
        async {
            let ws = self
                .authorize(&request, &request.get_ref().workspace_id)
                .await?;
            let handle = request.get_ref().completion.trim();
            let completion = oauth_state::hash(handle).ok_or_else(|| {
                grpc::invalid_argument(
                    "completion",
                    "must be the `completion` parameter the OAuth callback put in the \
                     Connections page's address (43 URL-safe characters)",
                )
            })?;
            let done = self
                .flow
                .finish(ws.as_uuid(), &completion)
                .await
                .map_err(status)?;
            tracing::Span::current().record(
                "integration_id",
                tracing::field::display(done.connection.integration_id),
            );
            Ok(Response::new(CompleteConnectResponse {
                connection: Some(to_api(&done.connection)),
                reconnected: done.reconnected,
                account_changed: done.account_changed,
            }))
        }
        .instrument(span("CompleteConnect"))
        .await
    }

    async fn reconnect(
        &self,
        request: Request<ReconnectRequest>,
    ) -> Result<Response<StartConnectResponse>, Status> {
        async {
            let ws = self
                .authorize(&request, &request.get_ref().workspace_id)
                .await?;
            let id = integration("integration_id", &request.get_ref().integration_id)?;
            let auth = self
                .flow
                .reconnect(ws.as_uuid(), id)
                .await
                .map_err(status)?;
            Ok(Response::new(started(auth)))
        }
        .instrument(span("Reconnect"))
        .await
    }

    async fn disconnect(
        &self,
        request: Request<DisconnectRequest>,
    ) -> Result<Response<Connection>, Status> {
        async {
            let ws = self
                .authorize(&request, &request.get_ref().workspace_id)
                .await?;
            let id = integration("integration_id", &request.get_ref().integration_id)?;
            let row = self
                .flow
                .disconnect(ws.as_uuid(), id)
                .await
                .map_err(status)?;
            Ok(Response::new(to_api(&row)))
        }
        .instrument(span("Disconnect"))
        .await
    }

    async fn list_connections(
        &self,
        request: Request<ListConnectionsRequest>,
    ) -> Result<Response<ListConnectionsResponse>, Status> {
        async {
            let ws = self
                .authorize(&request, &request.get_ref().workspace_id)
                .await?;
            let rows = self.flow.list(ws.as_uuid()).await.map_err(status)?;
            Ok(Response::new(ListConnectionsResponse {
                connections: rows.iter().map(to_api).collect(),
            }))
        }
        .instrument(span("ListConnections"))
        .await
    }

    async fn get_connection(
        &self,
        request: Request<GetConnectionRequest>,
    ) -> Result<Response<Connection>, Status> {
        async {
            let ws = self
                .authorize(&request, &request.get_ref().workspace_id)
                .await?;
            let id = integration("integration_id", &request.get_ref().integration_id)?;
            let row = self.flow.get(ws.as_uuid(), id).await.map_err(status)?;
            Ok(Response::new(to_api(&row)))
        }
        .instrument(span("GetConnection"))
        .await
    }
}
