//! Direct ingestion: `haltless connectors` polls every enabled ingest source stored in PostgreSQL.
//!
//! Instances share the sources through leases ([`lease`]): each enabled source is leased to exactly one
//! live instance, leases are renewed by heartbeats, and an instance that stops renewing loses its
//! sources to the others once the lease expires. [`runner`] keeps one task per leased source, restarts a
//! task when its source changes and publishes each source's health. [`outlet`] sends readings through
//! the gateway's validation and Kafka writer. [`sealing`] seals the stored definitions' secrets and
//! re-wraps them after a key rotation.

pub mod config;
pub mod lease;
pub mod outlet;
pub mod runner;
pub mod sealing;

pub use config::ConnectorsConfig;
pub use runner::Connectors;
