//! Pushes the buffer to the cloud: the oldest segments first, as one gzip `POST /api/v1/ingest`, deleted
//! only after a 202. Network errors, 429 and 5xx are retried with backoff; any other answer means the
//! cloud refuses those readings for good (e.g. an unknown machine), so they are set aside and counted
//! instead of blocking everything behind them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Serialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::buffer::DiskBuffer;
use super::config::CloudConfig;

/// What the pusher has done.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PushStats {
    /// Readings the cloud acknowledged since start.
    pub pushed: u64,
    /// Readings the cloud refused for good since start.
    pub rejected: u64,
    /// When the last push succeeded (ms since the epoch).
    pub last_push_ms: Option<i64>,
    /// The last push failure.
    pub last_error: Option<String>,
    /// When it happened (ms since the epoch).
    pub last_error_ms: Option<i64>,
}

enum PushError {
    Retry(String),
    Refused(String),
}

/// Why the pusher could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PushSetupError {
    /// `cloud.ca_file` is unreadable or holds no certificate.
    #[error("cloud.ca_file {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("the HTTP client: {0}")]
    Client(String),
}

/// The HTTP client of the pusher: TLS by rustls, trusting the public roots and the CAs of `cloud.ca_file`.
fn client(cloud: &CloudConfig) -> Result<reqwest::Client, PushSetupError> {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_millis(cloud.timeout_ms));
    if let Some(path) = &cloud.ca_file {
        for certificate in read_ca_file(path)? {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder
        .build()
        .map_err(|e| PushSetupError::Client(e.to_string()))
}

fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, PushSetupError> {
    let refused = |reason: String| PushSetupError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| refused(e.to_string()))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| refused(format!("not PEM certificates: {e}")))?;
    if certificates.is_empty() {
        return Err(refused("holds no PEM certificate".into()));
    }
    Ok(certificates)
}

/// A request that got no answer, as the operator reads it: the chain of causes (reqwest's own text is
/// only "error sending request"), and what to do when TLS refused the platform's certificate.
fn describe(url: &str, e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    // rustls says e.g. "invalid peer certificate: UnknownIssuer".
    if text.contains("certificate") {
        format!(
            "{url}: TLS refused the platform's certificate ({text}); if a private CA issued it, name that CA's PEM file in cloud.ca_file"
        )
    } else {
        format!("{url}: {text}")
    }
}

/// The pushing loop.
pub struct Pusher {
    client: reqwest::Client,
    cloud: CloudConfig,
    buffer: Arc<DiskBuffer>,
    stats: Arc<Mutex<PushStats>>,
}

impl Pusher {
    /// A pusher of `buffer` to `cloud`, recording into `stats`.
    pub fn new(
        cloud: CloudConfig,
        buffer: Arc<DiskBuffer>,
        stats: Arc<Mutex<PushStats>>,
    ) -> Result<Self, PushSetupError> {
        Ok(Self {
            client: client(&cloud)?,
            cloud,
            buffer,
            stats,
        })
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, PushStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pushes until `shutdown`; what is not pushed stays on disk for the next run.
    pub async fn run(self, shutdown: CancellationToken) {
        let min = Duration::from_millis(self.cloud.min_backoff_ms);
        let max = Duration::from_millis(self.cloud.max_backoff_ms).max(min);
        let idle = Duration::from_millis(self.cloud.push_interval_ms);
        let mut backoff = min;
        loop {
            let wait = match self.buffer.oldest(self.cloud.batch_max_readings as u64) {
                Err(e) => {
                    tracing::error!(error = %e, "reading the agent buffer");
                    max
                }
                Ok((segments, _)) if segments.is_empty() => idle,
                Ok((segments, entries)) => {
                    let count = entries.len() as u64;
                    let result = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        r = self.push(entries) => r,
                    };
                    let now = crate::now_ms();
                    match result {
                        Ok(()) => {
                            self.buffer.remove(&segments);
                            metrics::counter!(crate::metric_names::AGENT_PUSHED).increment(count);
                            let mut s = self.stats();
                            s.pushed += count;
                            s.last_push_ms = Some(now);
                            backoff = min;
                            // More may be waiting: go on at once.
                            Duration::ZERO
                        }
                        Err(PushError::Refused(reason)) => {
                            tracing::error!(readings = count, %reason, "the cloud refused readings; they are set aside");
                            self.buffer.remove(&segments);
                            let mut s = self.stats();
                            s.rejected += count;
                            s.last_error = Some(reason);
                            s.last_error_ms = Some(now);
                            Duration::ZERO
                        }
                        Err(PushError::Retry(reason)) => {
                            tracing::warn!(readings = count, %reason, retry_in_ms = backoff.as_millis() as u64, "push failed");
                            metrics::counter!(crate::metric_names::AGENT_PUSH_FAILURES)
                                .increment(1);
                            let mut s = self.stats();
                            s.last_error = Some(reason);
                            s.last_error_ms = Some(now);
                            let wait = backoff;
                            backoff = (backoff * 2).min(max);
                            wait
                        }
                    }
                }
            };
            if wait > Duration::ZERO {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    async fn push(&self, entries: Vec<Value>) -> Result<(), PushError> {
        let body = serde_json::to_vec(&json!({ "readings": entries }))
            .map_err(|e| PushError::Refused(e.to_string()))?;
        let mut gz = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
        gz.write_all(&body)
            .map_err(|e| PushError::Retry(e.to_string()))?;
        let gz = gz.finish().map_err(|e| PushError::Retry(e.to_string()))?;
        let url = format!("{}/api/v1/ingest", self.cloud.url.trim_end_matches('/'));
        let response = self
            .client
            .post(&url)
            .header("x-api-key", &self.cloud.api_key)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .header("x-haltless-source", "agent")
            .body(gz)
            .send()
            .await
            .map_err(|e| PushError::Retry(describe(&url, &e)))?;
        let status = response.status();
        if status.as_u16() == 202 {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        let reason = format!(
            "{url} answered {status}: {}",
            text.chars().take(500).collect::<String>()
        );
        if status.is_server_error()
            || status.as_u16() == 429
            || status.as_u16() == 408
            || status.as_u16() == 401
        {
            // 401 too: a key being rotated must not cost the buffered readings.
            Err(PushError::Retry(reason))
        } else {
            Err(PushError::Refused(reason))
        }
    }
}
