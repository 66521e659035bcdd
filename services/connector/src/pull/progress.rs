//! Where a running pull is, so that whoever runs the job next continues from there: a replica
//! or a restarted process taking over an expired lease, or the same worker retrying after the
//! database came back.
//!
//! It lives in `pull_jobs.progress` (JSON) and is written in the transaction of the append it
//! describes (`Run::append_with`), so it never runs ahead of the log: whatever it says is in
//! the log is.
//!
//! * `done`: the objects this run has finished, whose checkpoints moved (both the records' and
//!   the deletions', in one transaction with the record of it), and how many records each took.
//!   A successor skips them.
//! * `walk`: the object being read page by page from a cursor (a first sync's HubSpot list, the
//!   long part of a first sync): its signpost, the cursor of the first page not wholly in the
//!   log, and what the records before that page add up to (count, batches, boundary). A
//!   successor reads from that page on, so at most the part of one page that was already
//!   appended is appended again, and no record is skipped (pages come in id order after the
//!   cursor; a record created or changed meanwhile is at or after the signpost, so the next
//!   sync reads it).
//!
//! Other reads (HubSpot's searches, Salesforce's queries, LinkedIn) start the object over.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What `pull_jobs.progress` holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    #[serde(default)]
    pub done: Vec<DoneObject>,
    #[serde(default)]
    pub walk: Option<Walk>,
}

/// An object this run has finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoneObject {
    /// `ObjectKind::slug`.
    pub object: String,
    /// Records it took (for PullCompleted's counts).
    pub taken: u64,
}

/// An object part-way through a page-by-page read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Walk {
    /// `ObjectKind::slug`.
    pub object: String,
    /// The object's signpost (epoch ms), from the attempt that began reading it: its checkpoint
    /// must not claim changes made before the first page was read.
    pub signpost_ms: i64,
    /// The provider's cursor of the first page not wholly in the log (`None`: the first page).
    pub after: Option<String>,
    /// Every page is in the log; only the object's checkpoint is missing.
    pub complete: bool,
    /// Pages wholly in the log.
    pub pages: u64,
    /// Records of the object in the log before `after`.
    pub taken: u64,
    /// RecordsPulled batches of the object in the log (the next batch's `batch_seq`).
    pub batches: u32,
    /// The boundary (`<id>@<modified epoch ms>`) of the records before `after`.
    #[serde(default)]
    pub boundary: Vec<String>,
}

impl Walk {
    pub fn signpost(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(self.signpost_ms)
    }

    /// The boundary entries as (id, modified).
    pub fn boundary(&self) -> impl Iterator<Item = (&str, DateTime<Utc>)> {
        self.boundary.iter().filter_map(|e| {
            let (id, ms) = e.rsplit_once('@')?;
            Some((id, DateTime::from_timestamp_millis(ms.parse().ok()?)?))
        })
    }
}

impl Progress {
    /// Reads the stored value; anything unreadable (a newer writer's shape) is "from the start":
    /// records read again, never missed.
    pub fn parse(stored: Option<serde_json::Value>) -> Self {
        match stored.map(serde_json::from_value::<Progress>) {
            None => Self::default(),
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "unreadable pull progress: starting the pull over");
                Self::default()
            }
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    pub fn is_empty(&self) -> bool {
        self.done.is_empty() && self.walk.is_none()
    }

    /// Records `object` took, when this run has finished it.
    pub fn done(&self, object: &str) -> Option<u64> {
        self.done
            .iter()
            .find(|d| d.object == object)
            .map(|d| d.taken)
    }

    /// Where the page-by-page read of `object` stands, if it is the one under way.
    pub fn walk_of(&self, object: &str) -> Option<&Walk> {
        self.walk.as_ref().filter(|w| w.object == object)
    }

    /// This progress, with `walk` as the read under way.
    pub fn with_walk(&self, walk: Walk) -> Self {
        Self {
            done: self.done.clone(),
            walk: Some(walk),
        }
    }

    /// This progress, with `object` finished (and no read under way).
    pub fn with_done(&self, object: &str, taken: u64) -> Self {
        let mut done = self.done.clone();
        done.retain(|d| d.object != object);
        done.push(DoneObject {
            object: object.to_string(),
            taken,
        });
        Self { done, walk: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk() -> Walk {
        Walk {
            object: "companies".into(),
            signpost_ms: 1_700_000_000_000,
            after: Some("7000000501".into()),
            complete: false,
            pages: 5,
            taken: 500,
            batches: 1,
            boundary: vec!["7000000042@1700000000500".into()],
        }
    }

    #[test]
    fn nothing_stored_means_from_the_start() {
        let p = Progress::parse(None);
        assert!(p.is_empty());
        assert_eq!(p.done("companies"), None);
        assert_eq!(p.walk_of("companies"), None);
    }

    #[test]
    fn what_is_stored_reads_back_the_same() {
        let p = Progress::default()
            .with_done("companies", 3_000)
            .with_walk(walk());
        assert_eq!(Progress::parse(Some(p.to_json())), p);
        assert_eq!(p.done("companies"), Some(3_000));
        assert_eq!(p.walk_of("companies").map(|w| w.pages), Some(5));
        assert_eq!(p.walk_of("deals"), None);
    }

    #[test]
    fn an_unreadable_progress_starts_over_instead_of_skipping_anything() {
        let p = Progress::parse(Some(serde_json::json!({"walk": {"object": 3}})));
        assert!(p.is_empty());
    }

    #[test]
    fn finishing_an_object_ends_its_walk_and_keeps_the_others_done() {
        let p = Progress::default()
            .with_done("companies", 10)
            .with_walk(Walk {
                object: "deals".into(),
                ..walk()
            })
            .with_done("deals", 20);
        assert_eq!(p.walk, None);
        assert_eq!(p.done("companies"), Some(10));
        assert_eq!(p.done("deals"), Some(20));
    }

    #[test]
    fn the_boundary_reads_back_as_ids_and_times() {
        let w = walk();
        let b: Vec<_> = w.boundary().collect();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].0, "7000000042");
        assert_eq!(b[0].1.timestamp_millis(), 1_700_000_000_500);
        assert_eq!(
            w.signpost().map(|s| s.timestamp_millis()),
            Some(1_700_000_000_000)
        );
    }
}
