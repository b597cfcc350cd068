//! The exactly-once loop: consume a batch of readings, run the detectors, and in one Kafka transaction
//! produce the alerts, the changed machine states and the consumed offsets.
//!
//! Any failure aborts the transaction and starts a new session from what Kafka committed: the state is
//! restored from the changelog and consumption resumes at the committed offsets, so a crash at any moment
//! gives the same alert stream as a run that never stopped.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use haltless_schemas::{AlertRecord, Codec, ReadingBatch};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::config::DetectorConfig;
use super::rulebook::{RuleBook, RuleChange};
use super::state;
use crate::detection::logic::engine::{AlertEvent, Input, MachineState};
use crate::detection::logic::Sample;
use crate::runtime::batch::next_batch;
use crate::runtime::kafka::{
    consumer_config, reader_config, transactional_producer_config, ConsumerDelivery,
};
use crate::runtime::ProcessorError;

/// The topics the detectors read and write.
#[derive(Debug, Clone)]
pub struct DetectorTopics {
    /// Readings in.
    pub readings: String,
    /// Alerts out.
    pub alerts: String,
    /// Compacted state changelog, with as many partitions as `readings`.
    pub changelog: String,
    /// Compacted rule changes.
    pub rules: String,
}

/// The detector processor.
pub struct DetectorRuntime {
    brokers: String,
    topics: DetectorTopics,
    config: DetectorConfig,
    readings_codec: Codec,
    alerts_codec: Codec,
    end_offsets: Option<HashMap<i32, i64>>,
}

const KAFKA_TIMEOUT: Duration = Duration::from_secs(30);

/// What one batch gives: alerts, the keys of the machines whose state changed, and the next offsets.
#[derive(Default)]
struct BatchOutput {
    alerts: Vec<AlertRecord>,
    dirty: HashSet<String>,
    offsets: HashMap<i32, i64>,
}

/// What one session keeps in memory.
struct Session {
    consumer: StreamConsumer,
    producer: FutureProducer,
    rules_consumer: Arc<BaseConsumer>,
    /// Asks for the rules topic's end on a connection of its own: on the consumer's, the question would
    /// wait behind its long-polling fetch (the broker answers one request per connection at a time).
    rules_watermarks: Arc<BaseConsumer>,
    rulebook: Arc<Mutex<RuleBook>>,
    /// Codecs of the rules topic and of the state changelog.
    rules_codec: Arc<Codec>,
    state_codec: Arc<Codec>,
    /// Machine states by `tenant/machine`, with the partition they belong to.
    machines: HashMap<String, (i32, MachineState)>,
    restored: HashSet<i32>,
}

impl DetectorRuntime {
    /// A runtime reading and writing `topics` on `brokers`.
    pub fn new(
        brokers: &str,
        topics: DetectorTopics,
        config: DetectorConfig,
        readings_codec: Codec,
        alerts_codec: Codec,
    ) -> Self {
        Self {
            brokers: brokers.to_owned(),
            topics,
            config,
            readings_codec,
            alerts_codec,
            end_offsets: None,
        }
    }

    /// Processes readings only below these offsets per partition (a bounded replay); later ones are left
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
                    tracing::warn!(error = %e, "detector session failed; restarting from the committed state");
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
    async fn open(&self) -> Result<Session, ProcessorError> {
        let transactional_id = format!("{}-{}", self.config.group, self.config.instance);
        let producer: FutureProducer = transactional_producer_config(
            &self.brokers,
            &transactional_id,
            self.config.transaction_timeout_ms,
        )
        .create()?;
        let p = producer.clone();
        tokio::task::spawn_blocking(move || p.init_transactions(KAFKA_TIMEOUT))
            .await
            .map_err(join_error)??;
        let consumer: StreamConsumer = consumer_config(
            &self.brokers,
            &self.config.group,
            ConsumerDelivery::ExactlyOnce,
        )
        .set(
            "session.timeout.ms",
            self.config.session_timeout_ms.to_string(),
        )
        .create()?;
        consumer.subscribe(&[&self.topics.readings])?;
        let rules_client =
            || reader_config(&self.brokers, "haltless-detector-rules").create::<BaseConsumer>();
        let rules_consumer = rules_client()?;
        let metadata = rules_consumer.fetch_metadata(Some(&self.topics.rules), KAFKA_TIMEOUT)?;
        let mut tpl = TopicPartitionList::new();
        for t in metadata.topics() {
            for p in t.partitions() {
                tpl.add_partition_offset(&self.topics.rules, p.id(), Offset::Beginning)?;
            }
        }
        rules_consumer.assign(&tpl)?;
        Ok(Session {
            consumer,
            producer,
            rules_consumer: Arc::new(rules_consumer),
            rules_watermarks: Arc::new(rules_client()?),
            rulebook: Arc::new(Mutex::new(RuleBook::default())),
            rules_codec: Arc::new(RuleChange::codec()?),
            state_codec: Arc::new(state::codec()?),
            machines: HashMap::new(),
            restored: HashSet::new(),
        })
    }

    /// Processes one batch in one transaction.
    async fn process(&self, s: &mut Session, batch: &[OwnedMessage]) -> Result<(), ProcessorError> {
        let started = std::time::Instant::now();
        let assigned = self.sync_assignment(s).await?;
        self.catch_up_rules(s).await?;
        let prepared = started.elapsed();
        s.producer.begin_transaction()?;
        let out = self.detect(s, batch, &assigned)?;
        self.produce(s, &out).await?;
        let produced = started.elapsed();
        let offsets_sent = produced + self.commit(s, &out.offsets).await?;
        tracing::debug!(
            messages = batch.len(),
            alerts = out.alerts.len(),
            prepare_ms = prepared.as_secs_f64() * 1e3,
            produce_ms = (produced - prepared).as_secs_f64() * 1e3,
            offsets_ms = (offsets_sent - produced).as_secs_f64() * 1e3,
            commit_ms = (started.elapsed() - offsets_sent).as_secs_f64() * 1e3,
            "detector transaction committed"
        );
        metrics::counter!(haltless_schemas::metric_names::DETECTOR_ALERTS)
            .increment(out.alerts.len() as u64);
        metrics::histogram!(haltless_schemas::metric_names::DETECTOR_BATCH_MESSAGES)
            .record(batch.len() as f64);
        Ok(())
    }

    /// Runs the detectors over the batch's messages of assigned partitions.
    fn detect(
        &self,
        s: &mut Session,
        batch: &[OwnedMessage],
        assigned: &HashSet<i32>,
    ) -> Result<BatchOutput, ProcessorError> {
        let mut out = BatchOutput::default();
        for msg in batch
            .iter()
            .filter(|m| assigned.contains(&m.partition()) && self.in_range(m))
        {
            out.offsets.insert(msg.partition(), msg.offset() + 1);
            let Some(Ok(readings)) = msg
                .payload()
                .map(|p| ReadingBatch::decode(&self.readings_codec, p))
            else {
                tracing::error!(
                    partition = msg.partition(),
                    offset = msg.offset(),
                    "skipping a readings message that does not decode"
                );
                continue;
            };
            let key = readings.key();
            let (_, machine) = s
                .machines
                .entry(key.clone())
                .or_insert_with(|| (msg.partition(), MachineState::default()));
            let mut book = s.rulebook.lock().map_err(|_| poisoned())?;
            let tenant = readings.tenant_id.to_string();
            for r in &readings.readings {
                let rules = book.rules_for(readings.tenant_id, &readings.machine, r.event_time_ms);
                let input = Input {
                    metric: &r.metric,
                    sample: Sample {
                        ts_ms: r.event_time_ms,
                        value: r.value,
                    },
                    offset: Some((msg.partition(), msg.offset())),
                };
                let resets = book.resets(readings.tenant_id);
                for event in machine.observe_after_resets(
                    &tenant,
                    &readings.machine,
                    &rules[..],
                    resets,
                    input,
                ) {
                    out.alerts.push(alert_record(&readings, event));
                }
            }
            out.dirty.insert(key);
        }
        Ok(out)
    }

    /// Produces the alerts and changed states into the open transaction and waits for their delivery.
    async fn produce(&self, s: &Session, out: &BatchOutput) -> Result<(), ProcessorError> {
        let mut deliveries = Vec::with_capacity(out.alerts.len() + out.dirty.len());
        for alert in &out.alerts {
            let payload = alert.encode(&self.alerts_codec)?;
            let key = alert.key();
            let record = FutureRecord::to(&self.topics.alerts)
                .key(&key)
                .payload(&payload);
            deliveries.push(s.producer.send_result(record).map_err(|(e, _)| e)?);
        }
        for key in &out.dirty {
            if let Some((partition, machine)) = s.machines.get(key) {
                let payload = state::encode(&s.state_codec, machine)?;
                let record = FutureRecord::to(&self.topics.changelog)
                    .key(key)
                    .payload(&payload)
                    .partition(*partition);
                deliveries.push(s.producer.send_result(record).map_err(|(e, _)| e)?);
            }
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
        s: &Session,
        offsets: &HashMap<i32, i64>,
    ) -> Result<Duration, ProcessorError> {
        let started = std::time::Instant::now();
        let mut tpl = TopicPartitionList::new();
        for (partition, offset) in offsets {
            tpl.add_partition_offset(&self.topics.readings, *partition, Offset::Offset(*offset))?;
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
    async fn sync_assignment(&self, s: &mut Session) -> Result<HashSet<i32>, ProcessorError> {
        let assigned: HashSet<i32> = s
            .consumer
            .assignment()?
            .elements()
            .iter()
            .filter(|e| e.topic() == self.topics.readings)
            .map(|e| e.partition())
            .collect();
        s.machines.retain(|_, (p, _)| assigned.contains(p));
        s.restored.retain(|p| assigned.contains(p));
        for &partition in assigned.difference(&s.restored.clone()) {
            let (brokers, topic) = (self.brokers.clone(), self.topics.changelog.clone());
            let codec = s.state_codec.clone();
            let states = tokio::task::spawn_blocking(move || {
                state::restore(&brokers, &topic, partition, &codec)
            })
            .await
            .map_err(join_error)??;
            tracing::info!(
                partition,
                machines = states.len(),
                "restored detector state"
            );
            s.machines
                .extend(states.into_iter().map(|(k, v)| (k, (partition, v))));
            s.restored.insert(partition);
        }
        Ok(assigned)
    }

    /// Reads the rules topic up to its end, so the batch sees every rule change made before it.
    async fn catch_up_rules(&self, s: &mut Session) -> Result<(), ProcessorError> {
        let (consumer, watermarks, book, topic, codec) = (
            s.rules_consumer.clone(),
            s.rules_watermarks.clone(),
            s.rulebook.clone(),
            self.topics.rules.clone(),
            s.rules_codec.clone(),
        );
        tokio::task::spawn_blocking(move || -> Result<(), ProcessorError> {
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
                        Some(Ok(msg)) => match msg
                            .payload()
                            .map(|bytes| RuleChange::decode(&codec, bytes))
                        {
                            Some(Ok(change)) => book.lock().map_err(|_| poisoned())?.apply(change),
                            Some(Err(err)) => {
                                tracing::error!(error = %err, "skipping an unreadable rule change")
                            }
                            None => {}
                        },
                        Some(Err(err)) => return Err(err.into()),
                        None => {}
                    }
                }
            }
            Ok(())
        })
        .await
        .map_err(join_error)?
    }
}

/// The alert topic's record of an alert transition of the machine of `readings`.
pub fn alert_record(readings: &ReadingBatch, e: AlertEvent) -> AlertRecord {
    AlertRecord {
        alert_id: e.alert_id,
        transition: e.transition,
        tenant_id: readings.tenant_id,
        machine_id: readings.machine_id,
        machine: readings.machine.clone(),
        rule_id: e.rule_id,
        rule_name: e.rule_name,
        severity: e.severity,
        detector: e.detector,
        metric: e.metric,
        observed: e.observed,
        expected: e.expected,
        score: e.score,
        limit: e.limit,
        event_time_ms: e.event_time_ms,
        readings: e.offsets,
        explanation: e.explanation,
        contributions: e.contributions,
    }
}

fn join_error(e: tokio::task::JoinError) -> ProcessorError {
    ProcessorError::Internal(format!("blocking Kafka call failed: {e}"))
}

fn poisoned() -> ProcessorError {
    ProcessorError::Internal("rule book lock poisoned".into())
}
