//! A processor's state changelog: reading a partition back when it is assigned, and turning its records
//! into the processor's states.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::kafka::reader_config;
use super::ProcessorError;

/// Decodes a partition's changelog `records` into `machines` (key → (partition, state)); a record that
/// does not decode is logged and its machine starts afresh. Returns how many keys were restored.
pub fn restore_records<T, E: std::fmt::Display>(
    machines: &mut HashMap<String, (i32, T)>,
    partition: i32,
    records: HashMap<String, Vec<u8>>,
    what: &str,
    decode: impl Fn(&[u8]) -> Result<T, E>,
) -> usize {
    let mut restored = 0;
    for (key, bytes) in records {
        match decode(&bytes) {
            Ok(state) => {
                machines.insert(key, (partition, state));
                restored += 1;
            }
            Err(e) => {
                tracing::error!(%key, error = %e, "unreadable {what} state; starting that machine afresh")
            }
        }
    }
    restored
}

/// Reads one changelog partition from its start to its end: the latest record of each key (a tombstone
/// removes its key). Blocking; run it off the async threads.
pub fn read_changelog(
    brokers: &str,
    topic: &str,
    partition: i32,
) -> Result<HashMap<String, Vec<u8>>, ProcessorError> {
    let consumer: BaseConsumer = reader_config(brokers, "haltless-changelog-restore").create()?;
    let (low, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
    let mut records = HashMap::new();
    if high <= low {
        return Ok(records);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(msg) = consumer.poll(Duration::from_millis(100)) {
            let msg = msg?;
            let key = String::from_utf8_lossy(msg.key().unwrap_or_default()).into_owned();
            match msg.payload() {
                Some(bytes) => {
                    records.insert(key, bytes.to_vec());
                }
                None => {
                    records.remove(&key);
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
            return Ok(records);
        }
        if std::time::Instant::now() > deadline {
            return Err(rdkafka::error::KafkaError::MessageConsumption(
                rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
            )
            .into());
        }
    }
}
