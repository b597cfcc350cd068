//! Anomaly detection, from the pure logic to the processor that runs it on Kafka.
//!
//! - [`logic`]: the detectors, rules and alert lifecycle as pure logic: no I/O, event time only.
//! - [`processor`]: the exactly-once processor that runs [`logic`] on `haltless.readings.v1` and writes
//!   `haltless.alerts.v1`, with its state in a compacted changelog.
//! - [`generations`]: the tasks of one generation of detection (detectors, alerts projections), and a
//!   process following the active generation.
//! - [`replay`]: `haltless replay`, reprocessing history into a new generation, then switching over.
//! - [`backtest`]: `haltless backtest`, the same logic over recorded series, scored with NAB's method.

pub mod backtest;
pub mod generations;
pub mod logic;
pub mod processor;
pub mod replay;
