-- The metrics explorer in the durable mode: a compact per-name summary of
-- each sealed minute (written once, in the sealing transaction), the last
-- refused pairs (their metric token only) and the names over the series
-- caps, from every dyno. Kept for STATUS_RETENTION.

CREATE TABLE explorer_names (
    drain_id text NOT NULL,
    minute   bigint NOT NULL,           -- unix seconds
    name     text NOT NULL,
    kind     text NOT NULL,
    unit     text NOT NULL DEFAULT '',
    sources  integer NOT NULL,
    count    bigint NOT NULL,           -- measurements, each once
    value    double precision NOT NULL,
    p50      double precision NOT NULL DEFAULT 0,
    p95      double precision NOT NULL DEFAULT 0,
    p99      double precision NOT NULL DEFAULT 0,
    detail   jsonb NOT NULL,            -- the whole summary: sum, min, max, per source, per route
    PRIMARY KEY (drain_id, minute, name)
);
CREATE INDEX explorer_names_minute ON explorer_names (minute);

CREATE TABLE explorer_minutes (
    drain_id text NOT NULL,
    minute   bigint NOT NULL,
    names    integer NOT NULL,          -- names kept
    omitted  integer NOT NULL,          -- names left out (over the per-drain cap)
    PRIMARY KEY (drain_id, minute)
);

CREATE TABLE explorer_refused (
    id       bigserial PRIMARY KEY,
    drain_id text NOT NULL,
    at       timestamptz NOT NULL,
    reason   text NOT NULL,
    token    text NOT NULL,             -- the pair's key and the start of its value, never the line
    name     text NOT NULL DEFAULT ''
);
CREATE INDEX explorer_refused_drain ON explorer_refused (drain_id, id);

CREATE TABLE explorer_name_counts (
    drain_id text NOT NULL,
    name     text NOT NULL,
    what     text NOT NULL,             -- a refusal reason (bad_value, …), or late
    n        bigint NOT NULL,
    last_at  timestamptz NOT NULL,
    PRIMARY KEY (drain_id, name, what)
);

CREATE TABLE explorer_overflowed (
    drain_id text NOT NULL,
    name     text NOT NULL,
    at       timestamptz NOT NULL,
    PRIMARY KEY (drain_id, name)
);
