//! The ingest gateway's checks and writer, which every door shares through [`crate::admission`].
//!
//! - [`validate`]: `POST /api/v1/ingest` bodies parsed and checked whole, and the check of one reading
//!   ([`validate::check_reading`]) the pollers use too; `typed`, its fast path for bodies that are valid as
//!   they stand.
//! - [`sink`]: the Kafka writer (`acks=all`, idempotent) that answers only once every record is acknowledged.
//! - [`config`]: the `gateway.*` settings (body and request limits, clock skew, produce timeout).

pub mod config;
pub mod sink;
mod typed;
pub mod validate;

pub use config::GatewayConfig;
pub use sink::{ReadingsSink, SinkError};
pub use validate::{EntryError, IngestError, MachineReadings, ValidRequest};
