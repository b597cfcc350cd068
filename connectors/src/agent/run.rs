//! The agent: one task per local source writing into the disk buffer, one pusher, and a health report.

use std::sync::{Arc, Mutex};

use haltless_schemas::outbound::OutboundPolicy;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::buffer::{BufferError, DiskBuffer};
use super::config::{AgentConfig, AgentConfigError};
use super::push::{PushSetupError, PushStats, Pusher};
use crate::source::{
    run_source, Outlet, PointReading, RunOptions, SharedStatus, SourceError, SourceSpec,
};

/// Delivers a source's readings into the buffer: durable once written.
#[derive(Clone)]
struct BufferOutlet(Arc<DiskBuffer>);

impl Outlet for BufferOutlet {
    async fn deliver(&self, readings: Vec<PointReading>) -> Result<(), SourceError> {
        let buffer = self.0.clone();
        tokio::task::spawn_blocking(move || buffer.append(&readings))
            .await
            .map_err(|e| SourceError::Delivery(e.to_string()))?
            .map_err(|e| SourceError::Delivery(e.to_string()))
    }
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The site file is invalid.
    #[error(transparent)]
    Config(#[from] AgentConfigError),
    /// The buffer folder is unusable.
    #[error(transparent)]
    Buffer(#[from] BufferError),
    /// The pusher's HTTP client (e.g. `cloud.ca_file`).
    #[error(transparent)]
    Push(#[from] PushSetupError),
}

/// One source's health, as `/healthz` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SourceHealth {
    /// Source name.
    pub name: String,
    /// Whether the last poll succeeded.
    pub healthy: bool,
    /// Last successful poll (ms since the epoch).
    pub last_success_ms: Option<i64>,
    /// Last error.
    pub last_error: Option<String>,
    /// Readings in the last minute.
    pub readings_per_minute: u64,
    /// Readings read since the agent started.
    pub readings_total: u64,
}

/// The agent's health.
#[derive(Debug, Clone, Serialize)]
pub struct AgentHealth {
    /// `ok` when every source polls and the last push succeeded, else `degraded`.
    pub status: &'static str,
    /// Readings waiting on disk.
    pub buffered_readings: u64,
    /// Readings dropped because the buffer was full (over the buffer's life).
    pub dropped_readings: u64,
    /// The pusher's record.
    pub push: PushStats,
    /// Every source.
    pub sources: Vec<SourceHealth>,
}

/// A running agent.
pub struct Agent {
    buffer: Arc<DiskBuffer>,
    push: Arc<Mutex<PushStats>>,
    sources: Vec<(String, SharedStatus)>,
    tasks: tokio::sync::Mutex<JoinSet<()>>,
}

impl Agent {
    /// Opens the buffer and starts the sources and the pusher; they stop when `shutdown` is cancelled.
    pub fn start(config: &AgentConfig, shutdown: CancellationToken) -> Result<Self, AgentError> {
        let specs: Vec<(String, SourceSpec)> = config.sources()?;
        let push = Arc::new(Mutex::new(PushStats::default()));
        let buffer = Arc::new(DiskBuffer::open(
            &config.buffer.dir,
            config.buffer.max_readings,
        )?);
        let pusher = Pusher::new(config.cloud.clone(), buffer.clone(), push.clone())?;
        let mut tasks = JoinSet::new();
        let mut sources = Vec::new();
        // Devices are retried on their own pace, whatever the cloud's state. The agent's sources are the
        // site operator's own devices on the plant network, written in the operator's file: no tenant of a
        // shared platform chooses them, so no outbound policy applies.
        let options = RunOptions {
            outbound: Arc::new(OutboundPolicy::unrestricted()),
            ..RunOptions::default()
        };
        for (name, spec) in specs {
            let status = SharedStatus::default();
            sources.push((name.clone(), status.clone()));
            tasks.spawn(run_source(
                name,
                spec,
                BufferOutlet(buffer.clone()),
                status,
                options.clone(),
                shutdown.clone(),
            ));
        }
        tasks.spawn(pusher.run(shutdown));
        tracing::info!(
            sources = sources.len(),
            buffered = buffer.buffered(),
            "edge agent running"
        );
        Ok(Self {
            buffer,
            push,
            sources,
            tasks: tokio::sync::Mutex::new(tasks),
        })
    }

    /// The current health.
    pub fn health(&self) -> AgentHealth {
        let now = crate::now_ms();
        let sources: Vec<SourceHealth> = self
            .sources
            .iter()
            .map(|(name, status)| {
                let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
                SourceHealth {
                    name: name.clone(),
                    healthy: s.healthy,
                    last_success_ms: s.last_success_ms,
                    last_error: s.last_error.clone(),
                    readings_per_minute: s.readings_per_minute(now),
                    readings_total: s.readings_total,
                }
            })
            .collect();
        let push = self.push.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let push_ok = push
            .last_error_ms
            .is_none_or(|e| push.last_push_ms.is_some_and(|p| p > e));
        let ok = push_ok && sources.iter().all(|s| s.healthy);
        AgentHealth {
            status: if ok { "ok" } else { "degraded" },
            buffered_readings: self.buffer.buffered(),
            dropped_readings: self.buffer.dropped(),
            push,
            sources,
        }
    }

    /// Waits for every task to stop (after the shutdown token was cancelled).
    pub async fn stopped(&self) {
        let mut tasks = self.tasks.lock().await;
        while tasks.join_next().await.is_some() {}
    }
}
