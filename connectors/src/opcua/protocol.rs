//! OPC-UA as a registered protocol: definitions with `"protocol": "opcua"`, an endpoint
//! `opc.tcp://host:port[/path]`, the `opcua` settings section, and [`OpcUaPoint`]s.

use super::client::OpcUaDevice;
use super::config::{OpcUaPoint, OpcUaSettings};
use crate::source::{Connection, Device, FieldError, Protocol};

/// The OPC-UA protocol.
#[derive(Debug, Clone, Copy)]
pub struct OpcUa;

impl Protocol for OpcUa {
    const NAME: &'static str = "opcua";
    const SETTINGS_FIELD: Option<&'static str> = Some("opcua");
    const SECRETS: &'static [&'static str] = &["/auth/password"];
    type Settings = OpcUaSettings;
    type Point = OpcUaPoint;

    fn check_endpoint(&self, endpoint: &str) -> Result<(), String> {
        let rest = endpoint.strip_prefix("opc.tcp://");
        if rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/')) {
            Ok(())
        } else {
            Err("an OPC-UA endpoint is `opc.tcp://host:port[/path]`, e.g. `opc.tcp://10.0.0.5:4840`".into())
        }
    }

    fn check_settings(&self, settings: &OpcUaSettings, field: &str, errors: &mut Vec<FieldError>) {
        super::config::check_settings(settings, field, errors);
    }

    fn open(
        &self,
        connection: Connection,
        settings: &OpcUaSettings,
        points: &[OpcUaPoint],
    ) -> Box<dyn Device> {
        Box::new(OpcUaDevice::new(
            connection,
            settings.clone(),
            points.to_vec(),
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::{json, Value};

    use crate::source::SourceSpec;

    use crate::protocols::refused_fields as fields;

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
        assert_eq!(
            serde_json::to_value(&spec).unwrap()["opcua"]["auth"]["password"],
            "secret",
            "stored as given"
        );
    }

    #[test]
    fn fills_in_default_settings() {
        let spec = SourceSpec::from_json(json!({
            "protocol": "opcua", "endpoint": "opc.tcp://h:4840",
            "points": [{"machine": "m", "metric": "t", "node_id": "i=2258"}]
        }))
        .unwrap();
        assert_eq!(
            serde_json::to_value(&spec).unwrap()["opcua"],
            json!({"security_policy": "None", "security_mode": "None", "auth": {"type": "anonymous"}, "subscribe": false})
        );
    }

    #[test]
    fn the_opcua_section_is_only_for_opcua() {
        let errors = fields(json!({
            "protocol": "modbus_tcp", "endpoint": "h:502", "opcua": {},
            "points": [{"machine": "m", "metric": "t", "register": "coil", "address": 0, "data_type": "bool"}]
        }));
        assert_eq!(errors, ["opcua"]);
    }
}
