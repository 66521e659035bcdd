//! Incremental checkpoints: what a pull starts from and what it leaves for the next one.
//!
//! * CRM objects (HubSpot, Salesforce): the cursor is a **signpost**, the provider's clock at the
//!   moment the pull started minus a safety margin. The next pull asks for everything modified
//!   at or after it (`>=`), so a change made while a long pull was running is never missed.
//!   Records the pull already took whose modification time is at or after the signpost would be
//!   read again by that `>=`; they are the **boundary** and are remembered as `<id>@<epoch ms>`
//!   (that version of that record), so the next pull skips exactly them, and still takes a
//!   record that changed again. Where the modification time cannot tell two versions apart
//!   (Salesforce's `SystemModstamp` has whole seconds), the pull passes a key that can in place
//!   of the id (`<id>#<fingerprint>`, see `SalesforceObject::version_key`): a second edit in
//!   the same second is a new key and is taken; the first version read again is skipped.
//! * Deletions have their own checkpoint of the same shape. A provider whose deletion index lags
//!   (Salesforce's `latestDateCovered`) moves it no further than the index is complete
//!   ([`deletion_signpost`]), so a deletion indexed late is still found by the next pull.
//! * LinkedIn engagement: the cursor is the last complete day (UTC) pulled.

use std::collections::HashSet;

use chrono::{DateTime, Days, NaiveDate, SecondsFormat, Utc};

/// Most boundary entries one checkpoint keeps (a CheckpointAdvanced stays far below the bus's
/// payload limit). Past it, the surplus records are simply read (and counted) again next time:
/// never missed, at worst repeated.
pub const MAX_BOUNDARY: usize = 10_000;

/// The signpost of a pull starting at `provider_now`.
pub fn signpost(provider_now: DateTime<Utc>, margin: chrono::Duration) -> DateTime<Utc> {
    provider_now - margin
}

/// Where the next deletion request starts, after a request from `from` (the previous deletion
/// checkpoint) answered as complete up to `latest_covered` by a pull whose signpost is
/// `signpost`: the earlier of the signpost and `latest_covered` (Salesforce: "use this value
/// for the startDate of your next call"), never before `from` (the index covered nothing
/// new). Without a `latest_covered` the index is taken as current: the signpost.
///
/// The deletions of the answer at or after the result are the deletion boundary (as records'):
/// the next pull, reading them again, skips them.
pub fn deletion_signpost(
    from: DateTime<Utc>,
    signpost: DateTime<Utc>,
    latest_covered: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    match latest_covered {
        Some(covered) => signpost.min(covered).max(from),
        None => signpost.max(from),
    }
}

/// A CRM object's checkpoint, as read from its last CheckpointAdvanced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmCheckpoint {
    pub signpost: DateTime<Utc>,
    boundary: HashSet<(String, i64)>,
}

impl CrmCheckpoint {
    pub fn new(signpost: DateTime<Utc>) -> Self {
        Self {
            signpost,
            boundary: HashSet::new(),
        }
    }

    /// Reads a CheckpointAdvanced's `cursor` and `boundary_ids`.
    pub fn parse(cursor: &str, boundary_ids: &[String]) -> Result<Self, String> {
        let signpost = DateTime::parse_from_rfc3339(cursor)
            .map_err(|e| format!("checkpoint cursor {cursor:?} is not an RFC 3339 time: {e}"))?
            .with_timezone(&Utc);
        let mut boundary = HashSet::with_capacity(boundary_ids.len());
        for entry in boundary_ids {
            let (id, ms) = entry
                .rsplit_once('@')
                .ok_or_else(|| format!("boundary entry {entry:?} is not <id>@<epoch ms>"))?;
            let ms: i64 = ms
                .parse()
                .map_err(|_| format!("boundary entry {entry:?} is not <id>@<epoch ms>"))?;
            boundary.insert((id.to_string(), ms));
        }
        Ok(Self { signpost, boundary })
    }

    /// The cursor as CheckpointAdvanced carries it.
    pub fn cursor(&self) -> String {
        format_signpost(self.signpost)
    }

    /// True when this version of this record was taken by the pull that wrote the checkpoint:
    /// a `>=` re-read returns it again, and it must not count twice.
    pub fn already_taken(&self, id: &str, modified: DateTime<Utc>) -> bool {
        !self.boundary.is_empty()
            && self
                .boundary
                .contains(&(id.to_string(), modified.timestamp_millis()))
    }

    pub fn boundary_len(&self) -> usize {
        self.boundary.len()
    }
}

pub fn format_signpost(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Collects the boundary of a running pull: the records it takes at or after its own signpost.
#[derive(Debug, Clone)]
pub struct BoundaryCollector {
    signpost: DateTime<Utc>,
    entries: Vec<String>,
    dropped: usize,
}

impl BoundaryCollector {
    pub fn new(signpost: DateTime<Utc>) -> Self {
        Self {
            signpost,
            entries: Vec::new(),
            dropped: 0,
        }
    }

    pub fn observe(&mut self, id: &str, modified: DateTime<Utc>) {
        if modified < self.signpost {
            return;
        }
        if self.entries.len() >= MAX_BOUNDARY {
            self.dropped += 1;
            return;
        }
        self.entries
            .push(format!("{id}@{}", modified.timestamp_millis()));
    }

    /// How many boundary records did not fit (they will be read again next time).
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    pub fn into_entries(self) -> Vec<String> {
        self.entries
    }
}

/// The LinkedIn engagement cursor: the last complete day pulled.
pub fn parse_day(cursor: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(cursor, "%Y-%m-%d")
        .map_err(|e| format!("engagement cursor {cursor:?} is not a YYYY-MM-DD date: {e}"))
}

/// Which days a LinkedIn engagement pull covers, or `None` when there is nothing new.
///
/// The last complete day is the day before the provider's today. The first pull reaches back
/// over the plan's longest lookback window; later pulls start the day after the cursor (never
/// further back than the longest window, e.g. after a long disconnection).
pub fn engagement_range(
    provider_today: NaiveDate,
    cursor: Option<NaiveDate>,
    longest_window_days: u32,
) -> Option<(NaiveDate, NaiveDate)> {
    let last_complete = provider_today.pred_opt()?;
    let window = u64::from(longest_window_days.max(1));
    let earliest = last_complete.checked_sub_days(Days::new(window - 1))?;
    let start = match cursor {
        None => earliest,
        Some(c) => c.succ_opt()?.max(earliest),
    };
    (start <= last_complete).then_some((start, last_complete))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_signpost_is_the_start_minus_the_margin() {
        let s = signpost(t("2025-06-30T10:00:00Z"), chrono::Duration::minutes(5));
        assert_eq!(format_signpost(s), "2025-06-30T09:55:00.000Z");
    }

    #[test]
    fn given_a_pull_that_took_boundary_rows_when_the_next_pull_rereads_them_they_are_skipped_once()
    {
        // Given a pull whose signpost is 09:55 took A (09:50, before) and B and C (after).
        let sp = t("2025-06-30T09:55:00Z");
        let mut c = BoundaryCollector::new(sp);
        c.observe("A", t("2025-06-30T09:50:00Z"));
        c.observe("B", t("2025-06-30T09:56:00Z"));
        c.observe("C", t("2025-06-30T09:57:30.250Z"));
        let entries = c.into_entries();
        assert_eq!(entries.len(), 2, "only rows at or after the signpost");
        // When the checkpoint is read back...
        let cp = CrmCheckpoint::parse(&format_signpost(sp), &entries).unwrap();
        // ...then the same versions of B and C are already taken, A is before the cursor anyway,
        // and a B that changed again is taken again.
        assert!(cp.already_taken("B", t("2025-06-30T09:56:00Z")));
        assert!(cp.already_taken("C", t("2025-06-30T09:57:30.250Z")));
        assert!(!cp.already_taken("B", t("2025-06-30T09:58:00Z")));
        assert!(!cp.already_taken("D", t("2025-06-30T09:56:00Z")));
        assert_eq!(cp.cursor(), "2025-06-30T09:55:00.000Z");
    }

    #[test]
    fn a_lagging_deletion_index_holds_the_deletion_checkpoint_back() {
        let from = t("2025-06-30T09:00:00Z");
        let sp = t("2025-06-30T09:55:00Z");
        // Complete up to 09:50 only: the next request starts there, not at the signpost.
        assert_eq!(
            deletion_signpost(from, sp, Some(t("2025-06-30T09:50:00Z"))),
            t("2025-06-30T09:50:00Z")
        );
        // Current: the signpost (its margin still applies).
        assert_eq!(
            deletion_signpost(from, sp, Some(t("2025-06-30T10:00:00Z"))),
            sp
        );
        // Behind even the last request's start: it stays there.
        assert_eq!(
            deletion_signpost(from, sp, Some(t("2025-06-30T08:00:00Z"))),
            from
        );
        assert_eq!(deletion_signpost(from, sp, None), sp);
    }

    #[test]
    fn version_keys_in_place_of_ids_tell_versions_of_one_stamp_apart() {
        let sp = t("2025-06-30T09:55:00Z");
        let stamp = t("2025-06-30T09:56:07Z");
        let mut c = BoundaryCollector::new(sp);
        c.observe("001A#aaaa", stamp);
        let cp = CrmCheckpoint::parse(&format_signpost(sp), &c.into_entries()).unwrap();
        assert!(cp.already_taken("001A#aaaa", stamp));
        assert!(
            !cp.already_taken("001A#bbbb", stamp),
            "a second edit of the second"
        );
    }

    #[test]
    fn ids_with_at_signs_survive_the_round_trip() {
        let sp = t("2025-06-30T09:55:00Z");
        let mut c = BoundaryCollector::new(sp);
        c.observe("a@b", t("2025-06-30T09:56:00Z"));
        let cp = CrmCheckpoint::parse(&format_signpost(sp), &c.into_entries()).unwrap();
        assert!(cp.already_taken("a@b", t("2025-06-30T09:56:00Z")));
    }

    #[test]
    fn a_corrupt_checkpoint_says_what_is_wrong() {
        assert!(
            CrmCheckpoint::parse("yesterday", &[])
                .unwrap_err()
                .contains("RFC 3339")
        );
        assert!(
            CrmCheckpoint::parse("2025-06-30T09:55:00Z", &["x".into()])
                .unwrap_err()
                .contains("<id>@<epoch ms>")
        );
        assert!(parse_day("2025-13-01").is_err());
    }

    #[test]
    fn the_boundary_is_bounded() {
        let sp = t("2025-06-30T09:55:00Z");
        let mut c = BoundaryCollector::new(sp);
        for i in 0..MAX_BOUNDARY + 5 {
            c.observe(&i.to_string(), sp);
        }
        assert_eq!(c.dropped(), 5);
        assert_eq!(c.into_entries().len(), MAX_BOUNDARY);
    }

    #[test]
    fn engagement_first_pull_covers_the_longest_window_up_to_yesterday() {
        let today = NaiveDate::from_ymd_opt(2025, 6, 30).unwrap();
        let (from, to) = engagement_range(today, None, 365).unwrap();
        assert_eq!(to, NaiveDate::from_ymd_opt(2025, 6, 29).unwrap());
        assert_eq!((to - from).num_days(), 364);
    }

    #[test]
    fn engagement_incremental_pulls_start_after_the_cursor_and_stop_when_current() {
        let today = NaiveDate::from_ymd_opt(2025, 6, 30).unwrap();
        let cursor = NaiveDate::from_ymd_opt(2025, 6, 27).unwrap();
        assert_eq!(
            engagement_range(today, Some(cursor), 90),
            Some((
                NaiveDate::from_ymd_opt(2025, 6, 28).unwrap(),
                NaiveDate::from_ymd_opt(2025, 6, 29).unwrap()
            ))
        );
        let current = NaiveDate::from_ymd_opt(2025, 6, 29).unwrap();
        assert_eq!(engagement_range(today, Some(current), 90), None);
        // After a long disconnection, never further back than the window.
        let old = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        let (from, _) = engagement_range(today, Some(old), 30).unwrap();
        assert_eq!(from, NaiveDate::from_ymd_opt(2025, 5, 31).unwrap());
    }
}
