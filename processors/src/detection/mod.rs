//! Anomaly detection, from the pure logic to the processor that runs it on Kafka.
//!
//! - [`logic`]: the detectors, rules and alert lifecycle as pure logic: no I/O, event time only.
//! - [`processor`]: the exactly-once processor that runs [`logic`] on `haltless.readings.v1` and writes
//!   `haltless.alerts.v1`, with its state in a compacted changelog.
//! - [`generation`]: generations of detection (each replay builds one) and which one is active.
//! - [`supervisor`]: starts the tasks of a generation (detectors, alerts projections) and moves a process
//!   to the next generation when a replay switches over.
//! - [`replay`]: `haltless replay`, reprocessing history into a new generation, then switching over.
//! - [`backtest`]: `haltless backtest`, the same logic over recorded series, scored with NAB's method.

pub mod backtest;
pub mod generation;
pub mod logic;
pub mod processor;
pub mod replay;
pub mod supervisor;
