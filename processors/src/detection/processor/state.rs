//! Detector state in a compacted changelog topic: one record per machine, keyed `tenant/machine`, in the
//! partition of the readings it was computed from, written in the same transaction as the alerts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::detection::logic::engine::MachineState;
use crate::runtime::kafka::reader_config;
use crate::runtime::ProcessorError;

/// Serialises a machine's state for the changelog.
pub fn encode(state: &MachineState) -> Vec<u8> {
    // Serialising plain data structures to JSON cannot fail.
    serde_json::to_vec(state).unwrap_or_default()
}

/// Reads one changelog partition from its start to its end: the latest state of each of its machines.
/// Blocking; run it off the async threads.
pub fn restore(
    brokers: &str,
    topic: &str,
    partition: i32,
) -> Result<HashMap<String, MachineState>, ProcessorError> {
    let consumer: BaseConsumer = reader_config(brokers, "haltless-detector-restore").create()?;
    let (low, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
    let mut states = HashMap::new();
    if high <= low {
        return Ok(states);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(msg) = consumer.poll(Duration::from_millis(100)) {
            let msg = msg?;
            let key = String::from_utf8_lossy(msg.key().unwrap_or_default()).into_owned();
            match msg.payload().map(serde_json::from_slice::<MachineState>) {
                Some(Ok(state)) => {
                    states.insert(key, state);
                }
                Some(Err(e)) => {
                    tracing::error!(%key, error = %e, "unreadable detector state; starting that machine afresh")
                }
                None => {
                    states.remove(&key);
                }
            }
        }
        let position = match consumer
            .position()?
            .find_partition(topic, partition)
            .map(|p| p.offset())
        {
            Some(Offset::Offset(o)) => o,
            _ => low,
        };
        if position >= high {
            return Ok(states);
        }
        if Instant::now() > deadline {
            return Err(rdkafka::error::KafkaError::MessageConsumption(
                rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
            )
            .into());
        }
    }
}
