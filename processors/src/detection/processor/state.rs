//! Detector state in a compacted changelog topic: one record per machine, keyed `tenant/machine`, in the
//! partition of the readings it was computed from, written in the same transaction as the alerts.
//!
//! The record's format is `haltless.detector-state.v1` (`haltless_schemas::detector_state`); this module
//! converts the detection logic's state to and from it. Changelogs written before the format existed hold
//! the logic's serde JSON, which [`decode`] still reads. The loop reads the changelog back
//! (`runtime::transactional::ChangelogReader`) when partitions are assigned.

use std::collections::BTreeMap;

use haltless_schemas::detector_state::{self as avro, STATE_VERSION};
use haltless_schemas::{Codec, CodecError};

use crate::detection::logic::baseline::Baseline;
use crate::detection::logic::calibrate::{per_feature, Calibrator};
use crate::detection::logic::context::{all_profiled, Context};
use crate::detection::logic::drift::Drift;
use crate::detection::logic::engine::{ConditionState, DetectorState, Last, MachineState, Stored};
use crate::detection::logic::ewma::Ewma;
use crate::detection::logic::lifecycle::Phase;
use crate::detection::logic::rate::Rate;
use crate::detection::logic::stats::{EwStats, Moments};
use crate::detection::logic::{Sample, Verdict, Why};

/// A codec for the changelog.
pub fn codec() -> Result<Codec, CodecError> {
    avro::MachineState::codec()
}

/// A machine's state as a changelog record.
pub fn encode(codec: &Codec, state: &MachineState) -> Result<Vec<u8>, CodecError> {
    to_record(state)?.encode(codec)
}

/// Reads a changelog record: Avro, or the JSON written before the changelog had a schema.
pub fn decode(codec: &Codec, bytes: &[u8]) -> Result<MachineState, CodecError> {
    if bytes.first() == Some(&b'{') {
        return serde_json::from_slice(bytes)
            .map_err(|e| CodecError::Shape(format!("legacy JSON detector state: {e}")));
    }
    from_record(avro::MachineState::decode(codec, bytes)?)
}

fn to_record(state: &MachineState) -> Result<avro::MachineState, CodecError> {
    let view = state.view();
    let mut conditions = Vec::new();
    for (rule_id, leaves) in &view.conditions {
        for (leaf, c) in leaves.iter() {
            conditions.push(avro::ConditionState {
                rule_id: (*rule_id).to_owned(),
                leaf: u32::try_from(*leaf)
                    .map_err(|_| CodecError::Shape(format!("leaf position {leaf}")))?,
                detector: detector_record(&c.detector),
                last: c.last.as_ref().map(|l| avro::Last {
                    ts_ms: l.ts_ms,
                    observed: l.verdict.observed,
                    expected: l.verdict.expected,
                    score: l.verdict.score,
                    limit: l.verdict.limit,
                    anomalous: l.verdict.anomalous,
                    reading: l.offset,
                    why: l.verdict.why.map(|w| avro::LastWhy {
                        reason: i32::from(w.reason),
                        scores: w.scores.map(f64::from),
                        spread: w.spread,
                        detail: w.detail,
                        levels: w.levels.map(i32::from),
                    }),
                }),
            });
        }
    }
    let phases = view
        .phases
        .iter()
        .map(|(rule_id, phase)| avro::RulePhase {
            rule_id: (*rule_id).to_owned(),
            phase: match phase {
                Phase::Idle => avro::Phase::Idle,
                Phase::Pending { since_ms, count } => avro::Phase::Pending {
                    since_ms: *since_ms,
                    count: *count,
                },
                Phase::Active {
                    id,
                    raised_ms,
                    peak,
                    off,
                } => avro::Phase::Active {
                    alert_id: *id,
                    raised_ms: *raised_ms,
                    peak: *peak,
                    off: *off,
                },
            },
        })
        .collect();
    Ok(avro::MachineState {
        version: STATE_VERSION,
        conditions,
        phases,
        newest: view
            .newest
            .iter()
            .map(|(m, ts)| ((*m).to_owned(), *ts))
            .collect(),
    })
}

fn from_record(record: avro::MachineState) -> Result<MachineState, CodecError> {
    if record.version > STATE_VERSION {
        return Err(CodecError::Shape(format!(
            "detector state version {} is newer than this platform's {STATE_VERSION}",
            record.version
        )));
    }
    let mut conditions: BTreeMap<String, BTreeMap<usize, ConditionState>> = BTreeMap::new();
    for c in record.conditions {
        let state = ConditionState {
            detector: detector_from_record(c.detector),
            last: c.last.map(|l| Last {
                ts_ms: l.ts_ms,
                verdict: Verdict {
                    observed: l.observed,
                    expected: l.expected,
                    score: l.score,
                    limit: l.limit,
                    anomalous: l.anomalous,
                    why: l.why.map(|w| Why {
                        reason: u8::try_from(w.reason).unwrap_or(0),
                        // Scores were written from f32: they convert back exactly.
                        scores: w.scores.map(|z| z as f32),
                        spread: w.spread,
                        detail: w.detail,
                        levels: w.levels.map(|l| u8::try_from(l).unwrap_or(0)),
                    }),
                },
                offset: l.reading,
            }),
        };
        let leaf = usize::try_from(c.leaf)
            .map_err(|_| CodecError::Shape(format!("leaf position {}", c.leaf)))?;
        conditions.entry(c.rule_id).or_default().insert(leaf, state);
    }
    let phases = record
        .phases
        .into_iter()
        .map(|p| {
            let phase = match p.phase {
                avro::Phase::Idle => Phase::Idle,
                avro::Phase::Pending { since_ms, count } => Phase::Pending { since_ms, count },
                avro::Phase::Active {
                    alert_id,
                    raised_ms,
                    peak,
                    off,
                } => Phase::Active {
                    id: alert_id,
                    raised_ms,
                    peak,
                    off,
                },
            };
            (p.rule_id, phase)
        })
        .collect();
    Ok(MachineState::from(Stored {
        conditions,
        phases,
        newest: record.newest.into_iter().collect(),
    }))
}

fn ew_record(s: &EwStats) -> avro::EwStats {
    avro::EwStats {
        mean: s.mean,
        var: s.var,
        n: s.n,
        last_ts_ms: s.last_ts_ms,
    }
}

fn moments_record(m: Moments) -> avro::Moments {
    avro::Moments {
        n: m.n,
        mean: m.mean,
        m2: m.m2,
    }
}

fn moments_from_record(m: avro::Moments) -> Moments {
    Moments {
        n: m.n,
        mean: m.mean,
        m2: m.m2,
    }
}

fn ew_from_record(s: avro::EwStats) -> EwStats {
    EwStats {
        mean: s.mean,
        var: s.var,
        n: s.n,
        last_ts_ms: s.last_ts_ms,
    }
}

/// The one place that knows every detector's state; a new detector adds its arm here and its field to the
/// schema (see `haltless.detector-state.v1.avsc`).
fn detector_record(d: &DetectorState) -> avro::DetectorState {
    match d {
        DetectorState::Threshold => avro::DetectorState::Stateless,
        DetectorState::Ewma(e) => avro::DetectorState::Ewma {
            stats: ew_record(&e.stats),
        },
        DetectorState::Baseline(b) => avro::DetectorState::Baseline {
            buckets: b
                .buckets
                .iter()
                .map(|(hour, m)| avro::HourBucket {
                    hour: *hour,
                    n: m.n,
                    mean: m.mean,
                    m2: m.m2,
                })
                .collect(),
        },
        DetectorState::Drift(d) => avro::DetectorState::Drift(avro::DriftState {
            hour: d.hour.map(|(h, m)| (h, moments_record(m))),
            day: d.day.map(|(h, m)| (h, moments_record(m))),
            days: d.days.clone(),
            noise: ew_record(&d.noise),
        }),
        DetectorState::Context(c) => avro::DetectorState::Context(Box::new(avro::ContextState {
            level: ew_record(&c.level),
            slots: c.slots.iter().map(ew_record).collect(),
            low: c.low,
            high: c.high,
            prev_level: c.prev_level,
            transitions: c.transitions.clone(),
            prev: c.prev.map(|s| (s.ts_ms, s.value)),
            velocity: ew_record(&c.velocity),
            density_recent: c.density_recent,
            density_usual: c.density_usual,
            profiled: Some(c.profiled),
            hour_var: Some(ew_record(&c.hour_var)),
            calibrators: c
                .calibrators
                .iter()
                .map(|k| avro::Calibrator {
                    short: k.short,
                    dist: ew_record(&k.dist),
                })
                .collect(),
        })),
        DetectorState::Rate(r) => avro::DetectorState::Rate {
            prev: r.prev.map(|s| (s.ts_ms, s.value)),
            velocity: ew_record(&r.velocity),
        },
    }
}

fn detector_from_record(d: avro::DetectorState) -> DetectorState {
    match d {
        avro::DetectorState::Stateless => DetectorState::Threshold,
        avro::DetectorState::Ewma { stats } => DetectorState::Ewma(Ewma {
            stats: ew_from_record(stats),
        }),
        avro::DetectorState::Baseline { buckets } => DetectorState::Baseline(Baseline {
            buckets: buckets
                .into_iter()
                .map(|b| {
                    (
                        b.hour,
                        Moments {
                            n: b.n,
                            mean: b.mean,
                            m2: b.m2,
                        },
                    )
                })
                .collect(),
        }),
        avro::DetectorState::Drift(d) => DetectorState::Drift(Drift {
            hour: d.hour.map(|(h, m)| (h, moments_from_record(m))),
            day: d.day.map(|(h, m)| (h, moments_from_record(m))),
            days: d.days,
            noise: ew_from_record(d.noise),
        }),
        avro::DetectorState::Context(c) => DetectorState::Context(Box::new(Context {
            level: ew_from_record(c.level),
            slots: c.slots.into_iter().map(ew_from_record).collect(),
            low: c.low,
            high: c.high,
            prev_level: c.prev_level,
            transitions: c.transitions,
            prev: c.prev.map(|(ts_ms, value)| Sample { ts_ms, value }),
            velocity: ew_from_record(c.velocity),
            density_recent: c.density_recent,
            density_usual: c.density_usual,
            // A state from before version 5: every slot judges once warm, as it did then.
            profiled: c.profiled.unwrap_or_else(all_profiled),
            hour_var: c.hour_var.map(ew_from_record).unwrap_or_default(),
            calibrators: per_feature(
                c.calibrators
                    .into_iter()
                    .map(|k| Calibrator {
                        short: k.short,
                        dist: ew_from_record(k.dist),
                    })
                    .collect(),
            ),
            ..Context::default()
        })),
        avro::DetectorState::Rate { prev, velocity } => DetectorState::Rate(Rate {
            prev: prev.map(|(ts_ms, value)| Sample { ts_ms, value }),
            velocity: ew_from_record(velocity),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::detection::logic::engine::{AlertEvent, Input};
    use crate::detection::logic::rules::Rule;

    fn rules() -> Vec<Rule> {
        serde_json::from_str(
            r#"[{"id": "hot", "when": {"metric": "temp", "detector": "above", "value": 80}, "hold": {"readings": 50}},
                {"id": "drift", "when": {"metric": "temp", "detector": "baseline", "min_samples": 5}},
                {"id": "ctx", "when": {"metric": "temp", "detector": "context", "learn": 5, "rate": true}},
                {"id": "slow", "when": {"metric": "temp", "detector": "drift"}},
                {"id": "mix", "when": {"any": [{"metric": "vib", "detector": "ewma", "warmup": 5},
                                               {"metric": "vib", "detector": "rate", "max_per_sec": 1}]}}]"#,
        )
        .unwrap()
    }

    fn feed(state: &mut MachineState, from: usize, to: usize) -> Vec<AlertEvent> {
        let rules = rules();
        let mut events = Vec::new();
        for i in from..to {
            let ts = i as i64 * 60_000;
            let temp = if (40..45).contains(&i) {
                95.0
            } else {
                60.0 + (i % 7) as f64 * 0.1
            };
            let vib = if i == 70 {
                9.0
            } else {
                1.0 + (i % 5) as f64 * 0.01
            };
            for (metric, value) in [
                ("temp", temp),
                ("vib", vib),
                ("rpm", 1500.0 + (i % 3) as f64),
            ] {
                let input = Input {
                    metric,
                    sample: Sample { ts_ms: ts, value },
                    offset: Some((0, i as i64)),
                };
                events.extend(state.observe("t", "m", &rules, input));
            }
        }
        events
    }

    #[test]
    fn a_state_restored_from_the_changelog_format_continues_like_the_original() {
        let codec = codec().unwrap();
        let mut original = MachineState::default();
        feed(&mut original, 0, 43);
        // Every kind of state is in it: each detector, a pending rule, a last verdict.
        let json = serde_json::to_value(&original).unwrap().to_string();
        for kind in [
            "Ewma",
            "Baseline",
            "Rate",
            "Context",
            "Drift",
            "Threshold",
            "Pending",
        ] {
            assert!(json.contains(kind), "no {kind} in {json}");
        }
        let bytes = encode(&codec, &original).unwrap();
        assert_eq!(&bytes[..2], &[0xC3, 0x01]);
        let mut restored = decode(&codec, &bytes).unwrap();
        assert_eq!(
            serde_json::to_value(&restored).unwrap(),
            serde_json::to_value(&original).unwrap()
        );
        let (a, b) = (feed(&mut original, 43, 100), feed(&mut restored, 43, 100));
        assert!(!a.is_empty());
        assert_eq!(a, b);
    }

    #[test]
    fn the_json_written_before_the_schema_still_restores() {
        let codec = codec().unwrap();
        let mut original = MachineState::default();
        feed(&mut original, 0, 43);
        let legacy = serde_json::to_vec(&original).unwrap();
        let restored = decode(&codec, &legacy).unwrap();
        assert_eq!(
            encode(&codec, &restored).unwrap(),
            encode(&codec, &original).unwrap()
        );
    }

    #[test]
    fn a_state_of_a_newer_version_is_refused_rather_than_misread() {
        let codec = codec().unwrap();
        let mut record = to_record(&MachineState::default()).unwrap();
        record.version = STATE_VERSION + 1;
        let bytes = record.encode(&codec).unwrap();
        assert!(decode(&codec, &bytes).is_err());
    }
}
