//! Resolution notices: the channels (and the browsers) that were told of an alert hear that it
//! resolved, once, grouped as its notices were.

use std::collections::BTreeMap;

use sqlx::PgConnection;
use uuid::Uuid;

use super::message::{AlertSummary, Message, NoticeKind};
use super::record::{record, Notice, NO_RECIPIENT};
use crate::runtime::ProcessorError;

#[derive(Debug, sqlx::FromRow)]
struct Resolved {
    tenant_id: Uuid,
    alert_id: Uuid,
    group_key: String,
    policy: Option<String>,
    summary: sqlx::types::Json<AlertSummary>,
}

/// Records the resolution notices due; returns how many notifications that made.
pub async fn resolved(tx: &mut PgConnection) -> Result<usize, ProcessorError> {
    let rows: Vec<Resolved> = sqlx::query_as(
        "SELECT e.tenant_id, e.alert_id, e.group_key, p.name AS policy, e.summary
         FROM alert_escalations e LEFT JOIN escalation_policies p ON p.id = e.policy_id
         WHERE e.resolved_notice ORDER BY e.tenant_id LIMIT 500 FOR UPDATE OF e SKIP LOCKED",
    )
    .fetch_all(&mut *tx)
    .await?;
    // (tenant, channel, recipient, group) → (policy, alerts)
    type Group = (Option<String>, Vec<AlertSummary>);
    let mut groups: BTreeMap<(Uuid, Uuid, Uuid, String), Group> = BTreeMap::new();
    for r in &rows {
        // Those told of it: channels, and the browsers a push channel reached (still subscribed).
        let heard: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT DISTINCT k.channel_id, k.recipient FROM notification_keys k
             WHERE k.tenant_id = $1 AND k.alert_id = $2 AND k.firing >= 0
               AND (k.recipient = $3 OR EXISTS (SELECT 1 FROM push_subscriptions s WHERE s.id = k.recipient))",
        )
        .bind(r.tenant_id)
        .bind(r.alert_id)
        .bind(NO_RECIPIENT)
        .fetch_all(&mut *tx)
        .await?;
        for (channel, recipient) in heard {
            let entry = groups
                .entry((r.tenant_id, channel, recipient, r.group_key.clone()))
                .or_insert_with(|| (r.policy.clone(), Vec::new()));
            entry.1.push(r.summary.0.clone());
        }
    }
    let mut recorded = 0;
    for ((tenant, channel, recipient, group), (policy, alerts)) in groups {
        let message = Message {
            version: 1,
            id: Uuid::new_v4(),
            kind: NoticeKind::Resolved,
            tenant_id: tenant,
            policy,
            step: None,
            group,
            alerts,
        };
        let notice = Notice {
            tenant,
            channel,
            message,
            firing: -1,
            recipient: (recipient != NO_RECIPIENT).then_some(recipient),
        };
        recorded += usize::from(record(tx, notice).await?);
    }
    for r in &rows {
        sqlx::query(
            "UPDATE alert_escalations SET resolved_notice = false, updated_at = now()
             WHERE tenant_id = $1 AND alert_id = $2",
        )
        .bind(r.tenant_id)
        .bind(r.alert_id)
        .execute(&mut *tx)
        .await?;
    }
    Ok(recorded)
}
