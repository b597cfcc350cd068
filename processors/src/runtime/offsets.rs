//! Offset queries on a topic: its partitions, their ends, the offsets at a point in time, and a consumer
//! group's committed positions. Blocking calls; run them off the async threads.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::error::ProcessorError;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Offsets of one topic.
pub struct TopicOffsets {
    brokers: String,
    topic: String,
    consumer: BaseConsumer,
}

impl TopicOffsets {
    /// Queries on `topic` at `brokers`.
    pub fn new(brokers: &str, topic: &str) -> Result<Self, ProcessorError> {
        Ok(Self {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            consumer: client(brokers, "haltless-offsets")?,
        })
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The topic's partition ids.
    pub fn partitions(&self) -> Result<Vec<i32>, ProcessorError> {
        let metadata = self.consumer.fetch_metadata(Some(&self.topic), TIMEOUT)?;
        let t = metadata
            .topics()
            .first()
            .filter(|t| t.error().is_none())
            .ok_or_else(|| ProcessorError::Internal(format!("topic {} not found", self.topic)))?;
        Ok(t.partitions().iter().map(|p| p.id()).collect())
    }

    /// Each partition's (start, end).
    pub fn watermarks(&self) -> Result<HashMap<i32, (i64, i64)>, ProcessorError> {
        let mut out = HashMap::new();
        for p in self.partitions()? {
            out.insert(p, self.consumer.fetch_watermarks(&self.topic, p, TIMEOUT)?);
        }
        Ok(out)
    }

    /// Each partition's end.
    pub fn ends(&self) -> Result<HashMap<i32, i64>, ProcessorError> {
        Ok(self
            .watermarks()?
            .into_iter()
            .map(|(p, (_, h))| (p, h))
            .collect())
    }

    /// Per partition, the first offset written at or after `at_ms` (by the message timestamp), or the
    /// partition's end when nothing was; the partition's start when `at_ms` is `None`.
    pub fn at_time(&self, at_ms: Option<i64>) -> Result<HashMap<i32, i64>, ProcessorError> {
        let watermarks = self.watermarks()?;
        let Some(at) = at_ms else {
            return Ok(watermarks.into_iter().map(|(p, (l, _))| (p, l)).collect());
        };
        let mut out: HashMap<i32, i64> = watermarks.iter().map(|(&p, &(_, h))| (p, h)).collect();
        let mut tpl = TopicPartitionList::new();
        for &p in watermarks.keys() {
            tpl.add_partition_offset(&self.topic, p, Offset::Offset(at))?;
        }
        for e in self.consumer.offsets_for_times(tpl, TIMEOUT)?.elements() {
            if let Offset::Offset(o) = e.offset() {
                out.insert(e.partition(), o);
            }
        }
        Ok(out)
    }

    /// The positions `group` committed on this topic (partitions without a commit are left out).
    pub fn committed(&self, group: &str) -> Result<HashMap<i32, i64>, ProcessorError> {
        let reader = client(&self.brokers, group)?;
        let mut tpl = TopicPartitionList::new();
        for p in self.partitions()? {
            tpl.add_partition(&self.topic, p);
        }
        let mut out = HashMap::new();
        for e in reader.committed_offsets(tpl, TIMEOUT)?.elements() {
            if let Offset::Offset(o) = e.offset() {
                out.insert(e.partition(), o);
            }
        }
        Ok(out)
    }

    /// Commits `positions` for `group`, which must have no live members, so that its members start there.
    pub fn commit(&self, group: &str, positions: &HashMap<i32, i64>) -> Result<(), ProcessorError> {
        let committer = client(&self.brokers, group)?;
        let mut tpl = TopicPartitionList::new();
        for (&p, &o) in positions {
            tpl.add_partition_offset(&self.topic, p, Offset::Offset(o))?;
        }
        committer.commit(&tpl, CommitMode::Sync)?;
        Ok(())
    }
}

fn client(brokers: &str, group: &str) -> Result<BaseConsumer, ProcessorError> {
    Ok(super::kafka::reader_config(brokers, group).create()?)
}
