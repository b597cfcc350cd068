//! `haltless.models.v1`: each tenant's remaining-useful-life models and the machines they serve, as
//! events on a compacted topic, so that a replay serves each cycle with the model in force then.

use apache_avro::types::Value;
use uuid::Uuid;

use crate::codec::{Codec, WireFormat};
use crate::error::CodecError;
use crate::fields::{optional, record, shape, Fields};

/// Topic name of the model changes.
pub const MODELS_TOPIC: &str = "haltless.models.v1";

/// The schema the platform writes today.
pub const SCHEMA: &str = include_str!("../avro/haltless.models.v1.avsc");

/// Every released version, oldest first.
pub const HISTORY: &[&str] = &[include_str!("../avro/history/haltless.models.v1/001.avsc")];

/// A model's assignment: one Kafka message.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelChange {
    /// Owning tenant.
    pub tenant_id: Uuid,
    /// The model.
    pub model_id: Uuid,
    /// Its content digest.
    pub version: String,
    /// Event time from which this assignment applies (ms).
    pub effective_from_ms: i64,
    /// False: from `effective_from_ms` on it serves no machine.
    pub active: bool,
    /// Machine names it serves; every machine of the tenant when empty.
    pub machines: Vec<String>,
    /// The model's JSON.
    pub model: String,
    /// A prediction whose RUL (cycles) falls below this raises an alert; none when `None`.
    pub alert_below: Option<f64>,
}

impl ModelChange {
    /// The Kafka key: `tenant/model`, so compaction keeps each model's latest assignment.
    pub fn key(&self) -> String {
        format!("{}/{}", self.tenant_id, self.model_id)
    }

    /// A codec for this topic (single-object encoding).
    pub fn codec() -> Result<Codec, CodecError> {
        Codec::new(SCHEMA, HISTORY, WireFormat::SingleObject)
    }

    /// Encodes the record.
    pub fn encode(&self, codec: &Codec) -> Result<Vec<u8>, CodecError> {
        codec.encode_value(record([
            ("tenant_id", Value::Uuid(self.tenant_id)),
            ("model_id", Value::Uuid(self.model_id)),
            ("version", Value::String(self.version.clone())),
            (
                "effective_from",
                Value::TimestampMillis(self.effective_from_ms),
            ),
            ("active", Value::Boolean(self.active)),
            (
                "machines",
                Value::Array(self.machines.iter().cloned().map(Value::String).collect()),
            ),
            ("model", Value::String(self.model.clone())),
            ("alert_below", optional(self.alert_below.map(Value::Double))),
        ]))
    }

    /// Decodes a record written with any known version of the schema.
    pub fn decode(codec: &Codec, bytes: &[u8]) -> Result<Self, CodecError> {
        let mut f = Fields::of(codec.decode_value(bytes)?)?;
        let machines = f
            .array("machines")?
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(shape("machines", &other)),
            })
            .collect::<Result<Vec<_>, CodecError>>()?;
        Ok(Self {
            tenant_id: f.uuid("tenant_id")?,
            model_id: f.uuid("model_id")?,
            version: f.string("version")?,
            effective_from_ms: f.long("effective_from")?,
            active: f.boolean("active")?,
            machines,
            model: f.string("model")?,
            alert_below: match f.optional("alert_below")? {
                None => None,
                Some(Value::Double(v)) => Some(v),
                Some(other) => return Err(shape("alert_below", &other)),
            },
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let change = ModelChange {
            tenant_id: Uuid::from_u128(1),
            model_id: Uuid::from_u128(3),
            version: "rul-gbt-01".into(),
            effective_from_ms: 5,
            active: true,
            machines: vec!["engine-1".into(), "engine-2".into()],
            model: "{}".into(),
            alert_below: Some(20.0),
        };
        let codec = ModelChange::codec().unwrap();
        let bytes = change.encode(&codec).unwrap();
        assert_eq!(ModelChange::decode(&codec, &bytes).unwrap(), change);
    }
}
