//! What keeps an alert quiet: a work order in progress on its machine (the machine is being worked on:
//! its alerts are expected), a silence whose matchers hold and whose time range covers now, an open
//! alert that inhibits it, or an open connectivity alert on its machine (its readings stopped: what
//! its sensors' rules say about stale data is not news).

use haltless_schemas::alerts::Severity;
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use super::message::AlertSummary;
use super::policy::{InhibitionSpec, Labels, Matchers};
use crate::runtime::ProcessorError;

/// A machine's labels beside its alerts.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct MachineLabels {
    /// The machine.
    pub id: Uuid,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its site.
    pub site: Option<String>,
}

/// The labels of an alert: its summary and its machine's tags and site.
pub fn labels<'a>(s: &'a AlertSummary, machine: Option<&'a MachineLabels>) -> Labels<'a> {
    let severity =
        serde_json::from_value(Value::String(s.severity.clone())).unwrap_or(Severity::Info);
    Labels {
        severity,
        rule_id: &s.rule_id,
        machine: &s.machine,
        tags: machine.map(|m| m.tags.as_slice()).unwrap_or_default(),
        site: machine.and_then(|m| m.site.as_deref()),
    }
}

/// An open alert that may inhibit others.
#[derive(Debug, sqlx::FromRow)]
struct OpenAlert {
    alert_id: Uuid,
    summary: sqlx::types::Json<AlertSummary>,
    tags: Option<Vec<String>>,
    site: Option<String>,
}

impl OpenAlert {
    fn labels(&self) -> Labels<'_> {
        let mut l = labels(&self.summary, None);
        l.tags = self.tags.as_deref().unwrap_or_default();
        l.site = self.site.as_deref();
        l
    }
}

/// What mutes a tenant's alerts now.
#[derive(Debug, Default)]
pub struct Mutes {
    silences: Vec<(Uuid, Matchers, String)>,
    maintenance: Vec<(Uuid, String, Vec<Uuid>)>,
    inhibitions: Vec<(Uuid, InhibitionSpec)>,
    open: Vec<OpenAlert>,
    /// (machine, its open connectivity alert).
    silent: Vec<(Uuid, Uuid)>,
}

impl Mutes {
    /// The silences in force and the work orders in progress on `machines`.
    pub async fn load(
        tx: &mut PgConnection,
        tenant: Uuid,
        machines: &[Uuid],
    ) -> Result<Self, ProcessorError> {
        let silences: Vec<(Uuid, Value, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
            "SELECT id, matchers, ends_at FROM silences
             WHERE tenant_id = $1 AND starts_at <= now() AND ends_at > now()",
        )
        .bind(tenant)
        .fetch_all(&mut *tx)
        .await?;
        let maintenance = sqlx::query_as(
            "SELECT id, title, machine_ids FROM work_orders
             WHERE tenant_id = $1 AND status = 'in_progress' AND machine_ids && $2",
        )
        .bind(tenant)
        .bind(machines)
        .fetch_all(&mut *tx)
        .await?;
        let inhibitions: Vec<(Uuid, sqlx::types::Json<InhibitionSpec>)> = sqlx::query_as(
            "SELECT id, spec FROM inhibition_rules WHERE tenant_id = $1 ORDER BY created_at, id",
        )
        .bind(tenant)
        .fetch_all(&mut *tx)
        .await?;
        let silent = sqlx::query_as(
            "SELECT machine_id, alert_id FROM connectivity_alerts WHERE tenant_id = $1 AND machine_id = ANY($2)",
        )
        .bind(tenant)
        .bind(machines)
        .fetch_all(&mut *tx)
        .await?;
        // The open alerts only matter when a rule could use them.
        let open = if inhibitions.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(
                "SELECT e.alert_id, e.summary, m.tags, m.site FROM alert_escalations e
                 LEFT JOIN machines m ON m.id = e.machine_id
                 WHERE e.tenant_id = $1 AND e.state IN ('escalating', 'done', 'acked', 'snoozed', 'unrouted')",
            )
            .bind(tenant)
            .fetch_all(&mut *tx)
            .await?
        };
        Ok(Self {
            inhibitions: inhibitions
                .into_iter()
                .map(|(id, spec)| (id, spec.0))
                .collect(),
            open,
            silences: silences
                .into_iter()
                .filter_map(|(id, m, ends)| {
                    let until = ends.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                    serde_json::from_value(m).ok().map(|m| (id, m, until))
                })
                .collect(),
            maintenance,
            silent,
        })
    }

    /// What mutes `alert` on `machine` with `labels`, as shown with the alert; `None` when nothing does.
    pub fn muting(&self, alert: Uuid, machine: Uuid, labels: &Labels<'_>) -> Option<Value> {
        if let Some((id, title, _)) = self
            .maintenance
            .iter()
            .find(|(_, _, m)| m.contains(&machine))
        {
            return Some(json!({"kind": "work_order", "id": id, "title": title}));
        }
        if let Some((id, _, until)) = self.silences.iter().find(|(_, m, _)| m.matches(labels)) {
            return Some(json!({"kind": "silence", "id": id, "until": until}));
        }
        if labels.rule_id != super::watchdog::RULE_ID {
            if let Some((_, by)) = self.silent.iter().find(|(m, _)| *m == machine) {
                return Some(json!({"kind": "connectivity", "by": by}));
            }
        }
        self.inhibitions.iter().find_map(|(rule, spec)| {
            self.open
                .iter()
                .filter(|o| o.alert_id != alert)
                .find(|o| spec.inhibits(&o.labels(), labels))
                .map(|o| json!({"kind": "inhibition", "id": rule, "name": spec.name, "by": o.alert_id}))
        })
    }
}
