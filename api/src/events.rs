//! Publishing the API's own events (rule changes, alert actions, model activations) to Kafka, answered only once acknowledged.

use std::time::Duration;

use axum::http::StatusCode;
use haltless_connectors::kafka::{producer_config, Delivery};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::error::ApiError;

/// The largest message of the models topic (and of a producer writing a model).
pub const MODEL_MESSAGE_BYTES: usize = 32 << 20;

/// An idempotent, `acks=all` producer for the API's events.
#[derive(Clone)]
pub struct EventPublisher {
    producer: FutureProducer,
    timeout: Duration,
}

impl std::fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventPublisher")
    }
}

impl EventPublisher {
    /// A publisher to `brokers`, giving up after `timeout`.
    pub fn new(brokers: &str, timeout: Duration) -> Result<Self, rdkafka::error::KafkaError> {
        let producer = producer_config(brokers, Delivery::AtLeastOnceIdempotent, timeout)
            // A model activation carries the model (a few MB of JSON at most).
            .set("message.max.bytes", MODEL_MESSAGE_BYTES.to_string())
            .set("compression.type", "lz4")
            .create()?;
        Ok(Self { producer, timeout })
    }

    /// Writes one event and waits for Kafka's acknowledgement; 503 when it does not come in time.
    pub async fn publish(&self, topic: &str, key: &str, payload: &[u8]) -> Result<(), ApiError> {
        self.producer
            .send(
                FutureRecord::to(topic).key(key).payload(payload),
                self.timeout,
            )
            .await
            .map(|_| ())
            .map_err(|(e, _)| {
                tracing::warn!(error = %e, topic, "event not acknowledged");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the change could not be stored durably in time; retry",
                )
                .retry_after(1)
            })
    }
}
