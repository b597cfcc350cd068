//! Projections of topics into PostgreSQL: [`readings`] (the time series), [`alerts`] (alerts, their
//! transitions and the actions people took on them) and [`predictions`] (remaining useful life per cycle); [`retention`] deletes each tenant's readings older
//! than its tier keeps; `config` holds the `projection.*` settings.

pub mod alerts;
mod config;
pub mod predictions;
pub mod readings;
pub mod retention;

pub use config::ProjectionConfig;
