//! The edge agent: reads local sources of any registered protocol with the same code as the platform's
//! pollers, keeps every reading in a bounded buffer on disk ([`buffer`]) and pushes it to the cloud's
//! `POST /api/v1/ingest` with gzip and retries ([`push`]), so that a cloud outage or an agent restart loses
//! nothing. [`run`] ties them together and reports health; [`server`] is `haltless agent`, the agent with
//! its health and metrics endpoints; [`config`] is the site file.

pub mod buffer;
pub mod config;
pub mod push;
pub mod run;
pub mod server;

pub use buffer::DiskBuffer;
pub use config::AgentConfig;
pub use run::{Agent, AgentHealth};
