//! HTTP endpoints, one module per group.

pub mod accounts;
pub mod alerts;
pub mod api_keys;
pub mod health;
pub mod ingest;
pub mod machines;
pub mod readings;
pub mod rules;
pub mod sources;
pub mod users;
