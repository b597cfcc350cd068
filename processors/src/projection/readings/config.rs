//! Settings of the readings projection.

use serde::Deserialize;

/// How the readings projection consumes and batches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReadingsProjectionConfig {
    /// Consumer group; instances in one group share the topic's partitions.
    pub group: String,
    /// Most Kafka messages (each a batch of readings) written in one database transaction.
    pub batch_max_messages: usize,
    /// Longest wait, in milliseconds, for a batch to fill once its first message arrived.
    pub batch_max_wait_ms: u64,
    /// How long (ms) the group waits for a silent instance before giving its partitions to the others;
    /// a crashed instance's partitions resume elsewhere after this long.
    pub session_timeout_ms: u64,
}

impl Default for ReadingsProjectionConfig {
    fn default() -> Self {
        Self {
            group: "haltless-projection-readings".into(),
            batch_max_messages: 2_000,
            batch_max_wait_ms: 100,
            session_timeout_ms: 10_000,
        }
    }
}
