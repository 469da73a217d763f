-- Several outlets per drain, posting progress per (drain, outlet), and
-- minutes that become ready when every writer has written them.

-- The outlets of the drains in the table: at most one of each kind per
-- drain. Credentials are sealed under DRAINMETER_KEY: Librato's token as
-- before (bound to the drain id), the other kinds' URL and headers as JSON
-- (bound to "drain id/kind").
CREATE TABLE outlets (
    drain_id    text NOT NULL REFERENCES drains (id),
    kind        text NOT NULL CHECK (kind IN ('librato', 'otlp', 'remotewrite')),
    url         text NOT NULL DEFAULT '',   -- the endpoint without credentials or query, for lists and pages
    username    text NOT NULL DEFAULT '',   -- Librato's user (an e-mail; not secret)
    secret      bytea NOT NULL,             -- sealed credentials
    temporality text NOT NULL DEFAULT '',   -- OTLP: cumulative or delta
    version     bigint NOT NULL DEFAULT 1,  -- incremented on every change: dynos reload, paused lanes retry
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (drain_id, kind)
);
INSERT INTO outlets (drain_id, kind, username, secret)
    SELECT id, 'librato', librato_user, librato_token FROM drains WHERE librato_token IS NOT NULL;
-- drains.librato_user and librato_token are no longer read; they stay for
-- dynos of the previous version still running during the deploy.

-- Writers: every web process, and how far it has written its minutes. A
-- minute M is ready when every live writer has closed_through >= M.
CREATE TABLE writers (
    id             text PRIMARY KEY,          -- the dyno and a boot id
    closed_through bigint NOT NULL,           -- every minute starting at or before this is closed and written
    heartbeat_at   timestamptz NOT NULL DEFAULT now(),
    gone_at        timestamptz                -- shut down cleanly: holds nothing back any more
);

-- Per drain: every minute starting at or before sealed_through is sealed (its
-- partials merged into one row of minutes). A partial for such a minute that
-- still arrives is moved to a later minute of the drain (shifted), never
-- dropped.
CREATE TABLE drain_rollups (
    drain_id       text PRIMARY KEY,
    sealed_through bigint NOT NULL DEFAULT 0
);
INSERT INTO drain_rollups (drain_id, sealed_through)
    SELECT drain_id, max(minute) FROM minutes WHERE done_at IS NOT NULL GROUP BY drain_id;

-- Sealed minutes: the merged data of every writer. Rows of the previous
-- version that were not posted yet are removed: their partials are sealed
-- anew. Their claim columns stay for old dynos during the deploy, which
-- never claim a row whose next_attempt is 'infinity'.
DELETE FROM minutes WHERE done_at IS NULL;
ALTER TABLE minutes
    ADD COLUMN data bytea,
    ADD COLUMN sealed_at timestamptz,
    ADD COLUMN series int NOT NULL DEFAULT 0,
    ALTER COLUMN ready_at SET DEFAULT now(),
    ALTER COLUMN next_attempt SET DEFAULT 'infinity';
CREATE INDEX minutes_sealed ON minutes (drain_id, minute) WHERE sealed_at IS NOT NULL;

ALTER TABLE partials ADD COLUMN shifted_from bigint; -- the minute the data belongs to, when shifted
CREATE INDEX partials_minute_only ON partials (minute);

-- Data moved to a later minute because its minute was sealed when it arrived.
CREATE TABLE shifts (
    id           bigserial PRIMARY KEY,
    drain_id     text NOT NULL,
    from_minute  bigint NOT NULL,
    to_minute    bigint NOT NULL,
    measurements bigint NOT NULL,
    writer       text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shifts_drain ON shifts (drain_id, at);

-- Lanes: one per (drain, outlet), where its posting stands. Minutes go out
-- strictly in order, one lane at a time on one dyno (a lease).
CREATE TABLE lanes (
    drain_id       text NOT NULL,
    outlet         text NOT NULL,          -- the outlet's kind (log, librato, otlp, remotewrite)
    posted_through bigint,                 -- the last minute finished (posted or given up); NULL: none yet
    chunk_minute   bigint,                 -- the minute being posted ...
    chunk          int NOT NULL DEFAULT 0, -- ... and how many of its requests the receiver accepted
    encoding       text NOT NULL DEFAULT '', -- the outlet's encoding the chunks and totals belong to
    totals         bytea,                  -- running totals after posted_through (cumulative receivers)
    lease_owner    text,
    lease_until    timestamptz,
    next_attempt   timestamptz NOT NULL DEFAULT now(),
    attempts       int NOT NULL DEFAULT 0,
    state          text NOT NULL DEFAULT 'ok',
    paused_version text,                   -- the outlet version whose credentials were refused
    last_error     text,
    last_error_at  timestamptz,
    last_post_at   timestamptz,
    posted         bigint NOT NULL DEFAULT 0,
    rejected       bigint NOT NULL DEFAULT 0,
    dropped        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (drain_id, outlet)
);
-- Lanes of drains that posted before: they continue after their last minute.
INSERT INTO lanes (drain_id, outlet, posted_through)
    SELECT m.drain_id, CASE WHEN o.drain_id IS NULL THEN 'log' ELSE 'librato' END, max(m.minute)
    FROM minutes m LEFT JOIN outlets o ON o.drain_id = m.drain_id AND o.kind = 'librato'
    WHERE m.done_at IS NOT NULL
    GROUP BY m.drain_id, o.drain_id;
