//! Everything that brings readings into Haltless.
//!
//! - [`admission`]: the one path every reading takes in, whatever its door: machine names to the tenant's
//!   machines, unknown, retired and forbidden machines refused, the tier's write limit, the writer.
//! - [`gateway`]: the ingest gateway's request validation ([`gateway::validate`]) and the Kafka writer
//!   that answers only once every record is acknowledged ([`gateway::sink`]).
//! - [`source`]: what every device source shares, whatever its protocol: the [`source::Protocol`] trait,
//!   the source definition and its validation, and the task that reads one source with timeouts,
//!   reconnects and backoff.
//! - [`protocols`]: the registry, one line per protocol; the only place that lists them.
//! - [`modbus`]: Modbus TCP (`modbus_tcp`): points, register decoding, request planning and the client.
//! - [`opcua`]: OPC-UA (`opcua`): session settings, points and the client (periodic reads and
//!   subscriptions).
//! - [`direct`]: `haltless connectors`: the sources stored in PostgreSQL, shared between instances through
//!   leases, polled into Kafka through the gateway's validation and writer.
//! - [`agent`]: the edge agent: the same sources, a bounded store-and-forward buffer on disk, and the pusher
//!   to `POST /api/v1/ingest`.
//! - [`kafka`]: the producer settings every ingest path shares.
//!
//! The HTTP route itself (`POST /api/v1/ingest`) lives in the API crate, which owns authentication; it
//! hands the body to [`gateway::validate::parse_request`] and the result to [`admission::Admission`].

pub mod admission;
pub mod agent;
pub mod direct;
pub mod gateway;
pub mod kafka;
pub mod modbus;
pub mod opcua;
pub mod protocols;
pub mod source;

pub(crate) use haltless_schemas::metric_names;

/// Milliseconds since the Unix epoch, by this machine's clock.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
