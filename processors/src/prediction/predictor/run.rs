//! The predictor as a [`Transform`] of the exactly-once loop: a batch of readings runs through each
//! machine's window, and its predictions and the changed windows are produced in the batch's transaction
//! with the consumed offsets. A crash at any moment gives the same predictions as a run that never stopped.

use std::collections::{HashMap, HashSet};

use haltless_schemas::alerts::{Severity, Transition};
use haltless_schemas::models::ModelChange;
use haltless_schemas::predictions::PredictionRecord;
use haltless_schemas::predictor_state::MachineWindow;
use haltless_schemas::{AlertRecord, Codec, ReadingBatch};
use rdkafka::message::{Message, OwnedMessage};
use tokio_util::sync::CancellationToken;

use super::config::PredictorConfig;
use crate::config::ProcessorsConfig;
use crate::detection::generation::Generation;
use crate::detection::logic::lifecycle::alert_id;
use crate::prediction::stream::{AlertChange, ModelBook, Observed, Window};
use crate::prediction::Prediction;
use crate::runtime::codecs::{alerts_codec, decode_readings, predictions_codec, readings_codec};
use crate::runtime::follow::Follower;
use crate::runtime::transactional::{
    restore_records, LoopTopics, Outgoing, TransactionalLoop, Transform,
};
use crate::runtime::ProcessorError;

/// The topics the predictor reads and writes.
#[derive(Debug, Clone)]
pub struct PredictorTopics {
    /// Readings in.
    pub readings: String,
    /// Predictions out.
    pub predictions: String,
    /// Compacted changelog of the machines' windows, with as many partitions as `readings`.
    pub changelog: String,
    /// Compacted model changes.
    pub models: String,
    /// Alerts out (RUL below the tenant's threshold).
    pub alerts: String,
}

/// The predictor processor.
pub struct PredictorRuntime {
    inner: TransactionalLoop<Predictor>,
}

struct Predictor {
    brokers: String,
    topics: PredictorTopics,
    readings_codec: Codec,
    predictions_codec: Codec,
    alerts_codec: Codec,
}

struct Session {
    models: Follower,
    models_codec: Codec,
    book: ModelBook,
    state_codec: Codec,
    /// Windows by `tenant/machine`, with the partition they belong to.
    machines: HashMap<String, (i32, Window)>,
}

impl PredictorRuntime {
    /// A predictor reading and writing `topics` on `brokers`.
    pub fn new(
        brokers: &str,
        topics: PredictorTopics,
        config: &PredictorConfig,
        [readings_codec, predictions_codec, alerts_codec]: [Codec; 3],
    ) -> Self {
        let loop_topics = LoopTopics {
            input: topics.readings.clone(),
            changelog: topics.changelog.clone(),
        };
        let predictor = Predictor {
            brokers: brokers.to_owned(),
            topics,
            readings_codec,
            predictions_codec,
            alerts_codec,
        };
        Self {
            inner: TransactionalLoop::new(brokers, loop_topics, config.loop_config(), predictor),
        }
    }

    /// The predictor of the platform's settings, writing its alerts to generation `g`'s alert topic (the
    /// predictions topic, its group and its changelog are the same for every generation).
    pub async fn from_settings(
        settings: &ProcessorsConfig,
        g: Generation,
    ) -> Result<Self, ProcessorError> {
        let k = &settings.kafka;
        Ok(Self::new(
            &k.brokers,
            PredictorTopics {
                readings: k.readings_topic.clone(),
                predictions: k.predictions_topic.clone(),
                changelog: k.predictor_changelog_topic.clone(),
                models: k.models_topic.clone(),
                alerts: g.name(&k.alerts_topic),
            },
            &settings.predictor,
            [
                readings_codec(k).await?,
                predictions_codec(k).await?,
                alerts_codec(k).await?,
            ],
        ))
    }

    /// Runs sessions until `shutdown` is cancelled; a failed session is aborted and a fresh one started.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ProcessorError> {
        self.inner.run(shutdown).await
    }
}

impl Predictor {
    fn alert_record(&self, alert: &AlertRecord) -> Result<Outgoing, ProcessorError> {
        Ok(Outgoing {
            topic: self.topics.alerts.clone(),
            key: alert.key(),
            payload: alert.encode(&self.alerts_codec)?,
            partition: None,
        })
    }
}

/// The detector name of RUL alerts, and their rule id.
pub const RUL_DETECTOR: &str = "rul";

/// A RUL alert's transition, in the alert stream's format, so it goes through the same lifecycle as the
/// detectors' (projection, escalation, notification, acknowledgement).
fn rul_alert(
    readings: &ReadingBatch,
    change: AlertChange,
    event_time_ms: i64,
    prediction: Option<&Prediction>,
    alert_below: Option<f64>,
    at: (i32, i64),
) -> AlertRecord {
    let (transition, raised_ms) = match change {
        AlertChange::Raised { raised_ms } => (Transition::Raised, raised_ms),
        AlertChange::Resolved { raised_ms } => (Transition::Resolved, raised_ms),
    };
    let limit = alert_below.unwrap_or(0.0);
    let explanation = match (transition, prediction) {
        (Transition::Resolved, _) => {
            format!("cleared: the predicted remaining life is {limit:.0} cycles or more again")
        }
        (_, Some(p)) => format!(
            "about {:.0} cycles of life left ({:.0} to {:.0}), below the alert threshold of {limit:.0}; health {:.2}",
            p.rul, p.lower, p.upper, p.health
        ),
        (_, None) => format!("the predicted remaining life fell below {limit:.0} cycles"),
    };
    AlertRecord {
        alert_id: alert_id(
            &readings.tenant_id.to_string(),
            &readings.machine,
            RUL_DETECTOR,
            raised_ms,
        ),
        transition,
        tenant_id: readings.tenant_id,
        machine_id: readings.machine_id,
        machine: readings.machine.clone(),
        rule_id: RUL_DETECTOR.into(),
        rule_name: format!("remaining useful life below {limit:.0} cycles"),
        severity: Severity::Warning,
        detector: RUL_DETECTOR.into(),
        metric: "rul".into(),
        observed: prediction.map_or(0.0, |p| p.rul),
        expected: limit,
        score: prediction.map_or(1.0, |p| p.health),
        limit,
        event_time_ms,
        readings: vec![at],
        explanation,
        contributions: Vec::new(),
    }
}

impl Transform for Predictor {
    type Session = Session;

    fn name(&self) -> &'static str {
        "predictor"
    }

    async fn open(&self) -> Result<Session, ProcessorError> {
        Ok(Session {
            models: Follower::from_start(
                &self.brokers,
                &self.topics.models,
                "haltless-predictor-models",
            )
            .await?,
            models_codec: ModelChange::codec()?,
            book: ModelBook::default(),
            state_codec: MachineWindow::codec()?,
            machines: HashMap::new(),
        })
    }

    async fn prepare(&self, s: &mut Session) -> Result<(), ProcessorError> {
        for bytes in s.models.catch_up().await? {
            let applied = ModelChange::decode(&s.models_codec, &bytes)
                .map_err(|e| e.to_string())
                .and_then(|change| s.book.apply(change).map_err(|e| e.to_string()));
            if let Err(e) = applied {
                tracing::error!(error = %e, "skipping an unreadable model change");
            }
        }
        Ok(())
    }

    fn retain(&self, s: &mut Session, assigned: &HashSet<i32>) {
        s.machines.retain(|_, (p, _)| assigned.contains(p));
    }

    fn restore(&self, s: &mut Session, partition: i32, records: HashMap<String, Vec<u8>>) -> usize {
        let codec = &s.state_codec;
        restore_records(&mut s.machines, partition, records, "predictor", |b| {
            MachineWindow::decode(codec, b).map(Window::from_record)
        })
    }

    fn process(
        &self,
        s: &mut Session,
        batch: &[&OwnedMessage],
    ) -> Result<Vec<Outgoing>, ProcessorError> {
        let mut out = Vec::new();
        let mut dirty = HashSet::new();
        for msg in batch {
            let Some(readings) = decode_readings(&self.readings_codec, msg) else {
                continue;
            };
            let key = readings.key();
            let (_, window) = s
                .machines
                .entry(key.clone())
                .or_insert_with(|| (msg.partition(), Window::default()));
            for r in &readings.readings {
                let served =
                    s.book
                        .model_for(readings.tenant_id, &readings.machine, r.event_time_ms);
                let model = served.as_ref().map(|m| m.model.as_ref());
                let alert_below = served.as_ref().and_then(|m| m.alert_below);
                let at = (msg.partition(), msg.offset());
                match window.observe(model, alert_below, &r.metric, r.event_time_ms, r.value) {
                    Observed::Ignored => {}
                    Observed::Changed | Observed::Restarted(None) => {
                        dirty.insert(key.clone());
                    }
                    Observed::Restarted(Some(change)) => {
                        dirty.insert(key.clone());
                        let alert =
                            rul_alert(&readings, change, r.event_time_ms, None, alert_below, at);
                        out.push(self.alert_record(&alert)?);
                    }
                    Observed::Predicted(step) => {
                        dirty.insert(key.clone());
                        let (Some(served), Some(model)) = (&served, model) else {
                            continue;
                        };
                        if let Some(change) = step.alert {
                            let alert = rul_alert(
                                &readings,
                                change,
                                step.event_time_ms,
                                Some(&step.prediction),
                                alert_below,
                                at,
                            );
                            out.push(self.alert_record(&alert)?);
                        }
                        let p = &step.prediction;
                        let record = PredictionRecord {
                            tenant_id: readings.tenant_id,
                            machine_id: readings.machine_id,
                            machine: readings.machine.clone(),
                            event_time_ms: step.event_time_ms,
                            cycle: i64::try_from(step.cycle).unwrap_or(i64::MAX),
                            rul: p.rul,
                            lower: p.lower,
                            upper: p.upper,
                            interval: model.interval,
                            health: p.health,
                            model_id: served.id,
                            model_version: model.version.clone(),
                            contributors: step.contributors.clone(),
                            reading: at,
                        };
                        out.push(Outgoing {
                            topic: self.topics.predictions.clone(),
                            key: record.key(),
                            payload: record.encode(&self.predictions_codec)?,
                            partition: None,
                        });
                    }
                }
            }
        }
        let predictions = out
            .iter()
            .filter(|o| o.topic == self.topics.predictions)
            .count();
        for key in dirty {
            if let Some((partition, window)) = s.machines.get(&key) {
                out.push(Outgoing {
                    topic: self.topics.changelog.clone(),
                    payload: window.to_record().encode(&s.state_codec)?,
                    key,
                    partition: Some(*partition),
                });
            }
        }
        metrics::counter!(haltless_schemas::metric_names::PREDICTOR_PREDICTIONS)
            .increment(predictions as u64);
        Ok(out)
    }
}
