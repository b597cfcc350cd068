//! The alerts projections: `haltless.alerts.v1` and `haltless.alert-actions.v1` → `alerts` (one row per
//! alert, its current state) and `alert_events` (its whole history, in order).

use chrono::DateTime;
use haltless_schemas::actions::{Action, AlertAction};
use haltless_schemas::alerts::{Severity, Transition};
use haltless_schemas::{AlertRecord, Codec};
use serde_json::json;
use sqlx::PgConnection;

use crate::detection::generation::Generation;
use crate::runtime::{Place, ProcessorError, Projection};

/// A decoded message with its place in its topic.
#[derive(Debug)]
pub struct Located<T> {
    partition: i32,
    offset: i64,
    item: T,
}

fn ts(ms: i64) -> DateTime<chrono::Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Severity as stored.
pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

/// Contributions as stored: `[{"feature": .., "score": ..}]`, strongest first.
fn contributions(c: &[(String, f64)]) -> serde_json::Value {
    c.iter()
        .map(|(feature, score)| json!({ "feature": feature, "score": score }))
        .collect()
}

/// One line of an alert's history.
struct HistoryEntry<'a> {
    tenant: uuid::Uuid,
    alert: uuid::Uuid,
    kind: &'a str,
    at_ms: i64,
    details: serde_json::Value,
}

/// Appends to an alert's history; the message's place in its topic makes a redelivery a no-op.
async fn record_event(
    tx: &mut PgConnection,
    generation: Generation,
    topic: &str,
    at: (i32, i64),
    e: HistoryEntry<'_>,
) -> Result<u64, ProcessorError> {
    Ok(sqlx::query(
        r#"INSERT INTO alert_events (tenant_id, alert_id, kind, at, details, topic, partition, "offset", generation)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING"#,
    )
    .bind(e.tenant)
    .bind(e.alert)
    .bind(e.kind)
    .bind(ts(e.at_ms))
    .bind(e.details)
    .bind(topic)
    .bind(at.0)
    .bind(at.1)
    .bind(generation.0)
    .execute(&mut *tx)
    .await?
    .rows_affected())
}

/// Projects alert transitions of one generation.
#[derive(Debug)]
pub struct AlertsProjection {
    codec: Codec,
    topic: String,
    generation: Generation,
    name: String,
}

impl AlertsProjection {
    /// A projection of `topic` into the rows of `generation`, decoding with `codec`.
    pub fn new(codec: Codec, topic: &str, generation: Generation) -> Self {
        Self {
            codec,
            topic: topic.to_owned(),
            generation,
            name: generation.name("alerts"),
        }
    }
}

impl Projection for AlertsProjection {
    type Item = Located<AlertRecord>;

    fn name(&self) -> &str {
        &self.name
    }

    fn decode(&self, at: Place, payload: &[u8]) -> Result<Self::Item, String> {
        let item = AlertRecord::decode(&self.codec, payload).map_err(|e| e.to_string())?;
        Ok(Located {
            partition: at.partition,
            offset: at.offset,
            item,
        })
    }

    async fn write(
        &mut self,
        tx: &mut PgConnection,
        items: &[Self::Item],
    ) -> Result<u64, ProcessorError> {
        let mut rows = 0;
        for Located {
            partition,
            offset,
            item: a,
        } in items
        {
            let at = ts(a.event_time_ms);
            if a.transition == Transition::Raised {
                sqlx::query(
                    "INSERT INTO alerts (id, tenant_id, machine_id, machine, rule_id, rule_name, severity, detector,
                        metric, state, observed, expected, score, score_limit, raised_at, updated_at, generation,
                        explanation, contributions)
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, 'open', $10, $11, $12, $13, $14, $14, $15, $16, $17
                     WHERE EXISTS (SELECT 1 FROM tenants WHERE id = $2) -- a deleted tenant's late alerts are dropped
                     ON CONFLICT (generation, id) DO NOTHING",
                )
                .bind(a.alert_id)
                .bind(a.tenant_id)
                .bind(a.machine_id)
                .bind(&a.machine)
                .bind(&a.rule_id)
                .bind(&a.rule_name)
                .bind(severity_name(a.severity))
                .bind(&a.detector)
                .bind(&a.metric)
                .bind(a.observed)
                .bind(a.expected)
                .bind(a.score)
                .bind(a.limit)
                .bind(at)
                .bind(self.generation.0)
                .bind(&a.explanation)
                .bind(contributions(&a.contributions))
                .execute(&mut *tx)
                .await?;
            } else {
                let resolved = a.transition == Transition::Resolved;
                sqlx::query(
                    "UPDATE alerts SET observed = $3, expected = $4, score = $5, score_limit = $6, updated_at = $7,
                        state = CASE WHEN $8 THEN 'resolved' ELSE state END,
                        resolved_at = CASE WHEN $8 THEN $7 ELSE resolved_at END
                     WHERE generation = $9 AND id = $1 AND tenant_id = $2",
                )
                .bind(a.alert_id)
                .bind(a.tenant_id)
                .bind(a.observed)
                .bind(a.expected)
                .bind(a.score)
                .bind(a.limit)
                .bind(at)
                .bind(resolved)
                .bind(self.generation.0)
                .execute(&mut *tx)
                .await?;
            }
            let kind = match a.transition {
                Transition::Raised => "raised",
                Transition::Updated => "updated",
                Transition::Resolved => "resolved",
            };
            let details = json!({
                "detector": a.detector, "metric": a.metric, "observed": a.observed, "expected": a.expected,
                "score": a.score, "limit": a.limit, "readings": a.readings,
                "explanation": a.explanation, "contributions": contributions(&a.contributions),
            });
            let entry = HistoryEntry {
                tenant: a.tenant_id,
                alert: a.alert_id,
                kind,
                at_ms: a.event_time_ms,
                details,
            };
            rows += record_event(
                tx,
                self.generation,
                &self.topic,
                (*partition, *offset),
                entry,
            )
            .await?;
        }
        Ok(rows)
    }
}

/// Projects acknowledgements and snoozes onto the alerts of one generation.
#[derive(Debug)]
pub struct AlertActionsProjection {
    codec: Codec,
    topic: String,
    generation: Generation,
    name: String,
}

impl AlertActionsProjection {
    /// A projection of `topic` onto the rows of `generation`, decoding with `codec`.
    pub fn new(codec: Codec, topic: &str, generation: Generation) -> Self {
        Self {
            codec,
            topic: topic.to_owned(),
            generation,
            name: generation.name("alert-actions"),
        }
    }
}

impl Projection for AlertActionsProjection {
    type Item = Located<AlertAction>;

    fn name(&self) -> &str {
        &self.name
    }

    fn decode(&self, at: Place, payload: &[u8]) -> Result<Self::Item, String> {
        let item = AlertAction::decode(&self.codec, payload).map_err(|e| e.to_string())?;
        Ok(Located {
            partition: at.partition,
            offset: at.offset,
            item,
        })
    }

    async fn write(
        &mut self,
        tx: &mut PgConnection,
        items: &[Self::Item],
    ) -> Result<u64, ProcessorError> {
        let mut rows = 0;
        for Located {
            partition,
            offset,
            item: a,
        } in items
        {
            let (kind, details) = match &a.action {
                Action::Ack => {
                    sqlx::query("UPDATE alerts SET acked_at = $3, acked_by = $4 WHERE generation = $5 AND id = $1 AND tenant_id = $2")
                        .bind(a.alert_id)
                        .bind(a.tenant_id)
                        .bind(ts(a.at_ms))
                        .bind(&a.by)
                        .bind(self.generation.0)
                        .execute(&mut *tx)
                        .await?;
                    ("acked", json!({ "by": a.by }))
                }
                Action::Snooze { until_ms } => {
                    sqlx::query(
                        "UPDATE alerts SET snoozed_until = $3 WHERE generation = $4 AND id = $1 AND tenant_id = $2",
                    )
                    .bind(a.alert_id)
                    .bind(a.tenant_id)
                    .bind(ts(*until_ms))
                    .bind(self.generation.0)
                    .execute(&mut *tx)
                    .await?;
                    (
                        "snoozed",
                        json!({ "by": a.by, "until": ts(*until_ms).to_rfc3339() }),
                    )
                }
            };
            let entry = HistoryEntry {
                tenant: a.tenant_id,
                alert: a.alert_id,
                kind,
                at_ms: a.at_ms,
                details,
            };
            rows += record_event(
                tx,
                self.generation,
                &self.topic,
                (*partition, *offset),
                entry,
            )
            .await?;
        }
        Ok(rows)
    }
}
