//! The settings processors read, as the platform's settings file lays them out (sections `kafka`,
//! `detector`, `projection`, `alerting`); the binary layers and loads them.

use serde::Deserialize;

use crate::alerting::AlertingConfig;
use crate::detection::processor::DetectorConfig;
use crate::prediction::predictor::PredictorConfig;
use crate::projection::ProjectionConfig;

/// What the processors' roles need of the platform's settings.
#[derive(Debug, Clone, Default)]
pub struct ProcessorsConfig {
    /// Brokers, topics and the schema registry.
    pub kafka: KafkaConfig,
    /// The detectors.
    pub detector: DetectorConfig,
    /// The RUL predictor.
    pub predictor: PredictorConfig,
    /// The projections.
    pub projection: ProjectionConfig,
    /// The alert engine.
    pub alerting: AlertingConfig,
}

/// Kafka settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated.
    pub brokers: String,
    /// Topic of sensor readings.
    pub readings_topic: String,
    /// Topic of alert transitions.
    pub alerts_topic: String,
    /// Topic of alert actions (acknowledgements, snoozes).
    pub alert_actions_topic: String,
    /// Compacted topic of rule changes.
    pub rules_topic: String,
    /// Compacted changelog of the detectors' state (as many partitions as the readings topic).
    pub detector_changelog_topic: String,
    /// Topic of remaining-useful-life predictions.
    pub predictions_topic: String,
    /// Compacted topic of RUL model changes (which model serves which machines).
    pub models_topic: String,
    /// Compacted changelog of the RUL predictor's machine windows (as many partitions as the readings
    /// topic).
    pub predictor_changelog_topic: String,
    /// Partitions of topics the platform creates.
    pub partitions: i32,
    /// Replication factor of topics the platform creates (3 on a production cluster).
    pub replication: i32,
    /// Confluent-compatible schema registry URL. When set, the schemas are registered there and messages
    /// use the Confluent wire format; otherwise Avro single-object encoding.
    pub schema_registry_url: Option<String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:59092".into(),
            readings_topic: haltless_schemas::READINGS_TOPIC.into(),
            alerts_topic: haltless_schemas::ALERTS_TOPIC.into(),
            alert_actions_topic: haltless_schemas::actions::ALERT_ACTIONS_TOPIC.into(),
            rules_topic: haltless_schemas::rules::RULES_TOPIC.into(),
            detector_changelog_topic: haltless_schemas::detector_state::DETECTOR_STATE_TOPIC.into(),
            predictions_topic: haltless_schemas::predictions::PREDICTIONS_TOPIC.into(),
            models_topic: haltless_schemas::models::MODELS_TOPIC.into(),
            predictor_changelog_topic: haltless_schemas::predictor_state::PREDICTOR_STATE_TOPIC
                .into(),
            partitions: 6,
            replication: 1,
            schema_registry_url: None,
        }
    }
}
