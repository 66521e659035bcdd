//! Daily sync schedules: each integration syncs once a day at its own local time.
//!
//! * A schedule is `HH:MM` in an IANA time zone. On a day when that local time does not exist
//!   (the spring-forward gap) the sync runs at the first minute after the gap; when it exists twice
//!   (fall back) it runs at the first of the two. So it runs exactly once every local day.
//! * The scheduler is a task in every connector replica. Each tick it looks at connected
//!   integrations whose latest slot has not been handled, and requests their sync. Handling a slot
//!   locks the integration's row, so with several replicas a slot fires once.
//! * After downtime a missed slot runs once (not once per missed day), at the moment the miss is
//!   noticed plus a jitter derived from the workspace, spread over `catch_up_spread`, so a restart
//!   is no thundering herd. Disconnected integrations are skipped.
//! * Time comes from a [`Clock`], so tests move it instead of waiting.

use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use rp_platform::provider::Provider;
use std::sync::{Arc, Mutex};

/// Where "now" comes from.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock tests set by hand.
#[derive(Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new(t: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(t)))
    }
    pub fn set(&self, t: DateTime<Utc>) {
        if let Ok(mut g) = self.0.lock() {
            *g = t;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
            .lock()
            .map(|g| *g)
            .unwrap_or_else(|p| *p.into_inner())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("local_time must be HH:MM (24-hour), e.g. 06:30")]
    BadTime,
    #[error("time_zone must be an IANA time zone name such as Europe/Berlin or UTC")]
    BadZone,
}

/// A validated daily schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailySchedule {
    pub local_time: NaiveTime,
    pub zone: Tz,
}

impl DailySchedule {
    pub fn parse(local_time: &str, zone: &str) -> Result<Self, ScheduleError> {
        let t = local_time.trim();
        let valid_shape = t.len() == 5 && t.as_bytes()[2] == b':';
        let local_time = valid_shape
            .then(|| NaiveTime::parse_from_str(t, "%H:%M").ok())
            .flatten()
            .ok_or(ScheduleError::BadTime)?;
        let zone: Tz = zone.trim().parse().map_err(|_| ScheduleError::BadZone)?;
        Ok(Self { local_time, zone })
    }

    /// The default for a new integration, spread by the integration id so that integrations do
    /// not all sync in the same minute: LinkedIn between 02:00 and 03:59 UTC, a CRM between 04:00
    /// and 05:59 UTC, so that with the defaults a workspace's daily cycle pulls LinkedIn first
    /// (docs/sync.md, "The daily cycle's order"). No provider known: 02:00 to 05:59.
    pub fn default_for(integration_id: &str, provider: Option<Provider>) -> Self {
        let h = fnv(integration_id);
        let minutes = match provider {
            Some(Provider::Linkedin) => 120 + (h % 120),
            Some(Provider::Hubspot | Provider::Salesforce) => 240 + (h % 120),
            None => 120 + (h % 240),
        };
        Self {
            local_time: NaiveTime::from_hms_opt(minutes / 60, minutes % 60, 0)
                .unwrap_or(NaiveTime::MIN),
            zone: Tz::UTC,
        }
    }

    pub fn local_time_string(&self) -> String {
        self.local_time.format("%H:%M").to_string()
    }

    pub fn zone_name(&self) -> &'static str {
        self.zone.name()
    }

    /// The instant of the slot on local date `date`.
    pub fn slot_on(&self, date: NaiveDate) -> DateTime<Utc> {
        let naive = date.and_time(self.local_time);
        match self.zone.from_local_datetime(&naive) {
            chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
            chrono::LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
            chrono::LocalResult::None => {
                // In a spring-forward gap: the first local minute that exists after it.
                let mut probe = naive;
                for _ in 0..(24 * 60) {
                    probe += ChronoDuration::minutes(1);
                    if let Some(t) = self.zone.from_local_datetime(&probe).earliest() {
                        return t.with_timezone(&Utc);
                    }
                }
                Utc.from_utc_datetime(&naive)
            }
        }
    }

    /// The latest slot at or before `now`.
    pub fn last_slot_at_or_before(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let today = now.with_timezone(&self.zone).date_naive();
        let mut d = today + ChronoDuration::days(1);
        loop {
            let slot = self.slot_on(d);
            if slot <= now {
                return slot;
            }
            d = d.pred_opt().unwrap_or(d);
        }
    }

    /// The first slot strictly after `now`.
    pub fn next_slot_after(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let mut d = now.with_timezone(&self.zone).date_naive() - ChronoDuration::days(1);
        loop {
            let slot = self.slot_on(d);
            if slot > now {
                return slot;
            }
            d = d.succ_opt().unwrap_or(d);
        }
    }
}

/// FNV-1a: stable across processes and releases.
pub fn fnv(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// What the scheduler should do about one integration at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing to do.
    No,
    /// Its slot has come: sync now.
    OnTime { slot: DateTime<Utc> },
    /// A slot was missed while we were down: sync once, at `at` (now + jitter).
    CatchUp {
        slot: DateTime<Utc>,
        at: DateTime<Utc>,
    },
}

/// The scheduling rule, pure. `handled` is the latest slot already handled; `on_time_grace` is
/// how late a slot may be noticed and still count as on time.
pub fn due(
    schedule: &DailySchedule,
    handled: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    on_time_grace: ChronoDuration,
    jitter: ChronoDuration,
) -> Due {
    let slot = schedule.last_slot_at_or_before(now);
    if handled.is_some_and(|h| h >= slot) {
        return Due::No;
    }
    if now - slot <= on_time_grace {
        Due::OnTime { slot }
    } else {
        Due::CatchUp {
            slot,
            at: now + jitter,
        }
    }
}

/// What the workspace's LinkedIn integration is doing, as a CRM slot sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkedinState {
    /// Its own slot has come and is not handled yet (it is about to be requested).
    pub due: bool,
    /// A run of it is live.
    pub running: bool,
}

/// The daily cycle's order: a CRM integration's scheduled sync whose slot comes while the same
/// workspace's LinkedIn sync is due or running waits for it, so that matching and attribution run
/// on both fresh pulls; it starts at the first tick after the LinkedIn sync ends. The wait lasts
/// at most `max_hold` after the slot, so a stuck LinkedIn run never starves the CRM.
pub fn crm_waits(
    linkedin: Option<LinkedinState>,
    slot: DateTime<Utc>,
    now: DateTime<Utc>,
    max_hold: ChronoDuration,
) -> bool {
    linkedin.is_some_and(|l| (l.due || l.running) && now - slot < max_hold)
}

/// The catch-up jitter of a workspace: a stable spread over `spread`.
pub fn jitter_for(workspace_id: &str, spread: ChronoDuration) -> ChronoDuration {
    let secs = spread.num_seconds().max(1) as u32;
    ChronoDuration::seconds(i64::from(fnv(workspace_id) % secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn parses_and_refuses_bad_schedules() {
        assert!(DailySchedule::parse("06:30", "Europe/Berlin").is_ok());
        assert_eq!(
            DailySchedule::parse("6:30", "UTC"),
            Err(ScheduleError::BadTime)
        );
        assert_eq!(
            DailySchedule::parse("25:00", "UTC"),
            Err(ScheduleError::BadTime)
        );
        assert_eq!(
            DailySchedule::parse("06:30", "Mars/Olympus"),
            Err(ScheduleError::BadZone)
        );
    }

    #[test]
    fn given_berlin_0630_when_summer_then_0430_utc_and_winter_0530_utc() {
        let s = DailySchedule::parse("06:30", "Europe/Berlin").unwrap();
        assert_eq!(
            s.slot_on(NaiveDate::from_ymd_opt(2026, 7, 1).unwrap()),
            utc("2026-07-01T04:30:00Z")
        );
        assert_eq!(
            s.slot_on(NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()),
            utc("2026-12-01T05:30:00Z")
        );
    }

    #[test]
    fn given_a_time_in_the_spring_gap_then_it_runs_right_after_the_gap_once() {
        // 2026-03-29 02:00 → 03:00 in Berlin: 02:30 does not exist.
        let s = DailySchedule::parse("02:30", "Europe/Berlin").unwrap();
        let d = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        assert_eq!(s.slot_on(d), utc("2026-03-29T01:00:00Z")); // 03:00 CEST
        let before = utc("2026-03-28T12:00:00Z");
        assert_eq!(s.next_slot_after(before), utc("2026-03-29T01:00:00Z"));
        assert_eq!(
            s.next_slot_after(utc("2026-03-29T01:00:00Z")),
            utc("2026-03-30T00:30:00Z")
        );
    }

    #[test]
    fn given_a_time_that_happens_twice_in_autumn_then_the_first_one() {
        // 2026-10-25 03:00 → 02:00 in Berlin: 02:30 happens twice.
        let s = DailySchedule::parse("02:30", "Europe/Berlin").unwrap();
        let d = NaiveDate::from_ymd_opt(2026, 10, 25).unwrap();
        assert_eq!(s.slot_on(d), utc("2026-10-25T00:30:00Z"));
        let after_first = utc("2026-10-25T00:31:00Z");
        assert_eq!(
            s.last_slot_at_or_before(after_first),
            utc("2026-10-25T00:30:00Z")
        );
        // the second 02:30 (01:30 UTC) is not another slot
        assert_eq!(s.next_slot_after(after_first), utc("2026-10-26T01:30:00Z"));
    }

    #[test]
    fn given_a_slot_just_passed_then_on_time_and_once() {
        let s = DailySchedule::parse("06:00", "UTC").unwrap();
        let grace = ChronoDuration::minutes(15);
        let j = ChronoDuration::zero();
        let now = utc("2026-11-29T06:00:20Z");
        assert_eq!(
            due(&s, None, now, grace, j),
            Due::OnTime {
                slot: utc("2026-11-29T06:00:00Z")
            }
        );
        assert_eq!(
            due(&s, Some(utc("2026-11-29T06:00:00Z")), now, grace, j),
            Due::No
        );
    }

    #[test]
    fn given_three_days_down_then_one_catch_up_with_jitter() {
        let s = DailySchedule::parse("06:00", "UTC").unwrap();
        let handled = Some(utc("2026-11-26T06:00:00Z"));
        let now = utc("2026-11-29T09:00:00Z");
        let j = jitter_for("ws-1", ChronoDuration::minutes(10));
        assert!(j < ChronoDuration::minutes(10));
        match due(&s, handled, now, ChronoDuration::minutes(15), j) {
            Due::CatchUp { slot, at } => {
                assert_eq!(
                    slot,
                    utc("2026-11-29T06:00:00Z"),
                    "only the latest missed slot"
                );
                assert_eq!(at, now + j);
            }
            other => panic!("expected a catch-up, got {other:?}"),
        }
    }

    #[test]
    fn default_times_are_spread_and_stable() {
        let a = DailySchedule::default_for("a", None);
        assert_eq!(a, DailySchedule::default_for("a", None));
        let hours: std::collections::HashSet<u32> = (0..50)
            .map(|i| {
                chrono::Timelike::hour(&DailySchedule::default_for(&i.to_string(), None).local_time)
            })
            .collect();
        assert!(hours.iter().all(|h| (2..6).contains(h)));
        assert!(hours.len() > 1);
    }

    #[test]
    fn with_the_defaults_linkedin_comes_before_the_crm_every_day() {
        for i in 0..500 {
            let id = format!("integration-{i}");
            let li = DailySchedule::default_for(&id, Some(Provider::Linkedin)).local_time;
            for crm in [Provider::Hubspot, Provider::Salesforce] {
                let c = DailySchedule::default_for(&id, Some(crm)).local_time;
                assert!(li < c, "{li} vs {c}");
                assert!(chrono::Timelike::hour(&c) >= 4 && chrono::Timelike::hour(&c) <= 5);
            }
            assert!(chrono::Timelike::hour(&li) >= 2 && chrono::Timelike::hour(&li) <= 3);
        }
    }

    #[test]
    fn a_crm_slot_waits_while_linkedin_is_due_or_running_and_not_for_ever() {
        let slot = utc("2026-12-01T04:30:00Z");
        let hold = ChronoDuration::hours(3);
        let now = slot + ChronoDuration::minutes(1);
        let due = LinkedinState {
            due: true,
            running: false,
        };
        let running = LinkedinState {
            due: false,
            running: true,
        };
        assert!(crm_waits(Some(due), slot, now, hold));
        assert!(crm_waits(Some(running), slot, now, hold));
        // LinkedIn done for the day, or no LinkedIn integration: the CRM goes.
        assert!(!crm_waits(Some(LinkedinState::default()), slot, now, hold));
        assert!(!crm_waits(None, slot, now, hold));
        // A LinkedIn run stuck for longer than the hold no longer holds the CRM.
        assert!(!crm_waits(Some(running), slot, slot + hold, hold));
    }
}
