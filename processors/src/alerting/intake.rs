//! The engine's intake: the active generation's alert transitions and the alert actions, projected
//! exactly once into `alert_escalations` (each alert's escalation: its policy, group, next step).
//!
//! A raised alert is routed to the first policy whose matchers hold and joins the group of its policy
//! that is still waiting for its first notice (same group key), or starts one that waits
//! `group_wait_secs`; when the group already notified and still has open alerts, the newcomers wait
//! until `group_interval_secs` after its last notice, and are told together. The row is keyed by the
//! alert's id alone: a replay or a new generation that raises the same alert again finds it and
//! escalates nothing twice. Alerts written before the engine
//! took the generation in (a replay's rebuilt history) are recorded as `history`.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use haltless_schemas::actions::{Action, AlertAction};
use haltless_schemas::alerts::Transition;
use haltless_schemas::{AlertRecord, Codec};
use sqlx::PgConnection;
use uuid::Uuid;

use super::message::AlertSummary;
use super::policy::{choose, Labels, PolicySpec};
use crate::detection::generation::Generation;
use crate::projection::alerts::severity_name;
use crate::runtime::{Place, ProcessorError, Projection};

fn instant(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The summary a notification lists, from the alert's latest transition.
pub fn summary(a: &AlertRecord) -> AlertSummary {
    AlertSummary {
        id: a.alert_id,
        machine: a.machine.clone(),
        rule_id: a.rule_id.clone(),
        rule_name: a.rule_name.clone(),
        severity: severity_name(a.severity).into(),
        detector: a.detector.clone(),
        metric: a.metric.clone(),
        observed: a.observed,
        expected: a.expected,
        raised_at: instant(a.event_time_ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        state: if a.transition == Transition::Resolved {
            "resolved".into()
        } else {
            "open".into()
        },
    }
}

/// The tenant's policies in the order they are tried.
pub async fn policies(
    tx: &mut PgConnection,
    tenant: Uuid,
) -> Result<Vec<(Uuid, PolicySpec)>, ProcessorError> {
    let rows: Vec<(Uuid, serde_json::Value)> = sqlx::query_as(
        "SELECT id, spec FROM escalation_policies WHERE tenant_id = $1 ORDER BY position, created_at, id",
    )
    .bind(tenant)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, spec)| match serde_json::from_value(spec) {
            Ok(p) => Some((id, p)),
            Err(e) => {
                tracing::error!(policy = %id, error = %e, "skipping a stored policy that does not parse");
                None
            }
        })
        .collect())
}

/// Takes in generation `g`'s alert transitions.
#[derive(Debug)]
pub struct AlertIntake {
    codec: Codec,
    generation: Generation,
    since_ms: i64,
    name: String,
}

impl AlertIntake {
    /// The intake of generation `g`, which notifies alerts written from `since_ms` on.
    pub fn new(codec: Codec, generation: Generation, since_ms: i64) -> Self {
        Self {
            codec,
            generation,
            since_ms,
            name: generation.name("alerting"),
        }
    }

    async fn raised(
        &self,
        tx: &mut PgConnection,
        routes: &mut HashMap<Uuid, Vec<(Uuid, PolicySpec)>>,
        written_ms: Option<i64>,
        a: &AlertRecord,
    ) -> Result<u64, ProcessorError> {
        let summary = serde_json::to_value(summary(a))
            .map_err(|e| ProcessorError::Internal(e.to_string()))?;
        let insert = |state: &'static str, policy: Option<Uuid>, key: String| {
            sqlx::query(
                "INSERT INTO alert_escalations (tenant_id, alert_id, generation, machine_id, policy_id, group_key,
                    summary, state, next_at)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8,
                    CASE WHEN $8 = 'escalating' THEN coalesce(
                        (SELECT min(next_at) FROM alert_escalations
                          WHERE tenant_id = $1 AND policy_id = $5 AND group_key = $6 AND state = 'escalating'
                            AND firings = 0 AND next_at > now()),
                        greatest(now() + make_interval(secs => $9),
                            (SELECT max(fired_at) FROM alert_escalations
                              WHERE tenant_id = $1 AND policy_id = $5 AND group_key = $6
                                AND state IN ('escalating', 'done', 'acked', 'snoozed'))
                            + make_interval(secs => $10))) END
                 WHERE EXISTS (SELECT 1 FROM tenants WHERE id = $1)
                 ON CONFLICT (tenant_id, alert_id) DO NOTHING",
            )
            .bind(a.tenant_id)
            .bind(a.alert_id)
            .bind(self.generation.0)
            .bind(a.machine_id)
            .bind(policy)
            .bind(key)
            .bind(summary.clone())
            .bind(state)
        };
        // Alerts written before the engine took this generation in are history, not news.
        if written_ms.is_some_and(|t| t < self.since_ms) {
            return Ok(insert("history", None, String::new())
                .bind(0.0_f64)
                .bind(0.0_f64)
                .execute(&mut *tx)
                .await?
                .rows_affected());
        }
        let (tags, site): (Vec<String>, Option<String>) =
            sqlx::query_as("SELECT tags, site FROM machines WHERE id = $1 AND tenant_id = $2")
                .bind(a.machine_id)
                .bind(a.tenant_id)
                .fetch_optional(&mut *tx)
                .await?
                .unwrap_or_default();
        let labels = Labels {
            severity: a.severity,
            rule_id: &a.rule_id,
            machine: &a.machine,
            tags: &tags,
            site: site.as_deref(),
        };
        if let Entry::Vacant(e) = routes.entry(a.tenant_id) {
            e.insert(policies(tx, a.tenant_id).await?);
        }
        let tenant_policies = routes
            .get(&a.tenant_id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let query = match choose(tenant_policies, &labels) {
            None => insert("unrouted", None, String::new())
                .bind(0.0_f64)
                .bind(0.0_f64),
            Some((id, p)) => insert("escalating", Some(*id), p.group_key(&labels))
                .bind(f64::from(p.first_delay_secs()))
                .bind(f64::from(p.joining_delay_secs())),
        };
        Ok(query.execute(&mut *tx).await?.rows_affected())
    }
}

impl Projection for AlertIntake {
    type Item = (Option<i64>, AlertRecord);

    fn name(&self) -> &str {
        &self.name
    }

    fn decode(&self, at: Place, payload: &[u8]) -> Result<Self::Item, String> {
        let record = AlertRecord::decode(&self.codec, payload).map_err(|e| e.to_string())?;
        Ok((at.timestamp_ms, record))
    }

    async fn write(
        &mut self,
        tx: &mut PgConnection,
        items: &[Self::Item],
    ) -> Result<u64, ProcessorError> {
        let mut routes = HashMap::new();
        let mut rows = 0;
        for (written_ms, a) in items {
            rows += match a.transition {
                Transition::Raised => self.raised(tx, &mut routes, *written_ms, a).await?,
                Transition::Updated | Transition::Resolved => {
                    let summary = serde_json::to_value(summary(a))
                        .map_err(|e| ProcessorError::Internal(e.to_string()))?;
                    // The raised time stays the one the alert was raised at.
                    sqlx::query(
                        "UPDATE alert_escalations e SET
                            summary = $3 || jsonb_build_object('raised_at', e.summary->'raised_at'),
                            updated_at = now(),
                            state = CASE WHEN $4 AND e.state NOT IN ('history', 'unrouted') THEN 'resolved' ELSE e.state END,
                            next_at = CASE WHEN $4 THEN NULL ELSE e.next_at END,
                            resolved_notice = e.resolved_notice OR ($4 AND e.firings > 0
                                AND e.state IN ('escalating', 'done', 'acked', 'snoozed')
                                AND coalesce((SELECT (p.spec->>'notify_resolved')::boolean
                                              FROM escalation_policies p WHERE p.id = e.policy_id), true))
                         WHERE tenant_id = $1 AND alert_id = $2 AND e.state <> 'resolved'",
                    )
                    .bind(a.tenant_id)
                    .bind(a.alert_id)
                    .bind(summary)
                    .bind(a.transition == Transition::Resolved)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                }
            };
        }
        Ok(rows)
    }
}

/// Takes in acknowledgements and snoozes: both stop an escalation (a snooze until its end).
#[derive(Debug)]
pub struct ActionIntake {
    codec: Codec,
}

impl ActionIntake {
    /// The intake of the alert actions topic.
    pub fn new() -> Result<Self, ProcessorError> {
        Ok(Self {
            codec: AlertAction::codec()?,
        })
    }
}

impl Projection for ActionIntake {
    type Item = AlertAction;

    fn name(&self) -> &str {
        "alerting-actions"
    }

    fn decode(&self, _at: Place, payload: &[u8]) -> Result<Self::Item, String> {
        AlertAction::decode(&self.codec, payload).map_err(|e| e.to_string())
    }

    async fn write(
        &mut self,
        tx: &mut PgConnection,
        items: &[Self::Item],
    ) -> Result<u64, ProcessorError> {
        let mut rows = 0;
        for a in items {
            let (state, until) = match a.action {
                Action::Ack => ("acked", None),
                Action::Snooze { until_ms } => ("snoozed", Some(instant(until_ms))),
            };
            rows += sqlx::query(
                "UPDATE alert_escalations SET state = $3, snoozed_until = $4, updated_at = now()
                 WHERE tenant_id = $1 AND alert_id = $2 AND state IN ('escalating', 'snoozed', 'done')",
            )
            .bind(a.tenant_id)
            .bind(a.alert_id)
            .bind(state)
            .bind(until)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        Ok(rows)
    }
}
