//! `haltless.alerts.v1`: transitions of alerts, written exactly once by the detectors.

use apache_avro::types::Value;
use uuid::Uuid;

use crate::codec::{Codec, WireFormat};
use crate::error::CodecError;
use crate::fields::{enum_symbol, parse_symbol, shape, Fields};

/// Topic name of the alert stream.
pub const ALERTS_TOPIC: &str = "haltless.alerts.v1";

/// The schema the platform writes today.
pub const SCHEMA: &str = include_str!("../avro/haltless.alerts.v1.avsc");

/// Every released version, oldest first.
pub const HISTORY: &[&str] = &[
    include_str!("../avro/history/haltless.alerts.v1/001.avsc"),
    include_str!("../avro/history/haltless.alerts.v1/002.avsc"),
];

/// What happened to the alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// Its rule started to hold.
    Raised,
    /// It persists, more strongly than last reported.
    Updated,
    /// It cleared.
    Resolved,
}

/// How bad the alert is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Info,
    /// Needs attention.
    Warning,
    /// Act now.
    Critical,
}

const TRANSITIONS: [(Transition, &str); 3] = [
    (Transition::Raised, "RAISED"),
    (Transition::Updated, "UPDATED"),
    (Transition::Resolved, "RESOLVED"),
];
const SEVERITIES: [(Severity, &str); 3] = [
    (Severity::Info, "INFO"),
    (Severity::Warning, "WARNING"),
    (Severity::Critical, "CRITICAL"),
];

/// One alert transition: one Kafka message.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    /// Deterministic alert id.
    pub alert_id: Uuid,
    /// Raised, updated or resolved.
    pub transition: Transition,
    /// Owning tenant.
    pub tenant_id: Uuid,
    /// The machine.
    pub machine_id: Uuid,
    /// The machine's name.
    pub machine: String,
    /// The rule.
    pub rule_id: String,
    /// The rule's name.
    pub rule_name: String,
    /// The rule's severity.
    pub severity: Severity,
    /// The detector of the strongest condition.
    pub detector: String,
    /// Its metric.
    pub metric: String,
    /// Observed value (or velocity).
    pub observed: f64,
    /// Expected value.
    pub expected: f64,
    /// The detector's score.
    pub score: f64,
    /// The score at which it fires.
    pub limit: f64,
    /// Event time of the reading that caused the transition (ms).
    pub event_time_ms: i64,
    /// (partition, offset) of the readings behind it.
    pub readings: Vec<(i32, i64)>,
    /// Which feature fired and why, in words (empty in records written before version 2 of the schema).
    pub explanation: String,
    /// Each feature's score, strongest first.
    pub contributions: Vec<(String, f64)>,
}

impl AlertRecord {
    /// The Kafka message key: `tenant/machine`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.tenant_id, self.machine_id)
    }

    /// A codec for this topic.
    pub fn codec(format: WireFormat) -> Result<Codec, CodecError> {
        Codec::new(SCHEMA, HISTORY, format)
    }

    /// Encodes the record.
    pub fn encode(&self, codec: &Codec) -> Result<Vec<u8>, CodecError> {
        let readings = self
            .readings
            .iter()
            .map(|(p, o)| {
                Value::Record(vec![
                    ("partition".into(), Value::Int(*p)),
                    ("offset".into(), Value::Long(*o)),
                ])
            })
            .collect();
        codec.encode_value(Value::Record(vec![
            ("alert_id".into(), Value::Uuid(self.alert_id)),
            (
                "transition".into(),
                enum_symbol(&TRANSITIONS, self.transition),
            ),
            ("tenant_id".into(), Value::Uuid(self.tenant_id)),
            ("machine_id".into(), Value::Uuid(self.machine_id)),
            ("machine".into(), Value::String(self.machine.clone())),
            ("rule_id".into(), Value::String(self.rule_id.clone())),
            ("rule_name".into(), Value::String(self.rule_name.clone())),
            ("severity".into(), enum_symbol(&SEVERITIES, self.severity)),
            ("detector".into(), Value::String(self.detector.clone())),
            ("metric".into(), Value::String(self.metric.clone())),
            ("observed".into(), Value::Double(self.observed)),
            ("expected".into(), Value::Double(self.expected)),
            ("score".into(), Value::Double(self.score)),
            ("limit".into(), Value::Double(self.limit)),
            (
                "event_time".into(),
                Value::TimestampMillis(self.event_time_ms),
            ),
            ("readings".into(), Value::Array(readings)),
            (
                "explanation".into(),
                Value::String(self.explanation.clone()),
            ),
            (
                "contributions".into(),
                Value::Array(
                    self.contributions
                        .iter()
                        .map(|(feature, score)| {
                            Value::Record(vec![
                                ("feature".into(), Value::String(feature.clone())),
                                ("score".into(), Value::Double(*score)),
                            ])
                        })
                        .collect(),
                ),
            ),
        ]))
    }

    /// Decodes a record written with any known version of the schema.
    pub fn decode(codec: &Codec, bytes: &[u8]) -> Result<Self, CodecError> {
        let mut f = Fields::of(codec.decode_value(bytes)?)?;
        let readings = match f.take("readings")? {
            Value::Array(items) => items
                .into_iter()
                .map(|item| {
                    let mut r = Fields::of(item)?;
                    Ok((r.int("partition")?, r.long("offset")?))
                })
                .collect::<Result<Vec<_>, CodecError>>()?,
            other => return Err(shape("readings", &other)),
        };
        let contributions = match f.take("contributions")? {
            Value::Array(items) => items
                .into_iter()
                .map(|item| {
                    let mut c = Fields::of(item)?;
                    Ok((c.string("feature")?, c.double("score")?))
                })
                .collect::<Result<Vec<_>, CodecError>>()?,
            other => return Err(shape("contributions", &other)),
        };
        Ok(Self {
            alert_id: f.uuid("alert_id")?,
            transition: parse_symbol(&TRANSITIONS, &f.symbol("transition")?)?,
            tenant_id: f.uuid("tenant_id")?,
            machine_id: f.uuid("machine_id")?,
            machine: f.string("machine")?,
            rule_id: f.string("rule_id")?,
            rule_name: f.string("rule_name")?,
            severity: parse_symbol(&SEVERITIES, &f.symbol("severity")?)?,
            detector: f.string("detector")?,
            metric: f.string("metric")?,
            observed: f.double("observed")?,
            expected: f.double("expected")?,
            score: f.double("score")?,
            limit: f.double("limit")?,
            event_time_ms: f.long("event_time")?,
            readings,
            explanation: f.string("explanation")?,
            contributions,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let record = AlertRecord {
            alert_id: Uuid::from_u128(7),
            transition: Transition::Resolved,
            tenant_id: Uuid::from_u128(1),
            machine_id: Uuid::from_u128(2),
            machine: "press-07".into(),
            rule_id: "default:ewma:temp".into(),
            rule_name: "ewma on temp".into(),
            severity: Severity::Critical,
            detector: "ewma".into(),
            metric: "temp".into(),
            observed: 91.5,
            expected: 70.25,
            score: 6.5,
            limit: 5.0,
            event_time_ms: 1_795_687_200_000,
            readings: vec![(3, 17), (3, 18)],
            explanation: "temp 91.5, usually 70.25 ± 2; about 1 in 100,000 readings".into(),
            contributions: vec![("level".into(), 5.6), ("profile".into(), 1.25)],
        };
        let codec = AlertRecord::codec(WireFormat::SingleObject).unwrap();
        let bytes = record.encode(&codec).unwrap();
        assert_eq!(AlertRecord::decode(&codec, &bytes).unwrap(), record);
    }

    #[test]
    fn a_record_written_before_explanations_reads_with_none() {
        let old = Codec::new(HISTORY[0], &[], WireFormat::SingleObject).unwrap();
        let bytes = old
            .encode_value(Value::Record(vec![
                ("alert_id".into(), Value::Uuid(Uuid::from_u128(7))),
                ("transition".into(), Value::Enum(0, "RAISED".into())),
                ("tenant_id".into(), Value::Uuid(Uuid::from_u128(1))),
                ("machine_id".into(), Value::Uuid(Uuid::from_u128(2))),
                ("machine".into(), Value::String("press-07".into())),
                ("rule_id".into(), Value::String("r".into())),
                ("rule_name".into(), Value::String("r".into())),
                ("severity".into(), Value::Enum(1, "WARNING".into())),
                ("detector".into(), Value::String("ewma".into())),
                ("metric".into(), Value::String("temp".into())),
                ("observed".into(), Value::Double(1.0)),
                ("expected".into(), Value::Double(0.0)),
                ("score".into(), Value::Double(6.0)),
                ("limit".into(), Value::Double(5.0)),
                ("event_time".into(), Value::TimestampMillis(5)),
                ("readings".into(), Value::Array(vec![])),
            ]))
            .unwrap();
        let codec = AlertRecord::codec(WireFormat::SingleObject).unwrap();
        let record = AlertRecord::decode(&codec, &bytes).unwrap();
        assert_eq!(record.explanation, "");
        assert!(record.contributions.is_empty());
        assert_eq!(record.detector, "ewma");
    }
}
