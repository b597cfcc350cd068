//! The tasks of one generation of detection: the detectors, the alerts projections, the alert engine's
//! intake and the RUL predictor's alerts. A process runs those of the active generation and follows a
//! replay's switch-over to the next; `haltless replay` runs those of the generation it builds.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use haltless_schemas::actions::AlertAction;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::ProcessorsConfig;
use crate::detection::generation::{self, Generation};
use crate::detection::processor::{DetectorRuntime, DetectorTopics};
use crate::prediction::predictor::PredictorRuntime;
use crate::projection::alerts::{AlertActionsProjection, AlertsProjection};
use crate::runtime::codecs::{alerts_codec, readings_codec};
use crate::runtime::tasks::{spawn_projection, until_all_end, Task};
use crate::runtime::topics::{ensure_partition_count, ensure_topics, TopicSpec};

/// How often a process checks whether a replay switched generations.
const FOLLOW_INTERVAL: Duration = Duration::from_secs(2);

/// Creates the alert topic and state changelog of `g` (a no-op when they exist).
pub async fn ensure_generation_topics(
    settings: &ProcessorsConfig,
    g: Generation,
) -> anyhow::Result<()> {
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
pub async fn detector(
    settings: &ProcessorsConfig,
    g: Generation,
) -> anyhow::Result<DetectorRuntime> {
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
        readings_codec(&settings.kafka).await?,
        alerts_codec(&settings.kafka).await?,
    ))
}

/// Starts the detectors of `g` in the background; with `end`, only below those offsets per partition.
pub async fn spawn_detector(
    settings: &ProcessorsConfig,
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

/// Starts the RUL predictor with its alerts going to generation `g`'s alert topic.
pub async fn spawn_predictor(
    settings: &ProcessorsConfig,
    g: Generation,
    shutdown: &CancellationToken,
) -> anyhow::Result<Task> {
    let runtime = PredictorRuntime::from_settings(settings, g).await?;
    let token = shutdown.clone();
    Ok(tokio::spawn(async move {
        runtime.run(token).await.context("predictor")
    }))
}

/// Starts the projection of generation `g`'s alert topic.
pub async fn spawn_alerts_projection(
    settings: &ProcessorsConfig,
    pool: &PgPool,
    g: Generation,
    shutdown: &CancellationToken,
) -> anyhow::Result<Task> {
    let topic = g.name(&settings.kafka.alerts_topic);
    let projection = AlertsProjection::new(alerts_codec(&settings.kafka).await?, &topic, g);
    spawn_projection(settings, pool, projection, &topic, shutdown)
}

/// Starts the projection of the alert actions (ack, snooze) onto generation `g`'s alerts.
pub fn spawn_actions_projection(
    settings: &ProcessorsConfig,
    pool: &PgPool,
    g: Generation,
    shutdown: &CancellationToken,
) -> anyhow::Result<Task> {
    let topic = &settings.kafka.alert_actions_topic;
    let projection = AlertActionsProjection::new(AlertAction::codec()?, topic, g);
    spawn_projection(settings, pool, projection, topic, shutdown)
}

/// Which of a generation's tasks a process runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenerationParts {
    /// The detectors.
    pub detectors: bool,
    /// The alerts and alert-actions projections.
    pub projections: bool,
    /// The alert engine's intake of the generation's alerts.
    pub alerting: bool,
    /// The RUL predictor, writing its alerts to the generation's alert topic. Its state, offsets and
    /// predictions are not per generation: a switch-over only moves where its alerts go.
    pub predictor: bool,
}

/// Runs the given tasks of the active generation until `shutdown`, moving them to the next generation
/// when a replay switches over. Fails when one of them fails.
pub async fn follow_generations(
    settings: ProcessorsConfig,
    pool: PgPool,
    parts: GenerationParts,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let g = generation::active(&pool).await?;
        ensure_generation_topics(&settings, g).await?;
        let token = shutdown.child_token();
        let mut tasks = Vec::new();
        if parts.projections {
            tasks.push(spawn_alerts_projection(&settings, &pool, g, &token).await?);
            tasks.push(spawn_actions_projection(&settings, &pool, g, &token)?);
        }
        if parts.detectors {
            tasks.push(spawn_detector(&settings, g, None, &token).await?);
        }
        if parts.alerting {
            tasks.push(crate::alerting::run::spawn_intake(&settings, &pool, g, &token).await?);
        }
        if parts.predictor {
            tasks.push(spawn_predictor(&settings, g, &token).await?);
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
