//! Settings of the projections.

use serde::Deserialize;

/// How the projections consume and batch.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectionConfig {
    /// Consumer groups are named `<group_prefix>-<projection>` (readings, alerts, alert-actions); instances
    /// in one group share the topic's partitions.
    pub group_prefix: String,
    /// Most Kafka messages (each a batch of readings) written in one database transaction.
    pub batch_max_messages: usize,
    /// Longest wait, in milliseconds, for a batch to fill once its first message arrived.
    pub batch_max_wait_ms: u64,
    /// How long (ms) the group waits for a silent instance before giving its partitions to the others;
    /// a crashed instance's partitions resume elsewhere after this long.
    pub session_timeout_ms: u64,
    /// Consumers of the readings projection's group in one process, each with its own database connection,
    /// writing the partitions the group gives it in its own transactions (the other projections, a few rows
    /// a second, keep one).
    pub writers: usize,
}

impl Default for ProjectionConfig {
    fn default() -> Self {
        Self {
            group_prefix: "haltless-projection".into(),
            batch_max_messages: 2_000,
            batch_max_wait_ms: 100,
            session_timeout_ms: 10_000,
            writers: 2,
        }
    }
}
