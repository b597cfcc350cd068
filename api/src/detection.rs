//! The tasks of one generation of detection: the detectors and the alerts projections. A process runs those
//! of the active generation and follows a replay's switch-over to the next; `haltless replay` runs those of
//! the generation it builds.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use haltless_processors::detection::processor::{DetectorRuntime, DetectorTopics};
use haltless_processors::projection::alerts::{AlertActionsProjection, AlertsProjection};
use haltless_processors::runtime::generation;
use haltless_processors::runtime::topics::{ensure_partition_count, ensure_topics, TopicSpec};
use haltless_processors::runtime::{Generation, Projection, ProjectionRunner, RunnerConfig};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::{alerts_codec, readings_codec};
use crate::config::Settings;

/// How often a process checks whether a replay switched generations.
const FOLLOW_INTERVAL: Duration = Duration::from_secs(2);

/// A background task of a role.
pub type Task = JoinHandle<anyhow::Result<()>>;

/// Creates the alert topic and state changelog of `g` (a no-op when they exist).
pub async fn ensure_generation_topics(settings: &Settings, g: Generation) -> anyhow::Result<()> {
    let k = &settings.kafka;
    let readings = ensure_partition_count(&k.brokers, &k.readings_topic, 0).await?;
    let spec = |name: String, compact: bool| TopicSpec {
        name,
        partitions: readings,
        replication: k.replication,
        config: if compact {
            vec![("cleanup.policy".into(), "compact".into())]
        } else {
            vec![("compression.type".into(), "producer".into())]
        },
    };
    ensure_topics(
        &k.brokers,
        &[
            spec(g.name(&k.alerts_topic), false),
            spec(g.name(&k.detector_changelog_topic), true),
        ],
    )
    .await
    .with_context(|| format!("creating the topics of generation {g}"))?;
    Ok(())
}

/// The detectors of generation `g`: their own group, state changelog and alert topic.
pub async fn detector(settings: &Settings, g: Generation) -> anyhow::Result<DetectorRuntime> {
    let k = &settings.kafka;
    let mut config = settings.detector.clone();
    config.group = g.name(&config.group);
    Ok(DetectorRuntime::new(
        &k.brokers,
        DetectorTopics {
            readings: k.readings_topic.clone(),
            alerts: g.name(&k.alerts_topic),
            changelog: g.name(&k.detector_changelog_topic),
            rules: k.rules_topic.clone(),
        },
        config,
        readings_codec(settings).await?,
        alerts_codec(settings).await?,
    ))
}

/// Starts the detectors of `g` in the background; with `end`, only below those offsets per partition.
pub async fn spawn_detector(
    settings: &Settings,
    g: Generation,
    end: Option<HashMap<i32, i64>>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Task> {
    let mut runtime = detector(settings, g).await?;
    if let Some(end) = end {
        runtime = runtime.with_end_offsets(end);
    }
    let token = shutdown.clone();
    Ok(tokio::spawn(async move {
        runtime.run(token).await.context("detectors")
    }))
}

/// Starts `projection` of `topic` in the background, in the consumer group named after it.
pub fn spawn_projection<P: Projection>(
    settings: &Settings,
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

/// Starts the projection of generation `g`'s alert topic.
pub async fn spawn_alerts_projection(
    settings: &Settings,
    pool: &PgPool,
    g: Generation,
    shutdown: &CancellationToken,
) -> anyhow::Result<Task> {
    let topic = g.name(&settings.kafka.alerts_topic);
    let projection = AlertsProjection::new(alerts_codec(settings).await?, &topic, g);
    spawn_projection(settings, pool, projection, &topic, shutdown)
}

/// Starts the projection of the alert actions (ack, snooze) onto generation `g`'s alerts.
pub fn spawn_actions_projection(
    settings: &Settings,
    pool: &PgPool,
    g: Generation,
    shutdown: &CancellationToken,
) -> anyhow::Result<Task> {
    let topic = &settings.kafka.alert_actions_topic;
    let projection = AlertActionsProjection::new(topic, g);
    spawn_projection(settings, pool, projection, topic, shutdown)
}

/// Runs the detectors and/or alerts projections of the active generation until `shutdown`, moving them to
/// the next generation when a replay switches over. Fails when one of them fails.
pub async fn follow_generations(
    settings: Settings,
    pool: PgPool,
    detectors: bool,
    projections: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let g = generation::active(&pool).await?;
        ensure_generation_topics(&settings, g).await?;
        let token = shutdown.child_token();
        let mut tasks = Vec::new();
        if projections {
            tasks.push(spawn_alerts_projection(&settings, &pool, g, &token).await?);
            tasks.push(spawn_actions_projection(&settings, &pool, g, &token)?);
        }
        if detectors {
            tasks.push(spawn_detector(&settings, g, None, &token).await?);
        }
        tracing::info!(generation = %g, "running the detection generation");
        let mut failed = Box::pin(until_all_end(tasks));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    token.cancel();
                    return failed.await;
                }
                r = &mut failed => return r.and_then(|()| anyhow::bail!("a detection task stopped")),
                _ = tokio::time::sleep(FOLLOW_INTERVAL) => {}
            }
            match generation::active(&pool).await {
                Ok(now) if now != g => {
                    tracing::info!(from = %g, to = %now, "switching detection generation");
                    token.cancel();
                    failed.await?;
                    break;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not read the active generation"),
            }
        }
    }
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
