-- Secret rotation without a dropped batch: after `drains rotate-secret` the
-- previous secret stays valid until previous_secret_expires_at (the
-- overlap), so that the app's old drain URL keeps working until it is
-- replaced. `rotate-secret --finish` clears both columns.
ALTER TABLE drains
    ADD COLUMN previous_secret_hash       bytea,       -- SHA-256 of the previous secret; never the secret
    ADD COLUMN previous_secret_expires_at timestamptz; -- the previous secret is refused from then on
