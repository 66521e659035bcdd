//! `oauth2`'s HTTP and client types, run over our reqwest client: 5xx and transport trouble
//! come back as outages.

use std::future::Future;
use std::pin::Pin;

use oauth2::basic::{BasicRevocationErrorResponse, BasicTokenIntrospectionResponse};
use oauth2::{
    AsyncHttpClient, EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, StandardRevocableToken,
};

use super::wire::{ProviderTokenError, ProviderTokenResponse};
use crate::domain::provider::OutageCause;
use crate::providers::http::BodyError;

/// The `oauth2` client as we configure it (authorize and token endpoints set).
pub(super) type Client = oauth2::Client<
    ProviderTokenError,
    ProviderTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Failure of the adapter: transport trouble or a 5xx (both are outages).
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("{0}")]
    Unavailable(OutageCause),
    #[error("bad request: {0}")]
    Build(String),
    /// The answer passed [`MAX_TOKEN_ANSWER`]: bad data, not read further.
    #[error("{0}")]
    TooLarge(String),
}

/// The most bytes a token answer may have: they are a few hundred bytes; a provider (or whoever
/// answers at its URL) sending more is not read further (issue 15.10).
pub const MAX_TOKEN_ANSWER: usize = 1024 * 1024;

/// `oauth2`'s async HTTP client over our reqwest client.
pub struct ReqwestAdapter<'a>(pub &'a reqwest::Client);

impl<'c> AsyncHttpClient<'c> for ReqwestAdapter<'_> {
    type Error = AdapterError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, AdapterError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let resp = self
                .0
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(transport)?;
            let status = resp.status();
            if status.is_server_error() {
                return Err(AdapterError::Unavailable(OutageCause::Status(
                    status.as_u16(),
                )));
            }
            let headers = resp.headers().clone();
            let bytes = match crate::providers::http::read_capped(resp, MAX_TOKEN_ANSWER).await {
                Ok(b) => b,
                Err(BodyError::TooLarge(detail)) => return Err(AdapterError::TooLarge(detail)),
                Err(BodyError::Transport(e)) => return Err(transport(e)),
            };
            let mut out = http::Response::builder()
                .status(status)
                .body(bytes.to_vec())
                .map_err(|e| AdapterError::Build(e.to_string()))?;
            *out.headers_mut() = headers;
            Ok(out)
        })
    }
}

fn transport(e: reqwest::Error) -> AdapterError {
    if e.is_builder() {
        AdapterError::Build(e.without_url().to_string())
    } else if e.is_timeout() {
        AdapterError::Unavailable(OutageCause::Timeout)
    } else {
        AdapterError::Unavailable(OutageCause::Connection(e.without_url().to_string()))
    }
}
