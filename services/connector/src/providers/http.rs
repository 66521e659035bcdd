//! The request loop every provider client shares: send, retry 5xx / timeouts with backoff,
//! hand the rest back for provider-specific classification. Every attempt and retry is counted
//! (`rp_provider_requests_total`, `rp_provider_retries_total`; docs/metrics.md).

use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;

use crate::domain::provider::{OutageCause, Provider, ProviderError};
use crate::metrics;

/// How often and how patiently a client retries an unavailable provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first included.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles each time.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// A response that was not a 5xx.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Clone, Debug)]
pub(crate) struct Http {
    pub client: reqwest::Client,
    pub provider: Provider,
    pub retry: RetryPolicy,
    /// The most bytes one answer may have; a larger one is bad data (read incrementally, so it
    /// is never held whole).
    pub max_body: usize,
}

/// Why an answer's body could not be read.
pub(crate) enum BodyError {
    /// It passed the cap (the detail says by how much it claimed or was read).
    TooLarge(String),
    Transport(reqwest::Error),
}

/// Read `resp`'s body chunk by chunk, giving up as soon as it passes `max` bytes (or claims to
/// in `Content-Length`), so a provider cannot make us hold an answer of any size.
pub(crate) async fn read_capped(
    mut resp: reqwest::Response,
    max: usize,
) -> Result<Bytes, BodyError> {
    let too_large =
        |what: String| BodyError::TooLarge(format!("the answer {what}, past the {max}-byte cap"));
    if let Some(len) = resp.content_length()
        && len > max as u64
    {
        return Err(too_large(format!("claims {len} bytes")));
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > max {
            return Err(too_large(format!(
                "went on beyond {} bytes",
                body.len() + chunk.len()
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

impl Http {
    /// Send the request `make` builds, retrying 5xx, timeouts and broken connections.
    pub async fn execute(
        &self,
        endpoint: &str,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Reply, ProviderError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = make().send().await;
            match &sent {
                Ok(resp) => metrics::provider_request(self.provider, Some(resp.status().as_u16())),
                Err(e) if !e.is_builder() => metrics::provider_request(self.provider, None),
                Err(_) => {}
            }
            let cause = match sent {
                Ok(resp) if resp.status().is_server_error() => {
                    OutageCause::Status(resp.status().as_u16())
                }
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    match read_capped(resp, self.max_body).await {
                        Ok(body) => {
                            return Ok(Reply {
                                status,
                                headers,
                                body,
                            });
                        }
                        Err(BodyError::TooLarge(detail)) => {
                            let detail = format!("{detail} (CONNECTOR_MAX_RESPONSE_BYTES)");
                            return Err(self.bad_payload(endpoint, detail));
                        }
                        Err(BodyError::Transport(e)) if e.is_timeout() => OutageCause::Timeout,
                        Err(BodyError::Transport(e)) => {
                            OutageCause::Connection(e.without_url().to_string())
                        }
                    }
                }
                Err(e) if e.is_builder() => {
                    return Err(self.request_error(endpoint, None, e.without_url().to_string()));
                }
                Err(e) if e.is_timeout() => OutageCause::Timeout,
                Err(e) => OutageCause::Connection(e.without_url().to_string()),
            };
            if attempt >= self.retry.max_attempts.max(1) {
                return Err(ProviderError::Outage {
                    provider: self.provider,
                    cause,
                    attempts: attempt,
                });
            }
            metrics::provider_retry(self.provider);
            let delay = self.retry.delay(attempt);
            tracing::debug!(
                provider = %self.provider,
                endpoint,
                attempt,
                cause = %cause,
                delay_ms = delay.as_millis() as u64,
                "provider unavailable, retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    pub fn parse<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        body: &[u8],
    ) -> Result<T, ProviderError> {
        serde_json::from_slice(body).map_err(|e| self.bad_payload(endpoint, e.to_string()))
    }

    pub fn bad_payload(&self, endpoint: &str, detail: impl Into<String>) -> ProviderError {
        ProviderError::BadPayload {
            provider: self.provider,
            endpoint: endpoint.to_string(),
            detail: detail.into(),
        }
    }

    pub fn request_error(
        &self,
        endpoint: &str,
        status: Option<u16>,
        message: impl Into<String>,
    ) -> ProviderError {
        ProviderError::Request {
            provider: self.provider,
            endpoint: endpoint.to_string(),
            status,
            message: message.into(),
        }
    }
}

/// Join a base URL and a path without doubling or losing the slash.
pub(crate) fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// Short, token-free excerpt of an error body for messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let mut out: String = s.chars().take(300).collect();
    if s.chars().count() > 300 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
        };
        assert_eq!(p.delay(1), Duration::from_millis(100));
        assert_eq!(p.delay(2), Duration::from_millis(200));
        assert_eq!(p.delay(3), Duration::from_millis(350));
    }

    #[test]
    fn join_handles_slashes() {
        assert_eq!(join("http://x/hubspot/", "/crm"), "http://x/hubspot/crm");
        assert_eq!(join("http://x", "crm"), "http://x/crm");
    }
}
