-- A request that the receiver answered "too large" (413) is split in parts.
-- Progress inside such a request is recorded as {minute, request, items}:
-- the items (series, gauges) of request `request` of that minute already
-- accepted, so that a dyno taking over the lane resends exactly the part
-- that was not, never one the receiver already has. It counts only while
-- chunk_minute and chunk still say the same (a dyno of an older version
-- records progress without it).
ALTER TABLE lanes ADD COLUMN split_at bigint[];

-- An OTLP outlet may also send each measure's percentiles as gauges
-- (NAME.p50, .p95, .p99), for receivers that keep only a histogram's count,
-- sum, min and max (Dynatrace).
ALTER TABLE outlets ADD COLUMN percentile_gauges boolean NOT NULL DEFAULT false;
