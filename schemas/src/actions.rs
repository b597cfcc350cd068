//! `haltless.alert-actions.v1`: what people do to alerts (acknowledge, snooze), as events, so an alert's
//! history is complete. JSON-encoded, keyed by `tenant/alert`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Topic name of alert actions.
pub const ALERT_ACTIONS_TOPIC: &str = "haltless.alert-actions.v1";

/// What was done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Someone has seen it and takes care of it.
    Ack,
    /// Notifications stop until `until_ms`.
    Snooze {
        /// End of the snooze, ms since the Unix epoch.
        until_ms: i64,
    },
}

/// One action on one alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertAction {
    /// Owning tenant.
    pub tenant_id: Uuid,
    /// The alert.
    pub alert_id: Uuid,
    /// Who did it (a user's email or an API key's name).
    pub by: String,
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
    /// What.
    #[serde(flatten)]
    pub action: Action,
}

impl AlertAction {
    /// The Kafka message key.
    pub fn key(&self) -> String {
        format!("{}/{}", self.tenant_id, self.alert_id)
    }

    /// Encodes the action as JSON.
    pub fn encode(&self) -> Vec<u8> {
        // Plain data serialises to JSON without fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes an action.
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let a = AlertAction {
            tenant_id: Uuid::from_u128(1),
            alert_id: Uuid::from_u128(2),
            by: "ops@plant".into(),
            at_ms: 5,
            action: Action::Snooze { until_ms: 9 },
        };
        let bytes = a.encode();
        assert!(String::from_utf8_lossy(&bytes).contains(r#""action":"snooze""#));
        assert_eq!(AlertAction::decode(&bytes).unwrap(), a);
    }
}
