//! The task that reads one source for as long as it is wanted: connect with a timeout, read at the
//! polling interval (or receive subscription changes), deliver, and on failure reconnect with backoff.
//! Every source has its own task, so a slow or dead device delays nobody else.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use haltless_schemas::outbound::OutboundPolicy;
use tokio_util::sync::CancellationToken;

use super::config::SourceSpec;
use super::device::PointReading;
use super::error::SourceError;
use super::status::SharedStatus;
use super::trust::CertificateTrust;

/// Where a source's readings go: the Kafka path of the platform, or the edge agent's disk buffer.
pub trait Outlet: Send + Sync + 'static {
    /// Delivers readings durably, or explains why not.
    fn deliver(
        &self,
        readings: Vec<PointReading>,
    ) -> impl Future<Output = Result<(), SourceError>> + Send;
}

/// Reconnect pacing, the outbound policy, and the source's certificate trust and key folder.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// First wait after a failure.
    pub min_backoff: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
    /// Which addresses the device may have (the default refuses every non-public address).
    pub outbound: Arc<OutboundPolicy>,
    /// The server certificate pinned for the source ([`super::Connection::trust`]).
    pub trust: Option<CertificateTrust>,
    /// The tenant's private folder for client keys ([`super::Connection::state_dir`]).
    pub state_dir: Option<PathBuf>,
    /// The `source` label of the source's metrics; `None`: its name. The platform's pollers give the
    /// protocol's name: source names are chosen by tenants, and a public `/metrics` must neither show
    /// them nor grow a series per source.
    pub metrics_label: Option<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
            outbound: Arc::default(),
            trust: None,
            state_dir: None,
            metrics_label: None,
        }
    }
}

/// Reads `spec` into `outlet` until `shutdown`, recording health in `status`. `name` labels logs.
pub async fn run_source<O: Outlet>(
    name: String,
    spec: SourceSpec,
    outlet: O,
    status: SharedStatus,
    options: RunOptions,
    shutdown: CancellationToken,
) {
    let mut connection = spec.connection(options.outbound.clone());
    connection.trust = options.trust.clone();
    connection.state_dir = options.state_dir.clone();
    let mut device = spec.device.open(connection);
    let label = options
        .metrics_label
        .clone()
        .unwrap_or_else(|| name.clone());
    let mut backoff = options.min_backoff;
    let mut connected = false;
    loop {
        let read = async {
            if !connected {
                device.connect().await?;
                tracing::info!(source = %name, endpoint = %spec.endpoint, "connected");
            }
            device.next().await
        };
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = read => r,
        };
        // Delivery is never cut short by a shutdown: what was read is delivered and counted, or not at all.
        let result = match outcome {
            Ok(outcome) => {
                let count = outcome.readings.len();
                let delivered = if count > 0 {
                    outlet.deliver(outcome.readings).await
                } else {
                    Ok(())
                };
                delivered.map(|()| (count, outcome.problems))
            }
            Err(e) => Err(e),
        };
        let now = crate::now_ms();
        match result {
            Ok((count, problems)) => {
                connected = true;
                backoff = options.min_backoff;
                let problem = (!problems.is_empty()).then(|| problems.join("; "));
                if let Some(p) = &problem {
                    tracing::warn!(source = %name, problem = %p, "some points could not be read");
                    metrics::counter!(crate::metric_names::SOURCE_ERRORS, "source" => label.clone())
                        .increment(1);
                }
                metrics::counter!(crate::metric_names::SOURCE_READINGS, "source" => label.clone())
                    .increment(count as u64);
                record(&status, now, count, problem);
            }
            Err(e) => {
                tracing::warn!(source = %name, error = %e, retry_in_ms = backoff.as_millis() as u64, "source failed");
                metrics::counter!(crate::metric_names::SOURCE_ERRORS, "source" => label.clone())
                    .increment(1);
                record(&status, now, 0, Some(e.to_string()));
                if !matches!(e, SourceError::Delivery(_)) {
                    device.disconnect().await;
                    connected = false;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(options.max_backoff);
            }
        }
    }
    device.disconnect().await;
    tracing::info!(source = %name, "source stopped");
}

fn record(status: &SharedStatus, now: i64, count: usize, problem: Option<String>) {
    if let Ok(mut s) = status.lock() {
        s.record(now, count, problem);
    }
}
