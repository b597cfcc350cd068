//! Golden-file tests of the detectors: each folder of `testdata/golden/` holds an input series, a rule set and
//! the alert transitions they must give (`expected.csv`). Every case also runs with its state saved and
//! restored in the middle through the changelog's record format, which must change nothing.
//!
//! `UPDATE_GOLDEN=1 cargo test -p haltless-processors --test golden` rewrites the expected files; review
//! the diff before committing it.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::{Path, PathBuf};

use haltless_processors::detection::logic::engine::{AlertEvent, Input, MachineState};
use haltless_processors::detection::logic::lifecycle::Transition;
use haltless_processors::detection::logic::rules::Rule;
use haltless_processors::detection::logic::Sample;
use haltless_processors::detection::processor::{decode_state, encode_state, state_codec};

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/golden");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 5,
        "the golden cases are in {}",
        root.display()
    );
    dirs
}

fn input(dir: &Path) -> Vec<(String, Sample)> {
    std::fs::read_to_string(dir.join("input.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let sample = Sample {
                ts_ms: f[0].parse().unwrap(),
                value: f[2].parse().unwrap(),
            };
            (f[1].to_owned(), sample)
        })
        .collect()
}

/// Runs the detectors over `readings`, saving and restoring the state after `restore_at` of them.
fn run(
    rules: &[Rule],
    readings: &[(String, Sample)],
    restore_at: Option<usize>,
) -> Vec<AlertEvent> {
    let codec = state_codec().unwrap();
    let mut state = MachineState::default();
    let mut events = Vec::new();
    for (i, (metric, sample)) in readings.iter().enumerate() {
        if restore_at == Some(i) {
            state = decode_state(&codec, &encode_state(&codec, &state).unwrap()).unwrap();
        }
        let input = Input {
            metric,
            sample: *sample,
            offset: Some((0, i as i64)),
        };
        events.extend(state.observe("tenant", "machine", rules, input));
    }
    events
}

/// Six significant digits: the file says what the detectors decided, not the last bits of a float.
fn num(x: f64) -> String {
    format!("{x:.6e}")
}

fn render(events: &[AlertEvent]) -> String {
    let mut out = String::from(
        "event_time_ms,transition,rule_id,detector,metric,observed,expected,score,limit,readings\n",
    );
    for e in events {
        let readings: Vec<String> = e.offsets.iter().map(|(_, o)| o.to_string()).collect();
        out.push_str(&format!(
            "{},{:?},{},{},{},{},{},{},{},{}\n",
            e.event_time_ms,
            e.transition,
            e.rule_id,
            e.detector,
            e.metric,
            num(e.observed),
            num(e.expected),
            num(e.score),
            num(e.limit),
            readings.join(" "),
        ));
    }
    out
}

#[test]
fn detectors_match_their_golden_files_with_a_restore_in_the_middle() {
    let update = std::env::var("UPDATE_GOLDEN").is_ok();
    for dir in cases() {
        let rules: Vec<Rule> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("rules.json")).unwrap())
                .unwrap();
        let readings = input(&dir);
        let straight = render(&run(&rules, &readings, None));
        let restored = render(&run(&rules, &readings, Some(readings.len() / 2)));
        assert_eq!(
            straight,
            restored,
            "{}: a restore changed the output",
            dir.display()
        );
        let path = dir.join("expected.csv");
        if update {
            std::fs::write(&path, &straight).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{} missing; run with UPDATE_GOLDEN=1", path.display()));
        assert_eq!(
            straight,
            expected,
            "{} differs from its golden file",
            dir.display()
        );
    }
}

/// What the drift cases' golden files must say, whatever else changes in them: a drift of +0.5 standard
/// deviations a day for ten days (days 7 to 17) is one alert, raised during the drift and open until it
/// stops; a step is one alert; seasonal data with no fault is none.
#[test]
fn a_drift_is_one_alert_open_until_it_stops_a_step_one_and_seasons_none() {
    const T0: i64 = 1_793_000_000_000;
    const DAY: i64 = 86_400_000;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/golden");
    let transitions = |case: &str| -> Vec<(Transition, i64)> {
        let dir = root.join(case);
        let rules: Vec<Rule> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("rules.json")).unwrap())
                .unwrap();
        run(&rules, &input(&dir), None)
            .iter()
            .map(|e| (e.transition, e.event_time_ms - T0))
            .filter(|(t, _)| *t != Transition::Updated)
            .collect()
    };
    let drift = transitions("drift_slow");
    assert_eq!(drift.len(), 2, "{drift:?}");
    assert_eq!(drift[0].0, Transition::Raised);
    assert!(
        (7 * DAY..12 * DAY).contains(&drift[0].1),
        "raised within five days of the drift's start: {drift:?}"
    );
    assert_eq!(drift[1].0, Transition::Resolved);
    assert!(
        (17 * DAY..20 * DAY).contains(&drift[1].1),
        "open until the drift stops, resolved within three days after: {drift:?}"
    );
    let step = transitions("step_change");
    assert_eq!(
        step.iter().filter(|t| t.0 == Transition::Raised).count(),
        1,
        "{step:?}"
    );
    assert_eq!(transitions("seasonal_quiet"), vec![]);
}
