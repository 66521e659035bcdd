-- Where a running pull is (src/pull/progress.rs), so that whoever runs the job next (a replica
-- taking over an expired lease, a restarted process, or the same worker retrying after the
-- database came back) continues from the last appended page instead of the object's start.
-- Written in the transaction of each append that moves it, so it never runs ahead of the log.
ALTER TABLE pull_jobs ADD COLUMN IF NOT EXISTS progress JSONB;
