-- The notification service's projection (services/notification/src/store.rs). Everything here
-- can be rebuilt from the log: `notifications` from the `notifications-<workspace>` streams,
-- `notification_integrations` from the connection events (see `store::rebuild`).

-- Which provider each integration is, learned from ConnectionConnected / Reconnected /
-- Disconnected and SyncStarted (SyncFailed does not say). Prefixed so it cannot collide with
-- another service's projection in the shared database.
CREATE TABLE IF NOT EXISTS notification_integrations (
    integration_id TEXT PRIMARY KEY,
    workspace_id   UUID NOT NULL,
    -- 'linkedin', 'hubspot', 'salesforce'
    provider       TEXT NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per NotificationRaised; NotificationResolved sets resolved_at, NotificationsRead
-- sets read_at.
CREATE TABLE IF NOT EXISTS notifications (
    notification_id          UUID PRIMARY KEY,
    workspace_id             UUID NOT NULL,
    integration_id           TEXT NOT NULL,
    -- provider code, '' when unknown
    provider                 TEXT NOT NULL,
    -- '<integration id>:sync_interrupted' or '<integration id>:disconnected'
    incident_key             TEXT NOT NULL,
    -- 'sync_interrupted', 'connection_disconnected' or 'resolved'
    kind                     TEXT NOT NULL,
    title                    TEXT NOT NULL,
    body                     TEXT NOT NULL,
    action                   TEXT NOT NULL,
    link                     TEXT NOT NULL,
    resolves_notification_id UUID,
    -- the NotificationRaised event's occurred_at
    raised_at                TIMESTAMPTZ NOT NULL,
    read_at                  TIMESTAMPTZ,
    resolved_at              TIMESTAMPTZ
);

-- List: newest first, keyset paging on (raised_at, notification_id).
CREATE INDEX IF NOT EXISTS notifications_workspace_newest
    ON notifications (workspace_id, raised_at DESC, notification_id DESC);
-- The bell's number.
CREATE INDEX IF NOT EXISTS notifications_workspace_unread
    ON notifications (workspace_id) WHERE read_at IS NULL;
-- The incidents still open for an integration (one notification per incident).
CREATE INDEX IF NOT EXISTS notifications_open_incidents
    ON notifications (workspace_id, integration_id)
    WHERE resolved_at IS NULL AND kind IN ('sync_interrupted', 'connection_disconnected');
