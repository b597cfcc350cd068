//! Remaining-useful-life prediction from run-to-failure history: pure logic, no I/O.
//!
//! - [`cmapss`]: the C-MAPSS text format (unit, cycle, 3 settings, 21 sensors per row), checked.
//! - [`features`]: operating conditions, per-condition normalisation, constant sensors dropped, window
//!   statistics over each unit's recent cycles ([`features::History`]).
//! - [`fit`]: one training recipe: options, feature rows with their targets, the three models.
//! - [`gbt`]: the gradient-boosted trees (squared and quantile losses).
//! - [`model`]: the model: train (cross-validated), predict with an interval, explain, (de)serialise.
//! - [`evaluate`]: cross-validation by unit, the NASA score, interval coverage.
//! - [`command`]: `haltless train` and `haltless predict`, the files in and the report out.

pub mod cmapss;
pub mod command;
mod error;
pub mod evaluate;
pub mod features;
pub mod fit;
pub mod gbt;
pub mod model;

pub use error::PredictionError;
pub use fit::{Prediction, TrainOptions};
pub use model::RulModel;
