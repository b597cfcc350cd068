//! An ingest source: a device endpoint, how to reach it, and the map of its points to (machine, metric).
//!
//! The same definition serves the platform's pollers (stored as JSON in PostgreSQL) and the edge agent
//! (written in its TOML file): `protocol`, `endpoint`, `poll_interval_ms`, `timeout_ms`, the protocol's
//! settings section if it has one, and `points`. [`SourceSpec::parse`] checks a definition whole
//! against a list of protocols and names every problem by its field path, e.g. `points[3].data_type`;
//! `SourceSpec::from_json` (in [`crate::protocols`]) does so against the registered protocols. Nothing
//! here knows a particular protocol.

use std::sync::Arc;
use std::time::Duration;

use haltless_schemas::outbound::OutboundPolicy;

use serde::de::{Error as _, Unexpected};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::device::Connection;
use super::error::FieldError;
use super::registry::{DeviceConfig, ErasedProtocol, Protocols};

/// Shortest accepted polling interval.
pub const MIN_POLL_INTERVAL_MS: u64 = 100;
/// Longest accepted polling interval (one hour).
pub const MAX_POLL_INTERVAL_MS: u64 = 3_600_000;
/// Most points one source may map.
pub const MAX_POINTS: usize = 10_000;

/// A validated source definition.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// Protocol.
    pub protocol: &'static dyn ErasedProtocol,
    /// The device's address, in the protocol's form (e.g. `host:port`, `opc.tcp://host:port/path`).
    pub endpoint: String,
    /// Time between two polls (milliseconds).
    pub poll_interval_ms: u64,
    /// How long one connect or read may take before it counts as failed (milliseconds).
    pub timeout_ms: u64,
    /// The protocol's settings and point map.
    pub device: Box<dyn DeviceConfig>,
}

/// The common fields of a definition, in the order serde would list them; the protocols' settings
/// sections come before `points`.
const COMMON_FIELDS: [&str; 4] = ["protocol", "endpoint", "poll_interval_ms", "timeout_ms"];

/// The document read field by field, before any check.
struct RawSpec {
    protocol: &'static dyn ErasedProtocol,
    endpoint: String,
    poll_interval_ms: u64,
    timeout_ms: u64,
    /// Settings sections present (not null), by field.
    sections: Vec<(&'static str, Value)>,
    points: Vec<Value>,
}

impl RawSpec {
    /// Reads the document the way a derived serde `Deserialize` would, with its messages: the first
    /// malformed field in document order, then the first missing one.
    fn read(doc: Value, protocols: &Protocols) -> Result<Self, String> {
        let map = match doc {
            Value::Object(map) => map,
            other => return Err(invalid_type(&other, "struct RawSpec")),
        };
        let (mut protocol, mut endpoint, mut points) = (None, None, None);
        let (mut poll_interval_ms, mut timeout_ms) = (1_000, 3_000);
        let mut sections = Vec::new();
        for (key, value) in map {
            match key.as_str() {
                "protocol" => protocol = Some(read_protocol(&value, protocols)?),
                "endpoint" => endpoint = Some(typed::<String>(value)?),
                "poll_interval_ms" => poll_interval_ms = typed(value)?,
                "timeout_ms" => timeout_ms = typed(value)?,
                "points" => points = Some(typed::<Vec<Value>>(value)?),
                other => {
                    let Some(owner) = protocols.by_settings_field(other) else {
                        return Err(format!(
                            "unknown field `{other}`, expected {}",
                            one_of(&document_fields(protocols))
                        ));
                    };
                    if !value.is_null() {
                        owner.check_settings_shape(&value)?;
                        if let Some(field) = owner.settings_field() {
                            sections.push((field, value));
                        }
                    }
                }
            }
        }
        let missing = |field: &str| format!("missing field `{field}`");
        Ok(Self {
            protocol: protocol.ok_or_else(|| missing("protocol"))?,
            endpoint: endpoint.ok_or_else(|| missing("endpoint"))?,
            poll_interval_ms,
            timeout_ms,
            sections,
            points: points.ok_or_else(|| missing("points"))?,
        })
    }
}

impl SourceSpec {
    /// Reads and checks a definition against `protocols`; all problems are reported together.
    pub fn parse(doc: Value, protocols: &Protocols) -> Result<Self, Vec<FieldError>> {
        let raw = RawSpec::read(doc, protocols)
            .map_err(|reason| vec![FieldError::new("source", reason)])?;
        let protocol = raw.protocol;
        let mut errors = Vec::new();
        // Whitespace and control characters have no place in an address, and CR/LF would reach a
        // protocol's first frame (OPC-UA's HEL carries the URL) before any other check could refuse it.
        if raw
            .endpoint
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            errors.push(FieldError::new(
                "endpoint",
                "must not contain spaces, line breaks or other control characters",
            ));
        } else if let Err(reason) = protocol.check_endpoint(&raw.endpoint) {
            errors.push(FieldError::new("endpoint", reason));
        }
        if !(MIN_POLL_INTERVAL_MS..=MAX_POLL_INTERVAL_MS).contains(&raw.poll_interval_ms) {
            errors.push(FieldError::new(
                "poll_interval_ms",
                format!("must lie between {MIN_POLL_INTERVAL_MS} and {MAX_POLL_INTERVAL_MS}"),
            ));
        }
        if !(100..=60_000).contains(&raw.timeout_ms) {
            errors.push(FieldError::new(
                "timeout_ms",
                "must lie between 100 and 60000",
            ));
        }
        if raw.points.is_empty() {
            errors.push(FieldError::new("points", "map at least one point"));
        } else if raw.points.len() > MAX_POINTS {
            errors.push(FieldError::new(
                "points",
                format!("at most {MAX_POINTS} points per source"),
            ));
        }
        let mut own = None;
        for (field, section) in raw.sections {
            if protocol.settings_field() == Some(field) {
                own = Some(section);
            } else if let Some(owner) = protocols.by_settings_field(field) {
                errors.push(FieldError::new(
                    field,
                    format!("only for protocol {}", owner.name()),
                ));
            }
        }
        let device = protocol.build(own, raw.points, &mut errors);
        if errors.is_empty() {
            Ok(Self {
                protocol,
                endpoint: raw.endpoint,
                poll_interval_ms: raw.poll_interval_ms,
                timeout_ms: raw.timeout_ms,
                device,
            })
        } else {
            Err(errors)
        }
    }

    /// Every (machine, metric) the points feed, in point order.
    pub fn targets(&self) -> Vec<(&str, &str)> {
        self.device.targets()
    }

    /// Where the device is, how to pace it, and which of its addresses `outbound` allows.
    pub fn connection(&self, outbound: Arc<OutboundPolicy>) -> Connection {
        Connection {
            endpoint: self.endpoint.clone(),
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            timeout: Duration::from_millis(self.timeout_ms),
            outbound,
            trust: None,
            state_dir: None,
        }
    }

    /// The definition as JSON, with secrets (e.g. an OPC-UA password) replaced by `null`, for showing it.
    pub fn redacted(&self) -> Value {
        let mut doc = serde_json::to_value(self).unwrap_or(Value::Null);
        self.device.redact(&mut doc);
        doc
    }
}

/// The definition in its normalised form (defaults filled in), as it is stored and shown.
impl Serialize for SourceSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let device = self.device.to_fields().map_err(serde::ser::Error::custom)?;
        let mut map = serializer.serialize_map(Some(4 + device.len()))?;
        map.serialize_entry("protocol", self.protocol.name())?;
        map.serialize_entry("endpoint", &self.endpoint)?;
        map.serialize_entry("poll_interval_ms", &self.poll_interval_ms)?;
        map.serialize_entry("timeout_ms", &self.timeout_ms)?;
        for (field, value) in &device {
            map.serialize_entry(field, value)?;
        }
        map.end()
    }
}

/// Two definitions are equal when they read the same.
impl PartialEq for SourceSpec {
    fn eq(&self, other: &Self) -> bool {
        serde_json::to_value(self).ok() == serde_json::to_value(other).ok()
    }
}

/// The protocol named by a `protocol` field.
fn read_protocol(
    value: &Value,
    protocols: &Protocols,
) -> Result<&'static dyn ErasedProtocol, String> {
    let Value::String(name) = value else {
        return Err(invalid_type(value, "string or map"));
    };
    protocols.get(name).ok_or_else(|| {
        let names = protocols.names();
        if names.is_empty() {
            format!("unknown variant `{name}`, there are no variants")
        } else {
            format!("unknown variant `{name}`, expected {}", one_of(&names))
        }
    })
}

/// Every field a definition may hold, given `protocols`.
fn document_fields(protocols: &Protocols) -> Vec<&'static str> {
    let mut fields = COMMON_FIELDS.to_vec();
    fields.extend(protocols.iter().filter_map(|p| p.settings_field()));
    fields.push("points");
    fields
}

/// One field's value, with serde's message when it has the wrong type.
fn typed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// serde's "invalid type" message for `value`.
fn invalid_type(value: &Value, expected: &str) -> String {
    let unexpected = match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Unexpected::Unsigned(u),
            (None, Some(i)) => Unexpected::Signed(i),
            (None, None) => Unexpected::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    };
    serde_json::Error::invalid_type(unexpected, &expected).to_string()
}

/// serde's way of listing alternatives: `` `a` ``, `` `a` or `b` ``, `` one of `a`, `b`, `c` ``.
fn one_of(names: &[&str]) -> String {
    match names {
        [one] => format!("`{one}`"),
        [a, b] => format!("`{a}` or `{b}`"),
        _ => format!(
            "one of {}",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use futures::future::BoxFuture;
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    use super::*;
    use crate::source::{Device, Point, PollOutcome, Protocol, SourceError};

    /// A protocol of the tests only, with a settings section and a secret in it.
    #[derive(Debug)]
    struct Probe;

    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct ProbeSettings {
        token: String,
        level: u8,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ProbePoint {
        machine: String,
        metric: String,
        #[serde(default)]
        channel: u8,
    }

    impl Point for ProbePoint {
        fn target(&self) -> (&str, &str) {
            (&self.machine, &self.metric)
        }

        fn check(&self, field: &str, errors: &mut Vec<FieldError>) {
            if self.channel > 7 {
                errors.push(FieldError::new(format!("{field}.channel"), "0 to 7"));
            }
        }
    }

    struct Idle;

    impl Device for Idle {
        fn connect(&mut self) -> BoxFuture<'_, Result<(), SourceError>> {
            Box::pin(async { Ok(()) })
        }
        fn next(&mut self) -> BoxFuture<'_, Result<PollOutcome, SourceError>> {
            Box::pin(async { Ok(PollOutcome::default()) })
        }
        fn disconnect(&mut self) -> BoxFuture<'_, ()> {
            Box::pin(async {})
        }
    }

    impl Protocol for Probe {
        const NAME: &'static str = "probe";
        const SETTINGS_FIELD: Option<&'static str> = Some("probe");
        type Settings = ProbeSettings;
        type Point = ProbePoint;

        fn check_endpoint(&self, endpoint: &str) -> Result<(), String> {
            if endpoint.starts_with("probe://") {
                Ok(())
            } else {
                Err("a probe endpoint is `probe://...`".into())
            }
        }

        fn check_settings(&self, s: &ProbeSettings, field: &str, errors: &mut Vec<FieldError>) {
            if s.level > 3 {
                errors.push(FieldError::new(format!("{field}.level"), "0 to 3"));
            }
        }

        fn redact_settings(&self, section: &mut Value) {
            section["token"] = Value::Null;
        }

        fn open(&self, _: Connection, _: &ProbeSettings, _: &[ProbePoint]) -> Box<dyn Device> {
            Box::new(Idle)
        }
    }

    /// A protocol without settings.
    #[derive(Debug)]
    struct Plain;

    impl Protocol for Plain {
        const NAME: &'static str = "plain";
        type Settings = ();
        type Point = ProbePoint;

        fn check_endpoint(&self, _: &str) -> Result<(), String> {
            Ok(())
        }

        fn open(&self, _: Connection, _: &(), _: &[ProbePoint]) -> Box<dyn Device> {
            Box::new(Idle)
        }
    }

    static PROTOCOLS: Protocols = Protocols::new(&[&Probe, &Plain]);

    fn parse(doc: Value) -> Result<SourceSpec, Vec<FieldError>> {
        SourceSpec::parse(doc, &PROTOCOLS)
    }

    fn problems(doc: Value) -> Vec<String> {
        parse(doc)
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    fn point(metric: &str) -> Value {
        json!({"machine": "m", "metric": metric})
    }

    #[test]
    fn reads_a_definition_with_defaults_and_writes_it_back_normalised() {
        let spec =
            parse(json!({"protocol": "probe", "endpoint": "probe://a", "points": [point("t")]}))
                .unwrap();
        assert_eq!(spec.protocol.name(), "probe");
        assert_eq!(spec.targets(), [("m", "t")]);
        let stored = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            stored,
            json!({"protocol": "probe", "endpoint": "probe://a", "poll_interval_ms": 1000, "timeout_ms": 3000,
                   "probe": {"token": "", "level": 0}, "points": [{"machine": "m", "metric": "t", "channel": 0}]})
        );
        assert_eq!(
            parse(stored).unwrap(),
            spec,
            "a stored definition reads the same"
        );
        let plain =
            parse(json!({"protocol": "plain", "endpoint": "x", "points": [point("t")]})).unwrap();
        assert!(serde_json::to_value(&plain).unwrap().get("probe").is_none());
        assert_eq!(
            spec.connection(Arc::default()).poll_interval,
            Duration::from_millis(1000)
        );
    }

    #[test]
    fn an_endpoint_with_line_breaks_or_spaces_is_refused_before_the_protocol_sees_it() {
        for endpoint in ["probe://a\r\nX: y", "probe://a b", "probe://a\u{0}"] {
            let errors = problems(
                json!({"protocol": "probe", "endpoint": endpoint, "points": [point("t")]}),
            );
            assert_eq!(errors.len(), 1, "{endpoint:?}: {errors:?}");
            assert!(errors[0].starts_with("endpoint"), "{errors:?}");
            assert!(errors[0].contains("control characters"), "{errors:?}");
        }
    }

    #[test]
    fn names_every_problem_by_path_in_document_order() {
        let errors = problems(json!({
            "protocol": "probe", "endpoint": "x", "poll_interval_ms": 5, "timeout_ms": 100_000,
            "probe": {"level": 9},
            "points": [
                {"machine": "m 1", "metric": "t", "channel": 8},
                {"machine": "m", "metric": "t", "chanel": 1},
                point("t"),
                point("t"),
            ]
        }));
        assert_eq!(
            errors,
            [
                "endpoint: a probe endpoint is `probe://...`",
                "poll_interval_ms: must lie between 100 and 3600000",
                "timeout_ms: must lie between 100 and 60000",
                "probe.level: 0 to 3",
                "points[0].machine: must be 1 to 128 characters of letters, digits, '_', '.', ':' or '-', starting with a letter or digit",
                "points[0].channel: 0 to 7",
                "points[1]: unknown field `chanel`, expected one of `machine`, `metric`, `channel`",
                "points[3]: machine `m` metric `t` is mapped twice",
            ]
        );
    }

    #[test]
    fn a_malformed_document_gets_serdes_message_naming_the_registered_protocols() {
        let base = |extra: Value| {
            let mut doc = json!({"protocol": "plain", "endpoint": "x", "points": [point("t")]});
            for (k, v) in extra.as_object().unwrap() {
                doc[k] = v.clone();
            }
            doc
        };
        assert_eq!(
            problems(base(json!({"x": 1}))),
            ["source: unknown field `x`, expected one of `protocol`, `endpoint`, `poll_interval_ms`, `timeout_ms`, `probe`, `points`"]
        );
        assert_eq!(
            problems(base(json!({"protocol": "nope"}))),
            ["source: unknown variant `nope`, expected `probe` or `plain`"]
        );
        assert_eq!(
            problems(json!({"protocol": "nope", "points": []})),
            ["source: unknown variant `nope`, expected `probe` or `plain`"],
            "a bad protocol is named before a missing field"
        );
        assert_eq!(
            problems(json!({"endpoint": "x", "points": []})),
            ["source: missing field `protocol`"]
        );
        assert_eq!(
            problems(base(json!({"protocol": 5}))),
            ["source: invalid type: integer `5`, expected string or map"]
        );
        assert_eq!(
            problems(base(json!({"probe": {"levl": 1}}))),
            ["source: unknown field `levl`, expected `token` or `level`"]
        );
        assert_eq!(
            problems(base(json!({"probe": {}}))),
            ["probe: only for protocol probe"]
        );
        assert!(
            parse(base(json!({"probe": null}))).is_ok(),
            "null is absent"
        );
        assert_eq!(
            problems(json!("x")),
            ["source: invalid type: string \"x\", expected struct RawSpec"]
        );
    }

    #[test]
    fn lists_alternatives_the_way_serde_does() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Three {
            a: u8,
            b: u8,
            c: u8,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        enum Two {
            A,
            B,
        }
        let serde_says = serde_json::from_value::<Three>(json!({"d": 1})).unwrap_err();
        assert_eq!(
            serde_says.to_string(),
            format!("unknown field `d`, expected {}", one_of(&["a", "b", "c"]))
        );
        let serde_says = serde_json::from_value::<Two>(json!("C")).unwrap_err();
        assert_eq!(
            serde_says.to_string(),
            format!("unknown variant `C`, expected {}", one_of(&["A", "B"]))
        );
    }

    #[test]
    fn hides_secrets_when_shown() {
        let spec = parse(json!({"protocol": "probe", "endpoint": "probe://a",
                                "probe": {"token": "secret"}, "points": [point("t")]}))
        .unwrap();
        assert_eq!(spec.redacted()["probe"]["token"], Value::Null);
        assert_eq!(
            serde_json::to_value(&spec).unwrap()["probe"]["token"],
            "secret"
        );
    }

    #[test]
    fn refuses_empty_and_oversized_maps() {
        let doc =
            |points: Vec<Value>| json!({"protocol": "plain", "endpoint": "x", "points": points});
        assert_eq!(problems(doc(vec![])), ["points: map at least one point"]);
        let many = (0..=MAX_POINTS).map(|i| point(&format!("t{i}"))).collect();
        assert_eq!(
            problems(doc(many)),
            ["points: at most 10000 points per source"]
        );
    }
}
