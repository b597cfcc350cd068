//! `teams`: a Microsoft Teams Workflows webhook ("When a Teams webhook request is received") with an
//! Adaptive Card 1.4 attachment.

use serde_json::{json, Value};

use super::http::ChatWebhook;
use crate::alerting::message::Message;

/// The Teams channel: its payload posted to `webhook_url`.
pub static TEAMS: ChatWebhook = ChatWebhook {
    name: "teams",
    payload,
};

/// The Workflows payload of `message`: a `message` with one Adaptive Card attachment.
pub fn payload(message: &Message) -> Value {
    let mut body = vec![json!({
        "type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": true,
        "style": "heading", "text": message.title(),
        "color": match (message.kind, message.worst()) {
            (crate::alerting::message::NoticeKind::Alert, "critical") => "Attention",
            (crate::alerting::message::NoticeKind::Alert, "warning") => "Warning",
            _ => "Default",
        },
    })];
    for a in &message.alerts {
        body.push(json!({
            "type": "FactSet",
            "separator": true,
            "facts": [
                {"title": "Machine", "value": a.machine},
                {"title": "Severity", "value": a.severity},
                {"title": "Rule", "value": a.rule_name},
                {"title": "Metric", "value": format!("{}: observed {:.3}, expected {:.3}", a.metric, a.observed, a.expected)},
                {"title": "Raised", "value": a.raised_at},
                {"title": "Alert", "value": a.id.to_string()},
            ]
        }));
    }
    body.push(
        json!({"type": "TextBlock", "isSubtle": true, "wrap": true, "size": "Small",
        "text": format!("Haltless · {} · notification {}", message.group, message.id)}),
    );
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            }
        }]
    })
}
