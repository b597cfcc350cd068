//! Processors as background tasks: a role's task handle, the start of a projection in its consumer
//! group, waiting on a set of tasks, and the supervision that restarts a failed role with backoff.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::projection::{Projection, ProjectionRunner, RunnerConfig};
use crate::config::ProcessorsConfig;

/// A background task of a role.
pub type Task = JoinHandle<anyhow::Result<()>>;

/// Starts `projection` of `topic` in the background, in the consumer group named after it: as many
/// consumers of the group as `projection.writers` says and the projection offers instances
/// ([`Projection::another`]), each with its own database connection. The group divides the partitions
/// among them, and each consumer fetches, decodes and writes its own batches, one transaction at a time,
/// without waiting for the others (one consumer splitting each batch between connections waited for the
/// slower half before the next batch, and left the database idle while it decoded).
pub fn spawn_projection<P: Projection>(
    settings: &ProcessorsConfig,
    pool: &PgPool,
    projection: P,
    topic: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<Task> {
    let p = &settings.projection;
    let name = projection.name().to_owned();
    let config = RunnerConfig {
        brokers: settings.kafka.brokers.clone(),
        topic: topic.to_owned(),
        group: format!("{}-{name}", p.group_prefix),
        batch_max_messages: p.batch_max_messages,
        batch_max_wait: Duration::from_millis(p.batch_max_wait_ms),
        session_timeout: Duration::from_millis(p.session_timeout_ms),
    };
    let mut runners = Vec::with_capacity(p.writers.max(1));
    while runners.len() + 1 < p.writers {
        match projection.another() {
            Some(more) => runners.push(ProjectionRunner::new(more, pool.clone(), config.clone())?),
            None => break,
        }
    }
    runners.push(ProjectionRunner::new(projection, pool.clone(), config)?);
    let token = shutdown.clone();
    Ok(tokio::spawn(async move {
        futures::future::try_join_all(runners.into_iter().map(|r| r.run(token.clone())))
            .await
            .map(|_| ())
            .with_context(|| format!("projection {name}"))
    }))
}

/// Waits until every task ended, returning the first failure as soon as it happens.
pub async fn until_all_end(tasks: Vec<Task>) -> anyhow::Result<()> {
    let mut pending = tasks;
    while !pending.is_empty() {
        let (result, _, rest) = futures::future::select_all(pending).await;
        result??;
        pending = rest;
    }
    Ok(())
}

/// An error a restart cannot fix (the role's configuration is refused): the process exits on it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Fatal(pub String);

/// What a role is doing, as readiness reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RoleState {
    /// `running`, or `restarting` while it waits out its backoff after a failure.
    pub status: &'static str,
    /// Restarts since the process started.
    pub restarts: u64,
    /// The error of its last failure, if it ever failed.
    pub last_error: Option<String>,
}

/// The roles a process supervises and their states, shared with readiness.
#[derive(Debug, Clone, Default)]
pub struct RoleBoard {
    roles: Arc<Mutex<BTreeMap<String, RoleState>>>,
}

impl RoleBoard {
    /// Every supervised role by name.
    pub fn snapshot(&self) -> BTreeMap<String, RoleState> {
        self.roles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update(&self, role: &str, change: impl FnOnce(&mut RoleState)) {
        let mut roles = self.roles.lock().unwrap_or_else(PoisonError::into_inner);
        let state = roles.entry(role.to_owned()).or_insert(RoleState {
            status: "running",
            restarts: 0,
            last_error: None,
        });
        change(state);
    }
}

/// How a supervised role waits before a restart: doubling from `min` to `max`, back to `min` after a run
/// that lasted `max` or longer.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first wait.
    pub min: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            min: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

/// Runs the role `name` (`run` makes one run of its work) until `shutdown`, restarting it with `backoff`
/// whenever a run fails or ends by itself; counts restarts in `haltless_role_restarts_total{role}` and
/// keeps its state on `board`. Returns an error only for a [`Fatal`] one, after cancelling `shutdown`.
pub async fn supervise<F, Fut>(
    name: String,
    board: RoleBoard,
    backoff: Backoff,
    shutdown: CancellationToken,
    mut run: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut wait = backoff.min;
    board.update(&name, |_| {});
    loop {
        let started = Instant::now();
        let result = run().await;
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let error = match result {
            Ok(()) => "the role stopped by itself".to_owned(),
            Err(e) if e.downcast_ref::<Fatal>().is_some() => {
                tracing::error!(role = %name, error = %format!("{e:#}"), "role cannot run; stopping the process");
                shutdown.cancel();
                return Err(e);
            }
            Err(e) => format!("{e:#}"),
        };
        if started.elapsed() >= backoff.max {
            wait = backoff.min;
        }
        tracing::warn!(role = %name, %error, retry_in_ms = wait.as_millis() as u64, "role failed; restarting it");
        metrics::counter!(haltless_schemas::metric_names::ROLE_RESTARTS, "role" => name.clone())
            .increment(1);
        board.update(&name, |s| {
            s.status = "restarting";
            s.restarts += 1;
            s.last_error = Some(error);
        });
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(backoff.max);
        board.update(&name, |s| s.status = "running");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_failing_role_restarts_and_a_fatal_one_stops_the_process() {
        let board = RoleBoard::default();
        let shutdown = CancellationToken::new();
        let runs = Arc::new(AtomicU32::new(0));
        let backoff = Backoff {
            min: Duration::from_millis(10),
            max: Duration::from_millis(40),
        };
        let counted = runs.clone();
        let result = supervise("r".into(), board.clone(), backoff, shutdown.clone(), || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => anyhow::bail!("lost the connection"),
                    1 => Ok(()),
                    _ => Err(Fatal("bad configuration".into()).into()),
                }
            }
        })
        .await;
        assert!(result.is_err());
        assert!(shutdown.is_cancelled());
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        let state = &board.snapshot()["r"];
        assert_eq!(state.restarts, 2);
        assert_eq!(
            state.last_error.as_deref(),
            Some("the role stopped by itself")
        );
    }

    #[tokio::test]
    async fn shutdown_ends_a_role_without_a_restart() {
        let board = RoleBoard::default();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let result = supervise(
            "r".into(),
            board.clone(),
            Backoff::default(),
            shutdown,
            || {
                let token = token.clone();
                async move {
                    token.cancel();
                    anyhow::bail!("stopped mid-batch")
                }
            },
        )
        .await;
        assert!(result.is_ok());
        assert_eq!(board.snapshot()["r"].restarts, 0);
    }
}
