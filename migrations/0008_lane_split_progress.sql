-- A request that the receiver answered "too large" (413) is split in parts.
-- Progress inside such a request is recorded as the items (series, gauges)
-- of it already accepted, so that a dyno taking over the lane resends
-- exactly the part that was not, never one the receiver already has.
ALTER TABLE lanes ADD COLUMN chunk_items int NOT NULL DEFAULT 0;
