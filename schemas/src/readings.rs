//! `haltless.readings.v1`: batches of readings of one machine.

use apache_avro::types::Value;
use uuid::Uuid;

use crate::codec::{Codec, CodecError, WireFormat};
use crate::fields::{enum_symbol, parse_symbol, shape, Fields};

/// Topic name of the readings stream.
pub const READINGS_TOPIC: &str = "haltless.readings.v1";

/// The schema the platform writes today.
pub const SCHEMA: &str = include_str!("../avro/haltless.readings.v1.avsc");

/// Every released version, oldest first (see `avro/README.md`).
pub const HISTORY: &[&str] = &[include_str!(
    "../avro/history/haltless.readings.v1/001.avsc"
)];

/// Which ingest path produced a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// HTTP `POST /api/v1/ingest`.
    Gateway,
    /// Polled from an OPC-UA server.
    Opcua,
    /// Polled from a Modbus TCP device.
    Modbus,
    /// Pushed by the edge agent.
    Agent,
}

/// Quality flag of one reading, as devices report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    /// The value can be trusted.
    Good,
    /// The device is unsure of the value.
    Uncertain,
    /// The device reports the value as wrong.
    Bad,
}

/// One measured value.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Metric name, e.g. `spindle_temp`.
    pub metric: String,
    /// Event time in milliseconds since the Unix epoch.
    pub event_time_ms: i64,
    /// The value; always finite.
    pub value: f64,
    /// Optional quality flag.
    pub quality: Option<Quality>,
}

/// Readings of one machine from one request or poll: one Kafka message.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadingBatch {
    /// Owning tenant.
    pub tenant_id: Uuid,
    /// Machine the readings belong to.
    pub machine_id: Uuid,
    /// Machine name at ingest time.
    pub machine: String,
    /// Ingest path.
    pub source: Source,
    /// When the platform accepted the batch, ms since the Unix epoch.
    pub ingest_time_ms: i64,
    /// The readings, in request order.
    pub readings: Vec<Reading>,
}

impl ReadingBatch {
    /// The Kafka message key: `tenant/machine`, so one machine's readings stay in order on one partition.
    pub fn key(&self) -> String {
        format!("{}/{}", self.tenant_id, self.machine_id)
    }

    /// A codec for this topic in the given wire format.
    pub fn codec(format: WireFormat) -> Result<Codec, CodecError> {
        Codec::new(SCHEMA, HISTORY, format)
    }

    /// Encodes the batch with `codec`.
    pub fn encode(&self, codec: &Codec) -> Result<Vec<u8>, CodecError> {
        codec.encode_value(self.to_value())
    }

    /// Decodes a batch written with any known version of the schema.
    pub fn decode(codec: &Codec, bytes: &[u8]) -> Result<Self, CodecError> {
        Self::from_value(codec.decode_value(bytes)?)
    }

    fn to_value(&self) -> Value {
        let readings = self
            .readings
            .iter()
            .map(|r| {
                let quality = match r.quality {
                    None => Value::Union(0, Box::new(Value::Null)),
                    Some(q) => Value::Union(1, Box::new(enum_symbol(&QUALITIES, q))),
                };
                Value::Record(vec![
                    ("metric".into(), Value::String(r.metric.clone())),
                    ("event_time".into(), Value::TimestampMillis(r.event_time_ms)),
                    ("value".into(), Value::Double(r.value)),
                    ("quality".into(), quality),
                ])
            })
            .collect();
        Value::Record(vec![
            ("tenant_id".into(), Value::Uuid(self.tenant_id)),
            ("machine_id".into(), Value::Uuid(self.machine_id)),
            ("machine".into(), Value::String(self.machine.clone())),
            ("source".into(), enum_symbol(&SOURCES, self.source)),
            (
                "ingest_time".into(),
                Value::TimestampMillis(self.ingest_time_ms),
            ),
            ("readings".into(), Value::Array(readings)),
        ])
    }

    fn from_value(value: Value) -> Result<Self, CodecError> {
        let mut f = Fields::of(value)?;
        let readings = match f.take("readings")? {
            Value::Array(items) => items
                .into_iter()
                .map(|item| {
                    let mut r = Fields::of(item)?;
                    Ok(Reading {
                        metric: r.string("metric")?,
                        event_time_ms: r.long("event_time")?,
                        value: r.double("value")?,
                        quality: match r.take("quality")? {
                            Value::Union(_, inner) => match *inner {
                                Value::Null => None,
                                Value::Enum(_, s) => Some(parse_symbol(&QUALITIES, &s)?),
                                other => return Err(shape("quality", &other)),
                            },
                            other => return Err(shape("quality", &other)),
                        },
                    })
                })
                .collect::<Result<Vec<_>, CodecError>>()?,
            other => return Err(shape("readings", &other)),
        };
        Ok(Self {
            tenant_id: f.uuid("tenant_id")?,
            machine_id: f.uuid("machine_id")?,
            machine: f.string("machine")?,
            source: parse_symbol(&SOURCES, &f.symbol("source")?)?,
            ingest_time_ms: f.long("ingest_time")?,
            readings,
        })
    }
}

const SOURCES: [(Source, &str); 4] = [
    (Source::Gateway, "GATEWAY"),
    (Source::Opcua, "OPCUA"),
    (Source::Modbus, "MODBUS"),
    (Source::Agent, "AGENT"),
];
const QUALITIES: [(Quality, &str); 3] = [
    (Quality::Good, "GOOD"),
    (Quality::Uncertain, "UNCERTAIN"),
    (Quality::Bad, "BAD"),
];

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> ReadingBatch {
        ReadingBatch {
            tenant_id: Uuid::from_u128(1),
            machine_id: Uuid::from_u128(2),
            machine: "press-07".into(),
            source: Source::Modbus,
            ingest_time_ms: 1_790_000_000_123,
            readings: vec![
                Reading {
                    metric: "spindle_temp".into(),
                    event_time_ms: 1_790_000_000_000,
                    value: 71.5,
                    quality: None,
                },
                Reading {
                    metric: "vibration".into(),
                    event_time_ms: 1_790_000_000_001,
                    value: -0.25,
                    quality: Some(Quality::Uncertain),
                },
            ],
        }
    }

    #[test]
    fn round_trips_in_single_object_encoding() {
        let codec = ReadingBatch::codec(WireFormat::SingleObject).unwrap();
        let bytes = sample().encode(&codec).unwrap();
        assert_eq!(&bytes[..2], &[0xC3, 0x01]);
        assert_eq!(&bytes[2..10], &codec.fingerprint());
        assert_eq!(ReadingBatch::decode(&codec, &bytes).unwrap(), sample());
    }

    #[test]
    fn round_trips_in_confluent_wire_format() {
        let codec = ReadingBatch::codec(WireFormat::Confluent { schema_id: 42 }).unwrap();
        let bytes = sample().encode(&codec).unwrap();
        assert_eq!(&bytes[..5], &[0, 0, 0, 0, 42]);
        assert_eq!(ReadingBatch::decode(&codec, &bytes).unwrap(), sample());
    }

    #[test]
    fn single_object_messages_decode_with_the_avro_library_reader() {
        // The header must be what any Avro implementation expects, not just what we read back.
        let codec = ReadingBatch::codec(WireFormat::SingleObject).unwrap();
        let bytes = sample().encode(&codec).unwrap();
        let reader = apache_avro::GenericSingleObjectReader::new(codec.schema().clone()).unwrap();
        let value = reader.read_value(&mut bytes.as_slice()).unwrap();
        assert!(matches!(value, Value::Record(_)));
    }

    #[test]
    fn rejects_unknown_framing_and_unknown_schemas() {
        let codec = ReadingBatch::codec(WireFormat::SingleObject).unwrap();
        assert!(matches!(
            ReadingBatch::decode(&codec, b"{\"json\":1}"),
            Err(CodecError::UnknownFraming(_))
        ));
        let mut bytes = sample().encode(&codec).unwrap();
        bytes[5] ^= 0xFF;
        assert!(matches!(
            ReadingBatch::decode(&codec, &bytes),
            Err(CodecError::UnknownSchema(_))
        ));
    }

    #[test]
    fn key_groups_by_tenant_and_machine() {
        assert_eq!(
            sample().key(),
            "00000000-0000-0000-0000-000000000001/00000000-0000-0000-0000-000000000002"
        );
    }
}
