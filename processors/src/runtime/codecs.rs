//! The codecs of the topics as configured: Confluent framing with the ids a schema registry gives the
//! schemas when `kafka.schema_registry_url` is set, else Avro single-object encoding.

use haltless_schemas::predictions::PredictionRecord;
use haltless_schemas::{AlertRecord, Codec, ReadingBatch, WireFormat};

use super::error::ProcessorError;
use crate::config::KafkaConfig;

/// The readings codec.
pub async fn readings_codec(kafka: &KafkaConfig) -> Result<Codec, ProcessorError> {
    let format = wire_format(
        kafka,
        &kafka.readings_topic,
        haltless_schemas::readings::SCHEMA,
    )
    .await?;
    Ok(ReadingBatch::codec(format)?)
}

/// The alerts codec, framed like the readings codec.
pub async fn alerts_codec(kafka: &KafkaConfig) -> Result<Codec, ProcessorError> {
    let format = wire_format(kafka, &kafka.alerts_topic, haltless_schemas::alerts::SCHEMA).await?;
    Ok(AlertRecord::codec(format)?)
}

/// The predictions codec, framed like the readings codec.
pub async fn predictions_codec(kafka: &KafkaConfig) -> Result<Codec, ProcessorError> {
    let format = wire_format(
        kafka,
        &kafka.predictions_topic,
        haltless_schemas::predictions::SCHEMA,
    )
    .await?;
    Ok(PredictionRecord::codec(format)?)
}

/// A readings message's batch; a message that does not decode is logged and skipped (`None`): it would
/// fail the same way on every retry.
pub fn decode_readings(
    codec: &Codec,
    msg: &rdkafka::message::OwnedMessage,
) -> Option<ReadingBatch> {
    use rdkafka::Message as _;
    match msg.payload().map(|p| ReadingBatch::decode(codec, p)) {
        Some(Ok(readings)) => Some(readings),
        _ => {
            tracing::error!(
                partition = msg.partition(),
                offset = msg.offset(),
                "skipping a readings message that does not decode"
            );
            None
        }
    }
}

async fn wire_format(
    kafka: &KafkaConfig,
    topic: &str,
    schema: &str,
) -> Result<WireFormat, ProcessorError> {
    Ok(match &kafka.schema_registry_url {
        None => WireFormat::SingleObject,
        Some(url) => WireFormat::Confluent {
            schema_id: register_schema(url, &format!("{topic}-value"), schema).await?,
        },
    })
}

/// Registers `schema` under `subject` in a Confluent-compatible registry and returns its id.
async fn register_schema(url: &str, subject: &str, schema: &str) -> Result<u32, ProcessorError> {
    #[derive(serde::Deserialize)]
    struct Registered {
        id: u32,
    }
    let failed = |what: &str, e: reqwest::Error| ProcessorError::Registry(format!("{what}: {e}"));
    let response = reqwest::Client::new()
        .post(format!(
            "{}/subjects/{subject}/versions",
            url.trim_end_matches('/')
        ))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .json(&serde_json::json!({ "schema": schema }))
        .send()
        .await
        .map_err(|e| failed("reaching the schema registry", e))?
        .error_for_status()
        .map_err(|e| failed("registering the schema", e))?;
    Ok(response
        .json::<Registered>()
        .await
        .map_err(|e| failed("reading the registry's answer", e))?
        .id)
}
