//! Events in, events out.
//!
//! The attribution step of a sync cycle starts when the matcher has published its matches for
//! the run (AccountsMatched) and ends with AttributionUpdated, whose `as_of` is the time the
//! numbers were switched. The metrics themselves (influenced and sourced pipeline, revenue, credit
//! by model) are computed here as issue 6 lands; this step is what the sync sequence waits on.

use rp_platform::consumer::{Handler, HandlerContext, HandlerError};
use rp_platform::contracts::events::v1::{
    AttributionUpdated, SyncStep, SyncStepStarted, envelope::Event,
};
use rp_platform::eventlog::{ExpectedVersion, RecordedEvent};

pub struct AttributionStep;

impl AttributionStep {
    pub const EVENT_TYPES: &'static [&'static str] = &["AccountsMatched"];
}

impl Handler for AttributionStep {
    async fn handle(
        &self,
        ctx: &mut HandlerContext,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        let Some(Event::AccountsMatched(matched)) = event.event() else {
            return Ok(());
        };
        if matched.remaining_parts > 0 {
            // More parts of this step's result follow; the step ends with the last.
            return Ok(());
        }
        if matched.sync_run_id.is_empty() {
            // Matches changed outside a sync (a manual decision): numbers switch at the next
            // completed sync, never mid-cycle.
            return Ok(());
        }
        let run = matched.sync_run_id.clone();
        let started = ctx.new_event(Event::SyncStepStarted(SyncStepStarted {
            sync_run_id: run.clone(),
            step: SyncStep::Attribution as i32,
        }));
        let updated = ctx.new_event(Event::AttributionUpdated(AttributionUpdated {
            sync_run_id: run.clone(),
            as_of: Some(rp_platform::contracts::timestamp(chrono::Utc::now())),
        }));
        ctx.emit(
            format!("syncrun-{run}"),
            ExpectedVersion::Any,
            vec![started, updated],
        );
        Ok(())
    }
}
