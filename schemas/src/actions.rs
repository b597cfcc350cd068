//! `haltless.alert-actions.v1`: what people do to alerts (acknowledge, snooze), as events, so an alert's
//! history is complete. Avro (`avro/haltless.alert-actions.v1.avsc`), keyed by `tenant/alert`; messages
//! written before the schema existed are JSON and still read.

use apache_avro::types::Value;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::{Codec, WireFormat};
use crate::error::CodecError;
use crate::fields::{enum_symbol, optional, parse_symbol, record, Fields};

/// Topic name of alert actions.
pub const ALERT_ACTIONS_TOPIC: &str = "haltless.alert-actions.v1";

/// The schema the platform writes.
pub const SCHEMA: &str = include_str!("../avro/haltless.alert-actions.v1.avsc");

/// Every released version of the schema, oldest first.
pub const HISTORY: &[&str] = &[include_str!(
    "../avro/history/haltless.alert-actions.v1/001.avsc"
)];

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

/// One action on one alert. (The serde derives read the JSON messages written before the Avro schema.)
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

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Ack,
    Snooze,
}

const KINDS: [(Kind, &str); 2] = [(Kind::Ack, "ACK"), (Kind::Snooze, "SNOOZE")];

impl AlertAction {
    /// The Kafka message key.
    pub fn key(&self) -> String {
        format!("{}/{}", self.tenant_id, self.alert_id)
    }

    /// A codec for this topic (single-object encoding: the topic is the platform's own).
    pub fn codec() -> Result<Codec, CodecError> {
        Codec::new(SCHEMA, HISTORY, WireFormat::SingleObject)
    }

    /// Encodes the action.
    pub fn encode(&self, codec: &Codec) -> Result<Vec<u8>, CodecError> {
        let (kind, until) = match self.action {
            Action::Ack => (Kind::Ack, None),
            Action::Snooze { until_ms } => (Kind::Snooze, Some(Value::TimestampMillis(until_ms))),
        };
        codec.encode_value(record([
            ("tenant_id", Value::Uuid(self.tenant_id)),
            ("alert_id", Value::Uuid(self.alert_id)),
            ("by", Value::String(self.by.clone())),
            ("at", Value::TimestampMillis(self.at_ms)),
            ("action", enum_symbol(&KINDS, kind)),
            ("snooze_until", optional(until)),
        ]))
    }

    /// Decodes an action written with any known version of the schema, or as the JSON of before.
    pub fn decode(codec: &Codec, bytes: &[u8]) -> Result<Self, CodecError> {
        if bytes.first() == Some(&b'{') {
            return serde_json::from_slice(bytes)
                .map_err(|e| CodecError::Shape(format!("legacy JSON alert action: {e}")));
        }
        let mut f = Fields::of(codec.decode_value(bytes)?)?;
        let action = match parse_symbol(&KINDS, &f.symbol("action")?)? {
            Kind::Ack => Action::Ack,
            Kind::Snooze => {
                let until = f
                    .optional("snooze_until")?
                    .ok_or_else(|| CodecError::Shape("a snooze without snooze_until".into()))?;
                match until {
                    Value::TimestampMillis(ms) | Value::Long(ms) => Action::Snooze { until_ms: ms },
                    other => return Err(crate::fields::shape("snooze_until", &other)),
                }
            }
        };
        Ok(Self {
            tenant_id: f.uuid("tenant_id")?,
            alert_id: f.uuid("alert_id")?,
            by: f.string("by")?,
            at_ms: f.long("at")?,
            action,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn snooze() -> AlertAction {
        AlertAction {
            tenant_id: Uuid::from_u128(1),
            alert_id: Uuid::from_u128(2),
            by: "ops@plant".into(),
            at_ms: 5,
            action: Action::Snooze { until_ms: 9 },
        }
    }

    #[test]
    fn round_trips_through_the_topic_format() {
        let codec = AlertAction::codec().unwrap();
        for action in [
            snooze(),
            AlertAction {
                action: Action::Ack,
                ..snooze()
            },
        ] {
            let bytes = action.encode(&codec).unwrap();
            assert_eq!(&bytes[..2], &[0xC3, 0x01]);
            assert_eq!(AlertAction::decode(&codec, &bytes).unwrap(), action);
        }
    }

    #[test]
    fn json_written_before_the_schema_still_reads() {
        let codec = AlertAction::codec().unwrap();
        // A message as the API wrote it before the Avro schema existed.
        let legacy = br#"{"tenant_id":"00000000-0000-0000-0000-000000000001","alert_id":"00000000-0000-0000-0000-000000000002","by":"ops@plant","at_ms":5,"action":"snooze","until_ms":9}"#;
        assert_eq!(AlertAction::decode(&codec, legacy).unwrap(), snooze());
    }
}
