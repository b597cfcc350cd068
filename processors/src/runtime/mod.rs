//! The Kafka runtime processors share.
//!
//! - [`kafka`]: client settings, one per delivery guarantee.
//! - [`codecs`]: the topics' codecs as configured (schema registry or single-object encoding).
//! - [`batch`]: collecting a batch of messages from a consumer.
//! - [`projection`]: the exactly-once Kafka → PostgreSQL projection runner.
//! - [`transactional`]: the exactly-once Kafka → Kafka loop of the stateful processors (detectors, RUL
//!   predictor): consume, transform, produce output and state changelog with the offsets in one transaction.
//! - [`changelog`]: reading the state changelogs of newly assigned partitions back (one reader per session,
//!   every partition at once), and restoring states from them.
//! - [`transform`]: what a stateful processor does with its input, for the loop.
//! - `shards`: a transform's session split by partition, so a batch is processed on several threads.
//! - [`lag`]: consumer lag per group and partition from librdkafka's statistics, reaching 0 when caught up.
//! - [`follow`]: following a compacted configuration topic (rules, models) from its start.
//! - [`tasks`]: processors as background tasks of a role.
//! - [`offsets`]: a topic's offsets by time and at its ends.
//! - [`topics`]: creating topics and checking their partition counts.
//! - [`error`]: the runtime's error type, with its retry classification.

pub mod batch;
pub mod changelog;
pub mod codecs;
pub mod error;
pub mod follow;
pub mod kafka;
pub mod lag;
pub mod offsets;
pub mod projection;
mod shards;
pub mod tasks;
pub mod topics;
pub mod transactional;
pub mod transform;

pub use error::ProcessorError;
pub use projection::{Place, Projection, ProjectionRunner, RunnerConfig};
