//! `haltless train` and `haltless predict`: read the files, run the model, say what happened.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use super::cmapss;
use super::{PredictionError, RulModel, TrainOptions};

fn read(path: &Path) -> Result<String, PredictionError> {
    std::fs::read_to_string(path).map_err(|source| PredictionError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Trains on a C-MAPSS run-to-failure file, writes the model to `out`, and returns the report.
pub fn train(cmapss: &Path, out: &Path, options: &TrainOptions) -> Result<String, PredictionError> {
    let runs = cmapss::parse(&read(cmapss)?)?;
    let started = Instant::now();
    let model = RulModel::train(&runs, options)?;
    let seconds = started.elapsed().as_secs_f64();
    std::fs::write(out, model.to_json()).map_err(|source| PredictionError::Io {
        path: out.to_owned(),
        source,
    })?;
    let cycles: usize = runs.iter().map(|r| r.cycles.len()).sum();
    Ok(report(&model, runs.len(), cycles, seconds, out))
}

fn report(model: &RulModel, units: usize, cycles: usize, seconds: f64, out: &Path) -> String {
    let m = &model.metrics;
    let t = &m.truncated;
    let names = |sensors: &mut dyn Iterator<Item = usize>| {
        sensors
            .map(|j| model.normaliser.sensor_name(j))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let kept = &model.normaliser.sensors;
    let pct = (model.interval * 100.0).round();
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        s,
        "trained on {units} units ({cycles} cycles) in {seconds:.1} s; model {} written to {}",
        model.version,
        out.display()
    );
    let _ = writeln!(
        s,
        "sensors used: {}; dropped as constant: {}; operating conditions: {}",
        names(&mut kept.iter().copied()),
        names(&mut (0..model.normaliser.layout.sensors.len()).filter(|j| !kept.contains(j))),
        model.normaliser.conditions.centroids.len()
    );
    let _ = writeln!(s, "cross-validation, {} folds by unit:", m.folds);
    let _ = writeln!(
        s,
        "  RMSE over every held-out cycle (target capped at {}): {:.2} cycles",
        model.cap, m.cv_rmse
    );
    let _ = writeln!(
        s,
        "  {pct}% interval coverage: {:.3} (quantile models widened by a conformal margin of {:.1} cycles)",
        m.cv_coverage, m.interval_margin
    );
    let _ = writeln!(
        s,
        "held-out runs cut at random points ({} cuts, true RUL 7 to 145), predicted at the last observed cycle:",
        t.points
    );
    let _ = writeln!(
        s,
        "  RMSE {:.2} cycles (against the true RUL capped at {}: {:.2})",
        t.rmse, model.cap, t.rmse_capped
    );
    let _ = writeln!(
        s,
        "  NASA score {:.1} per 100 runs ({:.1} over all {})",
        t.nasa_score_per_100, t.nasa_score, t.points
    );
    let _ = write!(
        s,
        "  {pct}% interval coverage: {:.3} of the true RUL, {:.3} of the true RUL capped at {}; mean width {:.1} cycles",
        t.coverage, t.coverage_capped, model.cap, t.mean_width
    );
    s
}

/// Predicts the last cycle of each unit of a C-MAPSS file: `unit,rul` lines (with `,lower,upper` when
/// `interval`), in unit order.
pub fn predict(model: &Path, cmapss: &Path, interval: bool) -> Result<String, PredictionError> {
    let model = RulModel::from_json(&read(model)?)?;
    let runs = cmapss::parse(&read(cmapss)?)?;
    let mut s = String::new();
    for (unit, p) in model.predict_runs(&runs)? {
        let _ = if interval {
            writeln!(s, "{unit},{:.1},{:.1},{:.1}", p.rul, p.lower, p.upper)
        } else {
            writeln!(s, "{unit},{:.1}", p.rul)
        };
    }
    Ok(s)
}
