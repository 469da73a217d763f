-- An OTLP outlet's cap on the buckets a side of an exponential histogram
-- has before it is downscaled (drains add|set --otlp-max-buckets); 0: the
-- default, 160, the OpenTelemetry SDK's.
ALTER TABLE outlets ADD COLUMN max_buckets integer NOT NULL DEFAULT 0
	CHECK (max_buckets = 0 OR max_buckets BETWEEN 2 AND 4096);

-- A remote write outlet may send each measure as one Prometheus native
-- histogram rather than quantile series (--remote-write-histograms native).
ALTER TABLE outlets ADD COLUMN native_histograms boolean NOT NULL DEFAULT false;
