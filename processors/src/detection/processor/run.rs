//! The detectors as a [`Transform`] of the exactly-once loop (`runtime::transactional`): a batch of
//! readings runs through the detectors, and its alerts and the changed machine states are produced in the
//! batch's transaction with the consumed offsets.
//!
//! Any failure aborts the transaction and starts a new session from what Kafka committed: the state is
//! restored from the changelog and consumption resumes at the committed offsets, so a crash at any moment
//! gives the same alert stream as a run that never stopped.

use std::collections::{HashMap, HashSet};

use haltless_schemas::{AlertRecord, Codec, ReadingBatch};
use rdkafka::message::{Message, OwnedMessage};
use tokio_util::sync::CancellationToken;

use super::config::DetectorConfig;
use super::rulebook::{RuleBook, RuleChange};
use super::state;
use crate::detection::logic::engine::{AlertEvent, Input, MachineState};
use crate::detection::logic::Sample;
use crate::runtime::codecs::decode_readings;
use crate::runtime::follow::Follower;
use crate::runtime::transactional::{
    restore_records, LoopTopics, Outgoing, TransactionalLoop, Transform,
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
    inner: TransactionalLoop<Detectors>,
}

/// What the detectors do with a batch.
struct Detectors {
    brokers: String,
    topics: DetectorTopics,
    readings_codec: Codec,
    alerts_codec: Codec,
}

/// What one session keeps in memory.
struct Session {
    /// The rules topic, followed from its start.
    rules: Follower,
    rulebook: RuleBook,
    /// Codecs of the rules topic and of the state changelog.
    rules_codec: Codec,
    state_codec: Codec,
    /// Machine states by `tenant/machine`, with the partition they belong to.
    machines: HashMap<String, (i32, MachineState)>,
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
        let loop_topics = LoopTopics {
            input: topics.readings.clone(),
            changelog: topics.changelog.clone(),
        };
        let detectors = Detectors {
            brokers: brokers.to_owned(),
            topics,
            readings_codec,
            alerts_codec,
        };
        Self {
            inner: TransactionalLoop::new(brokers, loop_topics, config.loop_config(), detectors),
        }
    }

    /// Processes readings only below these offsets per partition (a bounded replay); later ones are left
    /// unprocessed and uncommitted.
    pub fn with_end_offsets(self, end: HashMap<i32, i64>) -> Self {
        Self {
            inner: self.inner.with_end_offsets(end),
        }
    }

    /// Runs sessions until `shutdown` is cancelled; a failed session is aborted and a fresh one started.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ProcessorError> {
        self.inner.run(shutdown).await
    }
}

impl Transform for Detectors {
    type Session = Session;

    fn name(&self) -> &'static str {
        "detectors"
    }

    async fn open(&self) -> Result<Session, ProcessorError> {
        Ok(Session {
            rules: Follower::from_start(
                &self.brokers,
                &self.topics.rules,
                "haltless-detector-rules",
            )
            .await?,
            rulebook: RuleBook::default(),
            rules_codec: RuleChange::codec()?,
            state_codec: state::codec()?,
            machines: HashMap::new(),
        })
    }

    async fn prepare(&self, s: &mut Session) -> Result<(), ProcessorError> {
        self.catch_up_rules(s).await
    }

    fn retain(&self, s: &mut Session, assigned: &HashSet<i32>) {
        s.machines.retain(|_, (p, _)| assigned.contains(p));
    }

    fn restore(&self, s: &mut Session, partition: i32, records: HashMap<String, Vec<u8>>) -> usize {
        let codec = &s.state_codec;
        restore_records(&mut s.machines, partition, records, "detector", |b| {
            state::decode(codec, b)
        })
    }

    /// Runs the detectors over the batch, then encodes the alerts and the changed states.
    fn process(
        &self,
        s: &mut Session,
        batch: &[&OwnedMessage],
    ) -> Result<Vec<Outgoing>, ProcessorError> {
        let mut alerts = Vec::new();
        let mut dirty = HashSet::new();
        for msg in batch {
            let Some(readings) = decode_readings(&self.readings_codec, msg) else {
                continue;
            };
            let key = readings.key();
            let (_, machine) = s
                .machines
                .entry(key.clone())
                .or_insert_with(|| (msg.partition(), MachineState::default()));
            let book = &mut s.rulebook;
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
                let settings = book.settings_for(readings.tenant_id, r.event_time_ms);
                let resets = book.resets(readings.tenant_id);
                for event in machine.observe_under(
                    &tenant,
                    &readings.machine,
                    &rules[..],
                    &settings,
                    resets,
                    input,
                ) {
                    alerts.push(alert_record(&readings, event));
                }
            }
            dirty.insert(key);
        }
        let mut out = Vec::with_capacity(alerts.len() + dirty.len());
        for alert in &alerts {
            out.push(Outgoing {
                topic: self.topics.alerts.clone(),
                key: alert.key(),
                payload: alert.encode(&self.alerts_codec)?,
                partition: None,
            });
        }
        for key in dirty {
            if let Some((partition, machine)) = s.machines.get(&key) {
                out.push(Outgoing {
                    topic: self.topics.changelog.clone(),
                    payload: state::encode(&s.state_codec, machine)?,
                    key,
                    partition: Some(*partition),
                });
            }
        }
        metrics::counter!(haltless_schemas::metric_names::DETECTOR_ALERTS)
            .increment(alerts.len() as u64);
        metrics::histogram!(haltless_schemas::metric_names::DETECTOR_BATCH_MESSAGES)
            .record(batch.len() as f64);
        Ok(out)
    }
}

impl Detectors {
    /// Reads the rules topic up to its end, so the batch sees every rule change made before it.
    async fn catch_up_rules(&self, s: &mut Session) -> Result<(), ProcessorError> {
        let changes = s.rules.catch_up().await?;
        for bytes in changes {
            match RuleChange::decode(&s.rules_codec, &bytes) {
                Ok(change) => s.rulebook.apply(change),
                Err(err) => tracing::error!(error = %err, "skipping an unreadable rule change"),
            }
        }
        Ok(())
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
