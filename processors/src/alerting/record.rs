//! Recording a notification before it is sent: the notification itself and one key per (alert,
//! firing, channel, recipient), so nothing is notified twice whatever restarts, rebalances or replays happen.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::message::Message;
use crate::runtime::ProcessorError;

/// A notification to record: who gets it, what it says, which (alert, firing) keys it carries.
#[derive(Debug)]
pub struct Notice {
    /// The tenant.
    pub tenant: Uuid,
    /// The channel.
    pub channel: Uuid,
    /// What it says; its id is the notification's.
    pub message: Message,
    /// The key's firing: the escalation's firing number, or -1 for a resolution notice.
    pub firing: i32,
    /// The push subscription it goes to, for a push channel telling one person's browser.
    pub recipient: Option<Uuid>,
}

/// The key's recipient for channels that have none.
pub const NO_RECIPIENT: Uuid = Uuid::nil();

/// Records a notice: the keys of its alerts not yet notified on this channel for this firing, and the
/// notification listing exactly those. Returns whether anything was left to send.
pub async fn record(tx: &mut PgConnection, mut n: Notice) -> Result<bool, ProcessorError> {
    let ids: Vec<Uuid> = n.message.alerts.iter().map(|a| a.id).collect();
    let known: Vec<Uuid> = sqlx::query_scalar(
        "SELECT alert_id FROM notification_keys
         WHERE tenant_id = $1 AND firing = $2 AND channel_id = $3 AND alert_id = ANY($4) AND recipient = $5",
    )
    .bind(n.tenant)
    .bind(n.firing)
    .bind(n.channel)
    .bind(&ids)
    .bind(n.recipient.unwrap_or(NO_RECIPIENT))
    .fetch_all(&mut *tx)
    .await?;
    n.message.alerts.retain(|a| !known.contains(&a.id));
    if n.message.alerts.is_empty() {
        return Ok(false);
    }
    let rank = |s: &str| ["info", "warning", "critical"].iter().position(|x| *x == s);
    n.message.alerts.sort_by(|a, b| {
        rank(&b.severity)
            .cmp(&rank(&a.severity))
            .then(a.raised_at.cmp(&b.raised_at))
    });
    let ids: Vec<Uuid> = n.message.alerts.iter().map(|a| a.id).collect();
    let message =
        serde_json::to_value(&n.message).map_err(|e| ProcessorError::Internal(e.to_string()))?;
    sqlx::query(
        "INSERT INTO notifications (id, tenant_id, channel_id, kind, step, alert_ids, message, recipient)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(n.message.id)
    .bind(n.tenant)
    .bind(n.channel)
    .bind(n.message.kind.as_str())
    .bind(n.message.step)
    .bind(&ids)
    .bind(message)
    .bind(n.recipient)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO notification_keys (tenant_id, alert_id, firing, channel_id, notification_id, recipient)
         SELECT $1, a, $2, $3, $4, $6 FROM unnest($5::uuid[]) AS a",
    )
    .bind(n.tenant)
    .bind(n.firing)
    .bind(n.channel)
    .bind(n.message.id)
    .bind(&ids)
    .bind(n.recipient.unwrap_or(NO_RECIPIENT))
    .execute(&mut *tx)
    .await?;
    metrics::counter!(haltless_schemas::metric_names::NOTIFICATIONS_RECORDED, "kind" => n.message.kind.as_str())
        .increment(1);
    Ok(true)
}

/// A stored message, as the delivery reads it back.
pub fn message_of(value: Value) -> Result<Message, ProcessorError> {
    serde_json::from_value(value)
        .map_err(|e| ProcessorError::Internal(format!("stored message: {e}")))
}
