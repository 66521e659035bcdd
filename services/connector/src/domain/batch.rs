//! RecordsPulled batches: at most [`MAX_RECORDS`] records and [`MAX_BYTES`] of encoded protobuf
//! each, so every event stays far below the NATS max payload (1 MiB) whatever the records hold.

use prost::Message;
use rp_platform::contracts::events::v1 as ev;

/// Records per RecordsPulled event, at most.
pub const MAX_RECORDS: usize = 500;
/// Encoded size of one RecordsPulled's records, at most (a quarter of the NATS max payload).
pub const MAX_BYTES: usize = 256 * 1024;
/// A record larger than this cannot travel at all (a RecordsPulled holding it alone would pass
/// the log's and the bus's limit, `rp_platform::eventlog::MAX_EVENT_BYTES`): it is left out and
/// reported, never appended (an event the bus refuses would stop delivery for everyone).
pub const MAX_RECORD_BYTES: usize = rp_platform::eventlog::MAX_EVENT_BYTES - 4 * 1024;

/// One record of any kind a RecordsPulled carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Engagement(ev::EngagementRow),
    Organization(ev::Organization),
    Company(ev::CrmCompany),
    Contact(ev::CrmContact),
    Deal(ev::CrmDeal),
    Pipeline(ev::CrmPipeline),
}

/// A record left out because it is larger than [`MAX_RECORD_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oversized {
    pub object_type: ev::ObjectType,
    pub id: String,
    pub bytes: usize,
}

impl Record {
    /// The provider's id of the record.
    pub fn id(&self) -> String {
        match self {
            Record::Engagement(r) => format!("{}/{}/{}", r.organization_id, r.campaign_id, r.date),
            Record::Organization(r) => r.id.clone(),
            Record::Company(r) => r.id.clone(),
            Record::Contact(r) => r.id.clone(),
            Record::Deal(r) => r.id.clone(),
            Record::Pipeline(r) => r.id.clone(),
        }
    }

    /// Bytes the record adds to a RecordsPulled (field tag + length prefix + body).
    pub fn encoded_len(&self) -> usize {
        let body = match self {
            Record::Engagement(r) => r.encoded_len(),
            Record::Organization(r) => r.encoded_len(),
            Record::Company(r) => r.encoded_len(),
            Record::Contact(r) => r.encoded_len(),
            Record::Deal(r) => r.encoded_len(),
            Record::Pipeline(r) => r.encoded_len(),
        };
        body + prost::length_delimiter_len(body) + 1
    }
}

/// Accumulates records of one object type and hands out full batches.
#[derive(Debug)]
pub struct Batcher {
    object_type: ev::ObjectType,
    max_records: usize,
    max_bytes: usize,
    next_seq: u32,
    pending: ev::RecordsPulled,
    pending_len: usize,
    pending_bytes: usize,
    sync_run_id: String,
    /// Records left out as too large to travel.
    oversized: Vec<Oversized>,
}

impl Batcher {
    pub fn new(sync_run_id: &str, object_type: ev::ObjectType) -> Self {
        Self::with_limits(sync_run_id, object_type, MAX_RECORDS, MAX_BYTES)
    }

    pub fn with_limits(
        sync_run_id: &str,
        object_type: ev::ObjectType,
        max_records: usize,
        max_bytes: usize,
    ) -> Self {
        Self {
            object_type,
            max_records: max_records.max(1),
            max_bytes: max_bytes.max(1),
            next_seq: 0,
            pending: Self::empty(sync_run_id, object_type, 0),
            pending_len: 0,
            pending_bytes: 0,
            sync_run_id: sync_run_id.to_string(),
            oversized: Vec::new(),
        }
    }

    fn empty(sync_run_id: &str, object_type: ev::ObjectType, seq: u32) -> ev::RecordsPulled {
        ev::RecordsPulled {
            sync_run_id: sync_run_id.to_string(),
            object_type: object_type as i32,
            batch_seq: seq,
            ..Default::default()
        }
    }

    /// Adds a record; returns the batch it completed, if any (the full batch goes out before
    /// a record that would make it too big).
    pub fn push(&mut self, record: Record) -> Option<ev::RecordsPulled> {
        let size = record.encoded_len();
        if size > MAX_RECORD_BYTES {
            self.oversized.push(Oversized {
                object_type: self.object_type,
                id: record.id(),
                bytes: size,
            });
            return None;
        }
        let out = if self.pending_len > 0
            && (self.pending_len >= self.max_records || self.pending_bytes + size > self.max_bytes)
        {
            self.take()
        } else {
            None
        };
        self.pending_bytes += size;
        self.pending_len += 1;
        match record {
            Record::Engagement(r) => self.pending.engagement.push(r),
            Record::Organization(r) => self.pending.organizations.push(r),
            Record::Company(r) => self.pending.companies.push(r),
            Record::Contact(r) => self.pending.contacts.push(r),
            Record::Deal(r) => self.pending.deals.push(r),
            Record::Pipeline(r) => self.pending.pipelines.push(r),
        }
        if out.is_none() && self.pending_len >= self.max_records {
            return self.take();
        }
        out
    }

    /// The partial batch, if any records are waiting.
    pub fn flush(&mut self) -> Option<ev::RecordsPulled> {
        (self.pending_len > 0).then(|| self.take()).flatten()
    }

    fn take(&mut self) -> Option<ev::RecordsPulled> {
        self.next_seq += 1;
        let next = Self::empty(&self.sync_run_id, self.object_type, self.next_seq);
        self.pending_len = 0;
        self.pending_bytes = 0;
        Some(std::mem::replace(&mut self.pending, next))
    }

    /// Records waiting for the next batch.
    pub fn pending(&self) -> usize {
        self.pending_len
    }

    /// The records left out so far as too large to travel (taken: each is reported once).
    pub fn take_oversized(&mut self) -> Vec<Oversized> {
        std::mem::take(&mut self.oversized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn company(i: usize, name_len: usize) -> Record {
        Record::Company(ev::CrmCompany {
            id: i.to_string(),
            name: "n".repeat(name_len),
            ..Default::default()
        })
    }

    #[test]
    fn batches_are_cut_at_the_record_limit_with_consecutive_sequence_numbers() {
        let mut b = Batcher::new("run", ev::ObjectType::CrmCompany);
        let mut out = Vec::new();
        for i in 0..1_234 {
            out.extend(b.push(company(i, 10)));
        }
        out.extend(b.flush());
        assert_eq!(
            out.iter().map(|r| r.companies.len()).collect::<Vec<_>>(),
            vec![500, 500, 234]
        );
        assert_eq!(
            out.iter().map(|r| r.batch_seq).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert!(
            out.iter()
                .all(|r| r.sync_run_id == "run"
                    && r.object_type == ev::ObjectType::CrmCompany as i32)
        );
        assert!(b.flush().is_none());
    }

    #[test]
    fn big_records_cut_batches_by_bytes_so_every_event_stays_under_the_nats_limit() {
        let mut b = Batcher::new("run", ev::ObjectType::CrmCompany);
        let mut out = Vec::new();
        for i in 0..100 {
            out.extend(b.push(company(i, 20_000)));
        }
        out.extend(b.flush());
        assert!(out.len() > 1);
        for r in &out {
            assert!(r.encoded_len() <= MAX_BYTES + 200, "{}", r.encoded_len());
        }
        assert_eq!(out.iter().map(|r| r.companies.len()).sum::<usize>(), 100);
    }

    #[test]
    fn a_record_the_bus_cannot_carry_is_left_out_and_reported() {
        let mut b = Batcher::new("run", ev::ObjectType::CrmCompany);
        assert!(b.push(company(1, 10)).is_none());
        assert!(b.push(company(2, 1_200_000)).is_none());
        assert!(b.push(company(3, 10)).is_none());
        let out = b.flush().expect("the rest");
        assert_eq!(
            out.companies
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>(),
            ["1", "3"]
        );
        let left = b.take_oversized();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, "2");
        assert!(left[0].bytes > 1_200_000);
        assert!(b.take_oversized().is_empty(), "reported once");
    }

    #[test]
    fn a_single_huge_record_still_goes_out_alone() {
        let mut b = Batcher::with_limits("run", ev::ObjectType::CrmCompany, 500, 100);
        assert!(b.push(company(1, 1_000)).is_none());
        let first = b.push(company(2, 10)).expect("the huge one goes out first");
        assert_eq!(first.companies.len(), 1);
    }
}
