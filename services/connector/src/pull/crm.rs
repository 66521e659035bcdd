//! CRM pulls (HubSpot, Salesforce): companies, deals, contacts, then pipelines.
//!
//! Each object type has its own checkpoint. Without one (the first sync) everything is read
//! (HubSpot: the list endpoint, which also gives deals' companies in one call; Salesforce: the
//! unfiltered query). With one, only records modified at or after its signpost are read, and
//! the boundary records the previous pull already took are skipped. The new signpost (the
//! provider's clock when this pull started, minus the margin) is written once the object's last
//! batch is in the log. Pipelines are a small reference table: read whole every time.
//!
//! Deletions: after an object's records, the records the CRM deleted since the object's
//! deletion checkpoint (its own signpost and boundary, `<id>@<deleted epoch ms>`) are appended
//! as tombstones (`deleted: true`, only `id` and `modified_at` = when deleted) in the same
//! RecordsPulled sequence, then the deletion checkpoint moves. HubSpot lists archived records
//! whole (`archived=true`, filtered here by `archivedAt`); Salesforce answers a time range
//! (`sobjects/{T}/deleted/`, kept 30 days). The very first sync of an object reports none: its
//! full list holds no deleted record.

use chrono::{DateTime, NaiveTime, Utc};
use rp_platform::contracts::events::v1::{
    self as ev, CheckpointAdvanced, PullCompleted, StageKind, SyncStep, envelope::Event,
};
use rp_platform::contracts::timestamp;
use rp_platform::eventlog::ExpectedVersion;

use super::progress::Walk;
use super::run::Append;
use super::{Run, RunError, with_token};
use crate::domain::ObjectKind;
use crate::domain::batch::{Batcher, Record};
use crate::domain::checkpoint::{BoundaryCollector, CrmCheckpoint, format_signpost, signpost};
use crate::domain::provider::DeletedRecord;
use crate::providers::hubspot::{self, HubspotClient, HubspotObject, StageOutcome};
use crate::providers::salesforce::{self, SalesforceClient, SalesforceObject};

/// One object type's pull: batches, boundary, checkpoint.
pub(crate) struct ObjectPull {
    kind: ObjectKind,
    batcher: Batcher,
    boundary: BoundaryCollector,
    signpost: DateTime<Utc>,
    pub previous: Option<CrmCheckpoint>,
    expected: ExpectedVersion,
    taken: u64,
    skipped: u64,
    /// Batches of the object in the log (the next one's `batch_seq`).
    batches: u32,
}

/// What the records of an object before some page add up to, for a [`Walk`].
#[derive(Clone)]
struct Mark {
    taken: u64,
    boundary: BoundaryCollector,
}

impl ObjectPull {
    pub async fn start(
        run: &Run,
        kind: ObjectKind,
        signpost: DateTime<Utc>,
    ) -> Result<Self, RunError> {
        let (last, expected) = run.checkpoint(kind).await?;
        let previous = readable(
            last,
            kind,
            "unreadable checkpoint: pulling everything again",
        );
        Ok(Self {
            kind,
            batcher: Batcher::new(run.run_id.as_str(), kind.to_event()),
            boundary: BoundaryCollector::new(signpost),
            signpost,
            previous,
            expected,
            taken: 0,
            skipped: 0,
            batches: 0,
        })
    }

    /// Continues where `walk` says the log ends.
    fn resume(&mut self, walk: &Walk) {
        self.taken = walk.taken;
        self.batches = walk.batches;
        for (id, modified) in walk.boundary() {
            self.boundary.observe(id, modified);
        }
    }

    fn mark(&self) -> Mark {
        Mark {
            taken: self.taken,
            boundary: self.boundary.clone(),
        }
    }

    /// Where a successor continues once the batch being appended is in the log: at `after`
    /// (the next page, or this page again), with the records before it adding up to `mark`.
    fn walk(&self, mark: Mark, after: Option<String>, pages: u64, complete: bool) -> Walk {
        Walk {
            object: self.kind.slug().to_string(),
            signpost_ms: self.signpost.timestamp_millis(),
            after,
            complete,
            pages,
            taken: mark.taken,
            batches: self.batches + 1,
            boundary: mark.boundary.into_entries(),
        }
    }

    /// Takes one record (unless the previous pull already took this version of it); returns
    /// the batch it completed, to append.
    fn push(
        &mut self,
        id: &str,
        modified: Option<DateTime<Utc>>,
        record: Record,
    ) -> Option<ev::RecordsPulled> {
        if let (Some(prev), Some(m)) = (&self.previous, modified)
            && prev.already_taken(id, m)
        {
            // Still at or after this pull's signpost: the next pull must skip it too.
            self.boundary.observe(id, m);
            self.skipped += 1;
            return None;
        }
        if let Some(m) = modified {
            self.boundary.observe(id, m);
        }
        self.taken += 1;
        self.batcher.push(record)
    }

    /// Appends a batch (with where a successor continues, when the read can be continued).
    async fn emit(
        &mut self,
        run: &Run,
        mut batch: ev::RecordsPulled,
        walk: Option<Walk>,
    ) -> Result<(), RunError> {
        batch.batch_seq = self.batches;
        let progress = walk.map(|w| run.progress.with_walk(w));
        run.emit_batch_with(batch, progress.as_ref()).await?;
        self.batches += 1;
        Ok(())
    }

    /// Takes one record (unless the previous pull already took this version of it).
    pub async fn take(
        &mut self,
        run: &Run,
        id: &str,
        modified: Option<DateTime<Utc>>,
        record: Record,
    ) -> Result<(), RunError> {
        if let Some(batch) = self.push(id, modified, record) {
            self.emit(run, batch, None).await?;
        }
        Ok(())
    }

    /// Adds a tombstone (a record deleted in the CRM) to the object's batches.
    async fn push_deleted(&mut self, run: &Run, record: Record) -> Result<(), RunError> {
        if let Some(batch) = self.batcher.push(record) {
            self.emit(run, batch, None).await?;
        }
        Ok(())
    }

    /// Appends the last batch; returns the records taken and the checkpoint to move (with
    /// the deletions', by [`Run::object_done`]).
    pub async fn finish(mut self, run: &mut Run) -> Result<(u64, Append), RunError> {
        let left_out = self.batcher.take_oversized();
        self.taken = self.taken.saturating_sub(left_out.len() as u64);
        run.note_oversized(left_out);
        if let Some(batch) = self.batcher.flush() {
            self.emit(run, batch, None).await?;
        }
        if self.boundary.dropped() > 0 {
            tracing::warn!(
                object = self.kind.slug(),
                dropped = self.boundary.dropped(),
                "boundary too large to remember whole: those records will be read again"
            );
        }
        let checkpoint = run.checkpoint_append(
            &run.integration_id().checkpoint_stream(self.kind.slug()),
            self.kind,
            format_signpost(self.signpost),
            self.boundary.into_entries(),
            self.expected,
        );
        tracing::info!(
            object = self.kind.slug(),
            taken = self.taken,
            skipped_boundary = self.skipped,
            "object pulled"
        );
        Ok((self.taken, checkpoint))
    }
}

/// A deleted record as RecordsPulled carries it: the id, when it was deleted, `deleted: true`.
fn tombstone(kind: ObjectKind, d: &DeletedRecord) -> Option<Record> {
    let (id, modified_at) = (d.id.clone(), Some(timestamp(d.deleted_at)));
    match kind {
        ObjectKind::CrmCompany => Some(Record::Company(ev::CrmCompany {
            id,
            modified_at,
            deleted: true,
            ..Default::default()
        })),
        ObjectKind::CrmDeal => Some(Record::Deal(ev::CrmDeal {
            id,
            modified_at,
            deleted: true,
            ..Default::default()
        })),
        ObjectKind::CrmContact => Some(Record::Contact(ev::CrmContact {
            id,
            modified_at,
            deleted: true,
            ..Default::default()
        })),
        _ => None,
    }
}

/// The checkpoint `last` records, or `None` (logged with `what_then`) when it cannot be read.
fn readable(
    last: Option<CheckpointAdvanced>,
    kind: ObjectKind,
    what_then: &str,
) -> Option<CrmCheckpoint> {
    let c = last?;
    match CrmCheckpoint::parse(&c.cursor, &c.boundary_ids) {
        Ok(cp) => Some(cp),
        Err(e) => {
            tracing::error!(object = kind.slug(), error = %e, "{what_then}");
            None
        }
    }
}

/// One object type's deletions: what was reported before, what this pull reports, checkpoint.
pub(crate) struct DeletionPull {
    kind: ObjectKind,
    previous: Option<CrmCheckpoint>,
    expected: ExpectedVersion,
    boundary: BoundaryCollector,
    signpost: DateTime<Utc>,
    reported: u64,
}

impl DeletionPull {
    async fn start(run: &Run, kind: ObjectKind, signpost: DateTime<Utc>) -> Result<Self, RunError> {
        let (last, expected) = run.deletions_checkpoint(kind).await?;
        let previous = readable(
            last,
            kind,
            "unreadable deletion checkpoint: reporting every deletion the CRM still has",
        );
        Ok(Self {
            kind,
            previous,
            expected,
            boundary: BoundaryCollector::new(signpost),
            signpost,
            reported: 0,
        })
    }

    /// Reports one deletion, unless an earlier pull reported it already.
    async fn report(
        &mut self,
        run: &Run,
        pull: &mut ObjectPull,
        d: &DeletedRecord,
    ) -> Result<(), RunError> {
        if let Some(prev) = &self.previous {
            if d.deleted_at < prev.signpost {
                return Ok(());
            }
            if prev.already_taken(&d.id, d.deleted_at) {
                // Still at or after this pull's signpost: the next pull must skip it too.
                self.boundary.observe(&d.id, d.deleted_at);
                return Ok(());
            }
        }
        let Some(record) = tombstone(self.kind, d) else {
            return Ok(());
        };
        self.boundary.observe(&d.id, d.deleted_at);
        self.reported += 1;
        pull.push_deleted(run, record).await
    }

    /// The deletion checkpoint to move once the tombstones are appended.
    fn finish(self, run: &Run) -> Append {
        tracing::info!(
            object = self.kind.slug(),
            deleted = self.reported,
            "deletions pulled"
        );
        run.checkpoint_append(
            &run.integration_id()
                .deletions_checkpoint_stream(self.kind.slug()),
            self.kind,
            format_signpost(self.signpost),
            self.boundary.into_entries(),
            self.expected,
        )
    }
}

/// Ends an object: its last batch, then both its checkpoints and the progress recording it
/// done, in one transaction.
async fn finish_object(
    run: &mut Run,
    kind: ObjectKind,
    pull: ObjectPull,
    deletions: DeletionPull,
) -> Result<u64, RunError> {
    let (taken, records) = pull.finish(run).await?;
    let deleted = deletions.finish(run);
    run.object_done(kind, taken, vec![records, deleted]).await?;
    run.count(kind, taken);
    Ok(taken)
}

/// True (and the object counted) when this run finished `kind` before (a successor, or a
/// retry, skips it).
fn already_done(run: &mut Run, kind: ObjectKind) -> bool {
    let Some(taken) = run.progress.done(kind.slug()) else {
        return false;
    };
    tracing::info!(
        object = kind.slug(),
        taken,
        "object already pulled by this run"
    );
    run.count(kind, taken);
    true
}

const CRM_KINDS: [ObjectKind; 4] = [
    ObjectKind::CrmCompany,
    ObjectKind::CrmDeal,
    ObjectKind::CrmContact,
    ObjectKind::CrmPipeline,
];

async fn signpost_now(run: &Run) -> Result<(DateTime<Utc>, DateTime<Utc>), RunError> {
    let now = run.provider_now().await?;
    Ok((now, signpost(now, run.ctx().signpost_margin)))
}

// ---- HubSpot -------------------------------------------------------------------------------

pub(crate) async fn hubspot(run: &mut Run) -> Result<Event, RunError> {
    let client = run.ctx().clients.hubspot();
    let (now, sp) = signpost_now(run).await?;
    // Searches run up to a day past now: whatever changes while we pull is taken now, and again
    // (deduplicated) next time, since it is after the signpost.
    let until = now + chrono::Duration::days(1);
    run.step(SyncStep::CrmPull).await?;
    hubspot_object::<hubspot::Company>(run, &client, ObjectKind::CrmCompany, sp, until, |c| {
        Record::Company(ev::CrmCompany {
            id: c.id,
            name: c.name.unwrap_or_default(),
            domain: c.domain.unwrap_or_default(),
            website: c.website.unwrap_or_default(),
            country: c.country.unwrap_or_default(),
            modified_at: Some(timestamp(c.modified_at)),
            deleted: false,
        })
    })
    .await?;
    hubspot_object::<hubspot::Deal>(run, &client, ObjectKind::CrmDeal, sp, until, |d| {
        Record::Deal(ev::CrmDeal {
            id: d.id,
            name: d.name.unwrap_or_default(),
            amount: d.amount.unwrap_or_default(),
            currency: d.currency.unwrap_or_default(),
            stage_id: d.stage_id.unwrap_or_default(),
            pipeline_id: d.pipeline_id.unwrap_or_default(),
            created_at: d.created_at.map(timestamp),
            closed_at: d.closed_at.map(timestamp),
            company_ids: d.company_ids,
            modified_at: Some(timestamp(d.modified_at)),
            deleted: false,
        })
    })
    .await?;
    hubspot_object::<hubspot::Contact>(run, &client, ObjectKind::CrmContact, sp, until, |c| {
        Record::Contact(ev::CrmContact {
            id: c.id,
            first_name: c.first_name.unwrap_or_default(),
            last_name: c.last_name.unwrap_or_default(),
            email: c.email.unwrap_or_default(),
            title: c.job_title.unwrap_or_default(),
            company_id: c.company_id.unwrap_or_default(),
            modified_at: Some(timestamp(c.modified_at)),
            deleted: false,
        })
    })
    .await?;
    run.position = "pipelines".into();
    let pipelines = with_token!(run, t => client.deal_pipelines(&t));
    let records = pipelines
        .into_iter()
        .map(|p| ev::CrmPipeline {
            id: p.id,
            label: p.label,
            stages: p
                .stages
                .into_iter()
                .map(|s| ev::CrmPipelineStage {
                    id: s.id,
                    label: s.label,
                    display_order: i32::try_from(s.display_order).unwrap_or(i32::MAX),
                    kind: match s.outcome {
                        StageOutcome::Open => StageKind::Open,
                        StageOutcome::Won => StageKind::Won,
                        StageOutcome::Lost => StageKind::Lost,
                    } as i32,
                    probability: s.probability.unwrap_or_default(),
                })
                .collect(),
        })
        .collect();
    emit_pipelines(run, records).await?;
    Ok(crm_completed(run))
}

async fn hubspot_object<T: HubspotObject>(
    run: &mut Run,
    client: &HubspotClient,
    kind: ObjectKind,
    signpost: DateTime<Utc>,
    until: DateTime<Utc>,
    convert: impl Fn(T) -> Record,
) -> Result<u64, RunError> {
    if already_done(run, kind) {
        return Ok(run.progress.done(kind.slug()).unwrap_or_default());
    }
    // A read this run began before goes on from its last appended page, under its signpost.
    let resume = run.progress.walk_of(kind.slug()).cloned();
    let signpost = resume.as_ref().and_then(Walk::signpost).unwrap_or(signpost);
    let mut pull = ObjectPull::start(run, kind, signpost).await?;
    let mut page_no = 0u64;
    match pull.previous.as_ref().map(|p| p.signpost) {
        None => {
            // The first sync: the list, page by page, each batch recording where to go on.
            let (mut after, mut complete) = (None, false);
            if let Some(w) = &resume {
                pull.resume(w);
                (after, page_no, complete) = (w.after.clone(), w.pages, w.complete);
            }
            let endpoint = format!("GET /crm/v3/objects/{}", T::PATH);
            let mut guard = run.page_guard(page_no);
            while !complete {
                page_no += 1;
                run.position = format!("{} page {page_no}", T::PATH);
                run.next_page(&mut guard, &endpoint, after.as_deref())?;
                let page = with_token!(run, t => client.list_page::<T>(&t, after.as_deref()));
                let at_start = pull.mark();
                let n = page.records.len();
                for (i, r) in page.records.into_iter().enumerate() {
                    let (id, modified) = (r.id().to_string(), r.modified_at());
                    let Some(batch) = pull.push(&id, Some(modified), convert(r)) else {
                        continue;
                    };
                    let walk = if i + 1 == n && pull.batcher.pending() == 0 {
                        // The page's last record is in the batch: go on at the next page.
                        let complete = page.next.is_none();
                        pull.walk(pull.mark(), page.next.clone(), page_no, complete)
                    } else {
                        // Part of the page is: this page again, from its start.
                        pull.walk(at_start.clone(), after.clone(), page_no - 1, false)
                    };
                    pull.emit(run, batch, Some(walk)).await?;
                }
                match page.next {
                    Some(n) => after = Some(n),
                    None => complete = true,
                }
            }
            if let Some(batch) = pull.batcher.flush() {
                let walk = pull.walk(pull.mark(), None, page_no, true);
                pull.emit(run, batch, Some(walk)).await?;
            }
        }
        Some(since) => {
            let mut walker = client.modified_between::<T>(since, until);
            let endpoint = format!("POST /crm/v3/objects/{}/search", T::PATH);
            let mut guard = run.page_guard(0);
            loop {
                page_no += 1;
                run.position = format!("{} search page {page_no}", T::PATH);
                // The walker's offsets restart with each window: only the count is guarded.
                run.next_page(&mut guard, &endpoint, None)?;
                let page = with_token!(run, t => walker.next_page(client, &t));
                let Some(records) = page else { break };
                for r in records {
                    let (id, modified) = (r.id().to_string(), r.modified_at());
                    pull.take(run, &id, Some(modified), convert(r)).await?;
                }
            }
        }
    }
    let mut deletions = DeletionPull::start(run, kind, signpost).await?;
    if deletions.previous.is_some() || pull.previous.is_some() {
        let mut after: Option<String> = None;
        let mut page_no = 0u64;
        let endpoint = format!("GET /crm/v3/objects/{}?archived=true", T::PATH);
        let mut guard = run.page_guard(0);
        loop {
            page_no += 1;
            run.position = format!("{} archived page {page_no}", T::PATH);
            run.next_page(&mut guard, &endpoint, after.as_deref())?;
            let page = with_token!(run, t => client.archived_page::<T>(&t, after.as_deref()));
            for d in &page.records {
                deletions.report(run, &mut pull, d).await?;
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    finish_object(run, kind, pull, deletions).await
}

async fn emit_pipelines(run: &mut Run, pipelines: Vec<ev::CrmPipeline>) -> Result<(), RunError> {
    let mut batcher = Batcher::new(run.run_id.as_str(), ev::ObjectType::CrmPipeline);
    let n = pipelines.len() as u64;
    for p in pipelines {
        if let Some(b) = batcher.push(Record::Pipeline(p)) {
            run.emit_batch(b).await?;
        }
    }
    run.note_oversized(batcher.take_oversized());
    if let Some(b) = batcher.flush() {
        run.emit_batch(b).await?;
    }
    run.count(ObjectKind::CrmPipeline, n);
    Ok(())
}

fn crm_completed(run: &Run) -> Event {
    Event::PullCompleted(PullCompleted {
        sync_run_id: run.run_id.to_string(),
        step: SyncStep::CrmPull as i32,
        counts: run.counts(&CRM_KINDS),
    })
}

// ---- Salesforce ----------------------------------------------------------------------------

/// The single pipeline Salesforce opportunities belong to (Salesforce has stages, no pipelines).
pub const SALESFORCE_PIPELINE_ID: &str = "opportunities";

pub(crate) async fn salesforce(run: &mut Run) -> Result<Event, RunError> {
    let Some(instance) = run.api_base().await? else {
        return Err(RunError::Failed {
            kind: rp_platform::contracts::events::v1::FailureKind::Authorization,
            message: "Salesforce did not tell us the org's instance URL; reconnect Salesforce on \
                      the Connections page."
                .into(),
            location: String::new(),
        });
    };
    let client = run.ctx().clients.salesforce(&instance);
    let (now, sp) = signpost_now(run).await?;
    run.step(SyncStep::CrmPull).await?;
    let window = (now, sp);
    salesforce_object::<salesforce::Account>(run, &client, ObjectKind::CrmCompany, window, |a| {
        let (id, modified) = (a.id.clone(), a.system_modstamp);
        let r = Record::Company(ev::CrmCompany {
            id: a.id,
            name: a.name.unwrap_or_default(),
            domain: String::new(),
            website: a.website.unwrap_or_default(),
            country: a.billing_country.unwrap_or_default(),
            modified_at: a.system_modstamp.map(timestamp),
            deleted: false,
        });
        (id, modified, r)
    })
    .await?;
    salesforce_object::<salesforce::Opportunity>(run, &client, ObjectKind::CrmDeal, window, |o| {
        let (id, modified) = (o.id.clone(), o.system_modstamp);
        let r = Record::Deal(ev::CrmDeal {
            id: o.id,
            name: o.name.unwrap_or_default(),
            amount: o.amount.unwrap_or_default(),
            currency: o.currency_iso_code.unwrap_or_default(),
            stage_id: o.stage_name.unwrap_or_default(),
            pipeline_id: SALESFORCE_PIPELINE_ID.into(),
            created_at: o.created_date.map(timestamp),
            closed_at: o
                .close_date
                .map(|d| timestamp(d.and_time(NaiveTime::MIN).and_utc())),
            company_ids: o.account_id.into_iter().collect(),
            modified_at: o.system_modstamp.map(timestamp),
            deleted: false,
        });
        (id, modified, r)
    })
    .await?;
    salesforce_object::<salesforce::Contact>(run, &client, ObjectKind::CrmContact, window, |c| {
        let (id, modified) = (c.id.clone(), c.system_modstamp);
        let r = Record::Contact(ev::CrmContact {
            id: c.id,
            first_name: c.first_name.unwrap_or_default(),
            last_name: c.last_name.unwrap_or_default(),
            email: c.email.unwrap_or_default(),
            title: c.title.unwrap_or_default(),
            company_id: c.account_id.unwrap_or_default(),
            modified_at: c.system_modstamp.map(timestamp),
            deleted: false,
        });
        (id, modified, r)
    })
    .await?;
    run.position = "opportunity stages".into();
    let mut stages = with_token!(run, t => client.opportunity_stages(&t));
    stages.sort_by_key(|s| s.sort_order.unwrap_or(i64::MAX));
    let pipeline = ev::CrmPipeline {
        id: SALESFORCE_PIPELINE_ID.into(),
        label: "Opportunities".into(),
        stages: stages
            .into_iter()
            .filter(|s| s.is_active)
            .map(|s| ev::CrmPipelineStage {
                id: s.master_label.clone(),
                label: s.master_label,
                display_order: s
                    .sort_order
                    .and_then(|o| i32::try_from(o).ok())
                    .unwrap_or_default(),
                kind: match (s.is_closed, s.is_won) {
                    (true, true) => StageKind::Won,
                    (true, false) => StageKind::Lost,
                    (false, _) => StageKind::Open,
                } as i32,
                probability: s.default_probability.unwrap_or_default() / 100.0,
            })
            .collect(),
    };
    emit_pipelines(run, vec![pipeline]).await?;
    Ok(crm_completed(run))
}

async fn salesforce_object<T: SalesforceObject>(
    run: &mut Run,
    client: &SalesforceClient,
    kind: ObjectKind,
    (now, signpost): (DateTime<Utc>, DateTime<Utc>),
    convert: impl Fn(T) -> (String, Option<DateTime<Utc>>, Record),
) -> Result<u64, RunError> {
    if already_done(run, kind) {
        return Ok(run.progress.done(kind.slug()).unwrap_or_default());
    }
    let mut pull = ObjectPull::start(run, kind, signpost).await?;
    let since = pull.previous.as_ref().map(|p| p.signpost);
    let mut batch_no = 1u64;
    run.position = format!("{} batch {batch_no}", T::NAME);
    let endpoint = format!("GET /services/data/../query ({})", T::NAME);
    let mut guard = run.page_guard(0);
    run.next_page(&mut guard, &endpoint, None)?;
    let mut page = with_token!(run, t => client.modified_since::<T>(&t, since));
    loop {
        for r in std::mem::take(&mut page.records) {
            // Boundary keyed by version: SystemModstamp's whole seconds cannot tell edits apart.
            let key = r.version_key();
            let (_, modified, record) = convert(r);
            pull.take(run, &key, modified, record).await?;
        }
        let Some(next) = page.next.take() else { break };
        batch_no += 1;
        run.position = format!("{} batch {batch_no}", T::NAME);
        run.next_page(&mut guard, &endpoint, Some(&next))?;
        page = with_token!(run, t => client.query_more::<T>(&t, &next));
    }
    let mut deletions = DeletionPull::start(run, kind, signpost).await?;
    if deletions.previous.is_some() || pull.previous.is_some() {
        // Salesforce keeps deletions 30 days and refuses an older start: past that (a long
        // disconnection) the oldest deletions are gone from the API.
        let earliest = now - chrono::Duration::days(29);
        let from = deletions
            .previous
            .as_ref()
            .map_or(earliest, |p| p.signpost)
            .max(earliest);
        if from < now {
            run.position = format!("{} deleted records", T::NAME);
            let page = with_token!(run, t => client.deleted_between::<T>(&t, from, now));
            // The deletion index may lag: the next pull starts where this answer is complete.
            deletions.signpost = page.next_start(from, deletions.signpost);
            deletions.boundary = BoundaryCollector::new(deletions.signpost);
            for d in &page.records {
                deletions.report(run, &mut pull, d).await?;
            }
        }
    }
    finish_object(run, kind, pull, deletions).await
}
