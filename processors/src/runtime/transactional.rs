//! The exactly-once Kafka → Kafka loop the stateful processors share: consume a batch, let the processor
//! turn it into records (its output and its changed state), and in one Kafka transaction produce them and
//! the consumed offsets.
//!
//! Any failure aborts the transaction and starts a new session from what Kafka committed: the processor's
//! state is restored from its changelog and consumption resumes at the committed offsets, so a crash at
//! any moment gives the same output as a run that never stopped. The detectors and the RUL predictor run
//! through here; each says what to do with a batch ([`Transform`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::batch::{next_batch, take};
pub use super::changelog::{restore_records, ChangelogReader};
use super::kafka::{consumer_config, transactional_producer_config, ConsumerDelivery};
use super::shards::Shards;
pub use super::transform::{Outgoing, Transform};
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
    /// Least time (ms) between the starts of two transactions (Kafka Streams' `commit.interval.ms`).
    pub commit_interval_ms: u64,
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

/// The loop around a [`Transform`].
pub struct TransactionalLoop<T: Transform> {
    brokers: String,
    topics: LoopTopics,
    config: LoopConfig,
    transform: T,
    end_offsets: Option<HashMap<i32, i64>>,
    shards: usize,
}

/// Reports the input's lag per partition from librdkafka's statistics.
struct LagContext {
    processor: &'static str,
    group: String,
}

impl ClientContext for LagContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        super::lag::report(
            &statistics,
            haltless_schemas::metric_names::PROCESSOR_LAG,
            ("processor", self.processor),
            &self.group,
        );
    }
}

impl ConsumerContext for LagContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let (what, partitions) = match rebalance {
            Rebalance::Assign(tpl) => ("assigned", tpl.count()),
            Rebalance::Revoke(tpl) => ("revoked", tpl.count()),
            Rebalance::Error(_) => ("rebalance failed", 0),
        };
        tracing::debug!(processor = self.processor, group = %self.group, partitions, "partitions {what}");
    }
}

struct Session<S> {
    consumer: StreamConsumer<LagContext>,
    producer: FutureProducer,
    restored: HashSet<i32>,
    /// Reads the changelogs of newly assigned partitions back.
    changelog: Arc<ChangelogReader>,
    shards: Shards<S>,
    /// The Kafka part (produce, offsets, commit) of the last batch's transaction, running while the next batch
    /// is read and processed.
    committing: Option<JoinHandle<Result<(), ProcessorError>>>,
    /// When the session opened, until its first transaction is committed (logged once).
    opened: Option<Instant>,
}

/// A processed batch: the records to produce and the next offset per input partition.
struct Processed {
    records: Vec<Outgoing>,
    offsets: HashMap<i32, i64>,
    messages: usize,
    started: Instant,
    prepare: Duration,
    process: Duration,
}

impl<T: Transform> TransactionalLoop<T> {
    /// A loop reading `topics.input` on `brokers` through `transform`, processing each batch on as many
    /// threads as the machine has cores (each owning a share of the partitions, see [`Self::with_shards`]).
    pub fn new(brokers: &str, topics: LoopTopics, config: LoopConfig, transform: T) -> Self {
        Self {
            brokers: brokers.to_owned(),
            topics,
            config,
            transform,
            end_offsets: None,
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// Processes input only below these offsets per partition (a bounded replay); later messages are left
    /// unprocessed and uncommitted.
    pub fn with_end_offsets(mut self, end: HashMap<i32, i64>) -> Self {
        self.end_offsets = Some(end);
        self
    }

    /// Splits the assigned partitions among `n` sessions of the transform, processed on `n` threads.
    pub fn with_shards(mut self, n: usize) -> Self {
        self.shards = n.max(1);
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

    /// One session: batches until shutdown or a failure. The transaction in flight is finished either way;
    /// after a failure it is aborted, and the next session starts again from what Kafka committed.
    async fn session(&self, shutdown: &CancellationToken) -> Result<(), ProcessorError> {
        let mut s = self.open().await?;
        let outcome = self.batches(&mut s, shutdown).await;
        let finished = match s.committing.take() {
            Some(kafka) => kafka.await.map_err(join_error).and_then(|r| r),
            None => Ok(()),
        };
        let failed = outcome.and(finished);
        if failed.is_err() {
            let producer = s.producer.clone();
            let _ = tokio::task::spawn_blocking(move || producer.abort_transaction(KAFKA_TIMEOUT))
                .await;
        }
        failed
    }

    /// Reads, processes and commits batches until shutdown or a failure. Batch N+1 is read while batch N's
    /// transaction goes to Kafka, and processed once it is full or N is committed (and, under traffic,
    /// `commit_interval_ms` has passed since N began); N+1's transaction begins only once N's is committed.
    /// Processing ahead of a commit only changes the state in memory, which a failure throws away.
    async fn batches(
        &self,
        s: &mut Session<T::Session>,
        shutdown: &CancellationToken,
    ) -> Result<(), ProcessorError> {
        let interval = Duration::from_millis(self.config.commit_interval_ms);
        let mut last_begun: Option<Instant> = None;
        loop {
            let batch = {
                let next = next_batch(
                    &s.consumer,
                    self.config.batch_max_messages,
                    Duration::from_millis(self.config.batch_max_wait_ms),
                );
                tokio::pin!(next);
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        // A failed commit ends the session now rather than when input next arrives (the
                        // batch being read is dropped: the next session reads it again from the committed
                        // offsets).
                        committed = finished(&mut s.committing), if s.committing.is_some() => committed?,
                        batch = &mut next => break batch,
                    }
                }
            };
            // A consumer error before any message was taken changes nothing: the client reconnects by itself.
            let mut batch = match batch {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::debug!(error = %e, "kafka consumer error");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // A transaction begins once the last one is committed and at least `commit_interval_ms` after
            // it began; what arrives meanwhile joins this batch (up to the most a batch holds). Under load
            // the loop commits fewer, larger transactions, each more than a dozen requests to the broker (the
            // rules topic's ends, a produce and its verification per partition, offsets, the commit and its
            // markers): at 150,000 readings/s the detectors and the predictor began 44 transactions a second
            // when only the commit held the next back, 21 with 100 ms. The interval holds back only a batch
            // that took more than the message that opened it within its wait (traffic): a lone message, as
            // after a quiet spell or one reading at a time, waits for the last commit alone (with the
            // interval for those too, an alert's latency in `bench-detect` went from about 40 to 100 ms).
            let not_before = last_begun
                .filter(|_| batch.len() > 1)
                .map(|at| at + interval);
            while batch.len() < self.config.batch_max_messages {
                let early = not_before.filter(|at| Instant::now() < *at);
                if s.committing.is_none() && early.is_none() {
                    break;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    committed = finished(&mut s.committing), if s.committing.is_some() => committed?,
                    _ = tokio::time::sleep_until(early.unwrap_or_else(Instant::now).into()), if early.is_some() => {}
                    received = s.consumer.recv() => {
                        if !take(&mut batch, received) {
                            break;
                        }
                    }
                }
            }
            let processed = self.process(s, &batch).await?;
            let waited = Instant::now();
            finished(&mut s.committing).await?;
            if processed.offsets.is_empty() {
                continue;
            }
            let waited = waited.elapsed();
            last_begun = Some(Instant::now());
            s.committing = Some(self.send(s, processed, waited)?);
        }
    }

    /// Creates the clients of a session; initialising the transactions fences a predecessor of the same name.
    ///
    /// The start-up round trips run at once: the consumer joins its group (in librdkafka's threads, from
    /// `subscribe` on), the producer initialises its transactions, the changelog reader connects, and the
    /// transform opens its sessions.
    /// Joining before the fence is safe: a `read_committed` consumer asks for stable offsets, so the broker
    /// answers its offset fetch only once a predecessor's pending transaction is committed or aborted, and
    /// nothing of this session is produced or committed before `init_transactions` returned.
    async fn open(&self) -> Result<Session<T::Session>, ProcessorError> {
        let opened = Instant::now();
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
            group: self.config.group.clone(),
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
        let (brokers, topic) = (self.brokers.clone(), self.topics.changelog.clone());
        let changelog = async {
            tokio::task::spawn_blocking(move || ChangelogReader::open(&brokers, &topic))
                .await
                .map_err(join_error)?
        };
        // The configuration topic is read up to its end now, while the group is joined; each batch then
        // reads only what was added since.
        let shards = async {
            let mut shards = Shards::open(&self.transform, self.shards).await?;
            shards.prepare(&self.transform).await?;
            Ok::<_, ProcessorError>(shards)
        };
        let ((), changelog, shards) = tokio::try_join!(fence, changelog, shards)?;
        tracing::debug!(
            processor = self.transform.name(),
            shards = self.shards,
            open_ms = opened.elapsed().as_secs_f64() * 1e3,
            "session opened"
        );
        Ok(Session {
            consumer,
            producer,
            restored: HashSet::new(),
            changelog: Arc::new(changelog),
            shards,
            committing: None,
            opened: Some(opened),
        })
    }

    /// Runs one batch through the transform: the state of newly assigned partitions restored, the
    /// configuration caught up, then the messages of assigned partitions processed.
    async fn process(
        &self,
        s: &mut Session<T::Session>,
        batch: &[OwnedMessage],
    ) -> Result<Processed, ProcessorError> {
        let started = Instant::now();
        let assigned = self.sync_assignment(s).await?;
        s.shards.prepare(&self.transform).await?;
        let prepare = started.elapsed();
        let mut offsets = HashMap::new();
        let taken: Vec<&OwnedMessage> = batch
            .iter()
            .filter(|m| assigned.contains(&m.partition()) && self.in_range(m))
            .inspect(|m| {
                offsets.insert(m.partition(), m.offset() + 1);
            })
            .collect();
        let records = s.shards.process(&self.transform, &taken)?;
        Ok(Processed {
            records,
            offsets,
            messages: taken.len(),
            started,
            prepare,
            process: started.elapsed() - prepare,
        })
    }

    /// Begins the batch's transaction and hands its Kafka part to a task: produce the records, wait for
    /// their delivery, add the consumed offsets, commit.
    fn send(
        &self,
        s: &mut Session<T::Session>,
        batch: Processed,
        waited: Duration,
    ) -> Result<JoinHandle<Result<(), ProcessorError>>, ProcessorError> {
        let mut tpl = TopicPartitionList::new();
        for (partition, offset) in &batch.offsets {
            tpl.add_partition_offset(&self.topics.input, *partition, Offset::Offset(*offset))?;
        }
        let group = s
            .consumer
            .group_metadata()
            .ok_or_else(|| ProcessorError::Internal("the consumer has no group metadata".into()))?;
        s.producer.begin_transaction()?;
        let (producer, name, opened) = (s.producer.clone(), self.transform.name(), s.opened.take());
        Ok(tokio::spawn(async move {
            let sending = Instant::now();
            produce(&producer, &batch.records).await?;
            let produced = sending.elapsed();
            tokio::task::spawn_blocking(move || {
                producer.send_offsets_to_transaction(&tpl, &group, KAFKA_TIMEOUT)?;
                let offsets_sent = sending.elapsed();
                producer.commit_transaction(KAFKA_TIMEOUT)?;
                tracing::debug!(
                    processor = name,
                    messages = batch.messages,
                    records = batch.records.len(),
                    prepare_ms = batch.prepare.as_secs_f64() * 1e3,
                    process_ms = batch.process.as_secs_f64() * 1e3,
                    wait_ms = waited.as_secs_f64() * 1e3,
                    produce_ms = produced.as_secs_f64() * 1e3,
                    offsets_ms = (offsets_sent - produced).as_secs_f64() * 1e3,
                    commit_ms = (sending.elapsed() - offsets_sent).as_secs_f64() * 1e3,
                    total_ms = batch.started.elapsed().as_secs_f64() * 1e3,
                    "transaction committed"
                );
                if let Some(opened) = opened {
                    tracing::info!(
                        processor = name,
                        ms = opened.elapsed().as_secs_f64() * 1e3,
                        "first transaction committed since the session opened"
                    );
                }
                Ok::<_, ProcessorError>(())
            })
            .await
            .map_err(join_error)?
        }))
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
        s.shards.retain(&self.transform, &assigned);
        s.restored.retain(|p| assigned.contains(p));
        // The new partitions' changelogs are read together, on one client.
        let mut new: Vec<i32> = assigned.difference(&s.restored).copied().collect();
        if new.is_empty() {
            return Ok(assigned);
        }
        new.sort_unstable();
        let (reader, partitions, started) = (s.changelog.clone(), new.clone(), Instant::now());
        let mut changelogs = tokio::task::spawn_blocking(move || reader.read(&partitions))
            .await
            .map_err(join_error)??;
        for partition in new {
            let records = changelogs.remove(&partition).unwrap_or_default();
            let keys = s.shards.restore(&self.transform, partition, records);
            tracing::info!(
                processor = self.transform.name(),
                partition,
                keys,
                "restored state"
            );
            s.restored.insert(partition);
        }
        tracing::debug!(
            processor = self.transform.name(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "changelogs read back"
        );
        Ok(assigned)
    }
}

/// Waits for the transaction in flight, if any, to be committed.
async fn finished(
    committing: &mut Option<JoinHandle<Result<(), ProcessorError>>>,
) -> Result<(), ProcessorError> {
    match committing {
        Some(kafka) => {
            let done = kafka.await.map_err(join_error).and_then(|r| r);
            *committing = None;
            done
        }
        None => Ok(()),
    }
}

/// Produces the records into the open transaction and waits for their delivery.
async fn produce(producer: &FutureProducer, records: &[Outgoing]) -> Result<(), ProcessorError> {
    let mut deliveries = Vec::with_capacity(records.len());
    for r in records {
        let mut record = FutureRecord::to(&r.topic).key(&r.key).payload(&r.payload);
        if let Some(p) = r.partition {
            record = record.partition(p);
        }
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e)?);
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

/// A blocking Kafka call's task failed.
pub fn join_error(e: tokio::task::JoinError) -> ProcessorError {
    ProcessorError::Internal(format!("blocking Kafka call failed: {e}"))
}
