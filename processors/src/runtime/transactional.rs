//! The exactly-once Kafka → Kafka loop the stateful processors share: consume a batch, let the processor
//! turn it into records (its output and its changed state), and in one Kafka transaction produce them and
//! the consumed offsets.
//!
//! Any failure aborts the transaction and starts a new session from what Kafka committed: the processor's
//! state is restored from its changelog and consumption resumes at the committed offsets, so a crash at
//! any moment gives the same output as a run that never stopped. The detectors and the RUL predictor run
//! through here; each says what to do with a batch ([`Transform`]).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::batch::next_batch;
use super::kafka::{
    consumer_config, reader_config, transactional_producer_config, ConsumerDelivery,
};
use super::ProcessorError;

/// How long a blocking Kafka call may take.
pub const KAFKA_TIMEOUT: Duration = Duration::from_secs(30);

/// How a transactional processor consumes, batches and commits.
#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// Consumer group; instances in one group share the input partitions and their state.
    pub group: String,
    /// This instance's stable name: with the group, the transactional id that fences a predecessor.
    pub instance: String,
    /// Most Kafka messages processed in one transaction.
    pub batch_max_messages: usize,
    /// Longest wait (ms) for a batch to fill once its first message arrived.
    pub batch_max_wait_ms: u64,
    /// Kafka transaction timeout (ms).
    pub transaction_timeout_ms: u64,
    /// Consumer group session timeout (ms).
    pub session_timeout_ms: u64,
}

/// The topics of a transactional processor.
#[derive(Debug, Clone)]
pub struct LoopTopics {
    /// What it consumes.
    pub input: String,
    /// Its compacted state changelog, partitioned like `input`: a key's state sits in the partition of the
    /// input it was computed from.
    pub changelog: String,
}

/// One record to produce in the batch's transaction.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Topic.
    pub topic: String,
    /// Key.
    pub key: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// A fixed partition (a changelog record goes to its input's partition); else by key.
    pub partition: Option<i32>,
}

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

/// What a processor does with its input; the loop does the Kafka part.
pub trait Transform: Send + Sync + 'static {
    /// What one session keeps: the state of the assigned partitions, and anything rebuilt per session.
    type Session: Send;

    /// A name for logs.
    fn name(&self) -> &'static str;

    /// Starts a session (empty state: partitions are restored as they are assigned).
    fn open(&self) -> impl Future<Output = Result<Self::Session, ProcessorError>> + Send;

    /// Runs before each batch's transaction, e.g. catching up on a configuration topic.
    fn prepare(
        &self,
        _session: &mut Self::Session,
    ) -> impl Future<Output = Result<(), ProcessorError>> + Send {
        async { Ok(()) }
    }

    /// Forgets the state of partitions no longer assigned.
    fn retain(&self, session: &mut Self::Session, assigned: &HashSet<i32>);

    /// Takes the changelog of a newly assigned partition: the latest record of each key. Returns how many
    /// keys it restored.
    fn restore(
        &self,
        session: &mut Self::Session,
        partition: i32,
        records: HashMap<String, Vec<u8>>,
    ) -> usize;

    /// Processes the messages of one batch (of assigned partitions, in order) and returns the records to
    /// produce with them: its output and the changelog records of the state it changed.
    fn process(
        &self,
        session: &mut Self::Session,
        batch: &[&OwnedMessage],
    ) -> Result<Vec<Outgoing>, ProcessorError>;
}

/// The loop around a [`Transform`].
pub struct TransactionalLoop<T: Transform> {
    brokers: String,
    topics: LoopTopics,
    config: LoopConfig,
    transform: T,
    end_offsets: Option<HashMap<i32, i64>>,
}

/// Reports the input's lag per partition from librdkafka's statistics.
struct LagContext {
    processor: &'static str,
}

impl ClientContext for LagContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        super::lag::report(
            &statistics,
            haltless_schemas::metric_names::PROCESSOR_LAG,
            "processor",
            self.processor,
        );
    }
}

impl ConsumerContext for LagContext {}

struct Session<S> {
    consumer: StreamConsumer<LagContext>,
    producer: FutureProducer,
    restored: HashSet<i32>,
    inner: S,
}

impl<T: Transform> TransactionalLoop<T> {
    /// A loop reading `topics.input` on `brokers` through `transform`.
    pub fn new(brokers: &str, topics: LoopTopics, config: LoopConfig, transform: T) -> Self {
        Self {
            brokers: brokers.to_owned(),
            topics,
            config,
            transform,
            end_offsets: None,
        }
    }

    /// Processes input only below these offsets per partition (a bounded replay); later messages are left
    /// unprocessed and uncommitted.
    pub fn with_end_offsets(mut self, end: HashMap<i32, i64>) -> Self {
        self.end_offsets = Some(end);
        self
    }

    fn in_range(&self, msg: &OwnedMessage) -> bool {
        self.end_offsets
            .as_ref()
            .is_none_or(|end| end.get(&msg.partition()).is_some_and(|&e| msg.offset() < e))
    }

    /// Runs sessions until `shutdown` is cancelled; a failed session is aborted and a fresh one started.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ProcessorError> {
        loop {
            match self.session(&shutdown).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(error = %e, processor = self.transform.name(), "session failed; restarting from the committed state");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    async fn session(&self, shutdown: &CancellationToken) -> Result<(), ProcessorError> {
        let mut s = self.open().await?;
        loop {
            let batch = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                batch = next_batch(&s.consumer, self.config.batch_max_messages, Duration::from_millis(self.config.batch_max_wait_ms)) => batch,
            };
            // A consumer error before any message was taken changes nothing: the client reconnects by itself.
            let batch = match batch {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::debug!(error = %e, "kafka consumer error");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if let Err(e) = self.process(&mut s, &batch).await {
                let producer = s.producer.clone();
                let _ =
                    tokio::task::spawn_blocking(move || producer.abort_transaction(KAFKA_TIMEOUT))
                        .await;
                return Err(e);
            }
        }
    }

    /// Creates the clients of a session; initialising the transactions fences a predecessor of the same name.
    ///
    /// The three start-up round trips run at once: the consumer joins its group (in librdkafka's threads,
    /// from `subscribe` on), the producer initialises its transactions, and the transform opens its session.
    /// Joining before the fence is safe: a `read_committed` consumer asks for stable offsets, so the broker
    /// answers its offset fetch only once a predecessor's pending transaction is committed or aborted, and
    /// nothing of this session is produced or committed before `init_transactions` returned.
    async fn open(&self) -> Result<Session<T::Session>, ProcessorError> {
        let consumer: StreamConsumer<LagContext> = consumer_config(
            &self.brokers,
            &self.config.group,
            ConsumerDelivery::ExactlyOnce,
        )
        .set(
            "session.timeout.ms",
            self.config.session_timeout_ms.to_string(),
        )
        .set("statistics.interval.ms", super::lag::STATISTICS_INTERVAL_MS)
        .create_with_context(LagContext {
            processor: self.transform.name(),
        })?;
        consumer.subscribe(&[&self.topics.input])?;
        let transactional_id = format!("{}-{}", self.config.group, self.config.instance);
        let producer: FutureProducer = transactional_producer_config(
            &self.brokers,
            &transactional_id,
            self.config.transaction_timeout_ms,
        )
        .create()?;
        let p = producer.clone();
        let fence = async {
            tokio::task::spawn_blocking(move || p.init_transactions(KAFKA_TIMEOUT))
                .await
                .map_err(join_error)?
                .map_err(ProcessorError::from)
        };
        let ((), inner) = tokio::try_join!(fence, self.transform.open())?;
        Ok(Session {
            consumer,
            producer,
            restored: HashSet::new(),
            inner,
        })
    }

    /// Processes one batch in one transaction.
    async fn process(
        &self,
        s: &mut Session<T::Session>,
        batch: &[OwnedMessage],
    ) -> Result<(), ProcessorError> {
        let started = std::time::Instant::now();
        let assigned = self.sync_assignment(s).await?;
        self.transform.prepare(&mut s.inner).await?;
        let prepared = started.elapsed();
        s.producer.begin_transaction()?;
        let mut offsets = HashMap::new();
        let taken: Vec<&OwnedMessage> = batch
            .iter()
            .filter(|m| assigned.contains(&m.partition()) && self.in_range(m))
            .inspect(|m| {
                offsets.insert(m.partition(), m.offset() + 1);
            })
            .collect();
        let records = self.transform.process(&mut s.inner, &taken)?;
        self.produce(s, &records).await?;
        let produced = started.elapsed();
        let offsets_sent = produced + self.commit(s, &offsets).await?;
        tracing::debug!(
            processor = self.transform.name(),
            messages = batch.len(),
            records = records.len(),
            prepare_ms = prepared.as_secs_f64() * 1e3,
            produce_ms = (produced - prepared).as_secs_f64() * 1e3,
            offsets_ms = (offsets_sent - produced).as_secs_f64() * 1e3,
            commit_ms = (started.elapsed() - offsets_sent).as_secs_f64() * 1e3,
            "transaction committed"
        );
        Ok(())
    }

    /// Produces the records into the open transaction and waits for their delivery.
    async fn produce(
        &self,
        s: &Session<T::Session>,
        records: &[Outgoing],
    ) -> Result<(), ProcessorError> {
        let mut deliveries = Vec::with_capacity(records.len());
        for r in records {
            let mut record = FutureRecord::to(&r.topic).key(&r.key).payload(&r.payload);
            if let Some(p) = r.partition {
                record = record.partition(p);
            }
            deliveries.push(s.producer.send_result(record).map_err(|(e, _)| e)?);
        }
        // Waiting for the delivery reports here, not in the commit's own flush, spares the commit a wait for
        // the producer's polling thread (about 100 ms a transaction).
        for delivery in futures::future::join_all(deliveries).await {
            match delivery {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(e.into()),
                Err(_) => {
                    return Err(ProcessorError::Internal(
                        "a delivery report was lost".into(),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Adds the consumed offsets to the transaction and commits it; returns how long sending the offsets
    /// took.
    async fn commit(
        &self,
        s: &Session<T::Session>,
        offsets: &HashMap<i32, i64>,
    ) -> Result<Duration, ProcessorError> {
        let started = std::time::Instant::now();
        let mut tpl = TopicPartitionList::new();
        for (partition, offset) in offsets {
            tpl.add_partition_offset(&self.topics.input, *partition, Offset::Offset(*offset))?;
        }
        let group = s
            .consumer
            .group_metadata()
            .ok_or_else(|| ProcessorError::Internal("the consumer has no group metadata".into()))?;
        let producer = s.producer.clone();
        let offsets_sent = tokio::task::spawn_blocking(move || {
            if tpl.count() > 0 {
                producer.send_offsets_to_transaction(&tpl, &group, KAFKA_TIMEOUT)?;
            }
            let offsets_sent = started.elapsed();
            producer.commit_transaction(KAFKA_TIMEOUT)?;
            Ok::<_, rdkafka::error::KafkaError>(offsets_sent)
        })
        .await
        .map_err(join_error)??;
        Ok(offsets_sent)
    }

    /// Restores the state of newly assigned partitions and forgets that of revoked ones.
    async fn sync_assignment(
        &self,
        s: &mut Session<T::Session>,
    ) -> Result<HashSet<i32>, ProcessorError> {
        let assigned: HashSet<i32> = s
            .consumer
            .assignment()?
            .elements()
            .iter()
            .filter(|e| e.topic() == self.topics.input)
            .map(|e| e.partition())
            .collect();
        self.transform.retain(&mut s.inner, &assigned);
        s.restored.retain(|p| assigned.contains(p));
        // The new partitions' changelogs are read at once, each on a client of its own.
        let reads = assigned.difference(&s.restored).map(|&partition| {
            let (brokers, topic) = (self.brokers.clone(), self.topics.changelog.clone());
            async move {
                let records = tokio::task::spawn_blocking(move || {
                    read_changelog(&brokers, &topic, partition)
                })
                .await
                .map_err(join_error)??;
                Ok::<_, ProcessorError>((partition, records))
            }
        });
        for (partition, records) in futures::future::try_join_all(reads).await? {
            let keys = self.transform.restore(&mut s.inner, partition, records);
            tracing::info!(
                processor = self.transform.name(),
                partition,
                keys,
                "restored state"
            );
            s.restored.insert(partition);
        }
        Ok(assigned)
    }
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

/// A blocking Kafka call's task failed.
pub fn join_error(e: tokio::task::JoinError) -> ProcessorError {
    ProcessorError::Internal(format!("blocking Kafka call failed: {e}"))
}
