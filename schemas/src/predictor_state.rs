//! `haltless.predictor-state.v1`: the RUL predictor's changelog, one machine's window per record.

use std::collections::BTreeMap;

use apache_avro::types::Value;

use crate::codec::{Codec, WireFormat};
use crate::error::CodecError;
use crate::fields::{optional, record, shape, unsigned, Fields};

/// Name of the record format (the changelog topic is named per deployment).
pub const PREDICTOR_STATE_TOPIC: &str = "haltless.predictor-state.v1";

/// The schema the platform writes today.
pub const SCHEMA: &str = include_str!("../avro/haltless.predictor-state.v1.avsc");

/// Every released version, oldest first.
pub const HISTORY: &[&str] = &[include_str!(
    "../avro/history/haltless.predictor-state.v1/001.avsc"
)];

/// The format version written today.
pub const STATE_VERSION: i32 = 1;

/// One machine's window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MachineWindow {
    /// [`STATE_VERSION`] when written.
    pub version: i32,
    /// The model the window is normalised for.
    pub model_version: String,
    /// Event time of the life's start (ms).
    pub life_start_ms: i64,
    /// Event time of the newest complete cycle (ms).
    pub last_cycle_ms: i64,
    /// Cycles since the start of life.
    pub cycles: u64,
    /// Sums of the life's first normalised cycles.
    pub baseline_sum: Vec<f64>,
    /// How many cycles the baseline holds.
    pub baseline_n: u64,
    /// The last normalised cycles, oldest first.
    pub recent: Vec<Vec<f64>>,
    /// The cycle being assembled: its event time and the metrics seen so far.
    pub pending: Option<(i64, BTreeMap<String, f64>)>,
    /// Event time at which the open RUL alert was raised, if one is open.
    pub alert_raised_ms: Option<i64>,
}

fn doubles(values: &[f64]) -> Value {
    Value::Array(values.iter().map(|v| Value::Double(*v)).collect())
}

fn to_doubles(field: &str, value: Value) -> Result<Vec<f64>, CodecError> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::Double(d) => Ok(d),
                other => Err(shape(field, &other)),
            })
            .collect(),
        other => Err(shape(field, &other)),
    }
}

impl MachineWindow {
    /// A codec for the changelog (single-object encoding).
    pub fn codec() -> Result<Codec, CodecError> {
        Codec::new(SCHEMA, HISTORY, WireFormat::SingleObject)
    }

    /// Encodes the record.
    pub fn encode(&self, codec: &Codec) -> Result<Vec<u8>, CodecError> {
        let pending = self.pending.as_ref().map(|(ts, values)| {
            record([
                ("event_time", Value::TimestampMillis(*ts)),
                (
                    "values",
                    Value::Map(
                        values
                            .iter()
                            .map(|(k, v)| (k.clone(), Value::Double(*v)))
                            .collect(),
                    ),
                ),
            ])
        });
        codec.encode_value(record([
            ("version", Value::Int(self.version)),
            ("model_version", Value::String(self.model_version.clone())),
            ("life_start", Value::TimestampMillis(self.life_start_ms)),
            ("last_cycle", Value::TimestampMillis(self.last_cycle_ms)),
            ("cycles", unsigned(self.cycles)),
            ("baseline_sum", doubles(&self.baseline_sum)),
            ("baseline_n", unsigned(self.baseline_n)),
            (
                "recent",
                Value::Array(self.recent.iter().map(|r| doubles(r)).collect()),
            ),
            ("pending", optional(pending)),
            (
                "alert_raised",
                optional(self.alert_raised_ms.map(Value::TimestampMillis)),
            ),
        ]))
    }

    /// Decodes a record written with any known version of the schema; refuses a newer format version.
    pub fn decode(codec: &Codec, bytes: &[u8]) -> Result<Self, CodecError> {
        let mut f = Fields::of(codec.decode_value(bytes)?)?;
        let version = f.int("version")?;
        if version > STATE_VERSION {
            return Err(CodecError::Shape(format!(
                "predictor state version {version} is newer than this platform's {STATE_VERSION}"
            )));
        }
        let pending = match f.optional("pending")? {
            None => None,
            Some(v) => {
                let mut p = Fields::of(v)?;
                let ts = p.long("event_time")?;
                let values = match p.take("values")? {
                    Value::Map(m) => m
                        .into_iter()
                        .map(|(k, v)| match v {
                            Value::Double(d) => Ok((k, d)),
                            other => Err(shape("values", &other)),
                        })
                        .collect::<Result<BTreeMap<_, _>, CodecError>>()?,
                    other => return Err(shape("values", &other)),
                };
                Some((ts, values))
            }
        };
        let recent = f
            .array("recent")?
            .into_iter()
            .map(|v| to_doubles("recent", v))
            .collect::<Result<Vec<_>, CodecError>>()?;
        Ok(Self {
            version,
            model_version: f.string("model_version")?,
            life_start_ms: f.long("life_start")?,
            last_cycle_ms: f.long("last_cycle")?,
            cycles: f.unsigned("cycles")?,
            baseline_sum: to_doubles("baseline_sum", f.take("baseline_sum")?)?,
            baseline_n: f.unsigned("baseline_n")?,
            recent,
            pending,
            alert_raised_ms: match f.optional("alert_raised")? {
                None => None,
                Some(Value::TimestampMillis(v) | Value::Long(v)) => Some(v),
                Some(other) => return Err(shape("alert_raised", &other)),
            },
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_a_newer_version() {
        let window = MachineWindow {
            version: STATE_VERSION,
            model_version: "rul-gbt-1".into(),
            life_start_ms: 10,
            last_cycle_ms: 20,
            cycles: 3,
            baseline_sum: vec![0.5, -1.0],
            baseline_n: 3,
            recent: vec![vec![0.1, 0.2], vec![0.3, -0.4]],
            pending: Some((30, BTreeMap::from([("s2".to_string(), 641.5)]))),
            alert_raised_ms: Some(25),
        };
        let codec = MachineWindow::codec().unwrap();
        let bytes = window.encode(&codec).unwrap();
        assert_eq!(MachineWindow::decode(&codec, &bytes).unwrap(), window);
        let empty = MachineWindow::default();
        assert_eq!(
            MachineWindow::decode(&codec, &empty.encode(&codec).unwrap()).unwrap(),
            empty
        );
        let newer = MachineWindow {
            version: STATE_VERSION + 1,
            ..window
        };
        assert!(MachineWindow::decode(&codec, &newer.encode(&codec).unwrap()).is_err());
    }
}
