//! One training recipe: the options, the feature rows of runs with their targets, and the three models
//! (estimate and interval) fitted on them. Cross-validation and the final model both fit through here.

use serde::{Deserialize, Serialize};

use super::cmapss::Run;
use super::features::{History, Layout, Normaliser};
use super::gbt::{Dataset, Gbt, Loss, Params};
use super::PredictionError;

/// How to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// The piecewise-linear target's ceiling in cycles. Early in life an engine shows no degradation, so
    /// its sensors cannot tell 300 cycles left from 150; a linear target there is noise the model would
    /// fit. 125 is where FD001's degradation becomes visible (its shortest life is 128 cycles) and the
    /// value most published results use.
    pub cap: f64,
    /// Cross-validation folds, by unit.
    pub folds: usize,
    /// The prediction interval's nominal coverage (0.8: from the 10th to the 90th percentile).
    pub interval: f64,
    /// Random truncation points per held-out unit for the truncated evaluation.
    pub truncations: usize,
    /// The trees (the seed there also seeds the folds and truncations).
    pub params: Params,
    /// The names of the data's settings and sensors (C-MAPSS's unless the data names its own).
    #[serde(default)]
    pub layout: Layout,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            cap: 125.0,
            folds: 5,
            interval: 0.8,
            truncations: 5,
            params: Params::default(),
            layout: Layout::cmapss(),
        }
    }
}

impl TrainOptions {
    /// The same recipe in fewer, larger boosting steps (25 trees at 0.2), 3 folds and 2 cuts per held-out
    /// unit: a usable model of a small fleet in about a second, for tests and demos; not for benchmarks.
    pub fn quick() -> Self {
        Self {
            params: Params {
                trees: 25,
                learning_rate: 0.2,
                ..Params::default()
            },
            folds: 3,
            truncations: 2,
            ..Self::default()
        }
    }
}

/// One prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Remaining useful life in cycles.
    pub rul: f64,
    /// The interval's lower end.
    pub lower: f64,
    /// The interval's upper end.
    pub upper: f64,
    /// 0 (at its end) to 1 (healthy): the RUL over the target's ceiling.
    pub health: f64,
}

/// Feature rows of runs, with the targets: `(features, capped RUL, true RUL)` per cycle.
pub(crate) fn rows(normaliser: &Normaliser, runs: &[&Run], cap: f64) -> Vec<(Vec<f64>, f64, f64)> {
    let mut out = Vec::new();
    for run in runs {
        let mut history = History::new(normaliser.sensors.len());
        let last = run.cycles.len() - 1;
        for (i, c) in run.cycles.iter().enumerate() {
            history.push(normaliser.normalise(c));
            let rul = (last - i) as f64;
            out.push((history.features(), rul.min(cap), rul));
        }
    }
    out
}

/// The three models of one training set (the point model and the interval's two quantiles).
pub(crate) struct Fitted {
    pub normaliser: Normaliser,
    pub point: Gbt,
    pub lower: Gbt,
    pub upper: Gbt,
}

impl Fitted {
    pub(crate) fn fit(runs: &[&Run], options: &TrainOptions) -> Result<Self, PredictionError> {
        let normaliser = Normaliser::fit(runs, &options.layout)?;
        let (x, y): (Vec<Vec<f64>>, Vec<f64>) = rows(&normaliser, runs, options.cap)
            .into_iter()
            .map(|(x, y, _)| (x, y))
            .unzip();
        let data = Dataset::new(x);
        let tail = (1.0 - options.interval) / 2.0;
        Ok(Self {
            point: Gbt::fit(&data, &y, Loss::Squared, &options.params),
            lower: Gbt::fit(&data, &y, Loss::Quantile(tail), &options.params),
            upper: Gbt::fit(&data, &y, Loss::Quantile(1.0 - tail), &options.params),
            normaliser,
        })
    }

    pub(crate) fn raw(&self, x: &[f64]) -> Raw {
        Raw::of([&self.point, &self.lower, &self.upper], x)
    }
}

/// The three models' outputs for one row, before the interval is widened and everything bounded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Raw {
    pub rul: f64,
    pub lower: f64,
    pub upper: f64,
}

impl Raw {
    pub(crate) fn of([point, lower, upper]: [&Gbt; 3], x: &[f64]) -> Self {
        Self {
            rul: point.predict(x),
            lower: lower.predict(x),
            upper: upper.predict(x),
        }
    }

    /// How far `target` lies outside the quantiles (negative inside): the conformity score of
    /// conformalised quantile regression.
    pub(crate) fn outside(&self, target: f64) -> f64 {
        (self.lower - target).max(target - self.upper)
    }

    /// The prediction: the quantiles widened by `margin` on each side, everything within [0, cap], and the
    /// interval around the estimate (quantile models trained apart can cross it).
    pub(crate) fn finish(&self, margin: f64, cap: f64) -> Prediction {
        let rul = self.rul.clamp(0.0, cap);
        Prediction {
            rul,
            lower: (self.lower - margin).clamp(0.0, cap).min(rul),
            upper: (self.upper + margin).clamp(0.0, cap).max(rul),
            health: rul / cap,
        }
    }
}
