-- Type-filtered reads (operators' `rp events tail --type`, the attribution rebuild, which asks
-- for several types at once) follow the log by position and filter as they go: an index on
-- (event_type, position) cannot give position order across several types, and it cost every
-- append a sixth index to maintain (docs/benchmarks.md, "Spine").
DROP INDEX IF EXISTS events_type_position;
