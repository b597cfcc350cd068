//! The Haltless HTTP layer and the composition root of the `haltless` binary.
//!
//! - [`cli`]: the command line; each subcommand is handed to the crate that owns its work.
//! - [`app`]: the composition root: [`app::Application`] connects the services, binds the listener,
//!   assembles the router and starts the roles one process runs.
//! - [`state`]: [`state::AppState`], what every handler shares.
//! - [`config`]: layered settings (defaults, a TOML file, `HALTLESS__SECTION__KEY` variables).
//! - [`routes`]: the HTTP endpoints, one module per resource group.
//! - [`auth`]: the `Caller` extractor (access tokens or API keys), roles, the rate-limit middleware.
//! - [`error`]: the one error type every endpoint answers with.
//! - [`openapi`]: the OpenAPI document, generated from the handlers' annotations.
//! - [`assets`]: the browser assets built with npm and embedded at build time (the docs page, Swagger UI).
//! - [`pdf`]: the PDF report writer (tables and vector bar charts).
//! - [`live`]: the dashboard WebSocket and the per-instance hub of live data behind it.
//! - [`events`]: publishing the API's own events (rule changes, alert actions) to Kafka.
//! - [`tenants`]: creation of tenants, users and keys (demo, CLI, sign-up) and a tenant's limits in force.
//! - [`platform`]: the `haltless tenant` commands of platform operators.
//! - [`telemetry`]: logs and the Prometheus recorder.
//! - [`time`]: parsing and formatting instants as the API takes and gives them.
//! - [`tools`]: the plant simulator and the benchmarks.

pub mod app;
pub mod assets;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod events;
pub mod live;
pub mod openapi;
pub mod pdf;
pub mod platform;
pub mod routes;
pub mod state;
pub mod telemetry;
pub mod tenants;
pub mod time;
pub mod tools;
