//! Modbus TCP as a registered protocol: definitions with `"protocol": "modbus_tcp"`, an endpoint
//! `host:port`, no settings section, and [`ModbusPoint`]s.

use super::client::ModbusDevice;
use super::config::ModbusPoint;
use crate::source::{Connection, Device, Protocol};

/// The Modbus TCP protocol.
#[derive(Debug, Clone, Copy)]
pub struct ModbusTcp;

impl Protocol for ModbusTcp {
    const NAME: &'static str = "modbus_tcp";
    type Settings = ();
    type Point = ModbusPoint;

    fn check_endpoint(&self, endpoint: &str) -> Result<(), String> {
        match haltless_schemas::outbound::split_host_port(endpoint) {
            Some((host, port)) if !host.is_empty() && port > 0 => Ok(()),
            _ => Err(
                "a Modbus TCP endpoint is `host:port` (`[address]:port` for IPv6), e.g. `10.0.0.5:502`"
                    .into(),
            ),
        }
    }

    fn open(&self, connection: Connection, _: &(), points: &[ModbusPoint]) -> Box<dyn Device> {
        Box::new(ModbusDevice::new(connection, points.to_vec()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::ModbusTcp;
    use crate::source::{Protocol, SourceSpec};

    use crate::protocols::refused_fields as fields;

    #[test]
    fn reads_a_modbus_source_with_defaults() {
        let spec = SourceSpec::from_json(json!({
            "protocol": "modbus_tcp", "endpoint": "127.0.0.1:502",
            "points": [{"machine": "press-01", "metric": "temp", "register": "holding", "address": 0, "data_type": "f32"}]
        }))
        .unwrap();
        assert_eq!(spec.protocol.name(), "modbus_tcp");
        assert_eq!(spec.poll_interval_ms, 1000);
        assert_eq!(spec.targets(), [("press-01", "temp")]);
        let stored = serde_json::to_value(&spec).unwrap();
        assert_eq!(stored.get("opcua"), None, "no settings section");
        assert_eq!(stored["points"][0]["unit_id"], 1, "defaults are filled in");
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
    fn checks_the_endpoint() {
        for ok in ["10.0.0.5:502", "plc.local:1502"] {
            assert_eq!(Protocol::check_endpoint(&ModbusTcp, ok), Ok(()), "{ok}");
        }
        for bad in ["plc", ":502", "plc:0", "plc:70000"] {
            assert!(Protocol::check_endpoint(&ModbusTcp, bad).is_err(), "{bad}");
        }
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
