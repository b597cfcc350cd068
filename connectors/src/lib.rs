//! Everything that brings readings into Haltless.
//!
//! - [`gateway`]: the ingest gateway's request validation ([`gateway::validate`]) and the Kafka writer
//!   that answers only once every record is acknowledged ([`gateway::sink`]).
//! - [`kafka`]: the producer settings every ingest path shares.
//!
//! The HTTP route itself (`POST /api/v1/ingest`) lives in the API crate, which owns authentication; it
//! hands the body to [`gateway::validate::parse_request`] and the result to [`gateway::ReadingsSink`].

pub mod gateway;
pub mod kafka;
