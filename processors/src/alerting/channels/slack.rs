//! `slack`: an incoming webhook with a Block Kit message (a header, a section per alert, a context line).

use serde_json::{json, Value};

use super::http::ChatWebhook;
use crate::alerting::message::Message;

/// The Slack channel: its payload posted to `webhook_url`.
pub static SLACK: ChatWebhook = ChatWebhook {
    name: "slack",
    payload,
};

/// Slack's limit of blocks per message is 50; a group longer than this lists the first ones.
const MAX_ALERT_BLOCKS: usize = 40;

/// The Block Kit payload of `message`.
pub fn payload(message: &Message) -> Value {
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(&message.title(), 150), "emoji": true}
    })];
    for a in message.alerts.iter().take(MAX_ALERT_BLOCKS) {
        blocks.push(json!({
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": format!("*Machine*\n{}", escape(&a.machine))},
                {"type": "mrkdwn", "text": format!("*Severity*\n{}", a.severity)},
                {"type": "mrkdwn", "text": format!("*Rule*\n{}", escape(&a.rule_name))},
                {"type": "mrkdwn", "text": format!("*{}*\nobserved {:.3}, expected {:.3}", escape(&a.metric), a.observed, a.expected)},
            ]
        }));
    }
    if message.alerts.len() > MAX_ALERT_BLOCKS {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
            "text": format!("…and {} more", message.alerts.len() - MAX_ALERT_BLOCKS)}}));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": escape(&format!(
            "Haltless · {} · notification {}", message.group, message.id))}]
    }));
    json!({"text": message.title(), "blocks": blocks})
}

/// Escapes the three characters Slack's mrkdwn gives a meaning to.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate(s: &str, chars: usize) -> String {
    s.chars().take(chars).collect()
}
