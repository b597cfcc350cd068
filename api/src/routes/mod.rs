//! HTTP endpoints, one module per group.

pub mod accounts;
pub mod alerts;
pub mod api_keys;
pub mod fleet;
pub mod health;
pub mod ingest;
pub mod machines;
pub mod maintenance;
pub mod paging;
pub mod readings;
pub mod reports;
pub mod rules;
pub mod settings;
pub mod sources;
pub mod users;
pub mod work_orders;
