//! Consumer settings, one per delivery guarantee.

use rdkafka::ClientConfig;

/// How a consumer's progress is made durable; an explicit choice per processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerDelivery {
    /// Progress lives in the sink's own transaction (PostgreSQL for projections); Kafka's committed
    /// offsets are only a hint for where to start fetching.
    OffsetsInSink,
}

/// A consumer of committed data only (`read_committed`) in `group`, never auto-committing.
pub fn consumer_config(brokers: &str, group: &str, delivery: ConsumerDelivery) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    match delivery {
        ConsumerDelivery::OffsetsInSink => {
            cfg.set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false");
        }
    }
    cfg
}
