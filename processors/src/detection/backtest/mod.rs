//! Backtests: the detectors over recorded series, scored with the Numenta Anomaly Benchmark's method.
//!
//! - [`series`]: one series or a corpus through the detection logic, exactly as it runs live.
//! - [`nab`]: NAB's scoring, and its CSV and label formats.

pub mod nab;
pub mod series;
