//! The instance's one Kafka reader behind the dashboard sockets: it reads the readings, the active
//! generation's alerts, the alert actions and the predictions from their ends (every instance reads every partition, with
//! no group and no commits: each instance serves its own sockets) and hands them to the [`Hub`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use haltless_processors::detection::generation;
use haltless_processors::runtime::codecs::{alerts_codec, predictions_codec, readings_codec};
use haltless_processors::runtime::kafka::reader_config;
use haltless_schemas::actions::AlertAction;
use haltless_schemas::predictions::PredictionRecord;
use haltless_schemas::{AlertRecord, ReadingBatch};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::hub::Hub;
use crate::state::AppState;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the reader checks whether a replay made another generation of alerts active.
const GENERATION_CHECK: Duration = Duration::from_secs(30);

/// Reads until `shutdown`, or until the active generation changes (the caller starts it again).
pub async fn run(
    state: AppState,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let kafka = &state.settings().kafka;
    let readings_codec = readings_codec(kafka).await?;
    let alerts_codec = alerts_codec(kafka).await?;
    let actions_codec = AlertAction::codec()?;
    let predictions_codec = predictions_codec(kafka).await?;
    let active = generation::active(state.pool()).await?;
    let alerts_topic = active.name(&kafka.alerts_topic);
    let config = reader_config(
        &kafka.brokers,
        &format!("haltless-live-{}", Uuid::new_v4().simple()),
    );
    let consumer: StreamConsumer = config.create()?;
    // Asking for the partitions blocks (up to the timeout while the brokers are down): off the async
    // threads, on a client of its own.
    let topics = [
        kafka.readings_topic.clone(),
        alerts_topic.clone(),
        kafka.alert_actions_topic.clone(),
        kafka.predictions_topic.clone(),
    ];
    let assignment = tokio::task::spawn_blocking(move || -> anyhow::Result<TopicPartitionList> {
        let client: BaseConsumer = config.create()?;
        let mut assignment = TopicPartitionList::new();
        for topic in &topics {
            let metadata = client.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
            for t in metadata.topics() {
                for p in t.partitions() {
                    assignment.add_partition_offset(t.name(), p.id(), Offset::End)?;
                }
            }
        }
        Ok(assignment)
    })
    .await??;
    consumer.assign(&assignment)?;
    tracing::info!(alerts = %alerts_topic, "live feed reading");
    let mut checked = Instant::now();
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            m = tokio::time::timeout(GENERATION_CHECK, consumer.recv()) => m,
        };
        if checked.elapsed() >= GENERATION_CHECK {
            checked = Instant::now();
            if generation::active(state.pool())
                .await
                .is_ok_and(|g| g != active)
            {
                tracing::info!("live feed following the new active generation");
                return Ok(());
            }
        }
        let Ok(message) = message else { continue };
        let message = message?;
        let Some(payload) = message.payload() else {
            continue;
        };
        let topic = message.topic();
        if topic == kafka.readings_topic {
            // The key names the tenant (`tenant/machine`): a batch no socket here watches is not decoded.
            // The feed reads every reading of the platform, most of them of tenants with no socket open.
            if !message
                .key()
                .and_then(key_tenant)
                .is_none_or(|t| hub.watches(t))
            {
                continue;
            }
            match ReadingBatch::decode(&readings_codec, payload) {
                Ok(batch) => hub.on_readings(&batch),
                Err(e) => tracing::warn!(error = %e, "live feed: undecodable reading batch"),
            }
        } else if topic == alerts_topic {
            match AlertRecord::decode(&alerts_codec, payload) {
                Ok(alert) => hub.on_alert(&alert),
                Err(e) => tracing::warn!(error = %e, "live feed: undecodable alert"),
            }
        } else if topic == kafka.predictions_topic {
            match PredictionRecord::decode(&predictions_codec, payload) {
                Ok(prediction) => hub.on_prediction(&prediction),
                Err(e) => tracing::warn!(error = %e, "live feed: undecodable prediction"),
            }
        } else if let Ok(action) = AlertAction::decode(&actions_codec, payload) {
            on_action(&state, &hub, &action).await;
        }
    }
}

/// The tenant of a readings message's key (`tenant/machine`).
fn key_tenant(key: &[u8]) -> Option<Uuid> {
    Uuid::try_parse_ascii(key.get(..36)?).ok()
}

/// An action names only its alert: the machine comes from the alert the hub saw, else the database.
async fn on_action(state: &AppState, hub: &Hub, action: &AlertAction) {
    let machine = match hub.alert_machine(action.tenant_id, action.alert_id) {
        // No socket of the tenant is open here.
        None => return,
        Some(Some(machine)) => Some(machine),
        Some(None) => sqlx::query_scalar(
            "SELECT machine_id FROM alerts WHERE tenant_id = $1 AND id = $2 LIMIT 1",
        )
        .bind(action.tenant_id)
        .bind(action.alert_id)
        .fetch_optional(state.pool())
        .await
        .ok()
        .flatten(),
    };
    if let Some(machine) = machine {
        hub.on_action(action, machine);
    }
}
