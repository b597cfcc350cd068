//! Projections of topics into PostgreSQL: [`readings`] (the time series) and [`alerts`] (alerts, their
//! transitions and the actions people took on them); [`retention`] deletes each tenant's readings older
//! than its tier keeps; `config` holds the `projection.*` settings.

pub mod alerts;
mod config;
pub mod readings;
pub mod retention;

pub use config::ProjectionConfig;
