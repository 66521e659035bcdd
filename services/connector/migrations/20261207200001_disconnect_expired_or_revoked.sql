-- A refused refresh whose cause nothing we know decides (expired or revoked): its own reason, so
-- the user is never told one cause when it may have been the other.
ALTER TABLE connector_connections DROP CONSTRAINT connector_connections_disconnect_reason_check;
ALTER TABLE connector_connections ADD CONSTRAINT connector_connections_disconnect_reason_check
    CHECK (disconnect_reason IN ('user_requested', 'revoked', 'expired', 'expired_or_revoked'));
