//! Writes validated readings to `haltless.readings.v1` and waits for Kafka's acknowledgement.
//!
//! While Kafka is out, one write at a time probes it (waiting up to the produce timeout), at most one
//! a second (`Retry-After: 1`); the others answer "unavailable" at once instead of each waiting the whole
//! timeout. The first write that Kafka acknowledges ends the outage.
//!
//! The records waiting for Kafka are bounded (`queue.buffering.max.kbytes`): a write that does not fit is
//! refused at once as [`SinkError::Full`], without waiting and without taking it for an outage, so memory
//! stays bounded when Kafka is slower than the requests (or their clients gave up and sent again).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use haltless_schemas::{metric_names, Codec, ReadingBatch};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::kafka::{producer_config, Delivery};

/// Why a write did not complete.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Kafka did not acknowledge every record in time; the caller may retry.
    #[error("kafka did not acknowledge the write: {0}")]
    Unavailable(String),
    /// The producer's queue of records waiting for Kafka is full: the process is at capacity (Kafka
    /// acknowledges slower than writes come). Nothing of the write from the record refused on is queued;
    /// the caller may retry shortly.
    #[error("the queue of records waiting for kafka is full: {0}")]
    Full(String),
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
        matches!(self, SinkError::Unavailable(_) | SinkError::Full(_))
    }
}

/// An idempotent, `acks=all` producer of reading batches.
#[derive(Clone)]
pub struct ReadingsSink {
    producer: FutureProducer,
    topic: String,
    codec: Codec,
    timeout: Duration,
    outage: Arc<Outage>,
}

/// The default bound of the records waiting for Kafka's acknowledgement, in KiB.
pub const DEFAULT_QUEUE_KBYTES: usize = 64 * 1024;

/// How long after a failed write the next one may probe Kafka.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Whether Kafka is out: when its writes began to fail, when the last one failed, and whether a write
/// is probing it.
#[derive(Debug, Default)]
struct Outage {
    failing: Mutex<Option<(Instant, Instant)>>,
    probing: AtomicBool,
}

/// Ends a probe however the write ends (completed, failed or dropped).
struct Probe<'a>(&'a Outage);

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        self.0.probing.store(false, Ordering::Release);
    }
}

impl Outage {
    fn failing(&self) -> Option<(Instant, Instant)> {
        *self.failing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a write's outcome.
    fn record(&self, ok: bool) {
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        *failing = if ok {
            None
        } else {
            let now = Instant::now();
            Some((failing.map_or(now, |(since, _)| since), now))
        };
    }

    /// `Ok(None)`: no outage, write; `Ok(Some(probe))`: write as the outage's probe; `Err`: answer at once
    /// (a probe is under way, or the last failure is too recent).
    fn admit(&self) -> Result<Option<Probe<'_>>, SinkError> {
        let Some((since, last)) = self.failing() else {
            return Ok(None);
        };
        if last.elapsed() < PROBE_EVERY || self.probing.swap(true, Ordering::AcqRel) {
            return Err(SinkError::Unavailable(format!(
                "kafka has been unreachable for {} s",
                since.elapsed().as_secs()
            )));
        }
        Ok(Some(Probe(self)))
    }
}

impl std::fmt::Debug for ReadingsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadingsSink")
            .field("topic", &self.topic)
            .finish()
    }
}

impl ReadingsSink {
    /// A sink writing to `topic` on `brokers`, giving up on a write after `timeout`, with at most
    /// [`DEFAULT_QUEUE_KBYTES`] of records waiting for Kafka.
    pub fn new(
        brokers: &str,
        topic: &str,
        codec: Codec,
        timeout: Duration,
    ) -> Result<Self, SinkError> {
        Self::bounded(
            brokers,
            topic,
            codec,
            timeout,
            DEFAULT_QUEUE_KBYTES,
            crate::kafka::DEFAULT_LINGER_MS,
        )
    }

    /// Like [`ReadingsSink::new`], with at most `queue_kbytes` KiB of records waiting for Kafka (a write
    /// past it is refused at once, [`SinkError::Full`]) and batches that wait `linger_ms` for more records.
    pub fn bounded(
        brokers: &str,
        topic: &str,
        codec: Codec,
        timeout: Duration,
        queue_kbytes: usize,
        linger_ms: u64,
    ) -> Result<Self, SinkError> {
        let producer = producer_config(brokers, Delivery::AtLeastOnceIdempotent, timeout)
            .set(
                "queue.buffering.max.kbytes",
                queue_kbytes.max(1).to_string(),
            )
            .set("linger.ms", linger_ms.to_string())
            .create()?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            codec,
            timeout,
            outage: Arc::default(),
        })
    }

    /// Writes every batch and returns once Kafka acknowledged all of them.
    ///
    /// On error some batches may have been written; a retry is safe because the readings store keys rows
    /// by (tenant, machine, metric, event time).
    pub async fn write(&self, batches: &[ReadingBatch]) -> Result<(), SinkError> {
        let _probe = self.outage.admit()?;
        let result = self.send(batches).await;
        match &result {
            Ok(()) => self.outage.record(true),
            Err(SinkError::Unavailable(_)) => self.outage.record(false),
            // A full queue says Kafka is slow, not out: the next write that fits goes ahead.
            Err(_) => {}
        }
        result
    }

    async fn send(&self, batches: &[ReadingBatch]) -> Result<(), SinkError> {
        let started = Instant::now();
        let mut deliveries = Vec::with_capacity(batches.len());
        for batch in batches {
            let payload = batch.encode(&self.codec)?;
            let key = batch.key();
            let record = FutureRecord::to(&self.topic)
                .key(&key)
                .payload(&payload)
                .timestamp(batch.ingest_time_ms);
            // A full local queue is back-pressure: refuse at once rather than wait for room. The records
            // already queued for this write still go; a retry is safe (see above).
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((e @ KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    return Err(SinkError::Full(e.to_string()))
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_outage_is_probed_by_one_write_a_second_and_ends_with_a_success() {
        let outage = Outage::default();
        assert!(matches!(outage.admit(), Ok(None)), "no outage");
        outage.record(false);
        assert!(outage.admit().is_err(), "within a second of the failure");
        *outage.failing.lock().unwrap_or_else(|e| e.into_inner()) =
            outage.failing().map(|(s, l)| (s, l - PROBE_EVERY));
        let probe = outage.admit();
        assert!(matches!(probe, Ok(Some(_))), "one write probes");
        assert!(outage.admit().is_err(), "the others do not, meanwhile");
        drop(probe);
        outage.record(true);
        assert!(matches!(outage.admit(), Ok(None)), "the outage ended");
    }
}
