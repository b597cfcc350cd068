//! Everything that consumes Haltless topics.
//!
//! - [`runtime`]: what processors share: consumer settings, topic creation, and the exactly-once
//!   Kafka → PostgreSQL projection runner ([`runtime::projection`]).
//! - [`projection`]: the projections themselves; [`projection::readings`] materialises
//!   `haltless.readings.v1` into the `readings` table.

pub mod detect;
pub mod projection;
pub mod runtime;
