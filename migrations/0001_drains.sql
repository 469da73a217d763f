-- Drains are the tenants: one per sending app (or group of apps), each with
-- its own credentials, Librato account and naming options.
CREATE TABLE drains (
    id            text PRIMARY KEY,                 -- the user part of the drain URL
    name          text NOT NULL UNIQUE,             -- usually the Heroku app's name
    secret_hash   bytea NOT NULL,                   -- SHA-256 of the drain URL's password; never the secret
    librato_user  text NOT NULL DEFAULT '',
    librato_token bytea,                            -- AES-256-GCM under DRAINMETER_KEY; NULL: rollups are logged
    prefix        text NOT NULL DEFAULT '',
    source_prefix text NOT NULL DEFAULT '',
    process_types boolean NOT NULL DEFAULT true,    -- roll web.1, web.2 … into web
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz                       -- set by `drains rm`; a disabled drain is refused
);
