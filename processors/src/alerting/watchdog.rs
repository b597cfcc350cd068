//! The connectivity watchdog: a machine from which no reading arrived for its tenant's
//! `silent_after_minutes` (by the gateway's arrival time, which the readings projection records in
//! `machine_heartbeats`: history loaded late counts from its arrival) raises a connectivity alert (rule `connectivity`), published on the active
//! generation's alert topic like every alert, so the alert list, the engine and downstream consumers
//! see it; its readings coming back resolve it. While it is open the machine's other alerts notify
//! nobody (see [`super::mutes`]): a machine that lost its network says so once, not through every
//! sensor going stale. A polling source that stops delivering silences its machines the same way.
//!
//! Wall-clock, every `alerting.watchdog_secs`, one engine at a time (a transaction-scoped advisory
//! lock). The alert is published before it is recorded, and its id derives from the machine and the
//! time of its last reading: an engine killed in between publishes the same alert again, which every
//! consumer of the topic already takes once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use haltless_schemas::alerts::{Severity, Transition};
use haltless_schemas::{AlertRecord, Codec};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::ProcessorsConfig;
use crate::detection::generation::Generation;
use crate::detection::logic::lifecycle::alert_id;
use crate::runtime::codecs::alerts_codec;
use crate::runtime::kafka::producer_config;
use crate::runtime::ProcessorError;

/// The rule id of connectivity alerts.
pub const RULE_ID: &str = "connectivity";

/// Lock key: one watchdog at a time whatever the number of engines ("haltless watchdog").
const LOCK: i64 = 0x6861_6c74_7764_6f67;

/// A machine the watchdog looks at: its newest reading, its tenant's limit, its open alert.
#[derive(Debug, sqlx::FromRow)]
struct Watched {
    tenant_id: Uuid,
    machine_id: Uuid,
    name: String,
    last: Option<DateTime<Utc>>,
    silent_after_secs: f64,
    open: Option<Uuid>,
    active: bool,
}

/// Publishes connectivity alerts on the alert topic.
pub struct Watchdog {
    pool: PgPool,
    producer: FutureProducer,
    codec: Codec,
    alerts_topic: String,
}

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog")
            .field("alerts_topic", &self.alerts_topic)
            .finish_non_exhaustive()
    }
}

impl Watchdog {
    /// A watchdog publishing with `settings`' Kafka.
    pub async fn new(settings: &ProcessorsConfig, pool: PgPool) -> Result<Self, ProcessorError> {
        let producer = producer_config(&settings.kafka.brokers).create()?;
        Ok(Self {
            pool,
            producer,
            codec: alerts_codec(&settings.kafka).await?,
            alerts_topic: settings.kafka.alerts_topic.clone(),
        })
    }

    /// One look: raises for machines gone silent, resolves for those heard again (or retired).
    /// Returns how many alerts it published.
    pub async fn check(&self) -> Result<usize, ProcessorError> {
        let mut tx = self.pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(0);
        }
        let generation: i32 = sqlx::query_scalar("SELECT active_generation()")
            .fetch_one(&mut *tx)
            .await?;
        let topic = Generation(generation).name(&self.alerts_topic);
        // Machines that have sent something (a machine never heard from is not "gone" silent), and
        // those with an open connectivity alert.
        let watched: Vec<Watched> = sqlx::query_as(
            "SELECT m.tenant_id, m.id AS machine_id, m.name, h.heard_at AS last,
                60.0 * coalesce((s.settings->>'silent_after_minutes')::float8, 15) AS silent_after_secs,
                c.alert_id AS open, m.status = 'active' AS active
             FROM machines m
             LEFT JOIN machine_heartbeats h ON h.tenant_id = m.tenant_id AND h.machine_id = m.id
             LEFT JOIN tenant_settings s ON s.tenant_id = m.tenant_id
             LEFT JOIN connectivity_alerts c ON c.tenant_id = m.tenant_id AND c.machine_id = m.id
             WHERE (m.status = 'active' AND h.heard_at IS NOT NULL) OR c.alert_id IS NOT NULL",
        )
        .fetch_all(&mut *tx)
        .await?;
        let now = Utc::now();
        let mut published = 0;
        for w in watched {
            let silent_for = w
                .last
                .map_or(0.0, |t| (now - t).num_milliseconds() as f64 / 1000.0);
            let silent = w.active && w.last.is_some() && silent_for > w.silent_after_secs;
            match (silent, w.open) {
                (true, None) => {
                    let last_ms = w.last.map_or(0, |t| t.timestamp_millis());
                    let id = alert_id(
                        &w.tenant_id.to_string(),
                        &w.machine_id.to_string(),
                        RULE_ID,
                        last_ms,
                    );
                    self.publish(&topic, &w, id, Transition::Raised, silent_for, now)
                        .await?;
                    sqlx::query(
                        "INSERT INTO connectivity_alerts (tenant_id, machine_id, alert_id, silent_since)
                         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    )
                    .bind(w.tenant_id)
                    .bind(w.machine_id)
                    .bind(id)
                    .bind(w.last)
                    .execute(&mut *tx)
                    .await?;
                    published += 1;
                }
                (false, Some(id)) => {
                    self.publish(&topic, &w, id, Transition::Resolved, silent_for, now)
                        .await?;
                    sqlx::query(
                        "DELETE FROM connectivity_alerts WHERE tenant_id = $1 AND machine_id = $2",
                    )
                    .bind(w.tenant_id)
                    .bind(w.machine_id)
                    .execute(&mut *tx)
                    .await?;
                    published += 1;
                }
                _ => {}
            }
        }
        tx.commit().await?;
        Ok(published)
    }

    async fn publish(
        &self,
        topic: &str,
        w: &Watched,
        id: Uuid,
        transition: Transition,
        silent_for: f64,
        now: DateTime<Utc>,
    ) -> Result<(), ProcessorError> {
        let record = AlertRecord {
            alert_id: id,
            transition,
            tenant_id: w.tenant_id,
            machine_id: w.machine_id,
            machine: w.name.clone(),
            rule_id: RULE_ID.into(),
            rule_name: "machine silent".into(),
            severity: Severity::Warning,
            detector: "watchdog".into(),
            metric: "seconds since the last reading".into(),
            observed: silent_for.round(),
            expected: w.silent_after_secs,
            score: silent_for / w.silent_after_secs.max(1.0),
            limit: 1.0,
            event_time_ms: now.timestamp_millis(),
            readings: Vec::new(),
            explanation: if transition == Transition::Resolved {
                format!("{} reports again", w.name)
            } else {
                format!(
                    "no reading from {} for {} s (silent after {} s)",
                    w.name,
                    silent_for.round(),
                    w.silent_after_secs
                )
            },
            contributions: vec![("watchdog".into(), silent_for / w.silent_after_secs.max(1.0))],
        };
        let payload = record.encode(&self.codec)?;
        let key = record.key();
        self.producer
            .send(
                FutureRecord::to(topic).key(&key).payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| ProcessorError::Kafka(e))?;
        tracing::info!(machine = %w.name, tenant = %w.tenant_id, ?transition, "connectivity alert");
        Ok(())
    }

    /// Looks every `every` until `shutdown`.
    pub async fn run(self, every: Duration, shutdown: CancellationToken) -> anyhow::Result<()> {
        loop {
            if let Err(e) = self.check().await {
                tracing::warn!(error = %e, "the connectivity watchdog's look failed; trying again");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}
