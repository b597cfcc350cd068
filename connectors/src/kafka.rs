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

/// Client configuration for a producer to `brokers` with the given delivery semantics.
pub fn producer_config(brokers: &str, delivery: Delivery, timeout: Duration) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers)
        .set("message.timeout.ms", timeout.as_millis().to_string())
        .set("linger.ms", "5")
        .set("compression.type", "lz4");
    match delivery {
        Delivery::AtLeastOnceIdempotent => {
            cfg.set("enable.idempotence", "true").set("acks", "all");
        }
    }
    cfg
}
