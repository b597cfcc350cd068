//! Everything that consumes Haltless topics.
//!
//! - [`runtime`]: what processors share: consumer settings, topic creation, and the exactly-once
//!   Kafka → PostgreSQL projection runner ([`runtime::projection`]).
//! - [`detect`]: the detectors, rules and alert lifecycle as pure logic, and backtests.
//! - [`detector`]: the exactly-once processor that runs them on `haltless.readings.v1`.
//! - [`projection`]: the projections themselves; [`projection::readings`] materialises
//!   `haltless.readings.v1` into the `readings` table.

pub mod detect;
pub mod detector;
pub mod projection;
pub mod runtime;
