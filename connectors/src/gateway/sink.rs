//! Writes validated readings to `haltless.readings.v1` and waits for Kafka's acknowledgement.

use std::time::{Duration, Instant};

use futures::future::join_all;
use haltless_schemas::{metric_names, Codec, ReadingBatch};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::kafka::{producer_config, Delivery};

/// Why a write did not complete.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Kafka did not acknowledge every record in time; the caller may retry.
    #[error("kafka did not acknowledge the write: {0}")]
    Unavailable(String),
    /// A record could not be encoded: a bug, not the client's fault.
    #[error("encoding: {0}")]
    Encode(#[from] haltless_schemas::CodecError),
    /// The producer could not be created.
    #[error("kafka client: {0}")]
    Client(#[from] KafkaError),
}

impl SinkError {
    /// Whether retrying the same write may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(self, SinkError::Unavailable(_))
    }
}

/// An idempotent, `acks=all` producer of reading batches.
#[derive(Clone)]
pub struct ReadingsSink {
    producer: FutureProducer,
    topic: String,
    codec: Codec,
    timeout: Duration,
}

impl std::fmt::Debug for ReadingsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadingsSink")
            .field("topic", &self.topic)
            .finish()
    }
}

impl ReadingsSink {
    /// A sink writing to `topic` on `brokers`, giving up on a write after `timeout`.
    pub fn new(
        brokers: &str,
        topic: &str,
        codec: Codec,
        timeout: Duration,
    ) -> Result<Self, SinkError> {
        let producer =
            producer_config(brokers, Delivery::AtLeastOnceIdempotent, timeout).create()?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            codec,
            timeout,
        })
    }

    /// Writes every batch and returns once Kafka acknowledged all of them.
    ///
    /// On error some batches may have been written; a retry is safe because the readings store keys rows
    /// by (tenant, machine, metric, event time).
    pub async fn write(&self, batches: &[ReadingBatch]) -> Result<(), SinkError> {
        let started = Instant::now();
        let mut deliveries = Vec::with_capacity(batches.len());
        for batch in batches {
            let payload = batch.encode(&self.codec)?;
            let key = batch.key();
            let record = FutureRecord::to(&self.topic)
                .key(&key)
                .payload(&payload)
                .timestamp(batch.ingest_time_ms);
            // A full local queue is back-pressure from a slow or absent broker: answer "unavailable".
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((e, _)) => return Err(SinkError::Unavailable(e.to_string())),
            }
        }
        let acks = tokio::time::timeout(
            self.timeout + Duration::from_millis(500),
            join_all(deliveries),
        )
        .await
        .map_err(|_| {
            SinkError::Unavailable(format!("no acknowledgement within {:?}", self.timeout))
        })?;
        for ack in acks {
            match ack {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(SinkError::Unavailable(e.to_string())),
                Err(_canceled) => return Err(SinkError::Unavailable("producer shut down".into())),
            }
        }
        metrics::histogram!(metric_names::PRODUCE_SECONDS).record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Checks that a broker answers within `timeout` (for readiness probes).
    pub async fn ping(&self, timeout: Duration) -> Result<(), SinkError> {
        let producer = self.producer.clone();
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), Timeout::After(timeout))
                .map(|_| ())
        })
        .await
        .map_err(|e| SinkError::Unavailable(e.to_string()))?
        .map_err(|e| SinkError::Unavailable(e.to_string()))
    }

    /// Waits up to `timeout` for queued records to be delivered (at shutdown).
    pub fn flush(&self, timeout: Duration) {
        let _ = self.producer.flush(Timeout::After(timeout));
    }
}
