//! Commands for trying and measuring the platform from outside, like a client would.
//!
//! - [`simulate`]: `haltless simulate`, the demo plant: registers machines and posts their readings.
//! - [`engines`]: the demo's turbofan engines, degrading to failure under a RUL model trained at start.
//! - [`bench`]: `haltless bench`, ingest end to end and the database's COPY ceiling.
//! - [`bench_paced`]: `haltless bench --rate` / `--phases`, paced (open-loop) ingest: offered against
//!   accepted load, shed answers, consumer lag and memory every interval, and overload and recovery.
//! - [`bench_detect`]: `haltless bench-detect`, the detectors on Kafka with exactly-once on.
//! - [`bench_predict`]: `haltless bench-predict`, RUL training time, streaming inference on one core and
//!   reading → prediction latency through the predictor on Kafka.
//! - [`bench_alerts`]: `haltless bench-alerts`, alert raised → webhook received through the alert engine.
//! - [`bench_queries`]: `haltless bench-queries`, the readings queries on a month of data, before and after
//!   continuous aggregates and compression.
//! - [`bench_ws`]: `haltless bench-ws`, many dashboard sockets while machines send readings at 1 Hz.
//! - [`faults`]: the demo's fault schedule, which `simulate` plays on its machines.
//! - [`scratch`]: the throw-away database a benchmark runs in.

pub mod bench;
pub mod bench_alerts;
pub mod bench_detect;
pub mod bench_paced;
pub mod bench_predict;
pub mod bench_queries;
pub mod bench_ws;
pub mod engines;
pub mod faults;
pub mod scratch;
pub mod simulate;
