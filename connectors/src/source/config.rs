//! An ingest source: a device endpoint, how to reach it, and the map of its points to (machine, metric).
//!
//! The same definition serves the platform's pollers (stored as JSON in PostgreSQL) and the edge agent
//! (written in its TOML file). [`SourceSpec::from_json`] checks a definition whole and names every
//! problem by its field path, e.g. `points[3].data_type`.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::gateway::validate::valid_name;
use crate::modbus::ModbusPoint;
use crate::opcua::OpcUaPoint;

/// Shortest accepted polling interval.
pub const MIN_POLL_INTERVAL_MS: u64 = 100;
/// Longest accepted polling interval (one hour).
pub const MAX_POLL_INTERVAL_MS: u64 = 3_600_000;
/// Most points one source may map.
pub const MAX_POINTS: usize = 10_000;

/// The protocol a source speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// OPC-UA over `opc.tcp://`.
    Opcua,
    /// Modbus TCP.
    ModbusTcp,
}

impl Protocol {
    /// The name used in the API and in stored rows.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Opcua => "opcua",
            Protocol::ModbusTcp => "modbus_tcp",
        }
    }
}

/// How an OPC-UA client authenticates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case", tag = "type")]
pub enum OpcUaAuth {
    /// No user identity.
    Anonymous,
    /// User name and password.
    UserPassword {
        /// The user name.
        username: String,
        /// The password; never shown by the API.
        password: String,
    },
}

/// OPC-UA session settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpcUaSettings {
    /// Security policy: `None`, `Basic256Sha256`, `Aes128_Sha256_RsaOaep` or `Aes256_Sha256_RsaPss`.
    pub security_policy: String,
    /// Message security mode: `None`, `Sign` or `SignAndEncrypt`.
    pub security_mode: String,
    /// User identity.
    pub auth: OpcUaAuth,
    /// Receive changes through a subscription with monitored items instead of periodic reads; the
    /// polling interval is then the publishing and sampling interval.
    pub subscribe: bool,
}

impl Default for OpcUaSettings {
    fn default() -> Self {
        Self {
            security_policy: "None".into(),
            security_mode: "None".into(),
            auth: OpcUaAuth::Anonymous,
            subscribe: false,
        }
    }
}

/// The point map, by protocol.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Points {
    /// Modbus registers and coils.
    Modbus(Vec<ModbusPoint>),
    /// OPC-UA nodes.
    Opcua(Vec<OpcUaPoint>),
}

impl Points {
    /// How many points are mapped.
    pub fn len(&self) -> usize {
        match self {
            Points::Modbus(p) => p.len(),
            Points::Opcua(p) => p.len(),
        }
    }

    /// True when no point is mapped.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every (machine, metric) the points feed, in point order.
    pub fn targets(&self) -> Vec<(&str, &str)> {
        match self {
            Points::Modbus(p) => p
                .iter()
                .map(|p| (p.machine.as_str(), p.metric.as_str()))
                .collect(),
            Points::Opcua(p) => p
                .iter()
                .map(|p| (p.machine.as_str(), p.metric.as_str()))
                .collect(),
        }
    }
}

/// A validated source definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceSpec {
    /// Protocol.
    pub protocol: Protocol,
    /// `host:port` for Modbus TCP, `opc.tcp://host:port/path` for OPC-UA.
    pub endpoint: String,
    /// Time between two polls (milliseconds).
    pub poll_interval_ms: u64,
    /// How long one connect or read may take before it counts as failed (milliseconds).
    pub timeout_ms: u64,
    /// OPC-UA session settings (OPC-UA only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opcua: Option<OpcUaSettings>,
    /// The point map.
    pub points: Points,
}

/// One problem with a definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Path of the field at fault, e.g. `points[2].address`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// The raw document, before the point map is read by protocol.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    protocol: Protocol,
    endpoint: String,
    #[serde(default = "default_poll_interval")]
    poll_interval_ms: u64,
    #[serde(default = "default_timeout")]
    timeout_ms: u64,
    #[serde(default)]
    opcua: Option<OpcUaSettings>,
    points: Vec<Value>,
}

fn default_poll_interval() -> u64 {
    1_000
}

fn default_timeout() -> u64 {
    3_000
}

/// The field names a definition may hold (for documentation and error messages).
pub const FIELDS: &[&str] = &[
    "protocol",
    "endpoint",
    "poll_interval_ms",
    "timeout_ms",
    "opcua",
    "points",
];

impl SourceSpec {
    /// Reads and checks a definition; all problems are reported together.
    pub fn from_json(doc: Value) -> Result<Self, Vec<FieldError>> {
        let raw: RawSpec = serde_json::from_value(doc)
            .map_err(|e| vec![FieldError::new("source", e.to_string())])?;
        let mut errors = Vec::new();
        check_endpoint(raw.protocol, &raw.endpoint, &mut errors);
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
        let opcua = match (raw.protocol, raw.opcua) {
            (Protocol::Opcua, settings) => {
                let settings = settings.unwrap_or_default();
                crate::opcua::config::check_settings(&settings, &mut errors);
                Some(settings)
            }
            (Protocol::ModbusTcp, Some(_)) => {
                errors.push(FieldError::new("opcua", "only for protocol opcua"));
                None
            }
            (Protocol::ModbusTcp, None) => None,
        };
        let (points, index) = match raw.protocol {
            Protocol::ModbusTcp => {
                let (points, index) =
                    parse_points(raw.points, &mut errors, |p: &ModbusPoint, f, e| {
                        p.check(f, e)
                    });
                (Points::Modbus(points), index)
            }
            Protocol::Opcua => {
                let (points, index) =
                    parse_points(raw.points, &mut errors, |p: &OpcUaPoint, f, e| {
                        p.check(f, e)
                    });
                (Points::Opcua(points), index)
            }
        };
        let mut seen = HashSet::new();
        for (k, (machine, metric)) in points.targets().into_iter().enumerate() {
            let i = index[k];
            if !seen.insert((machine, metric)) {
                errors.push(FieldError::new(
                    format!("points[{i}]"),
                    format!("machine `{machine}` metric `{metric}` is mapped twice"),
                ));
            }
        }
        if errors.is_empty() {
            Ok(Self {
                protocol: raw.protocol,
                endpoint: raw.endpoint,
                poll_interval_ms: raw.poll_interval_ms,
                timeout_ms: raw.timeout_ms,
                opcua,
                points,
            })
        } else {
            Err(errors)
        }
    }

    /// The definition as JSON, with any password replaced by `null` (for showing it).
    pub fn redacted(&self) -> Value {
        let mut doc = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(password) = doc.pointer_mut("/opcua/auth/password") {
            *password = Value::Null;
        }
        doc
    }
}

fn parse_points<P: serde::de::DeserializeOwned>(
    raw: Vec<Value>,
    errors: &mut Vec<FieldError>,
    check: impl Fn(&P, &str, &mut Vec<FieldError>),
) -> (Vec<P>, Vec<usize>) {
    let mut points = Vec::with_capacity(raw.len());
    let mut index = Vec::with_capacity(raw.len());
    for (i, value) in raw.into_iter().enumerate() {
        let field = format!("points[{i}]");
        match serde_json::from_value::<P>(value) {
            Ok(point) => {
                check(&point, &field, errors);
                points.push(point);
                index.push(i);
            }
            Err(e) => errors.push(FieldError::new(field, e.to_string())),
        }
    }
    (points, index)
}

/// Checks the machine and metric a point feeds.
pub(crate) fn check_target(machine: &str, metric: &str, field: &str, errors: &mut Vec<FieldError>) {
    const RULE: &str = "must be 1 to 128 characters of letters, digits, '_', '.', ':' or '-', starting with a letter or digit";
    if !valid_name(machine) {
        errors.push(FieldError::new(format!("{field}.machine"), RULE));
    }
    if !valid_name(metric) {
        errors.push(FieldError::new(format!("{field}.metric"), RULE));
    }
}

fn check_endpoint(protocol: Protocol, endpoint: &str, errors: &mut Vec<FieldError>) {
    let bad = |reason: &str| FieldError::new("endpoint", reason);
    match protocol {
        Protocol::ModbusTcp => match endpoint.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {}
            _ => errors.push(bad(
                "a Modbus TCP endpoint is `host:port`, e.g. `10.0.0.5:502`",
            )),
        },
        Protocol::Opcua => {
            let rest = endpoint.strip_prefix("opc.tcp://");
            if !rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/')) {
                errors.push(bad(
                    "an OPC-UA endpoint is `opc.tcp://host:port[/path]`, e.g. `opc.tcp://10.0.0.5:4840`",
                ));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(doc: Value) -> Vec<String> {
        SourceSpec::from_json(doc)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn reads_a_modbus_source_with_defaults() {
        let spec = SourceSpec::from_json(json!({
            "protocol": "modbus_tcp", "endpoint": "127.0.0.1:502",
            "points": [{"machine": "press-01", "metric": "temp", "register": "holding", "address": 0, "data_type": "f32"}]
        }))
        .unwrap();
        assert_eq!(spec.poll_interval_ms, 1000);
        assert_eq!(spec.points.len(), 1);
        assert_eq!(spec.opcua, None);
    }

    #[test]
    fn names_every_problem_by_path() {
        let errors = fields(json!({
            "protocol": "modbus_tcp", "endpoint": "plc", "poll_interval_ms": 5,
            "points": [
                {"machine": "press 01", "metric": "temp", "register": "holding", "address": 0, "data_type": "f32"},
                {"machine": "m", "metric": "t", "register": "coil", "address": 0, "data_type": "f32"},
                {"machine": "m", "metric": "u", "register": "holding", "adress": 0, "data_type": "u16"},
                {"machine": "m", "metric": "t", "register": "coil", "address": 1, "data_type": "bool"}
            ]
        }));
        assert_eq!(
            errors,
            [
                "endpoint",
                "poll_interval_ms",
                "points[0].machine",
                "points[1].data_type",
                "points[2]",
                "points[3]"
            ]
        );
    }

    #[test]
    fn checks_opcua_endpoints_and_settings() {
        let errors = fields(json!({
            "protocol": "opcua", "endpoint": "http://x",
            "opcua": {"security_policy": "Basic128", "security_mode": "None"},
            "points": [{"machine": "m", "metric": "t", "node_id": "ns=2;s=Temp"}]
        }));
        assert_eq!(errors, ["endpoint", "opcua.security_policy"]);
        let spec = SourceSpec::from_json(json!({
            "protocol": "opcua", "endpoint": "opc.tcp://127.0.0.1:4840/x",
            "opcua": {"auth": {"type": "user_password", "username": "u", "password": "secret"}},
            "points": [{"machine": "m", "metric": "t", "node_id": "ns=2;s=Temp"}]
        }))
        .unwrap();
        assert_eq!(spec.redacted()["opcua"]["auth"]["password"], Value::Null);
        assert_eq!(spec.redacted()["opcua"]["auth"]["username"], "u");
    }

    #[test]
    fn refuses_unknown_fields_and_empty_maps() {
        assert_eq!(
            fields(json!({"protocol": "modbus_tcp", "endpoint": "h:1", "points": [], "x": 1})),
            ["source"]
        );
        assert_eq!(
            fields(json!({"protocol": "modbus_tcp", "endpoint": "h:1", "points": []})),
            ["points"]
        );
    }
}
