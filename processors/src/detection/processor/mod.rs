//! The detector processor: consumes `haltless.readings.v1`, runs [`crate::detection::logic`] per machine
//! and produces `haltless.alerts.v1` exactly once, with its state in a compacted changelog topic.
//!
//! - `run`: [`DetectorRuntime`], the detectors as a transform of the shared exactly-once loop
//!   (`runtime::transactional`).
//! - `state`: each machine's state in the changelog, and its restore when partitions are assigned.
//! - `rulebook`: the rules in force per tenant, from the compacted rules topic ([`RuleChange`]).
//! - `config`: the `detector.*` settings.

mod config;
mod rulebook;
mod run;
mod state;

pub use config::DetectorConfig;
pub use rulebook::{RuleBook, RuleChange, StateReset};
pub use run::{alert_record, DetectorRuntime, DetectorTopics};
/// The changelog's record format: for tools and tests that read or write it without Kafka.
pub use state::{codec as state_codec, decode as decode_state, encode as encode_state};
