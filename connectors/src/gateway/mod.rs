//! The ingest gateway: validation of `POST /api/v1/ingest` bodies and their write to Kafka.

pub mod config;
pub mod sink;
pub mod validate;

pub use config::GatewayConfig;
pub use sink::{ReadingsSink, SinkError};
pub use validate::{EntryError, IngestError, MachineReadings, ValidRequest};
