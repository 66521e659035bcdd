//! The notification rules: pure types and decisions, no I/O.
//!
//! An *incident* is one problem with one integration, keyed by (integration, kind):
//! `disconnected` or `sync_interrupted`. Each incident raises exactly one notification when it
//! opens and one resolving notification when it ends; anything that happens while it is open
//! (retries failing the same way, a repeated disconnect) raises nothing.
//!
//! | fact | open incidents | decision |
//! |---|---|---|
//! | sync failed | none | raise `sync_interrupted` |
//! | sync failed | interruption or disconnection open | nothing (same incident) |
//! | disconnected (any reason) | none | raise `connection_disconnected` |
//! | disconnected | interruption open | close the interruption as superseded (NotificationResolved, no "resolved" notification: nothing is fixed), raise `connection_disconnected` |
//! | disconnected | disconnection open | nothing |
//! | reconnected | disconnection open | raise `resolved` for it, resolve it (for another account: words that say so) |
//! | reconnected to another account | no disconnection open | raise `account_changed` (opens no incident) |
//! | sync completed | interruption open | raise `resolved` for it, resolve it |
//! | reconnected / sync completed | otherwise | nothing |
//!
//! A sync completing does not end a disconnection (only reconnecting does), and reconnecting
//! does not end an interruption (only a sync that works does).
//!
//! What an open interruption promises stays true: its text names the real next attempt. When a
//! retry fails again with another next attempt, or the schedule is changed while it names a time,
//! the open notification gets new words (an update, not a new notification):
//!
//! | fact | open interruption says | decision |
//! |---|---|---|
//! | sync failed | another next attempt than the retry's | update it: the failure that opened it, the retry's next attempt |
//! | schedule changed | a time other than the new next scheduled sync | update it to the new time (no time known: to words without one) |
//! | schedule changed | no time, or the same time; or nothing open | nothing |

use chrono::{DateTime, Utc};
use rp_platform::provider::Provider;
use uuid::Uuid;

/// Where the notifications point: the Connections page of the web app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionsLink(String);

/// Which half of the link is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    BaseUrl(String),
    Path(String),
}

impl ConnectionsLink {
    /// Joins the app's base URL (`http(s)://host[:port][/prefix]`) and the page's path (`/...`).
    pub fn new(base_url: &str, path: &str) -> Result<Self, LinkError> {
        let base = base_url.trim().trim_end_matches('/');
        let rest = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"))
            .ok_or_else(|| LinkError::BaseUrl("must start with http:// or https://".into()))?;
        if rest.is_empty() || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(LinkError::BaseUrl(
                "must be a URL like https://app.example.com".into(),
            ));
        }
        let path = path.trim();
        if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(LinkError::Path(
                "must start with / and contain no spaces, like /workspace/connections".into(),
            ));
        }
        Ok(Self(format!("{base}{path}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The incident kinds; their codes are the second half of an incident key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IncidentKind {
    Disconnected,
    SyncInterrupted,
    /// Not an incident that stays open: the key of an `account_changed` notification.
    AccountChanged,
}

impl IncidentKind {
    pub fn code(self) -> &'static str {
        match self {
            IncidentKind::Disconnected => "disconnected",
            IncidentKind::SyncInterrupted => "sync_interrupted",
            IncidentKind::AccountChanged => "account_changed",
        }
    }
}

/// One notification per incident: retries of the same failure share this key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IncidentKey {
    pub integration_id: String,
    pub kind: IncidentKind,
}

impl std::fmt::Display for IncidentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.integration_id, self.kind.code())
    }
}

/// The `kind` of a NotificationRaised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationKind {
    SyncInterrupted,
    ConnectionDisconnected,
    Resolved,
    AccountChanged,
}

impl NotificationKind {
    pub fn code(self) -> &'static str {
        match self {
            NotificationKind::SyncInterrupted => "sync_interrupted",
            NotificationKind::ConnectionDisconnected => "connection_disconnected",
            NotificationKind::Resolved => "resolved",
            NotificationKind::AccountChanged => "account_changed",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "sync_interrupted" => Some(NotificationKind::SyncInterrupted),
            "connection_disconnected" => Some(NotificationKind::ConnectionDisconnected),
            "resolved" => Some(NotificationKind::Resolved),
            "account_changed" => Some(NotificationKind::AccountChanged),
            _ => None,
        }
    }

    /// The incident a notification of this kind opens.
    pub fn opens(self) -> Option<IncidentKind> {
        match self {
            NotificationKind::SyncInterrupted => Some(IncidentKind::SyncInterrupted),
            NotificationKind::ConnectionDisconnected => Some(IncidentKind::Disconnected),
            NotificationKind::Resolved | NotificationKind::AccountChanged => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    ProviderOutage,
    BadPayload,
    Authorization,
    RateLimited,
    Internal,
    /// The provider refused our API version: ours to fix.
    ApiVersion,
    /// The run stopped making progress (the watchdog), or one of its events was dead-lettered.
    Stalled,
    /// A producer that did not say (or a kind newer than this reader).
    Unspecified,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    UserRequested,
    AuthorizationRevoked,
    AuthorizationExpired,
    /// Refused, and the connector cannot tell whether it expired or was revoked.
    AuthorizationExpiredOrRevoked,
    Unspecified,
}

/// What happened to an integration: the inputs of the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    SyncFailed {
        kind: FailureKind,
        next_attempt_at: Option<DateTime<Utc>>,
    },
    Disconnected {
        reason: DisconnectReason,
        /// The provider's own words; may be empty.
        provider_message: String,
    },
    /// `account_change`: authorized for another provider account than before.
    Reconnected {
        account_change: Option<AccountChange>,
    },
    SyncCompleted,
    /// The integration's daily schedule was changed; `next_scheduled_sync_at` is its next
    /// scheduled sync under the new schedule, when the producer said.
    ScheduleChanged {
        next_scheduled_sync_at: Option<DateTime<Utc>>,
    },
}

/// The provider accounts before and after an authorization for another one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountChange {
    pub previous: String,
    pub current: String,
}

/// What an open interruption's notification says will happen: the failure it tells of and the
/// next attempt its text names (`None`: it names no time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promise {
    pub kind: FailureKind,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl FailureKind {
    /// The code stored with a notification.
    pub fn code(self) -> &'static str {
        match self {
            FailureKind::ProviderOutage => "provider_outage",
            FailureKind::BadPayload => "bad_payload",
            FailureKind::Authorization => "authorization",
            FailureKind::RateLimited => "rate_limited",
            FailureKind::Internal => "internal",
            FailureKind::ApiVersion => "api_version",
            FailureKind::Stalled => "stalled",
            FailureKind::Unspecified => "unspecified",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        [
            FailureKind::ProviderOutage,
            FailureKind::BadPayload,
            FailureKind::Authorization,
            FailureKind::RateLimited,
            FailureKind::Internal,
            FailureKind::ApiVersion,
            FailureKind::Stalled,
            FailureKind::Unspecified,
        ]
        .into_iter()
        .find(|k| k.code() == code)
    }
}

/// The incidents open for one integration, by the notification that opened each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenIncidents {
    pub disconnected: Option<Uuid>,
    pub sync_interrupted: Option<Uuid>,
    /// What the open interruption's notification says, when it was recorded with it.
    pub interruption_says: Option<Promise>,
}

/// The integration a fact is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub integration_id: String,
    /// `None` when no event has told us the provider yet.
    pub provider: Option<Provider>,
}

/// A notification to raise (the handler gives it an id and the link).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub kind: NotificationKind,
    pub incident: IncidentKey,
    pub title: String,
    pub body: String,
    pub action: String,
    /// For [`NotificationKind::Resolved`]: the notification whose incident ended.
    pub resolves: Option<Uuid>,
    /// For [`NotificationKind::SyncInterrupted`]: what its text says will happen.
    pub promise: Option<Promise>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Raise(Draft),
    /// The incident opened by `notification_id` is over (ended, or superseded).
    Resolve {
        notification_id: Uuid,
        incident: IncidentKey,
    },
    /// The open notification `notification_id` gets new words (`draft`): what it promised
    /// changed. Same notification: its read state stays.
    Update {
        notification_id: Uuid,
        draft: Draft,
    },
}

pub const NO_ACTION: &str = "No action needed";
/// Longest provider message quoted in a notification, in characters.
const MAX_PROVIDER_MESSAGE: usize = 200;

/// The rules (see the module docs). `now` is when the fact happened (the event's time), so the
/// words are the same whenever the event is handled.
pub fn decide(
    open: &OpenIncidents,
    subject: &Subject,
    fact: &Fact,
    now: DateTime<Utc>,
) -> Vec<Decision> {
    let key = |kind| IncidentKey {
        integration_id: subject.integration_id.clone(),
        kind,
    };
    match fact {
        Fact::SyncFailed {
            kind,
            next_attempt_at,
        } => {
            if open.disconnected.is_some() {
                return Vec::new();
            }
            if let Some(id) = open.sync_interrupted {
                // The same incident: it keeps the failure that opened it, and names the retry's
                // next attempt.
                let kind = open.interruption_says.map_or(*kind, |p| p.kind);
                return revised(open, subject, id, kind, *next_attempt_at, now);
            }
            vec![Decision::Raise(interrupted(
                subject,
                key(IncidentKind::SyncInterrupted),
                *kind,
                *next_attempt_at,
                now,
            ))]
        }
        Fact::Disconnected {
            reason,
            provider_message,
        } => {
            if open.disconnected.is_some() {
                return Vec::new();
            }
            let mut out = Vec::new();
            if let Some(id) = open.sync_interrupted {
                out.push(Decision::Resolve {
                    notification_id: id,
                    incident: key(IncidentKind::SyncInterrupted),
                });
            }
            out.push(Decision::Raise(disconnected(
                subject,
                key(IncidentKind::Disconnected),
                *reason,
                provider_message,
            )));
            out
        }
        Fact::Reconnected {
            account_change: None,
        } => match open.disconnected {
            Some(id) => resolution(
                id,
                key(IncidentKind::Disconnected),
                format!("{} reconnected", subject.name_or("Integration")),
                format!(
                    "{} is connected again. Syncing resumes from where it stopped; records already synced are not pulled again.",
                    subject.name_or("The integration")
                ),
            ),
            None => Vec::new(),
        },
        Fact::Reconnected {
            account_change: Some(change),
        } => {
            let name = subject.name_or("The integration");
            let body = format!(
                "{name} is now connected to another account ({}; before: {}). The next sync pulls this account in full, and the previous account's records leave your dashboard when that sync completes.",
                change.current, change.previous
            );
            match open.disconnected {
                Some(id) => resolution(
                    id,
                    key(IncidentKind::Disconnected),
                    format!(
                        "{} reconnected to another account",
                        subject.name_or("Integration")
                    ),
                    body,
                ),
                None => vec![Decision::Raise(Draft {
                    kind: NotificationKind::AccountChanged,
                    incident: key(IncidentKind::AccountChanged),
                    title: format!("{} account changed", subject.name_or("Integration")),
                    body,
                    action: format!(
                        "{NO_ACTION}. If this is not the account you meant, reconnect {} on the Connections page with the right one.",
                        subject.name_or("the integration")
                    ),
                    resolves: None,
                    promise: None,
                })],
            }
        }
        Fact::SyncCompleted => match open.sync_interrupted {
            Some(id) => resolution(
                id,
                key(IncidentKind::SyncInterrupted),
                format!("{} sync resumed", subject.name_or("Integration")),
                format!(
                    "{} completed, so the earlier interruption is over. Your dashboard is up to date.",
                    match subject.provider {
                        Some(p) => format!("Your latest {} sync", p.display_name()),
                        None => "The latest sync of the integration".to_string(),
                    }
                ),
            ),
            None => Vec::new(),
        },
        Fact::ScheduleChanged {
            next_scheduled_sync_at,
        } => match (open.sync_interrupted, open.interruption_says) {
            (Some(id), Some(says))
                if open.disconnected.is_none() && says.next_attempt_at.is_some() =>
            {
                revised(open, subject, id, says.kind, *next_scheduled_sync_at, now)
            }
            _ => Vec::new(),
        },
    }
}

impl Subject {
    fn name_or(&self, unknown: &str) -> String {
        self.provider
            .map_or_else(|| unknown.to_string(), |p| p.display_name().to_string())
    }

    fn reconnect_action(&self) -> String {
        format!(
            "Reconnect {} on the Connections page",
            self.name_or("the integration")
        )
    }
}

/// New words for the open interruption `id` when what they would promise differs from what it
/// says; nothing otherwise.
fn revised(
    open: &OpenIncidents,
    subject: &Subject,
    id: Uuid,
    kind: FailureKind,
    next_attempt_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<Decision> {
    let draft = interrupted(
        subject,
        IncidentKey {
            integration_id: subject.integration_id.clone(),
            kind: IncidentKind::SyncInterrupted,
        },
        kind,
        next_attempt_at,
        now,
    );
    if draft.promise == open.interruption_says {
        return Vec::new();
    }
    vec![Decision::Update {
        notification_id: id,
        draft,
    }]
}

fn resolution(resolves: Uuid, incident: IncidentKey, title: String, body: String) -> Vec<Decision> {
    vec![
        Decision::Raise(Draft {
            kind: NotificationKind::Resolved,
            incident: incident.clone(),
            title,
            body,
            action: NO_ACTION.into(),
            resolves: Some(resolves),
            promise: None,
        }),
        Decision::Resolve {
            notification_id: resolves,
            incident,
        },
    ]
}

/// "at 06:00 UTC" on the day of `now`, "on Mon 30 Nov at 06:00 UTC" on another day.
pub fn when(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if at.date_naive() == now.date_naive() {
        format!("at {} UTC", at.format("%H:%M"))
    } else {
        format!(
            "on {} at {} UTC",
            at.format("%a %-d %b"),
            at.format("%H:%M")
        )
    }
}

fn interrupted(
    subject: &Subject,
    incident: IncidentKey,
    kind: FailureKind,
    next_attempt_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Draft {
    let provider = subject.name_or("the provider");
    let because = match kind {
        FailureKind::ProviderOutage => format!("{provider} is temporarily unavailable"),
        FailureKind::RateLimited => {
            format!("{provider} limited how many requests we can make for now")
        }
        FailureKind::BadPayload => format!("{provider} sent data we could not read"),
        FailureKind::Authorization => format!("{provider} did not accept our authorization"),
        FailureKind::ApiVersion => format!(
            "{provider} no longer accepts the version of its API we use (our team has been alerted)"
        ),
        FailureKind::Internal | FailureKind::Stalled | FailureKind::Unspecified => {
            "of a problem on our side".into()
        }
    };
    let retry = match next_attempt_at {
        Some(at) => format!(
            "We'll retry automatically at the next scheduled sync {}.",
            when(at, now)
        ),
        // Words that stay true whatever the schedule does.
        None => "We'll retry automatically; the Connections page shows when the next sync is due."
            .into(),
    };
    let (next, action) = match kind {
        FailureKind::Authorization => (
            "Syncing resumes once you reconnect.".to_string(),
            subject.reconnect_action(),
        ),
        FailureKind::BadPayload => (
            retry,
            format!("{NO_ACTION}. If this keeps happening, contact support."),
        ),
        _ => (retry, NO_ACTION.to_string()),
    };
    let sync = match subject.provider {
        Some(p) => format!("Your {} sync", p.display_name()),
        None => "A sync of one of your integrations".into(),
    };
    Draft {
        kind: NotificationKind::SyncInterrupted,
        incident,
        title: format!("{} sync interrupted", subject.name_or("Integration")),
        body: format!("{sync} was interrupted because {because}. {next}"),
        action,
        resolves: None,
        promise: Some(Promise {
            kind,
            next_attempt_at: next_attempt_at.filter(|_| kind != FailureKind::Authorization),
        }),
    }
}

fn disconnected(
    subject: &Subject,
    incident: IncidentKey,
    reason: DisconnectReason,
    provider_message: &str,
) -> Draft {
    let name = subject.name_or("An integration");
    let provider = subject.name_or("the provider");
    let (body, action) = match reason {
        DisconnectReason::UserRequested => (
            format!(
                "{name} was disconnected from the Connections page. Syncing has stopped; the data already synced stays in your workspace."
            ),
            format!(
                "{NO_ACTION}. To resume syncing, reconnect {} on the Connections page.",
                subject.name_or("the integration")
            ),
        ),
        DisconnectReason::AuthorizationRevoked => (
            format!(
                "{name} was disconnected because access was revoked {}. Syncing has stopped.",
                subject
                    .provider
                    .map_or("at the provider".to_string(), |p| format!(
                        "in {}",
                        p.display_name()
                    ))
            ),
            subject.reconnect_action(),
        ),
        DisconnectReason::AuthorizationExpired => (
            format!(
                "{name} was disconnected because its authorization expired. Syncing has stopped."
            ),
            subject.reconnect_action(),
        ),
        DisconnectReason::AuthorizationExpiredOrRevoked => (
            format!(
                "{name} was disconnected because its authorization expired or was revoked. Syncing has stopped."
            ),
            subject.reconnect_action(),
        ),
        DisconnectReason::Unspecified => (
            format!("{name} was disconnected. Syncing has stopped."),
            subject.reconnect_action(),
        ),
    };
    let said = quote(provider_message);
    let body = match (reason, said) {
        (DisconnectReason::UserRequested, _) | (_, None) => body,
        (_, Some(said)) => format!("{body} {provider} said: \u{201c}{said}\u{201d}"),
    };
    Draft {
        kind: NotificationKind::ConnectionDisconnected,
        incident,
        title: format!("{} disconnected", subject.name_or("Integration")),
        body,
        action,
        resolves: None,
        promise: None,
    }
}

/// The provider's message, on one line and at most [`MAX_PROVIDER_MESSAGE`] characters.
fn quote(message: &str) -> Option<String> {
    let one_line: String = message
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if one_line.is_empty() {
        return None;
    }
    if one_line.chars().count() <= MAX_PROVIDER_MESSAGE {
        return Some(one_line);
    }
    let mut cut: String = one_line.chars().take(MAX_PROVIDER_MESSAGE - 1).collect();
    cut.push('\u{2026}');
    Some(cut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    // A tiny given/when/then: given the open incidents, when a fact happens, then these decisions.
    struct Given {
        open: OpenIncidents,
        subject: Subject,
        now: DateTime<Utc>,
    }

    fn given(provider: Option<Provider>) -> Given {
        Given {
            open: OpenIncidents::default(),
            subject: Subject {
                integration_id: "int-1".into(),
                provider,
            },
            now: Utc.with_ymd_and_hms(2026, 11, 29, 14, 5, 0).unwrap(),
        }
    }

    impl Given {
        fn interruption_open(mut self, id: Uuid) -> Self {
            self.open.sync_interrupted = Some(id);
            self
        }
        /// An interruption open whose notification says `kind`, retried at `at`.
        fn interruption_promising(
            mut self,
            id: Uuid,
            kind: FailureKind,
            at: Option<DateTime<Utc>>,
        ) -> Self {
            self.open.sync_interrupted = Some(id);
            self.open.interruption_says = Some(Promise {
                kind,
                next_attempt_at: at,
            });
            self
        }
        fn disconnection_open(mut self, id: Uuid) -> Self {
            self.open.disconnected = Some(id);
            self
        }
        fn when(&self, fact: Fact) -> Vec<Decision> {
            decide(&self.open, &self.subject, &fact, self.now)
        }
    }

    fn raised(decisions: &[Decision]) -> Vec<&Draft> {
        decisions
            .iter()
            .filter_map(|d| match d {
                Decision::Raise(d) => Some(d),
                Decision::Resolve { .. } | Decision::Update { .. } => None,
            })
            .collect()
    }

    /// The one update decided, or a panic naming what was decided instead.
    fn updated(decisions: &[Decision]) -> (Uuid, &Draft) {
        let [
            Decision::Update {
                notification_id,
                draft,
            },
        ] = decisions
        else {
            panic!("one update expected: {decisions:?}")
        };
        (*notification_id, draft)
    }

    fn at(day: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, h, m, 0).unwrap()
    }

    fn outage_until(h: u32, day: u32) -> Fact {
        Fact::SyncFailed {
            kind: FailureKind::ProviderOutage,
            next_attempt_at: Some(Utc.with_ymd_and_hms(2026, 11, day, h, 0, 0).unwrap()),
        }
    }

    fn key(kind: IncidentKind) -> IncidentKey {
        IncidentKey {
            integration_id: "int-1".into(),
            kind,
        }
    }

    #[test]
    fn a_provider_outage_raises_one_interruption_in_plain_words() {
        let then = given(Some(Provider::Hubspot)).when(outage_until(6, 30));
        let [Decision::Raise(d)] = then.as_slice() else {
            panic!("{then:?}")
        };
        assert_eq!(d.kind, NotificationKind::SyncInterrupted);
        assert_eq!(d.incident.to_string(), "int-1:sync_interrupted");
        assert_eq!(d.title, "HubSpot sync interrupted");
        assert_eq!(
            d.body,
            "Your HubSpot sync was interrupted because HubSpot is temporarily unavailable. \
             We'll retry automatically at the next scheduled sync on Mon 30 Nov at 06:00 UTC."
        );
        assert_eq!(d.action, "No action needed");
        assert_eq!(d.resolves, None);
    }

    #[test]
    fn a_refused_api_version_is_ours_to_fix_and_asks_nothing_of_the_user() {
        let then = given(Some(Provider::Linkedin)).when(Fact::SyncFailed {
            kind: FailureKind::ApiVersion,
            next_attempt_at: Some(at(30, 6, 0)),
        });
        let d = raised(&then)[0];
        assert_eq!(
            d.body,
            "Your LinkedIn sync was interrupted because LinkedIn no longer accepts the version of \
             its API we use (our team has been alerted). We'll retry automatically at the next \
             scheduled sync on Mon 30 Nov at 06:00 UTC."
        );
        assert_eq!(d.action, "No action needed");
        assert_eq!(
            FailureKind::from_code("api_version"),
            Some(FailureKind::ApiVersion)
        );
    }

    #[test]
    fn a_retry_later_the_same_day_says_only_the_time() {
        let then = given(Some(Provider::Hubspot)).when(outage_until(18, 29));
        assert!(
            raised(&then)[0]
                .body
                .ends_with("at the next scheduled sync at 18:00 UTC."),
            "{then:?}"
        );
    }

    #[test]
    fn retries_of_an_open_interruption_raise_nothing() {
        let g = given(Some(Provider::Hubspot)).interruption_promising(
            Uuid::now_v7(),
            FailureKind::ProviderOutage,
            Some(at(30, 6, 0)),
        );
        assert_eq!(g.when(outage_until(6, 30)), []);
        assert_eq!(
            g.when(Fact::SyncFailed {
                kind: FailureKind::RateLimited,
                next_attempt_at: Some(at(30, 6, 0)),
            }),
            [],
            "one notification per incident, whatever the retry failed with"
        );
    }

    #[test]
    fn a_bad_payload_names_the_next_attempt_like_an_outage() {
        let then = given(Some(Provider::Hubspot)).when(Fact::SyncFailed {
            kind: FailureKind::BadPayload,
            next_attempt_at: Some(at(29, 23, 3)),
        });
        let d = raised(&then)[0];
        assert_eq!(
            d.body,
            "Your HubSpot sync was interrupted because HubSpot sent data we could not read. \
             We'll retry automatically at the next scheduled sync at 23:03 UTC."
        );
        assert_eq!(
            d.promise,
            Some(Promise {
                kind: FailureKind::BadPayload,
                next_attempt_at: Some(at(29, 23, 3))
            })
        );
    }

    #[test]
    fn a_schedule_change_moves_the_time_the_open_interruption_promises() {
        let id = Uuid::now_v7();
        let then = given(Some(Provider::Hubspot))
            .interruption_promising(id, FailureKind::ProviderOutage, Some(at(29, 11, 1)))
            .when(Fact::ScheduleChanged {
                next_scheduled_sync_at: Some(at(29, 23, 3)),
            });
        let (notification_id, d) = updated(&then);
        assert_eq!(notification_id, id);
        assert_eq!(d.kind, NotificationKind::SyncInterrupted);
        assert_eq!(d.incident, key(IncidentKind::SyncInterrupted));
        assert_eq!(d.title, "HubSpot sync interrupted");
        assert_eq!(
            d.body,
            "Your HubSpot sync was interrupted because HubSpot is temporarily unavailable. \
             We'll retry automatically at the next scheduled sync at 23:03 UTC."
        );
        assert_eq!(d.action, "No action needed");
        assert_eq!(
            d.promise,
            Some(Promise {
                kind: FailureKind::ProviderOutage,
                next_attempt_at: Some(at(29, 23, 3))
            })
        );
    }

    #[test]
    fn a_schedule_change_with_no_time_known_leaves_words_that_stay_true() {
        let then = given(Some(Provider::Hubspot))
            .interruption_promising(Uuid::now_v7(), FailureKind::BadPayload, Some(at(29, 11, 1)))
            .when(Fact::ScheduleChanged {
                next_scheduled_sync_at: None,
            });
        let (_, d) = updated(&then);
        assert_eq!(
            d.body,
            "Your HubSpot sync was interrupted because HubSpot sent data we could not read. \
             We'll retry automatically; the Connections page shows when the next sync is due."
        );
        assert_eq!(
            d.action,
            "No action needed. If this keeps happening, contact support."
        );
    }

    #[test]
    fn a_schedule_change_updates_nothing_that_promises_no_other_time() {
        let change = Fact::ScheduleChanged {
            next_scheduled_sync_at: Some(at(29, 23, 3)),
        };
        let id = Uuid::now_v7();
        let g = given(Some(Provider::Hubspot));
        assert_eq!(g.when(change.clone()), [], "nothing open");
        assert_eq!(
            given(Some(Provider::Hubspot))
                .interruption_promising(id, FailureKind::ProviderOutage, Some(at(29, 23, 3)))
                .when(change.clone()),
            [],
            "the same time"
        );
        assert_eq!(
            given(Some(Provider::Hubspot))
                .interruption_promising(id, FailureKind::Authorization, None)
                .when(change.clone()),
            [],
            "it promises no time: syncing resumes once you reconnect"
        );
        assert_eq!(
            given(Some(Provider::Hubspot))
                .disconnection_open(id)
                .when(change),
            [],
            "a disconnection promises no time"
        );
    }

    #[test]
    fn a_retry_that_fails_again_moves_the_promise_to_its_own_next_attempt() {
        let id = Uuid::now_v7();
        let then = given(Some(Provider::Hubspot))
            .interruption_promising(id, FailureKind::ProviderOutage, Some(at(29, 18, 0)))
            .when(Fact::SyncFailed {
                kind: FailureKind::RateLimited,
                next_attempt_at: Some(at(30, 18, 0)),
            });
        let (notification_id, d) = updated(&then);
        assert_eq!(notification_id, id);
        assert_eq!(
            d.body,
            "Your HubSpot sync was interrupted because HubSpot is temporarily unavailable. \
             We'll retry automatically at the next scheduled sync on Mon 30 Nov at 18:00 UTC.",
            "the failure that opened the incident, the retry's next attempt"
        );
        assert!(raised(&then).is_empty(), "still one notification");
    }

    #[test]
    fn a_revoked_authorization_raises_a_disconnection_that_says_to_reconnect() {
        let then = given(Some(Provider::Linkedin)).when(Fact::Disconnected {
            reason: DisconnectReason::AuthorizationRevoked,
            provider_message: String::new(),
        });
        let [Decision::Raise(d)] = then.as_slice() else {
            panic!("{then:?}")
        };
        assert_eq!(d.kind, NotificationKind::ConnectionDisconnected);
        assert_eq!(d.incident, key(IncidentKind::Disconnected));
        assert_eq!(d.title, "LinkedIn disconnected");
        assert_eq!(
            d.body,
            "LinkedIn was disconnected because access was revoked in LinkedIn. Syncing has stopped."
        );
        assert_eq!(d.action, "Reconnect LinkedIn on the Connections page");
    }

    #[test]
    fn an_expired_and_an_unclear_refusal_each_say_what_is_known() {
        for (reason, because) in [
            (
                DisconnectReason::AuthorizationExpired,
                "its authorization expired",
            ),
            (
                DisconnectReason::AuthorizationExpiredOrRevoked,
                "its authorization expired or was revoked",
            ),
        ] {
            let then = given(Some(Provider::Linkedin)).when(Fact::Disconnected {
                reason,
                provider_message: String::new(),
            });
            let [Decision::Raise(d)] = then.as_slice() else {
                panic!("{then:?}")
            };
            assert_eq!(
                d.body,
                format!("LinkedIn was disconnected because {because}. Syncing has stopped.")
            );
            assert_eq!(d.action, "Reconnect LinkedIn on the Connections page");
        }
    }

    #[test]
    fn the_providers_words_are_quoted_on_one_line_and_bounded() {
        let then = given(Some(Provider::Salesforce)).when(Fact::Disconnected {
            reason: DisconnectReason::AuthorizationExpired,
            provider_message: format!("expired\n access/refresh token {}", "x".repeat(500)),
        });
        let body = &raised(&then)[0].body;
        assert!(body.starts_with(
            "Salesforce was disconnected because its authorization expired. Syncing has stopped. \
             Salesforce said: \u{201c}expired access/refresh token xxx"
        ));
        assert!(body.ends_with("\u{2026}\u{201d}"));
        assert!(!body.contains('\n'));
    }

    #[test]
    fn a_user_requested_disconnect_is_recorded_calmly_with_no_action_needed() {
        let then = given(Some(Provider::Hubspot)).when(Fact::Disconnected {
            reason: DisconnectReason::UserRequested,
            provider_message: "ignored".into(),
        });
        let d = raised(&then)[0];
        assert_eq!(d.kind, NotificationKind::ConnectionDisconnected);
        assert_eq!(
            d.body,
            "HubSpot was disconnected from the Connections page. Syncing has stopped; the data already synced stays in your workspace."
        );
        assert_eq!(
            d.action,
            "No action needed. To resume syncing, reconnect HubSpot on the Connections page."
        );
    }

    #[test]
    fn a_disconnection_supersedes_an_open_interruption_without_claiming_it_is_fixed() {
        let interruption = Uuid::now_v7();
        let then = given(Some(Provider::Linkedin))
            .interruption_open(interruption)
            .when(Fact::Disconnected {
                reason: DisconnectReason::AuthorizationRevoked,
                provider_message: String::new(),
            });
        assert_eq!(then.len(), 2, "{then:?}");
        assert_eq!(
            then[0],
            Decision::Resolve {
                notification_id: interruption,
                incident: key(IncidentKind::SyncInterrupted)
            }
        );
        assert!(
            matches!(&then[1], Decision::Raise(d) if d.kind == NotificationKind::ConnectionDisconnected)
        );
        assert!(
            raised(&then)
                .iter()
                .all(|d| d.kind != NotificationKind::Resolved)
        );
    }

    #[test]
    fn while_disconnected_failures_and_repeated_disconnects_raise_nothing() {
        let g = given(Some(Provider::Linkedin)).disconnection_open(Uuid::now_v7());
        assert_eq!(g.when(outage_until(6, 30)), []);
        assert_eq!(
            g.when(Fact::Disconnected {
                reason: DisconnectReason::AuthorizationExpired,
                provider_message: String::new()
            }),
            []
        );
        assert_eq!(
            g.when(Fact::SyncCompleted),
            [],
            "only reconnecting ends a disconnection"
        );
        assert_eq!(
            g.when(Fact::ScheduleChanged {
                next_scheduled_sync_at: Some(at(30, 6, 0))
            }),
            []
        );
    }

    #[test]
    fn reconnecting_resolves_the_disconnection_with_a_resolving_notification() {
        let d = Uuid::now_v7();
        let then = given(Some(Provider::Linkedin))
            .disconnection_open(d)
            .when(Fact::Reconnected {
                account_change: None,
            });
        let [
            Decision::Raise(r),
            Decision::Resolve {
                notification_id,
                incident,
            },
        ] = then.as_slice()
        else {
            panic!("{then:?}")
        };
        assert_eq!(r.kind, NotificationKind::Resolved);
        assert_eq!(r.resolves, Some(d));
        assert_eq!(r.incident, key(IncidentKind::Disconnected));
        assert_eq!(r.title, "LinkedIn reconnected");
        assert_eq!(r.action, "No action needed");
        assert_eq!(
            (*notification_id, incident),
            (d, &key(IncidentKind::Disconnected))
        );
    }

    #[test]
    fn another_account_is_told_whether_or_not_a_disconnection_was_open() {
        let change = || Fact::Reconnected {
            account_change: Some(AccountChange {
                previous: "4242424".into(),
                current: "4242425".into(),
            }),
        };
        let d = Uuid::now_v7();
        let then = given(Some(Provider::Hubspot))
            .disconnection_open(d)
            .when(change());
        let r = raised(&then)[0];
        assert_eq!(r.kind, NotificationKind::Resolved);
        assert_eq!(r.resolves, Some(d));
        assert_eq!(r.title, "HubSpot reconnected to another account");
        assert!(
            r.body.contains("(4242425; before: 4242424)")
                && r.body.contains("pulls this account in full")
                && !r.body.contains("not pulled again"),
            "{}",
            r.body
        );
        // Authorized for another account with nothing open: its own notice, opening nothing.
        let then = given(Some(Provider::Hubspot)).when(change());
        let [Decision::Raise(n)] = then.as_slice() else {
            panic!("{then:?}")
        };
        assert_eq!(n.kind, NotificationKind::AccountChanged);
        assert_eq!(n.kind.opens(), None);
        assert_eq!(n.title, "HubSpot account changed");
        assert!(n.action.starts_with(NO_ACTION), "{}", n.action);
    }

    #[test]
    fn a_completed_sync_resolves_the_interruption_and_nothing_else() {
        let i = Uuid::now_v7();
        let then = given(Some(Provider::Hubspot))
            .interruption_open(i)
            .when(Fact::SyncCompleted);
        let d = raised(&then)[0];
        assert_eq!(d.kind, NotificationKind::Resolved);
        assert_eq!(d.resolves, Some(i));
        assert_eq!(d.title, "HubSpot sync resumed");
        assert_eq!(
            given(Some(Provider::Hubspot)).when(Fact::SyncCompleted),
            [],
            "a normal sync raises nothing"
        );
        assert_eq!(
            given(Some(Provider::Hubspot))
                .interruption_open(i)
                .when(Fact::Reconnected {
                    account_change: None
                }),
            [],
            "reconnecting does not prove the sync works"
        );
    }

    #[test]
    fn an_authorization_failure_says_to_reconnect_and_does_not_promise_a_retry() {
        let then = given(Some(Provider::Salesforce)).when(Fact::SyncFailed {
            kind: FailureKind::Authorization,
            next_attempt_at: None,
        });
        let d = raised(&then)[0];
        assert_eq!(
            d.body,
            "Your Salesforce sync was interrupted because Salesforce did not accept our authorization. Syncing resumes once you reconnect."
        );
        assert_eq!(d.action, "Reconnect Salesforce on the Connections page");
    }

    #[test]
    fn an_unknown_provider_still_reads_as_a_sentence() {
        let then = given(None).when(Fact::SyncFailed {
            kind: FailureKind::Internal,
            next_attempt_at: None,
        });
        let d = raised(&then)[0];
        assert_eq!(d.title, "Integration sync interrupted");
        assert_eq!(
            d.body,
            "A sync of one of your integrations was interrupted because of a problem on our side. We'll retry automatically; the Connections page shows when the next sync is due."
        );
        let then = given(None).when(Fact::Disconnected {
            reason: DisconnectReason::AuthorizationRevoked,
            provider_message: String::new(),
        });
        assert_eq!(
            raised(&then)[0].body,
            "An integration was disconnected because access was revoked at the provider. Syncing has stopped."
        );
        assert_eq!(
            raised(&then)[0].action,
            "Reconnect the integration on the Connections page"
        );
    }

    #[test]
    fn the_connections_link_joins_base_and_path_and_refuses_garbage() {
        assert_eq!(
            ConnectionsLink::new("https://app.revenueproven.com/", "/workspace/connections")
                .unwrap()
                .as_str(),
            "https://app.revenueproven.com/workspace/connections"
        );
        assert!(ConnectionsLink::new("app.example.com", "/c").is_err());
        assert!(ConnectionsLink::new("https://", "/c").is_err());
        assert!(ConnectionsLink::new("http://localhost:3000", "connections").is_err());
    }
}
