//! The remaining-useful-life model: features, a point model and two quantile models, serialised as JSON
//! with its format version, feature list, normalisation and cross-validated metrics.

use serde::{Deserialize, Serialize};

use super::cmapss::{self, Run};
use super::evaluate::{self, Metrics};
use super::features::{History, Normaliser};
use super::fit::{Fitted, Prediction, Raw, TrainOptions};
use super::gbt::Gbt;
use super::PredictionError;

/// The model file's format; a file of another format is refused rather than misread.
pub const FORMAT_VERSION: u32 = 1;
/// Fewest cycles of a training unit (one main window).
pub const MIN_TRAINING_CYCLES: usize = 30;
/// Fewest cycles a unit needs before it is predicted: a slope over fewer says little.
pub const MIN_PREDICTION_CYCLES: usize = 5;

/// A trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulModel {
    /// [`FORMAT_VERSION`] of the file.
    pub format_version: u32,
    /// Names this model (a digest of its content), carried by every prediction it makes.
    pub version: String,
    /// The ceiling of the target (and of predictions).
    pub cap: f64,
    /// The interval's nominal coverage.
    pub interval: f64,
    /// Cycles added on each side of the quantile models' interval so that it covers as often as it
    /// claims on held-out engines (conformalised quantile regression; negative narrows it).
    pub interval_margin: f64,
    /// Operating conditions, sensors kept, and their normalisation.
    pub normaliser: Normaliser,
    /// The features, in the order the trees index them.
    pub features: Vec<String>,
    /// The point estimate (squared error).
    pub point: Gbt,
    /// The interval's lower quantile.
    pub lower: Gbt,
    /// The interval's upper quantile.
    pub upper: Gbt,
    /// Cross-validated metrics of this recipe on the training data.
    pub metrics: Metrics,
    /// How it was trained.
    pub options: TrainOptions,
}

impl RulModel {
    /// Cross-validates the recipe by unit, then trains on every unit.
    pub fn train(runs: &[Run], options: &TrainOptions) -> Result<Self, PredictionError> {
        cmapss::require_cycles(runs, MIN_TRAINING_CYCLES)?;
        let min_units = options.folds.max(2);
        if runs.len() < min_units {
            return Err(PredictionError::TooFewUnits {
                units: runs.len(),
                min: min_units,
            });
        }
        let all: Vec<&Run> = runs.iter().collect();
        // The final models train while the folds do (each on a thread of its own).
        let (metrics, fitted) = std::thread::scope(|scope| {
            let fitted = scope.spawn(|| Fitted::fit(&all, options));
            let metrics = evaluate::cross_validate(runs, options);
            let fitted = fitted
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (metrics, fitted)
        });
        let ((metrics, interval_margin), fitted) = (metrics?, fitted?);
        let mut model = Self {
            format_version: FORMAT_VERSION,
            version: String::new(),
            cap: options.cap,
            interval: options.interval,
            interval_margin,
            features: fitted.normaliser.feature_names(),
            normaliser: fitted.normaliser,
            point: fitted.point,
            lower: fitted.lower,
            upper: fitted.upper,
            metrics,
            options: options.clone(),
        };
        model.version = format!("rul-gbt-{:016x}", fnv1a(model.to_json().as_bytes()));
        Ok(model)
    }

    /// The model as JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain structs of numbers and strings cannot fail; NaN cannot occur (inputs are
        // checked finite), and serde_json would write it as null rather than fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a model written by [`RulModel::to_json`], refusing other formats.
    pub fn from_json(text: &str) -> Result<Self, PredictionError> {
        #[derive(Deserialize)]
        struct Header {
            format_version: Option<u32>,
        }
        let header: Header = serde_json::from_str(text)
            .map_err(|e| PredictionError::Model(format!("not a Haltless RUL model: {e}")))?;
        match header.format_version {
            Some(FORMAT_VERSION) => serde_json::from_str(text)
                .map_err(|e| PredictionError::Model(format!("damaged model file: {e}"))),
            Some(other) => Err(PredictionError::Model(format!(
                "format version {other}; this build reads version {FORMAT_VERSION}"
            ))),
            None => Err(PredictionError::Model(
                "not a Haltless RUL model: no format_version".into(),
            )),
        }
    }

    /// A fresh history for one unit or machine.
    pub fn history(&self) -> History {
        History::new(self.normaliser.sensors.len())
    }

    /// The prediction after `history`'s last cycle.
    pub fn predict(&self, history: &History) -> Prediction {
        Raw::of([&self.point, &self.lower, &self.upper], &history.features())
            .finish(self.interval_margin, self.cap)
    }

    /// The sensors that moved the point estimate most after `history`'s last cycle, largest first, with
    /// their effect in cycles (negative: the sensor shortens the predicted life).
    pub fn contributions(&self, history: &History, top: usize) -> Vec<(String, f64)> {
        let per_feature = self.point.explain(&history.features());
        let mut per_sensor: Vec<(usize, f64)> = Vec::new();
        for (f, effect) in per_feature.iter().enumerate() {
            if let Some(sensor) = self.normaliser.sensor_of_feature(f) {
                match per_sensor.iter_mut().find(|(s, _)| *s == sensor) {
                    Some(slot) => slot.1 += effect,
                    None => per_sensor.push((sensor, *effect)),
                }
            }
        }
        per_sensor.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
        per_sensor
            .into_iter()
            .take(top)
            .map(|(s, e)| (self.normaliser.sensor_name(s), e))
            .collect()
    }

    /// The prediction at the last cycle of each run, in run order. Refuses runs with too few cycles.
    pub fn predict_runs(&self, runs: &[Run]) -> Result<Vec<(u32, Prediction)>, PredictionError> {
        cmapss::require_cycles(runs, MIN_PREDICTION_CYCLES)?;
        runs.iter()
            .map(|run| {
                let mut history = self.history();
                for c in &run.cycles {
                    history.push(self.normaliser.normalise(c));
                }
                let p = self.predict(&history);
                if [p.rul, p.lower, p.upper].iter().all(|v| v.is_finite()) {
                    Ok((run.unit, p))
                } else {
                    Err(PredictionError::NonFinite { unit: run.unit })
                }
            })
            .collect()
    }
}

/// FNV-1a, 64 bits: a stable digest for the model's version (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::prediction::cmapss::{parse, simulate};

    fn truncated(runs: &[Run], keep: usize) -> Vec<Run> {
        runs.iter()
            .map(|r| Run {
                unit: r.unit,
                cycles: r.cycles[..keep.min(r.cycles.len())].to_vec(),
            })
            .collect()
    }

    #[test]
    fn a_trained_model_round_trips_and_predicts_every_unit() {
        let runs = parse(&simulate(8, 1)).unwrap();
        let model = RulModel::train(&runs, &TrainOptions::quick()).unwrap();
        assert!(model.version.starts_with("rul-gbt-"));
        assert_eq!(model.features.len(), 15 * 6 + 1);
        let m = &model.metrics;
        assert!(m.cv_rmse.is_finite() && m.cv_rmse < 25.0, "{m:?}");
        // The conformalised interval covers held-out engines about as often as it claims (80 %).
        assert!((0.65..0.95).contains(&m.cv_coverage), "{m:?}");
        assert!((0.6..0.95).contains(&m.truncated.coverage_capped), "{m:?}");
        let again = RulModel::from_json(&model.to_json()).unwrap();
        assert_eq!(again, model);
        // Units cut 60 cycles before failure are predicted near 60, in unit order, within their interval.
        let cut: Vec<Run> = runs
            .iter()
            .map(|r| Run {
                unit: r.unit,
                cycles: r.cycles[..r.cycles.len() - 60].to_vec(),
            })
            .collect();
        let predictions = again.predict_runs(&cut).unwrap();
        assert_eq!(predictions.len(), 8);
        for (i, (unit, p)) in predictions.iter().enumerate() {
            assert_eq!(*unit, runs[i].unit);
            assert!(p.lower <= p.rul && p.rul <= p.upper);
            assert!((p.rul - 60.0).abs() < 25.0, "unit {unit}: {p:?}");
            assert!((0.0..=1.0).contains(&p.health));
        }
        // The same data and seed give the same model, byte for byte.
        assert_eq!(
            RulModel::train(&runs, &TrainOptions::quick())
                .unwrap()
                .to_json(),
            model.to_json()
        );
    }

    #[test]
    fn the_sensors_that_drift_explain_a_late_prediction() {
        let runs = parse(&simulate(6, 2)).unwrap();
        let model = RulModel::train(&runs, &TrainOptions::quick()).unwrap();
        let mut history = model.history();
        for c in &runs[0].cycles[..runs[0].cycles.len() - 5] {
            history.push(model.normaliser.normalise(c));
        }
        let top = model.contributions(&history, 3);
        assert_eq!(top.len(), 3);
        // Near failure every drifting sensor shortens the predicted life.
        assert!(
            top.iter()
                .all(|(name, effect)| name.starts_with('s') && *effect < 0.0),
            "{top:?}"
        );
    }

    #[test]
    fn bad_training_data_is_refused_naming_the_problem() {
        let runs = parse(&simulate(6, 3)).unwrap();
        let err = RulModel::train(&runs[..2], &TrainOptions::quick()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "2 unit(s) in the training data; training needs at least 3 run-to-failure units"
        );
        let mut short = runs.clone();
        short[4].cycles.truncate(12);
        let err = RulModel::train(&short, &TrainOptions::quick()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unit 5 has 12 cycle(s); at least 30 are needed"
        );
        let mut flat = runs;
        for c in flat.iter_mut().flat_map(|r| r.cycles.iter_mut()) {
            c.sensors = vec![7.0; crate::prediction::cmapss::SENSORS];
        }
        let err = RulModel::train(&flat, &TrainOptions::quick()).unwrap_err();
        assert!(matches!(err, PredictionError::AllSensorsConstant), "{err}");
    }

    #[test]
    fn prediction_refuses_short_units_and_foreign_model_files() {
        let runs = parse(&simulate(6, 4)).unwrap();
        let model = RulModel::train(&runs, &TrainOptions::quick()).unwrap();
        let err = model.predict_runs(&truncated(&runs, 3)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unit 1 has 3 cycle(s); at least 5 are needed"
        );
        // Constant input (a stuck sensor bank) still gives finite predictions.
        let mut stuck = truncated(&runs, 40);
        for c in stuck.iter_mut().flat_map(|r| r.cycles.iter_mut()) {
            c.sensors = vec![0.0; crate::prediction::cmapss::SENSORS];
        }
        for (_, p) in model.predict_runs(&stuck).unwrap() {
            assert!(p.rul.is_finite() && p.lower.is_finite() && p.upper.is_finite());
        }
        let newer = model.to_json().replacen(
            &format!("\"format_version\":{FORMAT_VERSION}"),
            "\"format_version\":99",
            1,
        );
        assert_eq!(
            RulModel::from_json(&newer).unwrap_err().to_string(),
            "model: format version 99; this build reads version 1"
        );
        let err = RulModel::from_json("{\"hello\": 1}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "model: not a Haltless RUL model: no format_version"
        );
    }
}
