//! Following a compacted configuration topic (rules, models) from its start: before each batch a
//! processor reads what was added since, so a batch sees every change made before it.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::kafka::reader_config;
use super::transactional::{join_error, KAFKA_TIMEOUT};
use super::ProcessorError;

/// A reader of every partition of one topic, from its start.
pub struct Follower {
    topic: String,
    consumer: Arc<BaseConsumer>,
    /// Asks for the topic's end on a connection of its own: on the consumer's, the question would wait
    /// behind its long-polling fetch (the broker answers one request per connection at a time).
    watermarks: Arc<BaseConsumer>,
}

impl Follower {
    /// A follower of `topic` positioned at its start; `name` names the client to the brokers. Asking
    /// the brokers for the topic's partitions blocks (up to a timeout while they are down), so it runs off
    /// the async threads.
    pub async fn from_start(
        brokers: &str,
        topic: &str,
        name: &str,
    ) -> Result<Self, ProcessorError> {
        let (brokers, topic, name) = (brokers.to_owned(), topic.to_owned(), name.to_owned());
        tokio::task::spawn_blocking(move || {
            let client = || reader_config(&brokers, &name).create::<BaseConsumer>();
            let consumer = client()?;
            let metadata = consumer.fetch_metadata(Some(&topic), KAFKA_TIMEOUT)?;
            let mut tpl = TopicPartitionList::new();
            for t in metadata.topics() {
                for p in t.partitions() {
                    tpl.add_partition_offset(&topic, p.id(), Offset::Beginning)?;
                }
            }
            consumer.assign(&tpl)?;
            Ok(Self {
                topic,
                consumer: Arc::new(consumer),
                watermarks: Arc::new(client()?),
            })
        })
        .await
        .map_err(join_error)?
    }

    /// The payloads added since the last call, up to the topic's end now, in partition order (tombstones
    /// are skipped).
    pub async fn catch_up(&self) -> Result<Vec<Vec<u8>>, ProcessorError> {
        let (consumer, watermarks, topic) = (
            self.consumer.clone(),
            self.watermarks.clone(),
            self.topic.clone(),
        );
        tokio::task::spawn_blocking(move || -> Result<Vec<Vec<u8>>, ProcessorError> {
            let mut out = Vec::new();
            let assignment = consumer.assignment()?;
            for e in assignment.elements() {
                let (low, high) =
                    watermarks.fetch_watermarks(&topic, e.partition(), KAFKA_TIMEOUT)?;
                loop {
                    // Before the first fetch the position is not a number yet: count it as the start.
                    let pos = match consumer
                        .position()?
                        .find_partition(&topic, e.partition())
                        .map(|p| p.offset())
                    {
                        Some(Offset::Offset(o)) => o,
                        _ => low,
                    };
                    if pos >= high {
                        break;
                    }
                    match consumer.poll(Duration::from_millis(200)) {
                        Some(Ok(msg)) => {
                            if let Some(bytes) = msg.payload() {
                                out.push(bytes.to_vec());
                            }
                        }
                        Some(Err(err)) => return Err(err.into()),
                        None => {}
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(join_error)?
    }
}
