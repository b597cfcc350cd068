//! Processors as background tasks: a role's task handle, the start of a projection in its consumer
//! group, and waiting on a set of tasks.

use std::time::Duration;

use anyhow::Context as _;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::projection::{Projection, ProjectionRunner, RunnerConfig};
use crate::config::ProcessorsConfig;

/// A background task of a role.
pub type Task = JoinHandle<anyhow::Result<()>>;

/// Starts `projection` of `topic` in the background, in the consumer group named after it.
pub fn spawn_projection<P: Projection>(
    settings: &ProcessorsConfig,
    pool: &PgPool,
    projection: P,
    topic: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<Task> {
    let p = &settings.projection;
    let name = projection.name().to_owned();
    let runner = ProjectionRunner::new(
        projection,
        pool.clone(),
        RunnerConfig {
            brokers: settings.kafka.brokers.clone(),
            topic: topic.to_owned(),
            group: format!("{}-{name}", p.group_prefix),
            batch_max_messages: p.batch_max_messages,
            batch_max_wait: Duration::from_millis(p.batch_max_wait_ms),
            session_timeout: Duration::from_millis(p.session_timeout_ms),
        },
    )?;
    let token = shutdown.clone();
    Ok(tokio::spawn(async move {
        runner
            .run(token)
            .await
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
