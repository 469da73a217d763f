-- A drain's own attributes (drains add|set --attribute K=V): OTLP resource
-- attributes and remote-write labels of its every series, in the order
-- given, as key, value, key, value …
ALTER TABLE drains
    ADD COLUMN attributes text[] NOT NULL DEFAULT '{}';
