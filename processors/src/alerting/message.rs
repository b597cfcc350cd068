//! What a notification says, whatever carries it: the alerts it lists and why it was sent. The webhook
//! channel posts this document as it is (its schema is in the README); the other channels render it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a notification was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// Alerts are open and unacknowledged (an escalation step fired).
    Alert,
    /// Alerts the channel was told about have resolved.
    Resolved,
    /// `POST /api/v1/channels/{id}/test`.
    Test,
}

impl NoticeKind {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Alert => "alert",
            NoticeKind::Resolved => "resolved",
            NoticeKind::Test => "test",
        }
    }
}

/// One alert in a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertSummary {
    /// The alert's id (`GET /api/v1/alerts/{id}`).
    pub id: Uuid,
    /// The machine's name.
    pub machine: String,
    /// The rule's id.
    pub rule_id: String,
    /// The rule's name.
    pub rule_name: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// The detector of the strongest condition.
    pub detector: String,
    /// Its metric.
    pub metric: String,
    /// The value observed.
    pub observed: f64,
    /// The value expected.
    pub expected: f64,
    /// When it was raised (RFC 3339, event time).
    pub raised_at: String,
    /// `open` or `resolved`.
    pub state: String,
}

/// A notification's content (the webhook body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Message {
    /// The schema's version, `1`.
    pub version: u32,
    /// The notification's id; also the `Idempotency-Key` header: a retry carries the same one.
    pub id: Uuid,
    /// Why it was sent.
    pub kind: NoticeKind,
    /// The tenant.
    pub tenant_id: Uuid,
    /// The escalation policy's name (absent for tests).
    pub policy: Option<String>,
    /// The escalation step (0 first; past the last step, a repeat of it).
    pub step: Option<i32>,
    /// What the alerts share (e.g. `machine=press-07`).
    pub group: String,
    /// The alerts, most severe first.
    pub alerts: Vec<AlertSummary>,
}

impl Message {
    /// One line saying what happened, e.g. `[CRITICAL] 3 alerts on machine=press-07`.
    pub fn title(&self) -> String {
        let n = self.alerts.len();
        let what = if n == 1 {
            let a = &self.alerts[0];
            format!("{} on {}", a.rule_name, a.machine)
        } else {
            format!("{n} alerts on {}", self.group)
        };
        match self.kind {
            NoticeKind::Test => "Haltless test notification: this channel works".to_owned(),
            NoticeKind::Resolved => format!("[RESOLVED] {what}"),
            NoticeKind::Alert => format!("[{}] {what}", self.worst().to_uppercase()),
        }
    }

    /// The worst severity listed (`info` when none).
    pub fn worst(&self) -> &str {
        let rank = |s: &str| match s {
            "critical" => 2,
            "warning" => 1,
            _ => 0,
        };
        self.alerts
            .iter()
            .map(|a| a.severity.as_str())
            .max_by_key(|s| rank(s))
            .unwrap_or("info")
    }

    /// One line per alert, for text renderings.
    pub fn lines(&self) -> Vec<String> {
        self.alerts
            .iter()
            .map(|a| {
                format!(
                    "{} · {} · {} {}: observed {:.3}, expected {:.3} (raised {}, {}, alert {})",
                    a.severity,
                    a.machine,
                    a.rule_name,
                    a.metric,
                    a.observed,
                    a.expected,
                    a.raised_at,
                    a.state,
                    a.id
                )
            })
            .collect()
    }

    /// The plain-text body (email, fallbacks).
    pub fn text(&self) -> String {
        let mut out = self.title();
        out.push_str("\n\n");
        for line in self.lines() {
            out.push_str("- ");
            out.push_str(&line);
            out.push('\n');
        }
        if let Some(policy) = &self.policy {
            out.push_str(&format!(
                "\nPolicy {policy}, step {}. Acknowledge an alert to stop its escalation.\n",
                self.step.unwrap_or(0) + 1
            ));
        }
        out
    }

    /// A message a test send carries.
    pub fn test(id: Uuid, tenant_id: Uuid) -> Self {
        Self {
            version: 1,
            id,
            kind: NoticeKind::Test,
            tenant_id,
            policy: None,
            step: None,
            group: "test".into(),
            alerts: Vec::new(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn alert(severity: &str, machine: &str) -> AlertSummary {
        AlertSummary {
            id: Uuid::nil(),
            machine: machine.into(),
            rule_id: "r".into(),
            rule_name: "spindle too hot".into(),
            severity: severity.into(),
            detector: "threshold".into(),
            metric: "spindle_temp".into(),
            observed: 91.0,
            expected: 70.0,
            raised_at: "2026-11-29T10:00:00Z".into(),
            state: "open".into(),
        }
    }

    #[test]
    fn titles_name_the_worst_severity_and_the_group() {
        let mut m = Message::test(Uuid::nil(), Uuid::nil());
        m.kind = NoticeKind::Alert;
        m.group = "machine=press-07".into();
        m.alerts = vec![alert("warning", "press-07")];
        assert_eq!(m.title(), "[WARNING] spindle too hot on press-07");
        m.alerts.push(alert("critical", "press-07"));
        assert_eq!(m.title(), "[CRITICAL] 2 alerts on machine=press-07");
        m.kind = NoticeKind::Resolved;
        assert_eq!(m.title(), "[RESOLVED] 2 alerts on machine=press-07");
        assert_eq!(m.text().matches("\n- ").count(), 2);
    }
}
