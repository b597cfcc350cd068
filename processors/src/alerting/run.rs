//! The alert engine as tasks: the intake of the active generation's alerts (started by
//! [`crate::detection::supervisor::follow_generations`], which moves it along with a replay's
//! switch-over), and, once per process, the intake of the alert actions, the dispatcher's clock, the
//! deliveries and the connectivity watchdog.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::channels::Outbound;
use super::delivery::Deliveries;
use super::dispatch;
use super::intake::{ActionIntake, AlertIntake};
use super::secrets::ChannelSecrets;
use super::watchdog::Watchdog;
use crate::config::ProcessorsConfig;
use crate::detection::generation::Generation;
use crate::runtime::codecs::alerts_codec;
use crate::runtime::tasks::{spawn_projection, until_all_end, Task};

/// From when the engine notifies generation `g`'s alerts: the first time it took `g` in (or `g`'s
/// activation, if later); kept, so a restart changes nothing.
async fn since(pool: &PgPool, g: Generation) -> anyhow::Result<DateTime<Utc>> {
    sqlx::query(
        "INSERT INTO alerting_generations (generation, since)
         SELECT $1, greatest(now(), coalesce(
            (SELECT activated_at FROM detection_generations WHERE generation = $1), now()))
         ON CONFLICT (generation) DO NOTHING",
    )
    .bind(g.0)
    .execute(pool)
    .await?;
    Ok(
        sqlx::query_scalar("SELECT since FROM alerting_generations WHERE generation = $1")
            .bind(g.0)
            .fetch_one(pool)
            .await?,
    )
}

/// Starts the intake of generation `g`'s alert topic.
pub async fn spawn_intake(
    settings: &ProcessorsConfig,
    pool: &PgPool,
    g: Generation,
    shutdown: &CancellationToken,
) -> anyhow::Result<Task> {
    let topic = g.name(&settings.kafka.alerts_topic);
    let since = since(pool, g).await.context("the alert engine's start")?;
    let intake = AlertIntake::new(
        alerts_codec(&settings.kafka).await?,
        g,
        since.timestamp_millis(),
    );
    spawn_projection(settings, pool, intake, &topic, shutdown)
}

/// The dispatcher's clock: fires due steps every `tick_ms` until `shutdown`, and wakes the deliveries
/// when it recorded notifications.
async fn dispatcher(
    pool: PgPool,
    settings: ProcessorsConfig,
    recorded: Arc<Notify>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let config = settings.alerting;
    let tick = Duration::from_millis(config.tick_ms.max(10));
    loop {
        match dispatch::tick(&pool, &config).await {
            Ok(0) => {}
            Ok(_) => recorded.notify_one(),
            Err(e) => tracing::warn!(error = %e, "the alert engine's tick failed; trying again"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(tick) => {}
        }
    }
}

/// Runs the actions intake, the dispatcher and the deliveries until `shutdown`; fails when the intake
/// fails (the role's supervisor restarts it).
pub async fn run(
    settings: ProcessorsConfig,
    pool: PgPool,
    out: Outbound,
    secrets: ChannelSecrets,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let token = shutdown.child_token();
    let actions = spawn_projection(
        &settings,
        &pool,
        ActionIntake::new()?,
        &settings.kafka.alert_actions_topic,
        &token,
    )?;
    let recorded = Arc::new(Notify::new());
    let clock = tokio::spawn(dispatcher(
        pool.clone(),
        settings.clone(),
        recorded.clone(),
        token.clone(),
    ));
    let watchdog = tokio::spawn(Watchdog::new(&settings, pool.clone()).await?.run(
        Duration::from_secs(settings.alerting.watchdog_secs.max(1)),
        token.clone(),
    ));
    let deliveries = Deliveries::new(pool, settings.alerting.clone(), out, secrets);
    let sending = tokio::spawn({
        let token = token.clone();
        async move {
            deliveries.run(recorded, token).await;
            Ok(())
        }
    });
    let result = until_all_end(vec![actions, clock, sending, watchdog]).await;
    token.cancel();
    result
}
