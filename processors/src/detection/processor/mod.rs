//! The detector processor: consumes `haltless.readings.v1`, runs [`crate::detection::logic`] per machine and produces
//! `haltless.alerts.v1` exactly once, with its state in a compacted changelog topic.

mod config;
mod rulebook;
mod run;
mod state;

pub use config::DetectorConfig;
pub use rulebook::{RuleBook, RuleChange};
pub use run::{DetectorRuntime, DetectorTopics};
