//! The task that reads one source for as long as it is wanted: connect with a timeout, read at the
//! polling interval (or receive subscription changes), deliver, and on failure reconnect with backoff.
//! Every source has its own task, so a slow or dead device delays nobody else.

use std::future::Future;
use std::time::Duration;

use haltless_schemas::Reading;
use tokio_util::sync::CancellationToken;

use super::status::SharedStatus;
use super::{Points, SourceError, SourceSpec};
use crate::modbus::ModbusDevice;
use crate::opcua::OpcUaDevice;

/// A reading and the (machine, metric) it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct PointReading {
    /// Machine name.
    pub machine: String,
    /// The reading (its metric named).
    pub reading: Reading,
}

/// What one poll brought: readings, and the problems of the points that could not be read.
#[derive(Debug, Default)]
pub struct PollOutcome {
    /// Readings of the points read.
    pub readings: Vec<PointReading>,
    /// Problems with single requests or points (the connection itself is fine).
    pub problems: Vec<String>,
}

/// Where a source's readings go: the Kafka path of the platform, or the edge agent's disk buffer.
pub trait Outlet: Send + Sync + 'static {
    /// Delivers readings durably, or explains why not.
    fn deliver(
        &self,
        readings: Vec<PointReading>,
    ) -> impl Future<Output = Result<(), SourceError>> + Send;
}

/// Reconnect pacing.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// First wait after a failure.
    pub min_backoff: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// A connected or connectable device.
enum Device {
    Modbus(ModbusDevice),
    Opcua(Box<OpcUaDevice>),
}

impl Device {
    fn new(spec: &SourceSpec) -> Self {
        match &spec.points {
            Points::Modbus(points) => Device::Modbus(ModbusDevice::new(spec, points.clone())),
            Points::Opcua(points) => {
                Device::Opcua(Box::new(OpcUaDevice::new(spec, points.clone())))
            }
        }
    }

    async fn connect(&mut self) -> Result<(), SourceError> {
        match self {
            Device::Modbus(d) => d.connect().await,
            Device::Opcua(d) => d.connect().await,
        }
    }

    async fn next(&mut self) -> Result<PollOutcome, SourceError> {
        match self {
            Device::Modbus(d) => d.next().await,
            Device::Opcua(d) => d.next().await,
        }
    }

    async fn disconnect(&mut self) {
        match self {
            Device::Modbus(d) => d.disconnect().await,
            Device::Opcua(d) => d.disconnect().await,
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
    let mut device = Device::new(&spec);
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
                    metrics::counter!(crate::metric_names::SOURCE_ERRORS, "source" => name.clone())
                        .increment(1);
                }
                metrics::counter!(crate::metric_names::SOURCE_READINGS, "source" => name.clone())
                    .increment(count as u64);
                record(&status, now, count, problem);
            }
            Err(e) => {
                tracing::warn!(source = %name, error = %e, retry_in_ms = backoff.as_millis() as u64, "source failed");
                metrics::counter!(crate::metric_names::SOURCE_ERRORS, "source" => name.clone())
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
