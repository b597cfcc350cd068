//! Gateway settings.

use serde::Deserialize;

/// Limits the gateway enforces on every ingest request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Largest accepted request body in bytes, after gzip decompression. Larger bodies get 413.
    pub max_body_bytes: usize,
    /// Most readings accepted in one request. More get 413.
    pub max_readings_per_request: usize,
    /// How far in the future (seconds, by the gateway's clock) a reading's timestamp may lie. Further gets 422.
    pub max_future_skew_secs: u64,
    /// How long to wait for Kafka to acknowledge a request's records before answering 503 (milliseconds).
    pub produce_timeout_ms: u64,
    /// Ingest requests one process handles at once. One more is answered 503 `overloaded` at once, before
    /// its body is read: past the machine's capacity, waiting requests would only add latency and memory
    /// (at most this many × `max_body_bytes` of bodies are held).
    pub max_concurrent_requests: usize,
    /// Most KiB of records waiting in the Kafka producer for an acknowledgement (librdkafka's
    /// `queue.buffering.max.kbytes`; its cap of 100,000 messages holds too). A request whose records do not
    /// fit is answered 503 `overloaded` at once. With `max_concurrent_requests` × `max_body_bytes` of bodies, this bounds the memory that ingest
    /// can hold when Kafka falls behind, also for clients that give up and send again.
    pub producer_queue_kbytes: usize,
    /// How long the Kafka producer waits for more records before it sends a partition's batch, in
    /// milliseconds (librdkafka's `linger.ms`). A request is answered once its batches are acknowledged, so
    /// this adds to ingest latency when little arrives; under load, longer batches mean fewer produce
    /// requests for the broker to serve (librdkafka sends one per partition). In two-minute runs at 150,000
    /// readings/s, 20 ms instead of 5 halved the broker's produce requests (506 -> 264 a second), and the
    /// readings stored on the same two cores rose from 87,000 to 113,000 a second (p50 23 -> 29 ms, p99
    /// 272 -> 130 ms).
    pub producer_linger_ms: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            max_readings_per_request: 10_000,
            max_future_skew_secs: 300,
            produce_timeout_ms: 5_000,
            max_concurrent_requests: 64,
            producer_queue_kbytes: crate::gateway::sink::DEFAULT_QUEUE_KBYTES,
            producer_linger_ms: 20,
        }
    }
}
