//! What a provider failure means for a sync run: refresh and go on, disconnect the connection,
//! or end the run with a SyncFailed of the right kind, in words a user can act on.

use rp_platform::contracts::events::v1::FailureKind;

use super::DisconnectReason;
use super::provider::{GrantRefusal, Provider, ProviderError};

/// The decision for one provider error.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The access token was rejected: refresh it once and retry the same call.
    Refresh,
    /// The provider refused our refresh token: the connection is gone until reconnected.
    Disconnect {
        reason: DisconnectReason,
        provider_message: String,
    },
    /// End the run.
    Fail { kind: FailureKind, message: String },
}

pub fn disconnect_reason(r: GrantRefusal) -> DisconnectReason {
    match r {
        GrantRefusal::Revoked => DisconnectReason::AuthorizationRevoked,
        GrantRefusal::Expired => DisconnectReason::AuthorizationExpired,
    }
}

/// Classifies `err`. `refreshed` says whether this call already ran with a freshly refreshed
/// token (a second rejection is not refreshed again).
pub fn classify(err: &ProviderError, refreshed: bool) -> Verdict {
    let p = err.provider();
    match err {
        ProviderError::Unauthorized { .. } if !refreshed => Verdict::Refresh,
        ProviderError::Unauthorized { message, .. } => Verdict::Fail {
            kind: FailureKind::Authorization,
            message: format!(
                "{p} rejected our access even after it was renewed ({message}). Reconnect {p} on \
                 the Connections page."
            ),
        },
        ProviderError::GrantRefused {
            reason,
            provider_message,
            ..
        } => Verdict::Disconnect {
            reason: disconnect_reason(*reason),
            provider_message: provider_message.clone(),
        },
        ProviderError::Outage {
            cause, attempts, ..
        } => Verdict::Fail {
            kind: FailureKind::ProviderOutage,
            message: format!(
                "{p} is unavailable ({cause}; {attempts} attempts). Revenue Proven retries \
                 automatically on the next scheduled sync."
            ),
        },
        ProviderError::RateLimited { message, .. } => Verdict::Fail {
            kind: FailureKind::RateLimited,
            message: format!(
                "{p}'s API limit is used up ({message}). The next scheduled sync continues from \
                 where this one stopped."
            ),
        },
        ProviderError::BadPayload {
            endpoint, detail, ..
        } => Verdict::Fail {
            kind: FailureKind::BadPayload,
            message: format!(
                "{p} sent data we could not read from {endpoint} ({detail}). Nothing of this step \
                 was counted; the next sync retries from the last checkpoint."
            ),
        },
        ProviderError::Request {
            endpoint,
            status,
            message,
            ..
        } => Verdict::Fail {
            kind: FailureKind::Internal,
            message: format!(
                "{p} refused our request to {endpoint} (HTTP {}): {message}. This is on our side; \
                 the next sync retries.",
                status.map_or_else(|| "-".to_string(), |s| s.to_string())
            ),
        },
        ProviderError::Denied { .. } => Verdict::Fail {
            kind: FailureKind::Authorization,
            message: format!(
                "{p} declined the authorization. Reconnect {p} on the Connections page."
            ),
        },
    }
}

/// The SyncFailed message after a disconnection.
pub fn disconnected_message(
    p: Provider,
    reason: DisconnectReason,
    provider_message: &str,
) -> String {
    let why = match reason {
        DisconnectReason::UserRequested => "was disconnected".to_string(),
        DisconnectReason::AuthorizationRevoked => {
            format!("refused our authorization: access was revoked ({provider_message})")
        }
        DisconnectReason::AuthorizationExpired => {
            format!("refused our authorization: it expired ({provider_message})")
        }
    };
    format!("{p} {why}: syncing has stopped. Reconnect {p} on the Connections page.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::provider::{OutageCause, TokenRejection};

    #[test]
    fn an_expired_token_is_refreshed_once_then_fails_as_authorization() {
        let e = ProviderError::Unauthorized {
            provider: Provider::Hubspot,
            reason: TokenRejection::Expired,
            message: "expired".into(),
        };
        assert_eq!(classify(&e, false), Verdict::Refresh);
        assert!(matches!(
            classify(&e, true),
            Verdict::Fail {
                kind: FailureKind::Authorization,
                ..
            }
        ));
    }

    #[test]
    fn a_refused_grant_disconnects_with_the_providers_words() {
        let e = ProviderError::GrantRefused {
            provider: Provider::Salesforce,
            reason: GrantRefusal::Expired,
            provider_message: "expired access/refresh token".into(),
        };
        assert_eq!(
            classify(&e, false),
            Verdict::Disconnect {
                reason: DisconnectReason::AuthorizationExpired,
                provider_message: "expired access/refresh token".into()
            }
        );
    }

    #[test]
    fn outages_payloads_limits_and_our_bugs_each_have_their_kind() {
        let cases = [
            (
                ProviderError::Outage {
                    provider: Provider::Linkedin,
                    cause: OutageCause::Status(503),
                    attempts: 4,
                },
                FailureKind::ProviderOutage,
                "next scheduled sync",
            ),
            (
                ProviderError::BadPayload {
                    provider: Provider::Hubspot,
                    endpoint: "GET /crm/v3/objects/companies".into(),
                    detail: "EOF".into(),
                },
                FailureKind::BadPayload,
                "GET /crm/v3/objects/companies",
            ),
            (
                ProviderError::RateLimited {
                    provider: Provider::Salesforce,
                    retry_after: None,
                    message: "daily".into(),
                },
                FailureKind::RateLimited,
                "limit",
            ),
            (
                ProviderError::Request {
                    provider: Provider::Salesforce,
                    endpoint: "GET /query".into(),
                    status: Some(400),
                    message: "MALFORMED_QUERY".into(),
                },
                FailureKind::Internal,
                "HTTP 400",
            ),
        ];
        for (e, kind, words) in cases {
            match classify(&e, false) {
                Verdict::Fail { kind: k, message } => {
                    assert_eq!(k, kind);
                    assert!(message.contains(words), "{message}");
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
