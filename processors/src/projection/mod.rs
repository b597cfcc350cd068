//! Projections of topics into PostgreSQL.

pub mod readings;
