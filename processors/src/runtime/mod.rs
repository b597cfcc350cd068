//! The Kafka runtime processors share.

pub mod batch;
pub mod error;
pub mod generation;
pub mod kafka;
pub mod offsets;
pub mod projection;
pub mod topics;

pub use error::ProcessorError;
pub use generation::Generation;
pub use projection::{Projection, ProjectionRunner, RunnerConfig};
