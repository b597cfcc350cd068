//! The registry of device protocols: one line per protocol. Everything else (the sources API, the
//! pollers of `haltless connectors`, the edge agent, the readings topic) finds a protocol here by its
//! name.
//!
//! To add a protocol: a folder beside `modbus/` and `opcua/` whose unit type implements
//! [`crate::source::Protocol`] (its name, settings and point types, their checks, and a
//! [`crate::source::Device`]), and its line below.

use serde_json::Value;

use crate::source::{FieldError, Protocols, SourceSpec};

/// Every protocol the platform speaks, in the order messages list them.
pub static PROTOCOLS: Protocols =
    Protocols::new(&[&crate::opcua::OpcUa, &crate::modbus::ModbusTcp]);

impl SourceSpec {
    /// Reads and checks a definition against the registered protocols; all problems are reported
    /// together. (Defined here rather than in [`crate::source::config`] so that the shared code never
    /// imports a protocol.)
    pub fn from_json(doc: Value) -> Result<Self, Vec<FieldError>> {
        Self::parse(doc, &PROTOCOLS)
    }
}

/// The field paths of every problem in a definition that the registry refuses (for protocols' tests).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn refused_fields(doc: Value) -> Vec<String> {
    SourceSpec::from_json(doc)
        .unwrap_err()
        .into_iter()
        .map(|e| e.field)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn names_and_settings_sections_are_unique() {
        let names: HashSet<&str> = PROTOCOLS.iter().map(|p| p.name()).collect();
        assert_eq!(names.len(), PROTOCOLS.iter().count());
        let mut fields: HashSet<&str> = [
            "protocol",
            "endpoint",
            "poll_interval_ms",
            "timeout_ms",
            "points",
        ]
        .into();
        for field in PROTOCOLS.iter().filter_map(|p| p.settings_field()) {
            assert!(fields.insert(field), "settings section `{field}` is taken");
        }
    }

    #[test]
    fn each_protocol_labels_its_batches_with_its_name() {
        for p in PROTOCOLS.iter() {
            assert_eq!(
                p.source(),
                haltless_schemas::Source::Device(
                    haltless_schemas::readings::ProtocolName::new(p.name()).unwrap()
                )
            );
        }
    }
}
