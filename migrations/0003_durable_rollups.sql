-- Durable rollups shared by many web dynos. Every dyno writes partial
-- minutes (mergeable state: counts, sums, sketches) as it goes; once every
-- dyno has written its last partial of a minute (ready_at), one outlet
-- worker claims the minute, merges the partials, posts it and marks it
-- posted. The first claim freezes the minute: a partial written after that
-- is counted late and never re-posted.
CREATE TABLE minutes (
    drain_id      text NOT NULL,
    minute        bigint NOT NULL,              -- unix seconds of the minute's start
    ready_at      timestamptz NOT NULL,         -- minute end + GRACE + POST_DELAY
    frozen_at     timestamptz,                  -- set by the first claim
    lease_owner   text,                         -- the worker posting it now
    lease_until   timestamptz,
    attempts      int NOT NULL DEFAULT 0,
    next_attempt  timestamptz NOT NULL DEFAULT now(),
    done_at       timestamptz,                  -- posted (or given up on: see outcome)
    outcome       text,
    late_partials int NOT NULL DEFAULT 0,
    PRIMARY KEY (drain_id, minute)
);
CREATE INDEX minutes_due ON minutes (next_attempt) WHERE done_at IS NULL;
CREATE INDEX minutes_done ON minutes (done_at) WHERE done_at IS NOT NULL;

CREATE TABLE partials (
    id         bigserial PRIMARY KEY,
    drain_id   text NOT NULL,
    minute     bigint NOT NULL,
    writer     text NOT NULL,                   -- the dyno (and boot) that wrote it
    data       bytea NOT NULL,                  -- rollup.Minute.AppendBinary
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX partials_minute ON partials (drain_id, minute);
