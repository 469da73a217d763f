-- What the status page shows, summed over every web dyno: counters per
-- drain and minute (each dyno adds its own, batched with its partials), the
-- apps seen and the last batch per drain, and the open series per dyno.

-- a + b, key by key, for objects of counts.
CREATE FUNCTION drainmeter_add_counts(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_object_agg(k, coalesce((a ->> k)::bigint, 0) + coalesce((b ->> k)::bigint, 0)), '{}'::jsonb)
    FROM (SELECT jsonb_object_keys(a) UNION SELECT jsonb_object_keys(b)) AS keys (k)
$$;

CREATE TABLE drain_counters (
    drain_id text NOT NULL,
    minute   bigint NOT NULL,   -- unix seconds of the minute the counts happened in (receive time)
    counters jsonb NOT NULL,    -- counter name → count, every dyno's added up
    PRIMARY KEY (drain_id, minute)
);
CREATE INDEX drain_counters_minute ON drain_counters (minute);

CREATE TABLE drain_activity (
    drain_id      text PRIMARY KEY,
    last_batch_at timestamptz,
    apps          text[] NOT NULL DEFAULT '{}' -- the Basic-auth user names seen (at most 32)
);

ALTER TABLE writers ADD COLUMN open_series jsonb NOT NULL DEFAULT '{}'; -- drain id → series of its open minutes in that dyno
