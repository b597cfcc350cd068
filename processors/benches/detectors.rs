//! Throughput of the detection logic: each detector alone, the engine with the default rules and with a
//! composite rule, and the cost of encoding a machine's state for the changelog.
//!
//! Run with `cargo bench -p haltless-processors --bench detectors`; criterion reports elements (readings,
//! or snapshots for the last group) per second.

// A benchmark's setup panicking on bad input is the right outcome; the workspace's `unwrap_used` lint is
// meant for production code.
#![allow(clippy::unwrap_used)]

use std::f64::consts::TAU;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use haltless_processors::detection::logic::baseline::{Baseline, BaselineConfig};
use haltless_processors::detection::logic::context::{Context, ContextConfig};
use haltless_processors::detection::logic::drift::{Drift, DriftConfig};
use haltless_processors::detection::logic::engine::{Input, MachineState};
use haltless_processors::detection::logic::ewma::{Ewma, EwmaConfig};
use haltless_processors::detection::logic::rate::{Rate, RateConfig};
use haltless_processors::detection::logic::rules::Rule;
use haltless_processors::detection::logic::{Detector, Sample};
use haltless_processors::detection::processor::{encode_state, state_codec};

/// Readings per series in the throughput groups.
const N: usize = 10_000;
const SECOND_MS: i64 = 1_000;
const MINUTE_MS: i64 = 60_000;
/// Seven days of minute data: a full baseline window.
const WEEK_OF_MINUTES: usize = 7 * 24 * 60;

/// A deterministic realistic series: `n` readings `step_ms` apart starting at `start_ms`, a sine of
/// amplitude `amp` and period `period` readings around `level`, uniform noise of std `sigma`, and a spike of
/// `+8 * amp` every 2,500 readings. `seed` varies the noise (a 64-bit LCG, no extra crates).
#[allow(clippy::too_many_arguments)]
fn series(
    n: usize,
    start_ms: i64,
    step_ms: i64,
    level: f64,
    amp: f64,
    period: f64,
    sigma: f64,
    seed: u64,
) -> Vec<Sample> {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|i| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u = (state >> 11) as f64 / (1u64 << 53) as f64; // uniform in [0, 1)
            let spike = if i > 0 && i % 2_500 == 0 {
                8.0 * amp
            } else {
                0.0
            };
            Sample {
                ts_ms: start_ms + i as i64 * step_ms,
                value: level
                    + amp * (TAU * i as f64 / period).sin()
                    + (u - 0.5) * sigma * 12f64.sqrt()
                    + spike,
            }
        })
        .collect()
}

/// The default temperature-like series: 10,000 readings 1 s apart, a 10-minute cycle.
fn temp_series() -> Vec<Sample> {
    series(N, 0, SECOND_MS, 60.0, 5.0, 600.0, 0.5, 1)
}

/// Runs `detector` from scratch over `series`, returning how many readings it fired on.
fn run_detector<D: Detector>(mut detector: D, config: &D::Config, series: &[Sample]) -> usize {
    series
        .iter()
        .filter(|s| {
            detector
                .observe(config, black_box(**s))
                .is_some_and(|v| v.anomalous)
        })
        .count()
}

/// Feeds `inputs` to `state`, returning the number of alert transitions.
fn run_engine(state: &mut MachineState, rules: &[Rule], inputs: &[(&str, Sample)]) -> usize {
    inputs
        .iter()
        .enumerate()
        .map(|(i, (metric, sample))| {
            state
                .observe(
                    "tenant-1",
                    "press-07",
                    rules,
                    Input {
                        metric,
                        sample: black_box(*sample),
                        offset: Some((0, i as i64)),
                    },
                )
                .len()
        })
        .sum()
}

/// 1. Each detector alone on 10,000 readings 1 s apart, from a fresh state (warm-up included).
fn detectors_alone(c: &mut Criterion) {
    let temp = temp_series();
    let mut g = c.benchmark_group("detector");
    g.throughput(Throughput::Elements(N as u64));

    let ewma = EwmaConfig::default();
    g.bench_function("ewma", |b| {
        b.iter(|| run_detector(Ewma::default(), &ewma, black_box(&temp)))
    });

    let rate = RateConfig::default();
    g.bench_function("rate", |b| {
        b.iter(|| run_detector(Rate::default(), &rate, black_box(&temp)))
    });
    let rate_max = RateConfig {
        max_per_sec: Some(5.0),
        ..RateConfig::default()
    };
    g.bench_function("rate_max_per_sec", |b| {
        b.iter(|| run_detector(Rate::default(), &rate_max, black_box(&temp)))
    });

    // The default rule's two detectors, without the engine.
    let context = ContextConfig::default();
    g.bench_function("context", |b| {
        b.iter(|| run_detector(Context::default(), &context, black_box(&temp)))
    });
    let drift = DriftConfig::default();
    g.bench_function("drift", |b| {
        b.iter(|| run_detector(Drift::default(), &drift, black_box(&temp)))
    });

    // 10,000 s is under 3 h: the window holds at most 3 hourly buckets.
    let baseline = BaselineConfig::default();
    g.bench_function("baseline", |b| {
        b.iter(|| run_detector(Baseline::default(), &baseline, black_box(&temp)))
    });

    // The steady state: a full 7-day window (169 hourly buckets) folded on every reading.
    let week = series(WEEK_OF_MINUTES, 0, MINUTE_MS, 60.0, 5.0, 1_440.0, 0.5, 2);
    let mut warm = Baseline::default();
    run_detector_in_place(&mut warm, &baseline, &week);
    let after_week = series(
        N,
        WEEK_OF_MINUTES as i64 * MINUTE_MS,
        SECOND_MS,
        60.0,
        5.0,
        600.0,
        0.5,
        3,
    );
    g.bench_function("baseline_full_window", |b| {
        b.iter_batched(
            || warm.clone(),
            |d| run_detector(d, &baseline, black_box(&after_week)),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn run_detector_in_place<D: Detector>(detector: &mut D, config: &D::Config, series: &[Sample]) {
    for s in series {
        detector.observe(config, *s);
    }
}

/// 2. The engine with the default rule (context or drift) on one metric, and with the defaults before them
///    (EWMA + rate of change, as rules) for comparison on the same machine.
fn engine_default_rules(c: &mut Criterion) {
    let inputs: Vec<(&str, Sample)> = temp_series().into_iter().map(|s| ("temp", s)).collect();
    let old: Vec<Rule> = serde_json::from_str(
        r#"[{"id": "default:ewma:temp", "when": {"metric": "temp", "detector": "ewma"}, "clear_after": 96},
            {"id": "default:rate_of_change:temp", "when": {"metric": "temp", "detector": "rate"}, "clear_after": 96}]"#,
    )
    .unwrap();
    let mut g = c.benchmark_group("engine_default_rules");
    g.throughput(Throughput::Elements(inputs.len() as u64));
    g.bench_function("one_metric", |b| {
        b.iter(|| run_engine(&mut MachineState::default(), &[], black_box(&inputs)))
    });
    g.bench_function("one_metric_old_defaults", |b| {
        b.iter(|| run_engine(&mut MachineState::default(), &old, black_box(&inputs)))
    });
    g.finish();
}

/// 3. The engine with a composite rule over two interleaved metrics.
fn engine_composite_rule(c: &mut Criterion) {
    let rule: Rule = serde_json::from_str(
        r#"{"id": "c",
            "when": {"all": [{"metric": "temp", "detector": "above", "value": 90},
                             {"any": [{"metric": "vib", "detector": "ewma"},
                                      {"metric": "vib", "detector": "rate", "max_per_sec": 5}]}]},
            "hold": {"secs": 30}}"#,
    )
    .unwrap();
    let rules = [rule];
    // Temperature peaks at 95 once per 10-minute cycle, so the `above` branch is on part of the time.
    let temp = series(N, 0, SECOND_MS, 80.0, 15.0, 600.0, 0.5, 4);
    let vib = series(N, 500, SECOND_MS, 2.0, 0.5, 97.0, 0.2, 5);
    let inputs: Vec<(&str, Sample)> = temp
        .into_iter()
        .zip(vib)
        .flat_map(|(t, v)| [("temp", t), ("vib", v)])
        .collect();
    let mut g = c.benchmark_group("engine_composite_rule");
    g.throughput(Throughput::Elements(inputs.len() as u64));
    g.bench_function("two_metrics", |b| {
        b.iter(|| run_engine(&mut MachineState::default(), &rules, black_box(&inputs)))
    });
    g.finish();
}

/// 4. Encoding a machine's state as a changelog record after 7 days of minute data under a baseline rule.
fn snapshot(c: &mut Criterion) {
    let rule: Rule = serde_json::from_str(
        r#"{"id": "b", "when": {"metric": "temp", "detector": "baseline"}, "hold": {"readings": 3}}"#,
    )
    .unwrap();
    let rules = [rule];
    let inputs: Vec<(&str, Sample)> =
        series(WEEK_OF_MINUTES, 0, MINUTE_MS, 60.0, 5.0, 1_440.0, 0.5, 6)
            .into_iter()
            .map(|s| ("temp", s))
            .collect();
    let mut state = MachineState::default();
    run_engine(&mut state, &rules, &inputs);
    let codec = state_codec().unwrap();
    let bytes = encode_state(&codec, &state).unwrap().len();
    eprintln!("snapshot/baseline_7d: {bytes} bytes of Avro");

    let mut g = c.benchmark_group("snapshot");
    g.throughput(Throughput::Elements(1));
    g.bench_function("baseline_7d_to_changelog", |b| {
        b.iter(|| encode_state(black_box(&codec), black_box(&state)).unwrap())
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
}

criterion_group! {
    name = benches;
    config = config();
    targets = detectors_alone, engine_default_rules, engine_composite_rule, snapshot
}
criterion_main!(benches);
