//! How good a recipe is on engines it has not seen: k-fold cross-validation by unit (never by rows of the
//! same unit), scored on every held-out cycle and on held-out runs cut short the way C-MAPSS test sets are.

use serde::{Deserialize, Serialize};

use super::cmapss::Run;
use super::fit::{rows, Fitted, Raw, TrainOptions};
use super::gbt::{quantile, SplitMix64};
use super::PredictionError;

/// The shortest observed part of a truncated run (the official FD001 test runs have at least 31 cycles).
const MIN_OBSERVED: usize = 31;
/// The true RULs of truncated runs are drawn from this range (FD001's official test RULs lie in 7–145).
const TRUE_RUL: (usize, usize) = (7, 145);

/// Cross-validated metrics of a recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Folds, by unit.
    pub folds: usize,
    /// Units in the training data.
    pub units: usize,
    /// RMSE in cycles over every cycle of the held-out units, against the capped target.
    pub cv_rmse: f64,
    /// Share of held-out cycles whose capped target lies inside the prediction interval.
    pub cv_coverage: f64,
    /// The conformal margin added to each side of the quantile models' interval (cycles).
    pub interval_margin: f64,
    /// Held-out runs cut at random points, predicted at their last observed cycle.
    pub truncated: Truncated,
}

/// Scores on held-out runs cut short at random points, like the official test sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Truncated {
    /// Truncated runs scored.
    pub points: usize,
    /// RMSE in cycles against the true (uncapped) RUL.
    pub rmse: f64,
    /// RMSE against the true RUL capped like the target.
    pub rmse_capped: f64,
    /// The NASA scoring function summed over the points (lower is better).
    pub nasa_score: f64,
    /// The same per 100 runs, the size of the FD001 test set.
    pub nasa_score_per_100: f64,
    /// Share of points whose true RUL lies inside the interval.
    pub coverage: f64,
    /// Share of points whose true RUL, capped like the target, lies inside the interval: the interval is
    /// one for the capped RUL, so a true RUL above the cap is outside it by construction.
    pub coverage_capped: f64,
    /// Average width of the interval in cycles.
    pub mean_width: f64,
}

/// The PHM 2008 challenge's asymmetric score of one error `d` = predicted − true RUL: late predictions
/// (d > 0), which risk a failure in service, cost more than early ones.
pub fn nasa_score(d: f64) -> f64 {
    if d < 0.0 {
        (-d / 13.0).exp() - 1.0
    } else {
        (d / 10.0).exp() - 1.0
    }
}

/// The units of each fold: unit order shuffled with the seed, then dealt round-robin.
fn folds(runs: &[Run], k: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..runs.len()).collect();
    let mut rng = SplitMix64(seed ^ 0xF01D);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let mut fold = vec![0; runs.len()];
    for (position, &i) in order.iter().enumerate() {
        fold[i] = position % k;
    }
    fold
}

/// One held-out cycle: the models' raw outputs, the capped target, the true RUL, and whether it is a
/// cycle of the kind predictions are asked about (see [`cross_validate`]).
#[derive(Debug, Clone, Copy)]
struct HeldOut {
    raw: Raw,
    capped: f64,
    rul: f64,
    asked: bool,
}

/// What one fold gives: every held-out cycle, and the truncation points as indices into them.
type FoldScores = (Vec<HeldOut>, Vec<usize>);

/// Cross-validates by unit: for each fold, fits normalisation and models on the other units, then scores
/// every cycle of the held-out units and some truncations of them. Folds train in parallel threads; their
/// scores are combined in fold order, so the result does not depend on the threads.
///
/// The interval is conformalised: its margin is the quantile (at the nominal coverage) of how far held-out
/// targets fell outside the quantile models, over held-out cycles of the kind predictions are asked about
/// (at least 31 cycles observed, at most 145 left). Each fold's coverage is measured with the margin of the
/// other folds only; the returned margin, for the final model, uses all of them.
pub fn cross_validate(
    runs: &[Run],
    options: &TrainOptions,
) -> Result<(Metrics, f64), PredictionError> {
    let k = options.folds.max(2);
    let fold_of = folds(runs, k, options.params.seed);
    let results: Vec<Result<FoldScores, PredictionError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..k)
            .map(|fold| {
                let fold_of = &fold_of;
                scope.spawn(move || score_fold(runs, fold_of, fold, options))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let folds = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let outside = |fold: Option<usize>| {
        let mut scores: Vec<f64> = folds
            .iter()
            .enumerate()
            .filter(|(f, _)| Some(*f) != fold)
            .flat_map(|(_, (rows, _))| rows.iter().filter(|r| r.asked))
            .map(|r| r.raw.outside(r.capped))
            .collect();
        quantile(&mut scores, options.interval)
    };
    let (mut sq, mut inside, mut n) = (0.0, 0usize, 0usize);
    let mut cut = Vec::new(); // (predicted, lower, upper, true RUL)
    for (f, (rows, points)) in folds.iter().enumerate() {
        let margin = outside(Some(f));
        for r in rows {
            let p = r.raw.finish(margin, options.cap);
            sq += (p.rul - r.capped).powi(2);
            inside += usize::from(p.lower <= r.capped && r.capped <= p.upper);
            n += 1;
        }
        for &i in points {
            let p = rows[i].raw.finish(margin, options.cap);
            cut.push((p.rul, p.lower, p.upper, rows[i].rul));
        }
    }
    let margin = outside(None);
    let points = cut.len().max(1) as f64;
    let nasa: f64 = cut.iter().map(|(p, _, _, t)| nasa_score(p - t)).sum();
    let metrics = Metrics {
        folds: k,
        units: runs.len(),
        cv_rmse: (sq / n.max(1) as f64).sqrt(),
        cv_coverage: inside as f64 / n.max(1) as f64,
        interval_margin: margin,
        truncated: Truncated {
            points: cut.len(),
            rmse: (cut.iter().map(|(p, _, _, t)| (p - t).powi(2)).sum::<f64>() / points).sqrt(),
            rmse_capped: (cut
                .iter()
                .map(|(p, _, _, t)| (p - t.min(options.cap)).powi(2))
                .sum::<f64>()
                / points)
                .sqrt(),
            nasa_score: nasa,
            nasa_score_per_100: nasa * 100.0 / points,
            coverage: cut.iter().filter(|(_, l, u, t)| l <= t && t <= u).count() as f64 / points,
            coverage_capped: cut
                .iter()
                .filter(|(_, l, u, t)| *l <= t.min(options.cap) && t.min(options.cap) <= *u)
                .count() as f64
                / points,
            mean_width: cut.iter().map(|(_, l, u, _)| u - l).sum::<f64>() / points,
        },
    };
    Ok((metrics, margin))
}

fn score_fold(
    runs: &[Run],
    fold_of: &[usize],
    fold: usize,
    options: &TrainOptions,
) -> Result<FoldScores, PredictionError> {
    let train: Vec<&Run> = (0..runs.len())
        .filter(|&i| fold_of[i] != fold)
        .map(|i| &runs[i])
        .collect();
    let fitted = Fitted::fit(&train, options)?;
    let mut held_out = Vec::new();
    let mut cut = Vec::new();
    for run in (0..runs.len())
        .filter(|&i| fold_of[i] == fold)
        .map(|i| &runs[i])
    {
        let start = held_out.len();
        for (i, (x, capped, rul)) in rows(&fitted.normaliser, &[run], options.cap)
            .into_iter()
            .enumerate()
        {
            held_out.push(HeldOut {
                raw: fitted.raw(&x),
                capped,
                rul,
                asked: i + 1 >= MIN_OBSERVED && rul <= TRUE_RUL.1 as f64,
            });
        }
        let life = run.cycles.len();
        let top = TRUE_RUL.1.min(life.saturating_sub(MIN_OBSERVED));
        if top < TRUE_RUL.0 {
            continue;
        }
        let mut rng = SplitMix64(options.params.seed ^ u64::from(run.unit).wrapping_mul(0xC0FFEE));
        for _ in 0..options.truncations {
            let rul = TRUE_RUL.0 + rng.below(top - TRUE_RUL.0 + 1);
            cut.push(start + life - 1 - rul);
        }
    }
    Ok((held_out, cut))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_nasa_score_punishes_late_more_than_early() {
        assert_eq!(nasa_score(0.0), 0.0);
        assert!((nasa_score(-13.0) - (1f64.exp() - 1.0)).abs() < 1e-12);
        assert!((nasa_score(10.0) - (1f64.exp() - 1.0)).abs() < 1e-12);
        assert!(nasa_score(20.0) > nasa_score(-20.0));
    }

    #[test]
    fn every_unit_is_held_out_exactly_once_and_folds_are_balanced() {
        let runs: Vec<Run> = (1..=23)
            .map(|unit| Run {
                unit,
                cycles: Vec::new(),
            })
            .collect();
        let fold = folds(&runs, 5, 13);
        let sizes: Vec<usize> = (0..5)
            .map(|k| fold.iter().filter(|&&f| f == k).count())
            .collect();
        assert_eq!(sizes, vec![5, 5, 5, 4, 4]);
        assert_eq!(fold, folds(&runs, 5, 13));
        assert_ne!(fold, folds(&runs, 5, 14));
    }
}
