//! Backtests: the detectors over recorded series, scored with the Numenta Anomaly Benchmark's method.
//!
//! - [`series`]: one series or a corpus through the detection logic, exactly as it runs live.
//! - [`nab`]: NAB's scoring, and its CSV and label formats.
//! - [`run`]: the command: CSV files, a NAB folder or a range of the readings topic in, results files and
//!   scores out.

pub mod nab;
mod run;
pub mod series;

pub use run::{run, BacktestConfig, TopicRange};
