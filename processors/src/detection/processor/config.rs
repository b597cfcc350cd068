//! Settings of the detector processor.

use serde::Deserialize;

/// How the detectors consume, batch and commit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Consumer group; instances in one group share the readings partitions and their state.
    pub group: String,
    /// This instance's stable name. A restarted instance with the same name fences its predecessor and aborts
    /// its open transaction at once; two live instances must have different names.
    pub instance: String,
    /// Most Kafka messages processed in one transaction.
    pub batch_max_messages: usize,
    /// Longest wait (ms) for a batch to fill once its first message arrived.
    pub batch_max_wait_ms: u64,
    /// Least time (ms) between the starts of two transactions; under load, what arrives meanwhile joins the
    /// next batch.
    pub commit_interval_ms: u64,
    /// Kafka transaction timeout (ms): how long a crashed instance's open transaction can hold back readers.
    pub transaction_timeout_ms: u64,
    /// Consumer group session timeout (ms): how soon a crashed instance's partitions move to another.
    pub session_timeout_ms: u64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            group: "haltless-detectors".into(),
            instance: std::env::var("HOSTNAME").unwrap_or_else(|_| "0".into()),
            batch_max_messages: 5_000,
            batch_max_wait_ms: 10,
            commit_interval_ms: 100,
            transaction_timeout_ms: 10_000,
            session_timeout_ms: 10_000,
        }
    }
}

impl DetectorConfig {
    /// The exactly-once loop's settings.
    pub fn loop_config(&self) -> crate::runtime::transactional::LoopConfig {
        crate::runtime::transactional::LoopConfig {
            group: self.group.clone(),
            instance: self.instance.clone(),
            batch_max_messages: self.batch_max_messages,
            batch_max_wait_ms: self.batch_max_wait_ms,
            commit_interval_ms: self.commit_interval_ms,
            transaction_timeout_ms: self.transaction_timeout_ms,
            session_timeout_ms: self.session_timeout_ms,
        }
    }
}
