//! `haltless.readings.v1`: batches of readings of one machine.

use apache_avro::types::Value;
use uuid::Uuid;

use crate::codec::{Codec, WireFormat};
use crate::error::CodecError;
use crate::fields::{parse_symbol, shape, Fields};

mod binary;

/// Topic name of the readings stream.
pub const READINGS_TOPIC: &str = "haltless.readings.v1";

/// The schema the platform writes today.
pub const SCHEMA: &str = include_str!("../avro/haltless.readings.v1.avsc");

/// Every released version, oldest first (see `avro/README.md`).
pub const HISTORY: &[&str] = &[
    include_str!("../avro/history/haltless.readings.v1/001.avsc"),
    include_str!("../avro/history/haltless.readings.v1/002.avsc"),
];

/// Which ingest path produced a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// HTTP `POST /api/v1/ingest`.
    Gateway,
    /// Pushed by the edge agent.
    Agent,
    /// Read from a device by the platform's pollers, with the protocol registered under this name.
    Device(ProtocolName),
}

impl Source {
    /// The symbol of the topic's `source` enum this source is written as: `GATEWAY`, `AGENT`, `OPCUA`,
    /// `MODBUS` or `DEVICE` (the protocol's name is then in the `protocol` field).
    pub fn symbol(&self) -> &'static str {
        source_fields(*self).0
    }

    /// A short name for metric labels and logs: `gateway`, `agent`, `opcua` and `modbus` as ever, else
    /// the protocol's registered name.
    pub fn label(&self) -> &str {
        match self {
            Source::Gateway => "gateway",
            Source::Agent => "agent",
            Source::Device(name) => PROTOCOL_SYMBOLS
                .iter()
                .find(|(n, _, _)| *n == name.as_str())
                .map_or(name.as_str(), |(_, _, label)| label),
        }
    }
}

/// The registered name of a device protocol, e.g. `modbus_tcp` or `opcua`: 1 to 32 lowercase ASCII
/// letters, digits or `_`, starting with a letter. Kept inline so that [`Source`] stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProtocolName {
    len: u8,
    bytes: [u8; ProtocolName::MAX_LEN],
}

impl ProtocolName {
    /// The longest name.
    pub const MAX_LEN: usize = 32;

    /// The name, if `name` is a valid protocol name.
    pub const fn new(name: &str) -> Option<Self> {
        let src = name.as_bytes();
        if src.is_empty() || src.len() > Self::MAX_LEN || !src[0].is_ascii_lowercase() {
            return None;
        }
        let mut bytes = [0u8; Self::MAX_LEN];
        let mut i = 0;
        while i < src.len() {
            let b = src[i];
            if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return None;
            }
            bytes[i] = b;
            i += 1;
        }
        Some(Self {
            len: src.len() as u8,
            bytes,
        })
    }

    /// The name of a protocol known when the code is built. Use it in a `const`, where an invalid
    /// name fails the build instead of the program.
    pub const fn from_static(name: &'static str) -> Self {
        match Self::new(name) {
            Some(n) => n,
            None => panic!("a protocol name is 1 to 32 of a-z, 0-9 and _, starting with a letter"),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (see `new`), so this cannot fail.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::fmt::Debug for ProtocolName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl std::fmt::Display for ProtocolName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ProtocolName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ProtocolName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::new(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("`{name}` is not a protocol name")))
    }
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
        let mut out = codec.header(0);
        binary::encode(self, &mut out);
        Ok(out)
    }

    /// Decodes a batch written with any known version of the schema.
    pub fn decode(codec: &Codec, bytes: &[u8]) -> Result<Self, CodecError> {
        match codec.own_datum(bytes) {
            Some(datum) => binary::decode(datum),
            None => Self::from_value(codec.decode_value(bytes)?),
        }
    }

    /// The batch as apache-avro's `Value`: the reference the direct encoding is tested against.
    #[cfg(test)]
    fn to_value(&self) -> Value {
        let readings = self
            .readings
            .iter()
            .map(|r| {
                let quality = match r.quality {
                    None => Value::Union(0, Box::new(Value::Null)),
                    Some(q) => Value::Union(1, Box::new(crate::fields::enum_symbol(&QUALITIES, q))),
                };
                Value::Record(vec![
                    ("metric".into(), Value::String(r.metric.clone())),
                    ("event_time".into(), Value::TimestampMillis(r.event_time_ms)),
                    ("value".into(), Value::Double(r.value)),
                    ("quality".into(), quality),
                ])
            })
            .collect();
        let (source_symbol, protocol) = source_fields(self.source);
        // Every symbol `source_fields` gives is in the list; 0 is never reached.
        let source_index = SOURCE_SYMBOLS
            .iter()
            .position(|s| *s == source_symbol)
            .unwrap_or_default() as u32;
        let protocol = match protocol {
            None => Value::Union(0, Box::new(Value::Null)),
            Some(name) => Value::Union(1, Box::new(Value::String(name.to_string()))),
        };
        Value::Record(vec![
            ("tenant_id".into(), Value::Uuid(self.tenant_id)),
            ("machine_id".into(), Value::Uuid(self.machine_id)),
            ("machine".into(), Value::String(self.machine.clone())),
            (
                "source".into(),
                Value::Enum(source_index, source_symbol.into()),
            ),
            (
                "ingest_time".into(),
                Value::TimestampMillis(self.ingest_time_ms),
            ),
            ("readings".into(), Value::Array(readings)),
            ("protocol".into(), protocol),
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
            source: parse_source(&f.symbol("source")?, optional_string(&mut f, "protocol")?)?,
            ingest_time_ms: f.long("ingest_time")?,
            readings,
        })
    }
}

/// A `["null", "string"]` field.
fn optional_string(f: &mut Fields, name: &str) -> Result<Option<String>, CodecError> {
    match f.take(name)? {
        Value::Union(_, inner) => match *inner {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            other => Err(shape(name, &other)),
        },
        other => Err(shape(name, &other)),
    }
}

/// The symbols of the `source` enum, in schema order.
const SOURCE_SYMBOLS: [&str; 5] = ["GATEWAY", "OPCUA", "MODBUS", "AGENT", "DEVICE"];

/// The two protocols that version 1 of the schema named in `source` itself. They keep their symbols so
/// that consumers of version 1 read their batches as before; every later protocol is `DEVICE` with its
/// name in `protocol`. This list is history: it never grows.
/// Each with its registered name, its symbol, and the label it has always had in metrics.
const PROTOCOL_SYMBOLS: [(&str, &str, &str); 2] = [
    ("opcua", "OPCUA", "opcua"),
    ("modbus_tcp", "MODBUS", "modbus"),
];

/// The `source` symbol and the `protocol` field of a batch from `source`.
fn source_fields(source: Source) -> (&'static str, Option<ProtocolName>) {
    match source {
        Source::Gateway => ("GATEWAY", None),
        Source::Agent => ("AGENT", None),
        Source::Device(name) => {
            let symbol = PROTOCOL_SYMBOLS
                .iter()
                .find(|(n, _, _)| *n == name.as_str())
                .map_or("DEVICE", |(_, s, _)| s);
            (symbol, Some(name))
        }
    }
}

/// The source of a batch from its `source` symbol and `protocol` field; batches of version 1 have no
/// `protocol`, and their `OPCUA` or `MODBUS` names it.
fn parse_source(symbol: &str, protocol: Option<String>) -> Result<Source, CodecError> {
    let bad = || CodecError::Shape(format!("source {symbol} with protocol {protocol:?}"));
    match (symbol, protocol.as_deref()) {
        ("GATEWAY", None) => Ok(Source::Gateway),
        ("AGENT", None) => Ok(Source::Agent),
        ("GATEWAY" | "AGENT", Some(_)) => Err(bad()),
        (_, Some(name)) => ProtocolName::new(name).map(Source::Device).ok_or_else(bad),
        (symbol, None) => PROTOCOL_SYMBOLS
            .iter()
            .find(|(_, s, _)| *s == symbol)
            .and_then(|(n, _, _)| ProtocolName::new(n))
            .map(Source::Device)
            .ok_or_else(bad),
    }
}

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
            source: Source::Device(ProtocolName::from_static("modbus_tcp")),
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
    fn messages_written_with_the_legacy_fingerprint_still_decode() {
        // Before the fingerprint followed the specification, the header carried apache-avro's own one
        // (which is also what its `GenericSingleObjectWriter` writes).
        let codec = ReadingBatch::codec(WireFormat::SingleObject).unwrap();
        let mut legacy = Vec::new();
        apache_avro::GenericSingleObjectWriter::new_with_capacity(codec.schema(), 1024)
            .unwrap()
            .write_value(sample().to_value(), &mut legacy)
            .unwrap();
        assert_eq!(
            legacy[2..10],
            crate::fingerprint::legacy_fingerprint(codec.schema())
        );
        assert_eq!(ReadingBatch::decode(&codec, &legacy).unwrap(), sample());
        let current = sample().encode(&codec).unwrap();
        assert_eq!(
            current[2..10],
            crate::fingerprint::fingerprint(SCHEMA).unwrap()
        );
        assert_ne!(current[2..10], legacy[2..10]);
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

    fn with_source(source: Source) -> ReadingBatch {
        ReadingBatch { source, ..sample() }
    }

    fn device(name: &'static str) -> Source {
        Source::Device(ProtocolName::from_static(name))
    }

    /// The `source` symbol a reader of version 1 sees in a message written today, resolving the writer
    /// schema (`resolve`) or, like a consumer that skips the header, decoding the datum as version 1.
    fn read_as_version_1(batch: &ReadingBatch, resolve: bool) -> String {
        let codec = ReadingBatch::codec(WireFormat::SingleObject).unwrap();
        let bytes = batch.encode(&codec).unwrap();
        let v1 = apache_avro::Schema::parse_str(HISTORY[0]).unwrap();
        let mut datum = &bytes[10..];
        let value = if resolve {
            apache_avro::from_avro_datum(codec.schema(), &mut datum, Some(&v1)).unwrap()
        } else {
            apache_avro::from_avro_datum(&v1, &mut datum, None).unwrap()
        };
        let mut f = Fields::of(value).unwrap();
        assert_eq!(f.string("machine").unwrap(), "press-07");
        assert_eq!(f.take("readings").unwrap(), field_of(&sample(), "readings"));
        f.symbol("source").unwrap()
    }

    fn field_of(batch: &ReadingBatch, name: &str) -> Value {
        Fields::of(batch.to_value()).unwrap().take(name).unwrap()
    }

    #[test]
    fn consumers_of_version_1_read_modbus_and_opcua_batches_as_before() {
        for resolve in [true, false] {
            assert_eq!(
                read_as_version_1(&with_source(device("modbus_tcp")), resolve),
                "MODBUS"
            );
            assert_eq!(
                read_as_version_1(&with_source(device("opcua")), resolve),
                "OPCUA"
            );
            assert_eq!(
                read_as_version_1(&with_source(Source::Gateway), resolve),
                "GATEWAY"
            );
            assert_eq!(
                read_as_version_1(&with_source(Source::Agent), resolve),
                "AGENT"
            );
        }
    }

    #[test]
    fn messages_written_with_version_1_decode_with_their_protocol() {
        let v1 = Codec::new(HISTORY[0], &[], WireFormat::SingleObject).unwrap();
        let current = ReadingBatch::codec(WireFormat::SingleObject).unwrap();
        for (symbol, source) in [
            ("GATEWAY", Source::Gateway),
            ("OPCUA", device("opcua")),
            ("MODBUS", device("modbus_tcp")),
            ("AGENT", Source::Agent),
        ] {
            let Value::Record(mut fields) = sample().to_value() else {
                panic!("a batch is a record");
            };
            fields.retain(|(n, _)| n != "protocol");
            let i = SOURCE_SYMBOLS.iter().position(|s| *s == symbol).unwrap() as u32;
            fields.iter_mut().find(|(n, _)| n == "source").unwrap().1 =
                Value::Enum(i, symbol.into());
            let bytes = v1.encode_value(Value::Record(fields)).unwrap();
            let batch = ReadingBatch::decode(&current, &bytes).unwrap();
            assert_eq!(batch, with_source(source), "{symbol}");
        }
    }

    #[test]
    fn a_new_protocol_needs_no_schema_change() {
        let codec = ReadingBatch::codec(WireFormat::SingleObject).unwrap();
        let batch = with_source(device("bacnet_ip"));
        let bytes = batch.encode(&codec).unwrap();
        assert_eq!(ReadingBatch::decode(&codec, &bytes).unwrap(), batch);
        assert_eq!(field_of(&batch, "source"), Value::Enum(4, "DEVICE".into()));
        assert_eq!(batch.source.symbol(), "DEVICE");
        assert_eq!(device("opcua").symbol(), "OPCUA");
        let labels = [
            Source::Gateway,
            Source::Agent,
            device("opcua"),
            device("modbus_tcp"),
        ]
        .map(|s| s.label().to_owned());
        assert_eq!(labels, ["gateway", "agent", "opcua", "modbus"], "as ever");
        assert_eq!(batch.source.label(), "bacnet_ip");
        assert_eq!(
            field_of(&batch, "protocol"),
            Value::Union(1, Box::new(Value::String("bacnet_ip".into())))
        );
        assert_eq!(
            field_of(&with_source(device("modbus_tcp")), "protocol"),
            Value::Union(1, Box::new(Value::String("modbus_tcp".into()))),
            "the registered name travels for the first protocols too"
        );
    }

    #[test]
    fn protocol_names_are_short_lowercase_identifiers() {
        for ok in ["opcua", "modbus_tcp", "s7", "a"] {
            assert_eq!(ProtocolName::new(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "Modbus", "1wire", "mqtt-sn", "a b", &"x".repeat(33)] {
            assert!(ProtocolName::new(bad).is_none(), "{bad}");
        }
        assert!(parse_source("GATEWAY", Some("opcua".into())).is_err());
        assert!(parse_source("DEVICE", None).is_err());
    }

    #[test]
    fn key_groups_by_tenant_and_machine() {
        assert_eq!(
            sample().key(),
            "00000000-0000-0000-0000-000000000001/00000000-0000-0000-0000-000000000002"
        );
    }
    /// Batches covering every branch of the schema: each source, each quality, no readings, long and
    /// non-ASCII names, extreme numbers.
    fn variety() -> Vec<ReadingBatch> {
        let mut out: Vec<ReadingBatch> = [
            Source::Gateway,
            Source::Agent,
            device("opcua"),
            device("modbus_tcp"),
            device("bacnet_ip"),
        ]
        .into_iter()
        .map(with_source)
        .collect();
        out.push(ReadingBatch {
            readings: vec![],
            ..sample()
        });
        out.push(ReadingBatch {
            machine: "präzision-ü".repeat(20),
            ingest_time_ms: i64::MAX,
            readings: [
                None,
                Some(Quality::Good),
                Some(Quality::Uncertain),
                Some(Quality::Bad),
            ]
            .into_iter()
            .enumerate()
            .map(|(i, quality)| Reading {
                metric: format!("m{}", "x".repeat(i * 70)),
                event_time_ms: [0, -1, i64::MIN, 1 << 40][i],
                value: [f64::MAX, -0.0, 1e-300, f64::MIN][i],
                quality,
            })
            .collect(),
            ..sample()
        });
        out
    }

    #[test]
    fn the_direct_encoding_writes_exactly_what_apache_avro_writes() {
        for format in [
            WireFormat::SingleObject,
            WireFormat::Confluent { schema_id: 7 },
        ] {
            let codec = ReadingBatch::codec(format).unwrap();
            for batch in variety() {
                let bytes = batch.encode(&codec).unwrap();
                assert_eq!(bytes, codec.encode_value(batch.to_value()).unwrap());
                assert_eq!(ReadingBatch::decode(&codec, &bytes).unwrap(), batch);
                // The general path (schema resolution) reads the same batch.
                assert_eq!(
                    ReadingBatch::from_value(codec.decode_value(&bytes).unwrap()).unwrap(),
                    batch
                );
            }
        }
    }

    #[test]
    fn a_truncated_or_corrupt_datum_is_an_error_not_a_panic() {
        let codec = ReadingBatch::codec(WireFormat::SingleObject).unwrap();
        for batch in variety() {
            let bytes = batch.encode(&codec).unwrap();
            for end in 10..bytes.len() {
                // A cut inside the trailing `protocol` union may still read as a whole batch; anything
                // else must be refused.
                let _ = ReadingBatch::decode(&codec, &bytes[..end]);
            }
            assert!(ReadingBatch::decode(&codec, &bytes[..bytes.len() / 2]).is_err());
            let mut corrupt = bytes.clone();
            corrupt[10] = 0xFF; // the tenant id's length: a varint that never ends within the datum
            assert!(ReadingBatch::decode(&codec, &corrupt[..12]).is_err());
        }
    }

    #[test]
    fn array_blocks_with_byte_sizes_decode() {
        // Other Avro writers may split an array into blocks, a negative count followed by the block's
        // size in bytes.
        let codec = ReadingBatch::codec(WireFormat::SingleObject).unwrap();
        let batch = with_source(Source::Gateway);
        let datum_of = |readings: Vec<Reading>| {
            let mut out = Vec::new();
            binary::encode(
                &ReadingBatch {
                    readings,
                    ..batch.clone()
                },
                &mut out,
            );
            out
        };
        let datum = datum_of(vec![]);
        let one = datum_of(vec![batch.readings[0].clone()]);
        let two = datum_of(vec![batch.readings[1].clone()]);
        // Header fields are the same in all three; the empty datum ends `00 00` (no readings, no protocol).
        let head = datum.len() - 2;
        let item = |d: &[u8]| d[head + 1..d.len() - 2].to_vec();
        let (a, b) = (item(&one), item(&two));
        let mut blocks = datum[..head].to_vec();
        blocks.extend([0x01, a.len() as u8 * 2]); // -1 (zig-zag), size
        blocks.extend(&a);
        blocks.extend([0x02]); // 1
        blocks.extend(&b);
        blocks.extend([0x00, 0x00]); // end of the array; no protocol
        let mut framed = codec.header(0);
        framed.extend(&blocks);
        assert_eq!(ReadingBatch::decode(&codec, &framed).unwrap(), batch);
    }
}
