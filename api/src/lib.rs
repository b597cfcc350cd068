//! The Haltless REST API and the roles the `haltless` binary runs.
//!
//! - [`config`]: layered settings (defaults, a TOML file, `HALTLESS__SECTION__KEY` variables).
//! - [`app`]: [`app::Application`], which binds the HTTP listener and runs the chosen roles.
//! - [`routes`]: the HTTP endpoints: ingest, machines, readings queries, rules, alerts, health and metrics.
//! - [`auth`]: API keys (generation, hashing, the `X-API-Key` extractor).
//! - [`error`]: the one error type every endpoint answers with.
//! - [`events`]: publishing the API's own events (rule changes, alert actions) to Kafka.
//! - [`tenants`]: creation of tenants, users and keys (used by the demo and the CLI).
//! - [`telemetry`]: logs and the Prometheus recorder.
//! - [`backtest`]: the detectors over recorded series, scored with NAB's method.
//! - [`agent`]: `haltless agent`, the edge agent with its health and metrics endpoints.
//! - [`simulate`] and [`bench`]: the demo plant simulator and the end-to-end ingest benchmark.

pub mod agent;
pub mod app;
pub mod auth;
pub mod backtest;
pub mod bench;
pub mod config;
pub mod error;
pub mod events;
pub mod routes;
pub mod simulate;
pub mod telemetry;
pub mod tenants;
pub mod time;
