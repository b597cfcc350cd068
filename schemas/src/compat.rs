//! BACKWARD compatibility of each topic's schema against its checked-in history.
//!
//! BACKWARD means what Confluent's registry means by it: consumers using the new schema can read every
//! message written with any earlier version, so consumers can upgrade before producers.

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;

/// A topic's current schema and its released versions.
#[derive(Debug, Clone, Copy)]
pub struct TopicSchemas {
    /// Topic name.
    pub topic: &'static str,
    /// The schema written today.
    pub current: &'static str,
    /// Released versions, oldest first.
    pub history: &'static [&'static str],
}

/// Every topic of the platform.
pub const TOPICS: &[TopicSchemas] = &[
    TopicSchemas {
        topic: crate::readings::READINGS_TOPIC,
        current: crate::readings::SCHEMA,
        history: crate::readings::HISTORY,
    },
    TopicSchemas {
        topic: crate::alerts::ALERTS_TOPIC,
        current: crate::alerts::SCHEMA,
        history: crate::alerts::HISTORY,
    },
    TopicSchemas {
        topic: crate::rules::RULES_TOPIC,
        current: crate::rules::SCHEMA,
        history: crate::rules::HISTORY,
    },
    TopicSchemas {
        topic: crate::actions::ALERT_ACTIONS_TOPIC,
        current: crate::actions::SCHEMA,
        history: crate::actions::HISTORY,
    },
    TopicSchemas {
        topic: crate::detector_state::DETECTOR_STATE_TOPIC,
        current: crate::detector_state::SCHEMA,
        history: crate::detector_state::HISTORY,
    },
    TopicSchemas {
        topic: crate::predictions::PREDICTIONS_TOPIC,
        current: crate::predictions::SCHEMA,
        history: crate::predictions::HISTORY,
    },
    TopicSchemas {
        topic: crate::models::MODELS_TOPIC,
        current: crate::models::SCHEMA,
        history: crate::models::HISTORY,
    },
    TopicSchemas {
        topic: crate::predictor_state::PREDICTOR_STATE_TOPIC,
        current: crate::predictor_state::SCHEMA,
        history: crate::predictor_state::HISTORY,
    },
];

/// Checks that `reader` (the new schema) can read data written with `writer` (an older one).
pub fn check_backward(writer: &str, reader: &str) -> Result<(), String> {
    let writer = Schema::parse_str(writer).map_err(|e| e.to_string())?;
    let reader = Schema::parse_str(reader).map_err(|e| e.to_string())?;
    SchemaCompatibility::can_read(&writer, &reader).map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_current_schema_reads_every_released_version() {
        for t in TOPICS {
            assert!(!t.history.is_empty(), "{}: no released version", t.topic);
            for (i, old) in t.history.iter().enumerate() {
                if let Err(e) = check_backward(old, t.current) {
                    panic!(
                        "{}: current schema cannot read version {}: {e}",
                        t.topic,
                        i + 1
                    );
                }
            }
        }
    }

    #[test]
    fn the_latest_released_version_is_the_current_schema() {
        for t in TOPICS {
            let latest = Schema::parse_str(t.history.last().unwrap()).unwrap();
            let current = Schema::parse_str(t.current).unwrap();
            assert_eq!(
                latest.canonical_form(),
                current.canonical_form(),
                "{}: copy the changed schema into avro/history as the next version",
                t.topic
            );
        }
    }

    #[test]
    fn the_check_catches_breaking_changes() {
        let current = crate::readings::SCHEMA;
        // A new required field without a default cannot be filled in from old data.
        let added_required = current.replacen(
            r#""fields": ["#,
            r#""fields": [{"name": "site", "type": "string"},"#,
            1,
        );
        assert!(check_backward(current, &added_required).is_err());
        // Changing a field's type from double to string breaks every old message.
        let retyped = current.replacen(
            r#"{"name": "value", "type": "double""#,
            r#"{"name": "value", "type": "string""#,
            1,
        );
        assert!(check_backward(current, &retyped).is_err());
        // An optional field with a default is a safe change.
        let added_optional = current.replacen(
            r#""fields": ["#,
            r#""fields": [{"name": "site", "type": ["null", "string"], "default": null},"#,
            1,
        );
        assert!(check_backward(current, &added_optional).is_ok());
    }
}
