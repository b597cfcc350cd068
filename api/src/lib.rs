//! The Haltless REST API and the roles the `haltless` binary runs.
//!
//! - [`config`]: layered settings (defaults, a TOML file, `HALTLESS__SECTION__KEY` variables).
//! - [`app`]: [`app::Application`], which binds the HTTP listener and runs the chosen roles.
//! - [`detection`]: the detectors and alerts projections of a generation, and following replays' switch-overs.
//! - [`replay`]: reprocessing history into a new generation of detection, then switching over.
//! - [`routes`]: the HTTP endpoints: ingest, machines, readings queries, rules, alerts, health and metrics.
//! - [`auth`]: the `Caller` extractor (access tokens or API keys), roles, the rate-limit middleware.
//! - [`error`]: the one error type every endpoint answers with.
//! - [`openapi`]: the OpenAPI document, generated from the handlers' annotations, and the docs page.
//! - [`pdf`]: the PDF report writer (tables and vector bar charts).
//! - [`events`]: publishing the API's own events (rule changes, alert actions) to Kafka.
//! - [`tenants`]: tiers and their limits; creation of tenants, users and keys (demo, CLI, sign-up).
//! - [`platform`]: the `haltless tenant` commands of platform operators.
//! - [`retention`]: the per-tenant deletion of readings older than the tier keeps.
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
pub mod detection;
pub mod error;
pub mod events;
pub mod openapi;
pub mod pdf;
pub mod platform;
pub mod replay;
pub mod retention;
pub mod routes;
pub mod simulate;
pub mod telemetry;
pub mod tenants;
pub mod time;
