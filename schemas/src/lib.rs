//! Topic schemas of Haltless and their wire encoding.
//!
//! - [`readings`]: `haltless.readings.v1`, the batches of sensor readings every ingest path writes.
//! - [`alerts`]: `haltless.alerts.v1`, alert transitions written exactly once by the detectors.
//! - [`actions`]: `haltless.alert-actions.v1`, acknowledgements and snoozes of alerts, as events.
//! - [`rules`]: `haltless.rules.v1`, every version of every rule, as events.
//! - [`predictions`]: `haltless.predictions.v1`, remaining useful life per machine cycle, exactly once.
//! - [`models`]: `haltless.models.v1`, each tenant's RUL models and the machines they serve, as events.
//! - [`predictor_state`]: `haltless.predictor-state.v1`, the RUL predictor's changelog: each machine's window.
//! - [`detector_state`]: `haltless.detector-state.v1`, the detectors' changelog: each machine's state.
//! - [`codec`]: Avro encoding of a topic's records, framed as Avro single-object encoding (the default)
//!   or the Confluent schema-registry wire format, so standard tools can decode every message.
//! - [`error`]: [`CodecError`], the error of every codec here.
//! - [`fingerprint`]: the specification's schema fingerprint (CRC-64-AVRO of the Parsing Canonical Form)
//!   that single-object headers carry.
//! - `fields`: helpers mapping Avro values onto Rust types, shared by the topic modules.
//! - [`compat`]: the checked-in schema history and the BACKWARD-compatibility check run by the tests.
//! - [`metric_names`]: the name of every Prometheus metric the platform exports.
//! - [`outbound`]: the policy of which addresses the platform may connect to for a tenant (device
//!   pollers, notification channels), with refusals that name a category, never an address.
//! - [`secrets`]: sealing secrets at rest (envelope encryption, AES-256-GCM, a key id with each value,
//!   rotation by re-wrapping), for source passwords and channel secrets alike.
//! - [`tier`]: the subscription tiers' figures and a tenant's limits in force, which every ingest path,
//!   the API and the retention sweep enforce.
//!
//! Nothing here performs I/O: connectors and processors compose these codecs with their transports.

pub mod actions;
pub mod alerts;
pub mod codec;
pub mod compat;
pub mod detector_state;
pub mod error;
mod fields;
pub mod fingerprint;
pub mod metric_names;
pub mod models;
pub mod outbound;
pub mod predictions;
pub mod predictor_state;
pub mod readings;
pub mod rules;
pub mod secrets;
pub mod tier;

pub use alerts::{AlertRecord, ALERTS_TOPIC};
pub use codec::{Codec, WireFormat};
pub use error::CodecError;
pub use readings::{Quality, Reading, ReadingBatch, Source, READINGS_TOPIC};
