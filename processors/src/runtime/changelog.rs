//! A processor's state changelog: reading the partitions back when they are assigned (all of them at once,
//! on one reader per session), and turning their records into the processor's states.

use std::collections::HashMap;
use std::time::{Duration, Instant};

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

/// How long a restore may go without reading anything before it gives up.
const STALL: Duration = Duration::from_secs(120);
/// How long a question to the brokers (metadata, offsets) may take.
const ASK: Duration = Duration::from_secs(10);

/// The reader of a processor's changelog for one session: one client, connected when the session opens, that
/// reads the changelogs of newly assigned partitions together.
pub struct ChangelogReader {
    topic: String,
    consumer: BaseConsumer,
}

impl ChangelogReader {
    /// A reader of `topic`, connected to its partitions' leaders (so that a restore starts with the question
    /// of the partitions' ends). Blocking; run it off the async threads.
    pub fn open(brokers: &str, topic: &str) -> Result<Self, ProcessorError> {
        let consumer: BaseConsumer = reader_config(brokers, "haltless-changelog-restore")
            // The end is found by the position, not by waiting for data: a fetch at the end returns at once.
            .set("fetch.wait.max.ms", "10")
            .create()?;
        consumer.fetch_metadata(Some(topic), ASK)?;
        Ok(Self {
            topic: topic.to_owned(),
            consumer,
        })
    }

    /// Reads the changelog `partitions` from their start to their end: the latest record of each key per
    /// partition (a tombstone removes its key). The partitions' ends are asked for all at once; an empty
    /// partition costs nothing more, and the others are assigned together and read until each reaches the
    /// end it had when the restore began. Blocking; run it off the async threads.
    pub fn read(
        &self,
        partitions: &[i32],
    ) -> Result<HashMap<i32, HashMap<String, Vec<u8>>>, ProcessorError> {
        let mut out: HashMap<i32, HashMap<String, Vec<u8>>> =
            partitions.iter().map(|&p| (p, HashMap::new())).collect();
        if partitions.is_empty() {
            return Ok(out);
        }
        let (consumer, topic) = (&self.consumer, self.topic.as_str());
        let starts = offsets_at(consumer, topic, partitions, Offset::Beginning)?;
        let ends = offsets_at(consumer, topic, partitions, Offset::End)?;
        // The partitions still to read, with the offset each is read up to.
        let mut pending: HashMap<i32, i64> = HashMap::new();
        let mut tpl = TopicPartitionList::new();
        for &p in partitions {
            let start = starts.get(&p).copied().unwrap_or(0);
            let end = ends.get(&p).copied().unwrap_or(0);
            if end > start {
                pending.insert(p, end);
                tpl.add_partition_offset(topic, p, Offset::Offset(start))?;
            }
        }
        if pending.is_empty() {
            return Ok(out);
        }
        consumer.assign(&tpl)?;
        let read = self.read_assigned(&mut out, pending);
        consumer.unassign()?;
        read.map(|()| out)
    }

    /// Polls the assigned partitions into `out` until each reached its end in `pending`.
    fn read_assigned(
        &self,
        out: &mut HashMap<i32, HashMap<String, Vec<u8>>>,
        mut pending: HashMap<i32, i64>,
    ) -> Result<(), ProcessorError> {
        let mut deadline = Instant::now() + STALL;
        loop {
            match self.consumer.poll(Duration::from_millis(5)) {
                Some(Ok(msg)) => {
                    let key = String::from_utf8_lossy(msg.key().unwrap_or_default()).into_owned();
                    let records = out.entry(msg.partition()).or_default();
                    match msg.payload() {
                        Some(bytes) => {
                            records.insert(key, bytes.to_vec());
                        }
                        None => {
                            records.remove(&key);
                        }
                    }
                    deadline = Instant::now() + STALL;
                    // More records usually follow: the positions are looked at when the reader pauses.
                    continue;
                }
                Some(Err(e)) => return Err(e.into()),
                None => {}
            }
            // The position passes the transaction markers too (they are never handed out), so it reaches the
            // end even when the last records are a marker or an aborted transaction.
            for e in self.consumer.position()?.elements() {
                if let Offset::Offset(at) = e.offset() {
                    if pending.get(&e.partition()).is_some_and(|&end| at >= end) {
                        pending.remove(&e.partition());
                    }
                }
            }
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(rdkafka::error::KafkaError::MessageConsumption(
                    rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
                )
                .into());
            }
        }
    }
}

/// Each partition's first offset (`Offset::Beginning`) or end (`Offset::End`; for a `read_committed` client
/// the last stable offset), asked of the brokers for every partition in one request per leader.
fn offsets_at(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
    at: Offset,
) -> Result<HashMap<i32, i64>, ProcessorError> {
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition_offset(topic, p, at)?;
    }
    let mut out = HashMap::new();
    for e in consumer.offsets_for_times(tpl, ASK)?.elements() {
        if let Some(err) = e.error().err() {
            return Err(err.into());
        }
        if let Offset::Offset(o) = e.offset() {
            out.insert(e.partition(), o);
        }
    }
    Ok(out)
}
