-- Trust on first use of device servers' certificates (OPC-UA): the SHA-256 fingerprint pinned for each
-- source (the first certificate its server presented, or the one an administrator accepted), and the one
-- the server presented last, written by the instance polling the source.

ALTER TABLE ingest_sources
    ADD COLUMN certificate_sha256 text CHECK (certificate_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN certificate_pinned_at timestamptz;

ALTER TABLE ingest_source_status
    ADD COLUMN presented_certificate_sha256 text;
