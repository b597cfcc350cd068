//! Kafka producer settings shared by every ingest path.

use std::time::Duration;

use rdkafka::ClientConfig;

/// Delivery semantics of a producer, chosen explicitly in code rather than as loose flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// `acks=all` with the idempotent producer: a write is acknowledged once every in-sync replica has it,
    /// and retries never duplicate or reorder it.
    AtLeastOnceIdempotent,
}

/// How long a producer waits for more records before sending a partition's batch (`linger.ms`), unless
/// configured otherwise.
pub const DEFAULT_LINGER_MS: u64 = 5;

/// Client configuration for a producer to `brokers` with the given delivery semantics.
pub fn producer_config(brokers: &str, delivery: Delivery, timeout: Duration) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers)
        .set("message.timeout.ms", timeout.as_millis().to_string())
        .set("linger.ms", DEFAULT_LINGER_MS.to_string())
        .set("compression.type", "lz4");
    match delivery {
        Delivery::AtLeastOnceIdempotent => {
            cfg.set("enable.idempotence", "true").set("acks", "all");
        }
    }
    cfg
}
