//! What a provider failure means for a sync run: refresh and go on, disconnect the connection,
//! or end the run with a SyncFailed of the right kind, in words a user can act on.

use std::time::Duration;

use chrono::{DateTime, Utc};
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
        GrantRefusal::Unclear => DisconnectReason::AuthorizationExpiredOrRevoked,
    }
}

// ---- Why a refresh was refused: expired or revoked -------------------------------------------
//
// The providers' answers do not say (LinkedIn: "invalid, expired or revoked"; Salesforce says
// "expired access/refresh token" for a revoked grant too; HubSpot: "missing or unknown refresh
// token"), so the cause is decided from what we know of the grant, in two stages: the answer and
// the provider's documented policy ([`grant_refusal`], when the refusal comes back), then the
// refresh token's deadline against the provider's clock ([`refusal_cause`], in the vault).

/// How long a provider's refresh tokens live, by its documented policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshPolicy {
    /// Valid until revoked: a refused refresh can only be a revocation.
    UntilRevoked,
    /// A fixed life from the grant; a refresh does not extend it. The token answer's
    /// `refresh_token_expires_in` (the life left) wins when it carries one.
    Lives(Duration),
}

/// LinkedIn's refresh tokens: 365 days from the member's authorization.
pub const LINKEDIN_REFRESH_LIFE: Duration = Duration::from_secs(365 * 86_400);

/// Each provider's documented refresh-token policy: LinkedIn's live 365 days (the token answer
/// carries `refresh_token_expires_in`); HubSpot's never expire on their own (they end when the app
/// is uninstalled); Salesforce's are valid until revoked under the connected app's default policy
/// (an app whose policy expires them is configured with [`RefreshPolicy::Lives`]).
pub fn refresh_policy_of(p: Provider) -> RefreshPolicy {
    match p {
        Provider::Linkedin => RefreshPolicy::Lives(LINKEDIN_REFRESH_LIFE),
        Provider::Hubspot | Provider::Salesforce => RefreshPolicy::UntilRevoked,
    }
}

/// How close to its deadline a refusal is too close to call (clock reads and the answer's
/// whole seconds).
pub const EXPIRY_SKEW: Duration = Duration::from_secs(5 * 60);

/// What a refused refresh's answer says under the provider's `policy`. Only a token that can
/// expire can have expired; otherwise only words that name revocation alone are believed ("expired"
/// is not: Salesforce says it of revoked grants).
pub fn grant_refusal(provider_message: &str, policy: RefreshPolicy) -> GrantRefusal {
    let words = provider_message.to_lowercase();
    if policy == RefreshPolicy::UntilRevoked
        || (words.contains("revoked") && !words.contains("expire"))
    {
        GrantRefusal::Revoked
    } else {
        GrantRefusal::Unclear
    }
}

/// When the refresh token stops working, in the provider's clock, after a token answer at
/// `provider_now`: the answer's life left when it says, else the deadline already `known` (a
/// refresh does not extend it), else the policy's life from now (a new grant). `None`: it never
/// expires, or we cannot know.
pub fn refresh_deadline(
    policy: RefreshPolicy,
    provider_now: Option<DateTime<Utc>>,
    answer_expires_in: Option<Duration>,
    known: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let RefreshPolicy::Lives(life) = policy else {
        return None;
    };
    let after = |d: Duration| {
        let now = provider_now?;
        Some(now + chrono::Duration::from_std(d).ok()?)
    };
    match answer_expires_in {
        Some(left) => after(left).or(known),
        None => known.or_else(|| after(life)),
    }
}

/// Why the connection is gone, given the answer's `refusal`, the refresh token's `deadline` and
/// the provider's clock `now` at the refusal: past the deadline it expired; well before it, it
/// was revoked; near it, or without either, we cannot tell.
pub fn refusal_cause(
    refusal: GrantRefusal,
    deadline: Option<DateTime<Utc>>,
    now: Option<DateTime<Utc>>,
) -> DisconnectReason {
    let skew = chrono::Duration::from_std(EXPIRY_SKEW).unwrap_or_default();
    match (refusal, deadline, now) {
        (GrantRefusal::Revoked, _, _) => DisconnectReason::AuthorizationRevoked,
        (GrantRefusal::Expired, _, _) => DisconnectReason::AuthorizationExpired,
        (GrantRefusal::Unclear, Some(d), Some(n)) if n >= d => {
            DisconnectReason::AuthorizationExpired
        }
        (GrantRefusal::Unclear, Some(d), Some(n)) if n < d - skew => {
            DisconnectReason::AuthorizationRevoked
        }
        (GrantRefusal::Unclear, _, _) => DisconnectReason::AuthorizationExpiredOrRevoked,
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
        ProviderError::ApiVersionRefused {
            endpoint,
            version,
            message,
            ..
        } => {
            // An operator's problem: alert (the log line operators' alerts match on, and the
            // failure kind the metrics count), never ask the user to reconnect.
            tracing::error!(alert = "provider_api_version_refused", provider = %p, %version, %endpoint, %message, "the provider no longer accepts our API version: move the connector to a current one (docs/providers.md)");
            Verdict::Fail {
                kind: FailureKind::ApiVersion,
                message: format!(
                    "{p} no longer accepts the API version we use ({version}). This is on our \
                     side and our team has been alerted; nothing is needed from you, and the next \
                     scheduled sync retries."
                ),
            }
        }
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
        DisconnectReason::AuthorizationExpiredOrRevoked => {
            format!("refused our authorization: it expired or was revoked ({provider_message})")
        }
    };
    format!("{p} {why}: syncing has stopped. Reconnect {p} on the Connections page.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::provider::{OutageCause, TokenRejection};

    /// What each provider answers to a refused refresh, expired or revoked alike.
    const LINKEDIN_WORDS: &str =
        "The provided authorization grant or refresh token is invalid, expired or revoked.";
    const HUBSPOT_WORDS: &str = "missing or unknown refresh token";
    const SALESFORCE_WORDS: &str = "expired access/refresh token";

    fn day(n: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-03-01T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::days(n)
    }

    /// Granted on day 0 under `policy` (the answer carrying `answer_life` when it does), refused
    /// with `words` on day `refused`: what the user is told.
    fn told(
        policy: RefreshPolicy,
        answer_life: Option<Duration>,
        words: &str,
        refused: DateTime<Utc>,
    ) -> DisconnectReason {
        let deadline = refresh_deadline(policy, Some(day(0)), answer_life, None);
        refusal_cause(grant_refusal(words, policy), deadline, Some(refused))
    }

    #[test]
    fn linkedin_past_its_365_days_is_expired_and_before_them_revoked() {
        let p = refresh_policy_of(Provider::Linkedin);
        let year = Some(LINKEDIN_REFRESH_LIFE);
        assert_eq!(
            told(p, year, LINKEDIN_WORDS, day(366)),
            DisconnectReason::AuthorizationExpired
        );
        assert_eq!(
            told(p, year, LINKEDIN_WORDS, day(30)),
            DisconnectReason::AuthorizationRevoked
        );
        // An answer without the life left: LinkedIn's documented 365 days.
        assert_eq!(
            told(p, None, LINKEDIN_WORDS, day(366)),
            DisconnectReason::AuthorizationExpired
        );
    }

    #[test]
    fn a_refresh_does_not_extend_linkedins_deadline() {
        let p = refresh_policy_of(Provider::Linkedin);
        let granted = refresh_deadline(p, Some(day(0)), Some(LINKEDIN_REFRESH_LIFE), None);
        // Day 100: the answer says 265 days are left.
        let left = Duration::from_secs(265 * 86_400);
        let after_refresh = refresh_deadline(p, Some(day(100)), Some(left), granted);
        assert_eq!(after_refresh, granted);
        // An answer that does not say keeps what we knew.
        assert_eq!(refresh_deadline(p, Some(day(100)), None, granted), granted);
        assert_eq!(
            refusal_cause(GrantRefusal::Unclear, after_refresh, Some(day(365))),
            DisconnectReason::AuthorizationExpired
        );
    }

    #[test]
    fn hubspot_refresh_tokens_do_not_expire_so_a_refusal_is_a_revocation() {
        let p = refresh_policy_of(Provider::Hubspot);
        for refused in [day(30), day(366), day(2000)] {
            assert_eq!(
                told(p, None, HUBSPOT_WORDS, refused),
                DisconnectReason::AuthorizationRevoked
            );
        }
    }

    #[test]
    fn salesforce_says_expired_of_a_revoked_grant_which_lives_until_revoked() {
        let p = refresh_policy_of(Provider::Salesforce);
        for refused in [day(30), day(366)] {
            assert_eq!(
                told(p, None, SALESFORCE_WORDS, refused),
                DisconnectReason::AuthorizationRevoked
            );
        }
    }

    #[test]
    fn a_salesforce_app_whose_policy_expires_refresh_tokens_is_judged_by_that_life() {
        let p = RefreshPolicy::Lives(Duration::from_secs(90 * 86_400));
        assert_eq!(
            told(p, None, SALESFORCE_WORDS, day(91)),
            DisconnectReason::AuthorizationExpired
        );
        assert_eq!(
            told(p, None, SALESFORCE_WORDS, day(30)),
            DisconnectReason::AuthorizationRevoked
        );
    }

    #[test]
    fn we_say_expired_or_revoked_only_when_we_cannot_tell() {
        let p = refresh_policy_of(Provider::Linkedin);
        let refusal = grant_refusal(LINKEDIN_WORDS, p);
        assert_eq!(refusal, GrantRefusal::Unclear);
        let deadline = Some(day(365));
        let cannot = DisconnectReason::AuthorizationExpiredOrRevoked;
        // Tokens stored before we kept their deadline.
        assert_eq!(refusal_cause(refusal, None, Some(day(30))), cannot);
        // The provider's clock could not be read.
        assert_eq!(refusal_cause(refusal, deadline, None), cannot);
        // A minute before the deadline: too close to call.
        let just_before = day(365) - chrono::Duration::minutes(1);
        assert_eq!(refusal_cause(refusal, deadline, Some(just_before)), cannot);
        // Words that name revocation alone are believed.
        assert_eq!(
            grant_refusal("The token has been revoked by the member", p),
            GrantRefusal::Revoked
        );
    }

    #[test]
    fn each_cause_has_its_own_words() {
        let m = |r| disconnected_message(Provider::Linkedin, r, "said");
        assert!(m(DisconnectReason::AuthorizationExpired).contains("it expired (said)"));
        assert!(m(DisconnectReason::AuthorizationRevoked).contains("access was revoked (said)"));
        assert!(
            m(DisconnectReason::AuthorizationExpiredOrRevoked)
                .contains("it expired or was revoked (said)")
        );
    }

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
