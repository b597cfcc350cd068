//! The RUL predictor: consumes `haltless.readings.v1`, keeps each machine's window
//! ([`crate::prediction::stream::Window`]) in a compacted changelog, and produces
//! `haltless.predictions.v1` exactly once through the shared transactional loop
//! (`runtime::transactional`). Which model serves a machine comes from the compacted models topic.
//!
//! - `run`: [`PredictorRuntime`], the predictor as a transform of the loop.
//! - `config`: the `predictor.*` settings.

mod config;
mod run;

pub use config::PredictorConfig;
pub use run::{PredictorRuntime, PredictorTopics};
