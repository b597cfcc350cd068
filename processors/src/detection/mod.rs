//! Anomaly detection, from the pure logic to the processor that runs it on Kafka.
//!
//! - [`logic`]: the detectors, rules and alert lifecycle as pure logic: no I/O, event time only.
//! - [`processor`]: the exactly-once processor that runs [`logic`] on `haltless.readings.v1` and writes
//!   `haltless.alerts.v1`, with its state in a compacted changelog.
//! - [`backtest`]: the same logic over recorded series, scored with NAB's method.

pub mod backtest;
pub mod logic;
pub mod processor;
