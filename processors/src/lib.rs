//! Everything that consumes Haltless topics.
//!
//! - [`config`]: the settings sections processors read (`kafka`, `detector`, `projection`).
//! - [`runtime`]: what processors share: consumer settings, topic creation, and the exactly-once
//!   Kafka → PostgreSQL projection runner ([`runtime::projection`]).
//! - [`detection`]: the detectors, rules and alert lifecycle as pure logic ([`detection::logic`]), the
//!   exactly-once processor that runs them on `haltless.readings.v1` ([`detection::processor`]), and
//!   backtests ([`detection::backtest`]).
//! - [`alerting`]: the alert engine: escalation policies, grouping, silences and maintenance, and
//!   delivery to webhooks, Slack, Teams, email and Web Push, each notification once, and the
//!   connectivity watchdog.
//! - [`prediction`]: remaining-useful-life models as pure logic (C-MAPSS input, health features,
//!   gradient-boosted trees with intervals, cross-validation by unit) and `haltless train`/`predict`.
//! - [`projection`]: the projections themselves; [`projection::readings`] materialises
//!   `haltless.readings.v1` into the `readings` table.

pub mod alerting;
pub mod config;
pub mod detection;
pub mod prediction;
pub mod projection;
pub mod runtime;
