-- Per-route series of router lines (conventions.md section 8), opt-in per
-- drain: the route templates, in order of precedence, and the mode (off;
-- templates: paths that match none count into route "other"; auto:
-- templates first, other paths normalized).
ALTER TABLE drains
    ADD COLUMN routes        text[] NOT NULL DEFAULT '{}',
    ADD COLUMN route_metrics text   NOT NULL DEFAULT 'off'
        CHECK (route_metrics IN ('off', 'templates', 'auto'));
