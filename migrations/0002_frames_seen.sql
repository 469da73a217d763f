-- Batches already counted, so that logplex's retry of a batch (same
-- Logplex-Frame-Id) is counted once even when it reaches another web dyno.
-- Rows older than an hour are deleted.
CREATE TABLE frames_seen (
    drain_id text NOT NULL,
    frame_id text NOT NULL,
    seen_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (drain_id, frame_id)
);
CREATE INDEX frames_seen_seen_at ON frames_seen (seen_at);
