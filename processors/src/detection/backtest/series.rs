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
    // Alerts open before the current reading.
    let mut open = 0usize;
    for (i, &(ts_ms, value)) in series.iter().enumerate() {
        let input = Input {
            metric: BACKTEST_METRIC,
            sample: Sample { ts_ms, value },
            offset: Some((0, i as i64)),
        };
        let events = state.observe("backtest", name, rules, input);
        let ratio = state.last_ratio();
        // A reading while an alert is open belongs to it (it only extends the rest period): it scores 0, so
        // a threshold on the scores reports an anomaly once, as the alert does, rather than once per reading.
        let anomaly_score = if open > 0 {
            0.0
        } else if ratio.is_finite() {
            ratio / (1.0 + ratio)
        } else {
            1.0
        };
        for e in &events {
            match e.transition {
                Transition::Raised => open += 1,
                Transition::Resolved => open = open.saturating_sub(1),
                Transition::Updated => {}
            }
        }
        run.rows.push(ResultRow {
            ts_ms,
            value,
            anomaly_score,
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

/// NAB's own threshold sweep ([`nab::sweep_threshold`]) over the scores written for `runs`, each with its
/// windows: the best threshold and the corpus' tally at it.
pub fn sweep<'a>(
    runs: impl IntoIterator<Item = (&'a SeriesRun, &'a [(i64, i64)])>,
    profile: &Profile,
    step: f64,
) -> (f64, CorpusTally) {
    let columns: Vec<_> = runs
        .into_iter()
        .map(|(run, windows)| {
            let ts: Vec<i64> = run.rows.iter().map(|r| r.ts_ms).collect();
            let scores: Vec<f64> = run.rows.iter().map(|r| r.anomaly_score).collect();
            (ts, scores, windows)
        })
        .collect();
    let streams: Vec<nab::SweepStream<'_>> = columns
        .iter()
        .map(|(ts, scores, windows)| (ts.as_slice(), scores.as_slice(), *windows))
        .collect();
    nab::sweep_threshold(&streams, profile, step)
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
        // The written scores reach the limit (0.5) exactly where an alert was raised, once per alert, so
        // NAB's own sweep over them finds at least the alerts' score.
        let at_limit: Vec<bool> = run.rows.iter().map(|r| r.anomaly_score > 0.5).collect();
        assert_eq!(at_limit, run.raised);
        let (_, swept) = sweep([(&run, w.as_slice())], &Profile::STANDARD, 0.005);
        assert!(swept.raw >= score.raw, "{swept:?} {score:?}");
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

/// The NAB corpus scored with the default detectors, in the three groups of the README's leave-some-out
/// table: `HALTLESS_NAB=../shared/data/nab cargo test -p haltless-processors --lib nab_corpus -- --ignored
/// --nocapture` (a quick check while working on the detectors; `haltless backtest --nab` is the command).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod corpus {
    use super::*;

    const TUNING: [&str; 10] = [
        "artificial",
        "24ae8d",
        "5f5533",
        "825cc2",
        "c6585a",
        "1ef3de",
        "257a54",
        "8c0756",
        "iio_us",
        "e47b3b",
    ];

    #[test]
    #[ignore = "needs the NAB corpus: HALTLESS_NAB=<folder>"]
    fn nab_corpus() {
        let dir = std::path::PathBuf::from(std::env::var("HALTLESS_NAB").unwrap());
        let rules: Vec<Rule> = match std::env::var("HALTLESS_RULES") {
            Ok(p) => serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap(),
            Err(_) => Vec::new(),
        };
        let windows = nab::parse_windows(
            &std::fs::read_to_string(dir.join("combined_windows.json")).unwrap(),
        )
        .unwrap();
        let profile = Profile::STANDARD;
        let (mut all, mut tuning, mut held) = (
            CorpusTally::default(),
            CorpusTally::default(),
            CorpusTally::default(),
        );
        let mut counts = [[0usize; 3]; 3];
        // A digest of every score and alert, to check that a change meant for speed alone changes no verdict.
        let mut digest: u64 = 0xcbf2_9ce4_8422_2325;
        let mut mix = |x: u64| digest = (digest ^ x).wrapping_mul(0x0100_0000_01b3);
        // For NAB's own threshold sweep.
        let mut runs = Vec::new();
        for (key, w) in &windows {
            let text = std::fs::read_to_string(dir.join("data").join(key)).unwrap();
            let series = nab::parse_csv(&text).unwrap();
            let run = run_series(key, &series, &rules, w);
            let s = run.score(w, &profile);
            for r in &run.rows {
                mix(r.anomaly_score.to_bits());
            }
            for e in &run.events {
                mix(e.event_time_ms as u64);
                mix(e.score.to_bits());
                e.explanation.bytes().for_each(|b| mix(u64::from(b)));
            }
            let group = if TUNING.iter().any(|t| key.contains(t)) {
                1
            } else {
                2
            };
            all.add(&s, w, &profile);
            if group == 1 {
                tuning.add(&s, w, &profile);
            } else {
                held.add(&s, w, &profile);
            }
            for g in [0, group] {
                counts[g][0] += s.true_positives;
                counts[g][1] += s.false_negatives;
                counts[g][2] += s.false_positives;
            }
            if let Ok(out) = std::env::var("HALTLESS_DUMP") {
                dump(&out, key, &series, &run);
            }
            let raised: Vec<String> = run
                .events
                .iter()
                .filter(|e| e.transition == Transition::Raised)
                .map(|e| {
                    let i = e.offsets.first().map_or(0, |o| o.1 as usize);
                    let f = e
                        .contributions
                        .first()
                        .map_or(e.detector.clone(), |c| c.0.clone());
                    format!(
                        "{i}{}{}",
                        if run.rows[i].label == 1 { "*" } else { "" },
                        &f[..2]
                    )
                })
                .collect();
            println!(
                "{key:<58} {:>2} {:>2} {:>2} {:>7.3} [{}]",
                s.true_positives,
                s.false_negatives,
                s.false_positives,
                s.raw,
                raised.join(" ")
            );
            runs.push((run, w));
        }
        println!("digest {digest:016x}");
        let (threshold, best) = sweep(
            runs.iter().map(|(run, w)| (run, w.as_slice())),
            &profile,
            0.005,
        );
        println!(
            "NAB's threshold sweep over the written scores: {:.1} at {threshold:.3}",
            best.normalized()
        );
        for (name, t, c) in [
            ("all", &all, counts[0]),
            ("tuning", &tuning, counts[1]),
            ("held-out", &held, counts[2]),
        ] {
            println!(
                "{name:<9} {:>5.1}  TP {} FN {} FP {}",
                t.normalized(),
                c[0],
                c[1],
                c[2]
            );
        }
    }

    /// Per row: index, value, label, raised, each feature's tail score, the context score.
    fn dump(out: &str, key: &str, series: &[(i64, f64)], run: &SeriesRun) {
        use crate::detection::logic::calibrate::tail_score;
        use crate::detection::logic::context::{Context, ContextConfig};
        use crate::detection::logic::Detector;
        let mut d = Context::default();
        let c = ContextConfig::default();
        let mut text =
            String::from("i,ts,value,label,raised,level,profile,transitions,range,score\n");
        for (i, &(ts_ms, value)) in series.iter().enumerate() {
            let v = d.observe(&c, Sample { ts_ms, value });
            let mut f = [0.0f64; 4];
            let mut score = 0.0;
            if let Some(v) = v {
                score = v.score;
                if let Some(w) = v.why {
                    for (k, z) in w.scores.iter().take(4).enumerate() {
                        if *z != crate::detection::logic::NOT_JUDGED {
                            f[k] = tail_score(f64::from(*z));
                        }
                    }
                }
            }
            text += &format!(
                "{i},{ts_ms},{value},{},{},{:.3},{:.3},{:.3},{:.3},{:.3}\n",
                run.rows[i].label,
                u8::from(run.raised[i]),
                f[0],
                f[1],
                f[2],
                f[3],
                score
            );
        }
        let name = key.replace('/', "_");
        std::fs::write(format!("{out}/{name}"), text).unwrap();
    }
}
