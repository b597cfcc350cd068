//! HTTP endpoints, one module per group.

pub mod health;
pub mod ingest;
pub mod machines;
pub mod readings;
