//! The Kafka runtime processors share.
//!
//! - [`kafka`]: client settings, one per delivery guarantee.
//! - [`codecs`]: the topics' codecs as configured (schema registry or single-object encoding).
//! - [`batch`]: collecting a batch of messages from a consumer.
//! - [`projection`]: the exactly-once Kafka → PostgreSQL projection runner.
//! - [`tasks`]: processors as background tasks of a role.
//! - [`offsets`]: a topic's offsets by time and at its ends.
//! - [`topics`]: creating topics and checking their partition counts.
//! - [`error`]: the runtime's error type, with its retry classification.

pub mod batch;
pub mod codecs;
pub mod error;
pub mod kafka;
pub mod offsets;
pub mod projection;
pub mod tasks;
pub mod topics;

pub use error::ProcessorError;
pub use projection::{Place, Projection, ProjectionRunner, RunnerConfig};
