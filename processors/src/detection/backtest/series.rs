//! Backtests: the detectors and a rule set run over one recorded series, exactly as they run live, with
//! per-reading anomaly scores and the alerts they raise, scored with NAB's method against labels.

use super::nab::{self, CorpusTally, Profile, ResultRow, StreamScore};
use crate::detection::logic::engine::{AlertEvent, Input, MachineState};
use crate::detection::logic::lifecycle::Transition;
use crate::detection::logic::rules::Rule;
use crate::detection::logic::Sample;

/// The metric name a backtested series is fed under; rules for a backtest name this metric.
pub const BACKTEST_METRIC: &str = "value";

/// The outcome of one series.
#[derive(Debug, Clone)]
pub struct SeriesRun {
    /// Per reading: its time, value, anomaly score in `[0, 1)` and label (0 when unlabelled).
    pub rows: Vec<ResultRow>,
    /// Per reading: whether an alert was raised on it.
    pub raised: Vec<bool>,
    /// Every alert transition, in order.
    pub events: Vec<AlertEvent>,
}

impl SeriesRun {
    /// Alerts raised.
    pub fn detections(&self) -> usize {
        self.raised.iter().filter(|r| **r).count()
    }

    /// Per feature (or detector) that raised alerts: (alerts raised, of them inside a labelled window), by
    /// name. A context alert is counted under its strongest feature.
    pub fn by_feature(&self) -> std::collections::BTreeMap<String, (usize, usize)> {
        let mut out = std::collections::BTreeMap::new();
        for e in self
            .events
            .iter()
            .filter(|e| e.transition == Transition::Raised)
        {
            let feature = match (e.detector.as_str(), e.contributions.first()) {
                ("context", Some((name, _))) => name.clone(),
                (detector, _) => detector.to_owned(),
            };
            let labelled = e
                .offsets
                .first()
                .and_then(|o| usize::try_from(o.1).ok())
                .and_then(|i| self.rows.get(i))
                .is_some_and(|r| r.label == 1);
            let entry = out.entry(feature).or_insert((0, 0));
            entry.0 += 1;
            entry.1 += usize::from(labelled);
        }
        out
    }

    /// NAB's score of the raised alerts against `windows`.
    pub fn score(&self, windows: &[(i64, i64)], profile: &Profile) -> StreamScore {
        let ts: Vec<i64> = self.rows.iter().map(|r| r.ts_ms).collect();
        nab::score_stream(&ts, &self.raised, windows, profile)
    }
}

/// Runs `rules` (the default detectors when empty) over `series` of (epoch ms, value), labelling rows
/// inside `windows`.
pub fn run_series(
    name: &str,
    series: &[(i64, f64)],
    rules: &[Rule],
    windows: &[(i64, i64)],
) -> SeriesRun {
    let mut state = MachineState::default();
    let ts: Vec<i64> = series.iter().map(|(t, _)| *t).collect();
    let labels = nab::labels_for(&ts, windows);
    let mut run = SeriesRun {
        rows: Vec::with_capacity(series.len()),
        raised: Vec::new(),
        events: Vec::new(),
    };
    for (i, &(ts_ms, value)) in series.iter().enumerate() {
        let input = Input {
            metric: BACKTEST_METRIC,
            sample: Sample { ts_ms, value },
            offset: Some((0, i as i64)),
        };
        let events = state.observe("backtest", name, rules, input);
        let ratio = state.last_ratio();
        run.rows.push(ResultRow {
            ts_ms,
            value,
            anomaly_score: if ratio.is_finite() {
                ratio / (1.0 + ratio)
            } else {
                1.0
            },
            label: labels.get(i).copied().unwrap_or(0),
        });
        run.raised
            .push(events.iter().any(|e| e.transition == Transition::Raised));
        run.events.extend(events);
    }
    run
}

/// Runs a corpus of labelled series and adds up NAB's score.
pub fn run_corpus<'a>(
    streams: impl IntoIterator<Item = (&'a str, &'a [(i64, f64)], &'a [(i64, i64)])>,
    rules: &[Rule],
    profile: &Profile,
) -> (Vec<(String, SeriesRun, StreamScore)>, CorpusTally) {
    let mut tally = CorpusTally::default();
    let mut runs = Vec::new();
    for (name, series, windows) in streams {
        let run = run_series(name, series, rules, windows);
        let score = run.score(windows, profile);
        tally.add(&score, windows, profile);
        runs.push((name.to_owned(), run, score));
    }
    (runs, tally)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn scores_the_jumps_up_stream_better_than_doing_nothing() {
        let series =
            nab::parse_csv(include_str!("../../../testdata/nab/art_daily_jumpsup.csv")).unwrap();
        let windows =
            nab::parse_windows(include_str!("../../../testdata/nab/combined_windows.json"))
                .unwrap();
        let w = &windows["artificialWithAnomaly/art_daily_jumpsup.csv"];
        let run = run_series("jumpsup", &series, &[], w);
        assert_eq!(run.rows.len(), series.len());
        assert!(run
            .rows
            .iter()
            .all(|r| (0.0..1.0).contains(&r.anomaly_score)));
        assert_eq!(
            run.rows.iter().filter(|r| r.label == 1).count(),
            nab::labels_for(&series.iter().map(|s| s.0).collect::<Vec<_>>(), w)
                .iter()
                .filter(|l| **l == 1)
                .count()
        );
        let score = run.score(w, &Profile::STANDARD);
        assert_eq!(score.true_positives, 1, "{score:?}");
        assert!(
            score.raw > nab::null_raw(w, &Profile::STANDARD),
            "{score:?}"
        );
    }

    #[test]
    fn a_rerun_gives_the_same_alerts() {
        let series =
            nab::parse_csv(include_str!("../../../testdata/nab/art_daily_jumpsup.csv")).unwrap();
        let a = run_series("s", &series, &[], &[]);
        let b = run_series("s", &series, &[], &[]);
        assert_eq!(a.events, b.events);
    }
}
