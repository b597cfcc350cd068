-- A source's protocol is checked by the registry of protocols in code (connectors/src/protocols.rs), so
-- that a new protocol needs no migration. The column stays: it names the protocol of each stored source.

ALTER TABLE ingest_sources DROP CONSTRAINT ingest_sources_protocol_check;
