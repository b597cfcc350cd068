//! Remaining-useful-life prediction from run-to-failure history: pure logic, no I/O, apart from the
//! files of `command` and the Kafka runtime of `predictor`.
//!
//! - [`cmapss`]: the C-MAPSS text format (unit, cycle, 3 settings, 21 sensors per row), checked.
//! - [`features`]: operating conditions, per-condition normalisation, constant sensors dropped, window
//!   statistics over each unit's recent cycles ([`features::History`]).
//! - [`fit`]: one training recipe: options, feature rows with their targets, the three models.
//! - [`gbt`]: the gradient-boosted trees (squared and quantile losses).
//! - [`model`]: the model: train (cross-validated), predict with an interval, explain, (de)serialise.
//! - [`stream`]: streaming prediction: the model serving each machine by event time, and a machine's
//!   window that turns named readings into cycles and predictions (the predictor's state).
//! - [`evaluate`]: cross-validation by unit, the NASA score, interval coverage.
//! - [`table`]: uploaded training data (named CSV or C-MAPSS), and a machine's history cut into lives.
//! - [`predictor`]: the streaming predictor's Kafka processor (readings in, predictions out, exactly once).
//! - [`command`]: `haltless train` and `haltless predict`, the files in and the report out.

pub mod cmapss;
pub mod command;
mod error;
pub mod evaluate;
pub mod features;
pub mod fit;
pub mod gbt;
pub mod model;
pub mod predictor;
pub mod stream;
pub mod table;

pub use error::PredictionError;
pub use fit::{Prediction, TrainOptions};
pub use model::RulModel;
