//! Projections of topics into PostgreSQL: [`readings`] (the time series) and [`alerts`] (alerts, their
//! transitions and the actions people took on them).

pub mod alerts;
mod config;
pub mod readings;

pub use config::ProjectionConfig;
