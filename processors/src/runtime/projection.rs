//! The exactly-once Kafka → PostgreSQL projection runner.
//!
//! Each batch's rows and the offsets they came from are written in one PostgreSQL transaction. On start
//! and after every rebalance the runner reads those offsets back, skips what was already applied, and seeks
//! past it, so a redelivered message never writes twice and a crash at any point loses nothing. Kafka's
//! committed offsets are written after the database commit, only as a hint for where to fetch from.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use haltless_schemas::metric_names;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use super::batch::next_batch;
use super::error::ProcessorError;
use super::kafka::{consumer_config, ConsumerDelivery};

/// Where a message sits in its topic, and when it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The message's Kafka timestamp (ms), when it has one.
    pub timestamp_ms: Option<i64>,
}

/// A projection: decodes messages of one topic and writes them into PostgreSQL.
pub trait Projection: Send + Sync + 'static {
    /// What one message decodes into.
    type Item: Send + Sync;

    /// Stable name; the key of the projection's stored offsets.
    fn name(&self) -> &str;

    /// Decodes one message payload found at `at`; an error skips the message (it is counted and
    /// logged).
    fn decode(&self, at: Place, payload: &[u8]) -> Result<Self::Item, String>;

    /// Runs before the batch's transaction, for work that must not hold its locks (creating partitions).
    fn before_batch(
        &mut self,
        _pool: &PgPool,
        _items: &[Self::Item],
    ) -> impl Future<Output = Result<(), ProcessorError>> + Send {
        async { Ok(()) }
    }

    /// Another instance of the same projection, with its own database connection, for a further consumer of
    /// the group in the same process (see [`super::tasks::spawn_projection`]); `None`, the default, keeps
    /// one.
    fn another(&self) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }

    /// Writes the batch inside the runner's transaction; returns the rows written.
    fn write(
        &mut self,
        tx: &mut PgConnection,
        items: &[Self::Item],
    ) -> impl Future<Output = Result<u64, ProcessorError>> + Send;
}

/// Where the runner reads from and how it batches.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Topic to consume.
    pub topic: String,
    /// Consumer group; instances in one group share the partitions.
    pub group: String,
    /// Most messages per batch (one transaction).
    pub batch_max_messages: usize,
    /// Longest wait for a batch to fill once its first message arrived.
    pub batch_max_wait: Duration,
    /// Group session timeout: how soon a crashed instance's partitions move to another.
    pub session_timeout: Duration,
}

/// Next offset to apply per partition, as stored in PostgreSQL; cleared on every rebalance.
type Positions = Arc<Mutex<HashMap<i32, i64>>>;

/// Forgets the known positions when partitions move, so they are read again from the database.
/// Also reports each partition's lag from librdkafka's periodic statistics.
struct RebalanceContext {
    positions: Positions,
    projection: String,
    group: String,
}

impl ClientContext for RebalanceContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        super::lag::report(
            &statistics,
            metric_names::PROJECTION_LAG,
            ("projection", &self.projection),
            &self.group,
        );
    }
}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(
        &self,
        _consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        tracing::info!(?rebalance, "partitions rebalancing");
        if let Ok(mut p) = self.positions.lock() {
            p.clear();
        }
    }
}

/// Runs one projection's consumer until cancelled: the partitions the group gives it, one batch and
/// transaction at a time.
pub struct ProjectionRunner<P: Projection> {
    consumer: StreamConsumer<RebalanceContext>,
    writer: Writer<P>,
    config: RunnerConfig,
}

/// What applies batches: the projection, its known positions and its database.
struct Writer<P: Projection> {
    projection: P,
    positions: Positions,
    pool: PgPool,
    topic: String,
}

impl<P: Projection> ProjectionRunner<P> {
    /// Subscribes to the topic; consumption starts with [`ProjectionRunner::run`].
    pub fn new(projection: P, pool: PgPool, config: RunnerConfig) -> Result<Self, ProcessorError> {
        let positions = Positions::default();
        let consumer: StreamConsumer<RebalanceContext> = consumer_config(
            &config.brokers,
            &config.group,
            ConsumerDelivery::OffsetsInSink,
        )
        .set("statistics.interval.ms", super::lag::STATISTICS_INTERVAL_MS)
        .set(
            "session.timeout.ms",
            config.session_timeout.as_millis().to_string(),
        )
        .create_with_context(RebalanceContext {
            positions: positions.clone(),
            projection: projection.name().to_owned(),
            group: config.group.clone(),
        })?;
        consumer.subscribe(&[&config.topic])?;
        let writer = Writer {
            projection,
            positions,
            pool,
            topic: config.topic.clone(),
        };
        Ok(Self {
            consumer,
            writer,
            config,
        })
    }

    fn name(&self) -> &str {
        self.writer.projection.name()
    }

    /// Consumes and applies batches until `shutdown` is cancelled. Transient failures are retried with
    /// backoff from the last committed position; nothing is skipped.
    ///
    /// The next batch is fetched while one is written: the database's work and the consumer's overlap.
    /// Which messages a batch applies is still decided by the positions stored with the batch before it.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), ProcessorError> {
        let mut backoff = Duration::from_millis(200);
        let (max, wait) = (self.config.batch_max_messages, self.config.batch_max_wait);
        let mut ready: Option<Vec<OwnedMessage>> = None;
        loop {
            let batch = match ready.take() {
                Some(batch) => batch,
                None => {
                    let batch = tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        batch = next_batch(&self.consumer, max, wait) => batch,
                    };
                    match batch {
                        Ok(batch) => batch,
                        Err(e) => {
                            consumer_error(self.name(), &e, &shutdown).await;
                            continue;
                        }
                    }
                }
            };
            let Self {
                consumer,
                writer,
                config,
            } = &mut self;
            let mut fetch = std::pin::pin!(next_batch(consumer, max, wait));
            let mut fetched = None;
            loop {
                let applied = {
                    let mut apply = std::pin::pin!(writer.apply(consumer, &batch));
                    loop {
                        tokio::select! {
                            _ = shutdown.cancelled() => return Ok(()),
                            applied = &mut apply => break applied,
                            next = &mut fetch, if fetched.is_none() => fetched = Some(next),
                        }
                    }
                };
                match applied {
                    Ok(()) => {
                        backoff = Duration::from_millis(200);
                        break;
                    }
                    Err(e) if e.is_retriable() => {
                        tracing::warn!(projection = writer.projection.name(), topic = %config.topic, error = %e, ?backoff, "batch failed, retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                    Err(e) => return Err(e),
                }
            }
            let next = match fetched {
                Some(next) => next,
                None => tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    next = &mut fetch => next,
                },
            };
            match next {
                Ok(batch) => ready = Some(batch),
                Err(e) => consumer_error(writer.projection.name(), &e, &shutdown).await,
            }
        }
    }
}

/// Nothing was taken from the consumer. The client reconnects by itself; errors queued while the
/// brokers were away are drained quickly, then it waits for data again.
async fn consumer_error(name: &str, e: &ProcessorError, shutdown: &CancellationToken) {
    tracing::debug!(projection = name, error = %e, "kafka consumer error");
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
    }
}

impl<P: Projection> Writer<P> {
    /// Applies the part of `batch` not yet in the database, with its offsets, in one transaction.
    async fn apply(
        &mut self,
        consumer: &StreamConsumer<RebalanceContext>,
        batch: &[OwnedMessage],
    ) -> Result<(), ProcessorError> {
        let positions = self.load_positions(batch).await?;
        let mut next: HashMap<i32, i64> = HashMap::new();
        let mut payloads = Vec::with_capacity(batch.len());
        for msg in batch {
            let (partition, offset) = (msg.partition(), msg.offset());
            if offset < positions.get(&partition).copied().unwrap_or(0) {
                continue; // applied before a crash or by the partition's previous owner
            }
            let entry = next.entry(partition).or_insert(offset + 1);
            *entry = (*entry).max(offset + 1);
            let at = Place {
                partition,
                offset,
                timestamp_ms: msg.timestamp().to_millis(),
            };
            payloads.push((at, msg.payload().unwrap_or_default()));
        }
        // Seek past what was applied, so a restarted consumer does not fetch it again and again.
        for (&partition, &pos) in &positions {
            if batch
                .iter()
                .any(|m| m.partition() == partition && m.offset() < pos)
            {
                let _ = consumer.seek(
                    &self.topic,
                    partition,
                    Offset::Offset(pos),
                    Duration::from_secs(1),
                );
            }
        }
        if next.is_empty() {
            return Ok(());
        }
        let name = self.projection.name().to_owned();
        let mut items = Vec::with_capacity(payloads.len());
        for (at, payload) in payloads {
            match self.projection.decode(at, payload) {
                Ok(item) => items.push(item),
                Err(e) => {
                    metrics::counter!(metric_names::PROJECTION_UNDECODABLE, "projection" => name.clone()).increment(1);
                    tracing::error!(projection = %name, error = %e, "skipping a message that does not decode");
                }
            }
        }
        self.projection.before_batch(&self.pool, &items).await?;
        let mut tx = self.pool.begin().await?;
        let rows = self.projection.write(&mut tx, &items).await?;
        let (parts, offsets): (Vec<i32>, Vec<i64>) = next.iter().map(|(p, o)| (*p, *o)).unzip();
        sqlx::query(
            "INSERT INTO projection_offsets (projection, topic, partition, next_offset)
             SELECT $1, $2, p, o FROM unnest($3::int[], $4::bigint[]) AS t(p, o)
             ON CONFLICT (projection, topic, partition) DO UPDATE
               SET next_offset = EXCLUDED.next_offset, updated_at = now()
               WHERE projection_offsets.next_offset < EXCLUDED.next_offset",
        )
        .bind(&name)
        .bind(&self.topic)
        .bind(&parts)
        .bind(&offsets)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;

        if let Ok(mut known) = self.positions.lock() {
            known.extend(next.iter());
        }
        let mut tpl = TopicPartitionList::new();
        for (&partition, &offset) in &next {
            tpl.add_partition_offset(&self.topic, partition, Offset::Offset(offset))?;
        }
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!(error = %e, "kafka offset hint not committed; the database holds the truth");
        }
        metrics::counter!(metric_names::PROJECTION_ROWS, "projection" => name.clone())
            .increment(rows);
        metrics::histogram!(metric_names::PROJECTION_BATCH_MESSAGES, "projection" => name)
            .record(batch.len() as f64);
        Ok(())
    }

    /// The stored positions of the batch's partitions, read from the database when not known.
    async fn load_positions(
        &self,
        batch: &[OwnedMessage],
    ) -> Result<HashMap<i32, i64>, ProcessorError> {
        let known = self.positions.lock().map(|p| p.clone()).unwrap_or_default();
        if batch.iter().all(|m| known.contains_key(&m.partition())) {
            return Ok(known);
        }
        let rows: Vec<(i32, i64)> = sqlx::query_as(
            "SELECT partition, next_offset FROM projection_offsets WHERE projection = $1 AND topic = $2",
        )
        .bind(self.projection.name())
        .bind(&self.topic)
        .fetch_all(&self.pool)
        .await?;
        let mut loaded: HashMap<i32, i64> = rows.into_iter().collect();
        for m in batch {
            loaded.entry(m.partition()).or_insert(0);
        }
        // Never move a known position back: keep the later of the stored and the known one.
        if let Ok(mut p) = self.positions.lock() {
            for (partition, offset) in loaded.iter_mut() {
                let known = p.entry(*partition).or_insert(*offset);
                *known = (*known).max(*offset);
                *offset = *known;
            }
        }
        Ok(loaded)
    }
}
