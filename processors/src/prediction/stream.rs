//! Streaming prediction, pure logic: which model serves a machine ([`ModelBook`], from the models topic's
//! events, by event time), and a machine's window of cycles ([`Window`]) that turns its readings into
//! predictions.
//!
//! A cycle on the platform is a machine's readings at one event time: once every metric the model needs
//! has arrived at that time, the cycle is normalised, pushed into the window and predicted after. A reading
//! of a later time abandons an incomplete cycle; readings at or before the last complete cycle are late and
//! ignored. A reading of [`LIFE_RESTART`] (which the platform writes when a replacement is recorded) starts
//! a new life: the window empties and the cycle count restarts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use haltless_schemas::models::ModelChange;
use haltless_schemas::predictor_state::{MachineWindow, STATE_VERSION};
use uuid::Uuid;

use super::features::History;
use super::model::MIN_PREDICTION_CYCLES;
use super::{Prediction, PredictionError, RulModel};

/// The metric that marks the start of a machine's new life (a replacement) at its event time.
pub const LIFE_RESTART: &str = "haltless.life_restart";
/// Sensors named as the largest contributors of each prediction.
pub const TOP_CONTRIBUTORS: usize = 3;

/// A model that serves a machine.
#[derive(Debug, Clone)]
pub struct Served {
    /// The model's id.
    pub id: Uuid,
    /// The model.
    pub model: Arc<RulModel>,
    /// RUL (cycles) below which a prediction raises an alert.
    pub alert_below: Option<f64>,
}

#[derive(Debug, Clone)]
struct Assignment {
    model_id: Uuid,
    effective_from_ms: i64,
    active: bool,
    machines: Vec<String>,
    model: Arc<RulModel>,
    alert_below: Option<f64>,
}

/// Every tenant's model assignments over event time.
#[derive(Debug, Default)]
pub struct ModelBook {
    /// Per tenant, its assignments in order of event time.
    changes: HashMap<Uuid, Vec<Assignment>>,
    /// Parsed models by version: an assignment of a model already known shares it.
    models: HashMap<String, Arc<RulModel>>,
}

impl ModelBook {
    /// Records a change (idempotent). A change whose model does not read is refused and changes nothing.
    pub fn apply(&mut self, change: ModelChange) -> Result<(), PredictionError> {
        let model = match self.models.get(&change.version) {
            Some(m) => m.clone(),
            None => {
                let m = Arc::new(RulModel::from_json(&change.model)?);
                self.models.insert(change.version.clone(), m.clone());
                m
            }
        };
        let list = self.changes.entry(change.tenant_id).or_default();
        if list.iter().any(|a| {
            a.model_id == change.model_id
                && a.effective_from_ms == change.effective_from_ms
                && a.active == change.active
                && a.machines == change.machines
                && a.alert_below == change.alert_below
        }) {
            return Ok(());
        }
        list.push(Assignment {
            model_id: change.model_id,
            effective_from_ms: change.effective_from_ms,
            active: change.active,
            machines: change.machines,
            model,
            alert_below: change.alert_below,
        });
        list.sort_by_key(|a| a.effective_from_ms);
        Ok(())
    }

    /// The model serving `machine` of `tenant` at event time `ts_ms`: of each model's latest assignment then,
    /// the active ones that name the machine (or, failing those, serve every machine); the most recent wins.
    pub fn model_for(&self, tenant: Uuid, machine: &str, ts_ms: i64) -> Option<Served> {
        let list = self.changes.get(&tenant)?;
        let in_force = &list[..list.partition_point(|a| a.effective_from_ms <= ts_ms)];
        let mut latest: Vec<&Assignment> = Vec::new();
        for a in in_force.iter().rev() {
            if !latest.iter().any(|l| l.model_id == a.model_id) {
                latest.push(a);
            }
        }
        let named = latest
            .iter()
            .find(|a| a.active && a.machines.iter().any(|m| m == machine));
        let everyone = latest.iter().find(|a| a.active && a.machines.is_empty());
        named.or(everyone).map(|a| Served {
            id: a.model_id,
            model: a.model.clone(),
            alert_below: a.alert_below,
        })
    }
}

/// A machine's window: its life so far, as much as the model's features need.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// The model the history is normalised for (empty: none yet).
    pub model_version: String,
    /// Event time of the life's start.
    pub life_start_ms: i64,
    /// Event time of the newest complete cycle.
    pub last_cycle_ms: i64,
    /// The normalised cycles.
    pub history: History,
    /// The cycle being assembled: its event time and the model's inputs seen at it.
    pub pending: Option<(i64, BTreeMap<String, f64>)>,
    /// Event time at which the open RUL alert was raised, if one is open.
    pub alert_raised_ms: Option<i64>,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            model_version: String::new(),
            life_start_ms: 0,
            last_cycle_ms: i64::MIN,
            history: History::new(0),
            pending: None,
            alert_raised_ms: None,
        }
    }
}

/// What happened to a machine's RUL alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertChange {
    /// The RUL fell below the threshold: an alert raised at this event time.
    Raised {
        /// Event time it was raised at (with the machine, its identity).
        raised_ms: i64,
    },
    /// The alert raised then is over: the RUL rose well above the threshold, or a new life began.
    Resolved {
        /// Event time it was raised at.
        raised_ms: i64,
    },
}

/// A resolved RUL alert needs the RUL this far above its threshold (a fifth), so that an estimate
/// wavering around the threshold does not raise and resolve it over and over.
const CLEAR_RATIO: f64 = 1.2;

/// A prediction after one cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Event time of the cycle.
    pub event_time_ms: i64,
    /// Cycles since the start of life.
    pub cycle: u64,
    /// The prediction.
    pub prediction: Prediction,
    /// The sensors that moved it most, with their effect in cycles.
    pub contributors: Vec<(String, f64)>,
    /// What the prediction did to the machine's RUL alert.
    pub alert: Option<AlertChange>,
}

/// What a reading did to a window.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// Nothing (late, not an input of the model, or no model serves the machine).
    Ignored,
    /// The window changed; no prediction yet.
    Changed,
    /// A cycle completed and was predicted after.
    Predicted(Box<Step>),
    /// A new life began; the alert of the old one, if any, is resolved.
    Restarted(Option<AlertChange>),
}

impl Window {
    /// Takes one reading, served by `model` (if any), which raises an alert below `alert_below` cycles.
    pub fn observe(
        &mut self,
        model: Option<&RulModel>,
        alert_below: Option<f64>,
        metric: &str,
        ts_ms: i64,
        value: f64,
    ) -> Observed {
        if metric == LIFE_RESTART {
            if ts_ms <= self.life_start_ms {
                return Observed::Ignored;
            }
            let sensors = self.history.baseline_sum.len();
            let resolved = self
                .alert_raised_ms
                .map(|raised_ms| AlertChange::Resolved { raised_ms });
            *self = Self {
                model_version: std::mem::take(&mut self.model_version),
                life_start_ms: ts_ms,
                last_cycle_ms: self.last_cycle_ms.max(ts_ms - 1),
                history: History::new(sensors),
                pending: None,
                alert_raised_ms: None,
            };
            return Observed::Restarted(resolved);
        }
        let Some(model) = model else {
            return Observed::Ignored;
        };
        if ts_ms <= self.last_cycle_ms || !value.is_finite() {
            return Observed::Ignored;
        }
        let inputs = model.normaliser.inputs();
        if !inputs.contains(&metric) {
            return Observed::Ignored;
        }
        let values = match &mut self.pending {
            Some((pending_ms, values)) if *pending_ms == ts_ms => values,
            Some((pending_ms, _)) if *pending_ms > ts_ms => return Observed::Ignored,
            // A later time abandons an incomplete cycle.
            pending => &mut pending.insert((ts_ms, BTreeMap::new())).1,
        };
        values.insert(metric.to_owned(), value);
        if values.len() < inputs.len() {
            return Observed::Changed;
        }
        let cycle_no = u32::try_from(self.history.cycles + 1).unwrap_or(u32::MAX);
        let Some(cycle) = model.normaliser.cycle_from(cycle_no, values) else {
            return Observed::Changed;
        };
        self.pending = None;
        self.last_cycle_ms = ts_ms;
        if self.model_version != model.version {
            // Another model normalises differently: its window starts afresh, the life's count goes on.
            let cycles = self.history.cycles;
            self.history = model.history();
            self.history.cycles = cycles;
            self.model_version = model.version.clone();
        }
        self.history.push(model.normaliser.normalise(&cycle));
        if self.history.recent.len() < MIN_PREDICTION_CYCLES {
            return Observed::Changed;
        }
        let prediction = model.predict(&self.history);
        if ![prediction.rul, prediction.lower, prediction.upper]
            .iter()
            .all(|v| v.is_finite())
        {
            return Observed::Changed;
        }
        let alert = match (self.alert_raised_ms, alert_below) {
            (None, Some(limit)) if prediction.rul < limit => {
                self.alert_raised_ms = Some(ts_ms);
                Some(AlertChange::Raised { raised_ms: ts_ms })
            }
            (Some(raised_ms), limit) if limit.is_none_or(|l| prediction.rul >= l * CLEAR_RATIO) => {
                self.alert_raised_ms = None;
                Some(AlertChange::Resolved { raised_ms })
            }
            _ => None,
        };
        Observed::Predicted(Box::new(Step {
            event_time_ms: ts_ms,
            cycle: self.history.cycles,
            contributors: model.contributions(&self.history, TOP_CONTRIBUTORS),
            prediction,
            alert,
        }))
    }

    /// The window as a changelog record.
    pub fn to_record(&self) -> MachineWindow {
        MachineWindow {
            version: STATE_VERSION,
            model_version: self.model_version.clone(),
            life_start_ms: self.life_start_ms,
            last_cycle_ms: self.last_cycle_ms,
            cycles: self.history.cycles,
            baseline_sum: self.history.baseline_sum.clone(),
            baseline_n: self.history.baseline_n as u64,
            recent: self.history.recent.iter().cloned().collect(),
            pending: self.pending.clone(),
            alert_raised_ms: self.alert_raised_ms,
        }
    }

    /// The window of a changelog record.
    pub fn from_record(r: MachineWindow) -> Self {
        Self {
            model_version: r.model_version,
            life_start_ms: r.life_start_ms,
            last_cycle_ms: r.last_cycle_ms,
            history: History {
                cycles: r.cycles,
                baseline_sum: r.baseline_sum,
                baseline_n: usize::try_from(r.baseline_n).unwrap_or(usize::MAX),
                recent: r.recent.into(),
            },
            pending: r.pending,
            alert_raised_ms: r.alert_raised_ms,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::prediction::cmapss::{parse, simulate, Run};
    use crate::prediction::TrainOptions;

    fn model() -> (RulModel, Vec<Run>) {
        let runs = parse(&simulate(6, 5)).unwrap();
        (
            RulModel::train(&runs, &TrainOptions::quick()).unwrap(),
            runs,
        )
    }

    fn change(model: &RulModel, id: u128, from: i64, machines: &[&str]) -> ModelChange {
        ModelChange {
            tenant_id: Uuid::from_u128(1),
            model_id: Uuid::from_u128(id),
            version: model.version.clone(),
            effective_from_ms: from,
            active: true,
            machines: machines.iter().map(|m| m.to_string()).collect(),
            model: model.to_json(),
            alert_below: Some(15.0),
        }
    }

    /// Feeds a run's cycles as named readings, one cycle a minute, metrics in reverse order.
    fn feed(
        window: &mut Window,
        model: &RulModel,
        run: &Run,
        from: usize,
        base_ms: i64,
    ) -> Vec<Step> {
        let names = &model.normaliser.layout;
        let mut steps = Vec::new();
        for (i, c) in run.cycles.iter().enumerate().skip(from) {
            let ts = base_ms + i as i64 * 60_000;
            let readings = names
                .settings
                .iter()
                .zip(&c.settings)
                .chain(names.sensors.iter().zip(&c.sensors));
            let readings: Vec<_> = readings.collect();
            for (name, value) in readings.into_iter().rev() {
                if let Observed::Predicted(step) =
                    window.observe(Some(model), Some(20.0), name, ts, *value)
                {
                    steps.push(*step);
                }
            }
        }
        steps
    }

    #[test]
    fn named_readings_give_the_same_predictions_as_the_batch_path() {
        let (model, runs) = model();
        let run = &runs[2];
        let mut window = Window::default();
        let steps = feed(&mut window, &model, run, 0, 0);
        assert_eq!(steps.len(), run.cycles.len() - MIN_PREDICTION_CYCLES + 1);
        let batch = model.predict_runs(std::slice::from_ref(run)).unwrap();
        let last = steps.last().unwrap();
        assert_eq!(last.prediction, batch[0].1);
        assert_eq!(last.cycle, run.cycles.len() as u64);
        assert_eq!(last.contributors.len(), TOP_CONTRIBUTORS);
        // Near its end the machine's RUL is small and its health low.
        assert!(last.prediction.rul < 25.0, "{last:?}");
        // A window restored from its changelog record continues the same.
        let mut restored = Window::from_record(window.to_record());
        assert_eq!(restored, window);
        let mut again = Window::default();
        let first = feed(
            &mut again,
            &model,
            &Run {
                unit: 1,
                cycles: run.cycles[..50].to_vec(),
            },
            0,
            0,
        );
        let mut copy = Window::from_record(again.to_record());
        let rest_a = feed(&mut again, &model, run, 50, 0);
        let rest_b = feed(&mut copy, &model, run, 50, 0);
        assert!(!first.is_empty());
        assert_eq!(rest_a, rest_b);
        // Late readings and readings of other metrics change nothing.
        assert_eq!(
            restored.observe(Some(&model), None, "s2", 0, 1.0),
            Observed::Ignored
        );
        assert_eq!(
            restored.observe(Some(&model), None, "pressure", i64::MAX, 1.0),
            Observed::Ignored
        );
    }

    #[test]
    fn a_replacement_starts_a_new_life() {
        let (model, runs) = model();
        let mut window = Window::default();
        let before = feed(&mut window, &model, &runs[0], 0, 0);
        assert!(before.last().unwrap().prediction.rul < 25.0);
        let restart_ms = runs[0].cycles.len() as i64 * 60_000;
        // Near its end the machine raised its RUL alert; the new life resolves it.
        let raised = before
            .iter()
            .filter_map(|s| match s.alert {
                Some(AlertChange::Raised { raised_ms }) => Some(raised_ms),
                _ => None,
            })
            .collect::<Vec<_>>();
        assert_eq!(raised.len(), 1, "{before:?}");
        assert_eq!(
            window.observe(None, None, LIFE_RESTART, restart_ms, 1.0),
            Observed::Restarted(Some(AlertChange::Resolved {
                raised_ms: raised[0]
            }))
        );
        assert_eq!(window.history.cycles, 0);
        // The new life is predicted from its own first cycles: a healthy machine again.
        let after = feed(&mut window, &model, &runs[1], 0, restart_ms);
        assert_eq!(after.first().unwrap().cycle, MIN_PREDICTION_CYCLES as u64);
        assert!(
            after.first().unwrap().prediction.rul > 60.0,
            "{:?}",
            after[0]
        );
        // Readings from before the restart no longer count.
        assert_eq!(
            window.observe(Some(&model), None, "s2", restart_ms - 60_000, 1.0),
            Observed::Ignored
        );
    }

    #[test]
    fn the_book_serves_named_machines_first_and_by_event_time() {
        let (model, _) = model();
        let mut book = ModelBook::default();
        let tenant = Uuid::from_u128(1);
        assert!(book.model_for(tenant, "a", 10).is_none());
        book.apply(change(&model, 7, 100, &[])).unwrap();
        book.apply(change(&model, 8, 200, &["b"])).unwrap();
        book.apply(change(&model, 8, 200, &["b"])).unwrap();
        assert!(book.model_for(tenant, "a", 99).is_none());
        assert_eq!(
            book.model_for(tenant, "a", 100).unwrap().id,
            Uuid::from_u128(7)
        );
        assert_eq!(
            book.model_for(tenant, "b", 150).unwrap().id,
            Uuid::from_u128(7)
        );
        assert_eq!(
            book.model_for(tenant, "b", 200).unwrap().id,
            Uuid::from_u128(8)
        );
        assert!(book.model_for(Uuid::from_u128(2), "b", 300).is_none());
        let mut off = change(&model, 8, 300, &["b"]);
        off.active = false;
        book.apply(off).unwrap();
        assert_eq!(
            book.model_for(tenant, "b", 300).unwrap().id,
            Uuid::from_u128(7)
        );
        assert_eq!(
            book.model_for(tenant, "a", 300).unwrap().alert_below,
            Some(15.0)
        );
        let mut bad = change(&model, 9, 400, &[]);
        bad.version = "other".into();
        bad.model = "{}".into();
        assert!(book.apply(bad).is_err());
    }
}
