//! `haltless.predictions.v1`: a machine's remaining useful life after each of its cycles, written exactly
//! once by the RUL predictor.

use apache_avro::types::Value;
use uuid::Uuid;

use crate::codec::{Codec, WireFormat};
use crate::error::CodecError;
use crate::fields::{record, shape, Fields};

/// Topic name of the predictions.
pub const PREDICTIONS_TOPIC: &str = "haltless.predictions.v1";

/// The schema the platform writes today.
pub const SCHEMA: &str = include_str!("../avro/haltless.predictions.v1.avsc");

/// Every released version, oldest first.
pub const HISTORY: &[&str] = &[include_str!(
    "../avro/history/haltless.predictions.v1/001.avsc"
)];

/// One prediction: one Kafka message.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRecord {
    /// Owning tenant.
    pub tenant_id: Uuid,
    /// The machine.
    pub machine_id: Uuid,
    /// The machine's name.
    pub machine: String,
    /// Event time of the cycle predicted after (ms).
    pub event_time_ms: i64,
    /// Cycles since the start of the machine's life.
    pub cycle: i64,
    /// Remaining useful life, in cycles.
    pub rul: f64,
    /// The interval's lower end.
    pub lower: f64,
    /// The interval's upper end.
    pub upper: f64,
    /// The interval's nominal coverage.
    pub interval: f64,
    /// 0 (at its end) to 1 (healthy).
    pub health: f64,
    /// The model.
    pub model_id: Uuid,
    /// The model's version.
    pub model_version: String,
    /// The sensors that moved the estimate most, with their effect in cycles, largest first.
    pub contributors: Vec<(String, f64)>,
    /// Partition and offset of the reading that completed the cycle.
    pub reading: (i32, i64),
}

impl PredictionRecord {
    /// The Kafka key: `tenant/machine`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.tenant_id, self.machine_id)
    }

    /// A codec for this topic.
    pub fn codec(format: WireFormat) -> Result<Codec, CodecError> {
        Codec::new(SCHEMA, HISTORY, format)
    }

    /// Encodes the record.
    pub fn encode(&self, codec: &Codec) -> Result<Vec<u8>, CodecError> {
        let contributors = self
            .contributors
            .iter()
            .map(|(sensor, effect)| {
                record([
                    ("sensor", Value::String(sensor.clone())),
                    ("effect", Value::Double(*effect)),
                ])
            })
            .collect();
        codec.encode_value(record([
            ("tenant_id", Value::Uuid(self.tenant_id)),
            ("machine_id", Value::Uuid(self.machine_id)),
            ("machine", Value::String(self.machine.clone())),
            ("event_time", Value::TimestampMillis(self.event_time_ms)),
            ("cycle", Value::Long(self.cycle)),
            ("rul", Value::Double(self.rul)),
            ("lower", Value::Double(self.lower)),
            ("upper", Value::Double(self.upper)),
            ("interval", Value::Double(self.interval)),
            ("health", Value::Double(self.health)),
            ("model_id", Value::Uuid(self.model_id)),
            ("model_version", Value::String(self.model_version.clone())),
            ("contributors", Value::Array(contributors)),
            (
                "reading",
                record([
                    ("partition", Value::Int(self.reading.0)),
                    ("offset", Value::Long(self.reading.1)),
                ]),
            ),
        ]))
    }

    /// Decodes a record written with any known version of the schema.
    pub fn decode(codec: &Codec, bytes: &[u8]) -> Result<Self, CodecError> {
        let mut f = Fields::of(codec.decode_value(bytes)?)?;
        let contributors = f
            .array("contributors")?
            .into_iter()
            .map(|item| {
                let mut c = Fields::of(item)?;
                Ok((c.string("sensor")?, c.double("effect")?))
            })
            .collect::<Result<Vec<_>, CodecError>>()?;
        let reading = match f.take("reading")? {
            v @ Value::Record(_) => {
                let mut r = Fields::of(v)?;
                (r.int("partition")?, r.long("offset")?)
            }
            other => return Err(shape("reading", &other)),
        };
        Ok(Self {
            tenant_id: f.uuid("tenant_id")?,
            machine_id: f.uuid("machine_id")?,
            machine: f.string("machine")?,
            event_time_ms: f.long("event_time")?,
            cycle: f.long("cycle")?,
            rul: f.double("rul")?,
            lower: f.double("lower")?,
            upper: f.double("upper")?,
            interval: f.double("interval")?,
            health: f.double("health")?,
            model_id: f.uuid("model_id")?,
            model_version: f.string("model_version")?,
            contributors,
            reading,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let record = PredictionRecord {
            tenant_id: Uuid::from_u128(1),
            machine_id: Uuid::from_u128(2),
            machine: "engine-3".into(),
            event_time_ms: 1_795_687_200_000,
            cycle: 140,
            rul: 41.5,
            lower: 30.25,
            upper: 55.0,
            interval: 0.8,
            health: 0.332,
            model_id: Uuid::from_u128(9),
            model_version: "rul-gbt-00ff".into(),
            contributors: vec![("s11".into(), -12.5), ("s4".into(), -3.0)],
            reading: (2, 77),
        };
        let codec = PredictionRecord::codec(WireFormat::SingleObject).unwrap();
        let bytes = record.encode(&codec).unwrap();
        assert_eq!(PredictionRecord::decode(&codec, &bytes).unwrap(), record);
    }
}
