//! HTTP endpoints, one module per group.

pub mod alerts;
pub mod health;
pub mod ingest;
pub mod machines;
pub mod readings;
pub mod rules;
pub mod sources;
