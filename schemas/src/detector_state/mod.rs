//! `haltless.detector-state.v1`: the compacted changelog of the detectors' state, one record per machine.
//!
//! These types mirror the Avro records; the detection logic keeps its own types and converts (in
//! `processors/src/detection/processor/state.rs`), so the logic stays free of formats.

use apache_avro::types::Value;
use uuid::Uuid;

use crate::codec::{Codec, WireFormat};
use crate::error::CodecError;
use crate::fields::{shape, Fields};

mod wire;

/// Default name of the changelog topic.
pub const DETECTOR_STATE_TOPIC: &str = "haltless.detector-state.v1";

/// The schema the platform writes today.
pub const SCHEMA: &str = include_str!("../../avro/haltless.detector-state.v1.avsc");

/// Every released version, oldest first (see `avro/README.md`).
pub const HISTORY: &[&str] = &[
    include_str!("../../avro/history/haltless.detector-state.v1/001.avsc"),
    include_str!("../../avro/history/haltless.detector-state.v1/002.avsc"),
    include_str!("../../avro/history/haltless.detector-state.v1/003.avsc"),
    include_str!("../../avro/history/haltless.detector-state.v1/004.avsc"),
    include_str!("../../avro/history/haltless.detector-state.v1/005.avsc"),
];

/// The meaning of the state this code writes (the record's `version` field; see the schema).
pub const STATE_VERSION: i32 = 1;

/// Everything the detectors remember about one machine.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineState {
    /// What the state means: [`STATE_VERSION`] when written by this code.
    pub version: i32,
    /// Per rule and leaf position.
    pub conditions: Vec<ConditionState>,
    /// Per rule.
    pub phases: Vec<RulePhase>,
    /// Newest event time per metric.
    pub newest: Vec<(String, i64)>,
}

/// The state of one condition of one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionState {
    /// The rule.
    pub rule_id: String,
    /// Position among the rule's leaves, depth first.
    pub leaf: u32,
    /// The detector's memory.
    pub detector: DetectorState,
    /// The last verdict.
    pub last: Option<Last>,
}

/// What a detector remembers.
#[derive(Debug, Clone, PartialEq)]
pub enum DetectorState {
    /// Nothing (threshold tests).
    Stateless,
    /// The EWMA detector.
    Ewma {
        /// Its statistics.
        stats: EwStats,
    },
    /// The static baseline: hourly buckets, oldest first.
    Baseline {
        /// The buckets of its window.
        buckets: Vec<HourBucket>,
    },
    /// The rate-of-change detector.
    Rate {
        /// The previous sample (event time ms, value).
        prev: Option<(i64, f64)>,
        /// Statistics of the velocity.
        velocity: EwStats,
    },
    /// The context detector.
    Context(Box<ContextState>),
    /// The drift detector.
    Drift(DriftState),
}

/// What the drift detector remembers.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftState {
    /// The hour being filled: (hour, moments).
    pub hour: Option<(i64, Moments)>,
    /// The day being filled: (day, moments).
    pub day: Option<(i64, Moments)>,
    /// Means of the last whole days, oldest first.
    pub days: Vec<(i64, f64)>,
    /// Average variance within an hour.
    pub noise: EwStats,
}

/// Count, mean and sum of squared deviations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    /// Samples.
    pub n: u64,
    /// Mean.
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
}

/// What the context detector remembers.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextState {
    /// Statistics of the value.
    pub level: EwStats,
    /// Statistics per hourly slot: weekdays' 24, then weekends'.
    pub slots: Vec<EwStats>,
    /// The learned range.
    pub low: f64,
    /// The learned range.
    pub high: f64,
    /// The previous quantised level.
    pub prev_level: Option<u32>,
    /// Transition counts, row by row.
    pub transitions: Vec<f64>,
    /// The previous sample (event time ms, value).
    pub prev: Option<(i64, f64)>,
    /// Statistics of the velocity.
    pub velocity: EwStats,
    /// Per feature: its calibration.
    pub calibrators: Vec<Calibrator>,
    /// Density: the recent share of readings beyond the level's band (0 before version 4 of the schema).
    pub density_recent: f64,
    /// Density: the long-run share (0 before version 4).
    pub density_usual: f64,
    /// Bit `i` set: slot `i` has been seen on an earlier day than its current visit (absent before version 5
    /// of the schema).
    pub profiled: Option<u64>,
    /// A typical hour's variance, learned (absent before version 5).
    pub hour_var: Option<EwStats>,
}

/// One feature's calibration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibrator {
    /// The short average of the raw score.
    pub short: f64,
    /// The learned distribution of the averages.
    pub dist: EwStats,
}

/// Exponentially weighted mean and variance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EwStats {
    /// Mean.
    pub mean: f64,
    /// Variance.
    pub var: f64,
    /// Samples seen.
    pub n: u64,
    /// Event time of the last sample (ms).
    pub last_ts_ms: i64,
}

/// One hour of the baseline's window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HourBucket {
    /// Hours since the Unix epoch.
    pub hour: i64,
    /// Samples.
    pub n: u64,
    /// Mean.
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
}

/// A condition's last verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Last {
    /// Event time of the reading judged (ms).
    pub ts_ms: i64,
    /// Observed value.
    pub observed: f64,
    /// Expected value.
    pub expected: f64,
    /// Score.
    pub score: f64,
    /// Score at which it fires.
    pub limit: f64,
    /// It fired.
    pub anomalous: bool,
    /// (partition, offset) of the reading.
    pub reading: Option<(i32, i64)>,
    /// What decided the verdict (absent in states written before version 3 of the schema).
    pub why: Option<LastWhy>,
}

/// What decided a verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LastWhy {
    /// 0 level, 1 profile, 2 transitions, 3 range, 4 rate, 5 drift, 6 density.
    pub reason: i32,
    /// Per feature of the context detector (level, profile, transitions, range, rate, density), its calibrated
    /// z (`f32::MIN` when not judged, and for the feature a state written before version 4 lacks).
    pub scores: [f64; 6],
    /// The spread around the expectation.
    pub spread: f64,
    /// Transitions: how often the step happened before; drift: the latest whole day's mean.
    pub detail: f64,
    /// Transitions: the level stepped from, to, and the number of levels.
    pub levels: [i32; 3],
}

/// The alert lifecycle of one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RulePhase {
    /// The rule.
    pub rule_id: String,
    /// Where it stands.
    pub phase: Phase,
}

/// Where a rule's alert lifecycle stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// No alert open.
    Idle,
    /// The rule holds, not yet for long enough.
    Pending {
        /// Event time it started to hold (ms).
        since_ms: i64,
        /// Evaluations it has held.
        count: u32,
    },
    /// An alert is open.
    Active {
        /// Its id.
        alert_id: Uuid,
        /// Event time it was raised (ms).
        raised_ms: i64,
        /// Strongest severity ratio reported.
        peak: f64,
        /// Consecutive evaluations with the rule off.
        off: u32,
    },
}

impl MachineState {
    /// A codec for the changelog (single-object encoding: the topic is the platform's own).
    pub fn codec() -> Result<Codec, CodecError> {
        Codec::new(SCHEMA, HISTORY, WireFormat::SingleObject)
    }

    /// Encodes the state (through `serde`, as the changelog is written on the detectors' hot path).
    pub fn encode(&self, codec: &Codec) -> Result<Vec<u8>, CodecError> {
        codec.encode_serde(&wire::MachineState::from(self))
    }

    /// Decodes a state written with any known version of the schema. The `version` field is returned as
    /// written; whether this code understands it is the caller's decision.
    pub fn decode(codec: &Codec, bytes: &[u8]) -> Result<Self, CodecError> {
        let mut f = Fields::of(codec.decode_value(bytes)?)?;
        let version = f.int("version")?;
        let conditions = f
            .array("conditions")?
            .into_iter()
            .map(ConditionState::from_value)
            .collect::<Result<_, _>>()?;
        let phases = f
            .array("phases")?
            .into_iter()
            .map(RulePhase::from_value)
            .collect::<Result<_, _>>()?;
        let newest = f
            .array("newest")?
            .into_iter()
            .map(|v| {
                let mut m = Fields::of(v)?;
                Ok((m.string("metric")?, m.long("ts_ms")?))
            })
            .collect::<Result<_, CodecError>>()?;
        Ok(Self {
            version,
            conditions,
            phases,
            newest,
        })
    }
}

impl EwStats {
    fn from_value(value: Value) -> Result<Self, CodecError> {
        let mut f = Fields::of(value)?;
        Ok(Self {
            mean: f.double("mean")?,
            var: f.double("var")?,
            n: f.unsigned("n")?,
            last_ts_ms: f.long("last_ts_ms")?,
        })
    }
}

impl ConditionState {
    fn from_value(value: Value) -> Result<Self, CodecError> {
        let mut f = Fields::of(value)?;
        let rule_id = f.string("rule_id")?;
        let leaf = f.int("leaf")?;
        let leaf = u32::try_from(leaf)
            .map_err(|_| CodecError::Shape(format!("negative leaf position {leaf}")))?;
        let mut detectors = Vec::new();
        if let Some(v) = f.optional("ewma")? {
            let mut e = Fields::of(v)?;
            detectors.push(DetectorState::Ewma {
                stats: EwStats::from_value(e.take("stats")?)?,
            });
        }
        if let Some(v) = f.optional("baseline")? {
            let buckets = Fields::of(v)?
                .array("buckets")?
                .into_iter()
                .map(|b| {
                    let mut b = Fields::of(b)?;
                    Ok(HourBucket {
                        hour: b.long("hour")?,
                        n: b.unsigned("n")?,
                        mean: b.double("mean")?,
                        m2: b.double("m2")?,
                    })
                })
                .collect::<Result<_, CodecError>>()?;
            detectors.push(DetectorState::Baseline { buckets });
        }
        if let Some(v) = f.optional("rate")? {
            let mut r = Fields::of(v)?;
            let prev = match r.optional("prev")? {
                None => None,
                Some(p) => {
                    let mut p = Fields::of(p)?;
                    Some((p.long("ts_ms")?, p.double("value")?))
                }
            };
            detectors.push(DetectorState::Rate {
                prev,
                velocity: EwStats::from_value(r.take("velocity")?)?,
            });
        }
        if let Some(v) = f.optional("drift")? {
            detectors.push(DetectorState::Drift(DriftState::from_value(v)?));
        }
        if let Some(v) = f.optional("context")? {
            detectors.push(DetectorState::Context(Box::new(ContextState::from_value(
                v,
            )?)));
        }
        let detector = match <[DetectorState; 1]>::try_from(detectors) {
            Ok([d]) => d,
            Err(none) if none.is_empty() => DetectorState::Stateless,
            Err(_) => {
                return Err(CodecError::Shape(format!(
                    "condition {rule_id}/{leaf}: more than one detector state"
                )))
            }
        };
        let last = match f.optional("last")? {
            None => None,
            Some(v) => {
                let mut l = Fields::of(v)?;
                let reading = match l.optional("reading")? {
                    None => None,
                    Some(r) => {
                        let mut r = Fields::of(r)?;
                        Some((r.int("partition")?, r.long("offset")?))
                    }
                };
                let why = match l.optional("why")? {
                    None => None,
                    Some(w) => {
                        let mut w = Fields::of(w)?;
                        let doubles = |items: Vec<Value>| -> Result<Vec<f64>, CodecError> {
                            items
                                .into_iter()
                                .map(|v| match v {
                                    Value::Double(x) => Ok(x),
                                    other => Err(shape("scores", &other)),
                                })
                                .collect()
                        };
                        let ints = |items: Vec<Value>| -> Result<Vec<i32>, CodecError> {
                            items
                                .into_iter()
                                .map(|v| match v {
                                    Value::Int(x) => Ok(x),
                                    other => Err(shape("levels", &other)),
                                })
                                .collect()
                        };
                        Some(LastWhy {
                            reason: w.int("reason")?,
                            scores: {
                                let given = doubles(w.array("scores")?)?;
                                if given.len() > 6 {
                                    return Err(CodecError::Shape(
                                        "why.scores: more than 6".into(),
                                    ));
                                }
                                let mut scores = [f64::from(f32::MIN); 6];
                                scores[..given.len()].copy_from_slice(&given);
                                scores
                            },
                            spread: w.double("spread")?,
                            detail: w.double("detail")?,
                            levels: ints(w.array("levels")?)?
                                .try_into()
                                .map_err(|_| CodecError::Shape("why.levels: not 3".into()))?,
                        })
                    }
                };
                Some(Last {
                    why,
                    ts_ms: l.long("ts_ms")?,
                    observed: l.double("observed")?,
                    expected: l.double("expected")?,
                    score: l.double("score")?,
                    limit: l.double("limit")?,
                    anomalous: l.boolean("anomalous")?,
                    reading,
                })
            }
        };
        Ok(Self {
            rule_id,
            leaf,
            detector,
            last,
        })
    }
}

impl DriftState {
    fn from_value(value: Value) -> Result<Self, CodecError> {
        let mut f = Fields::of(value)?;
        let bucket = |v: Option<Value>, key: &str| -> Result<Option<(i64, Moments)>, CodecError> {
            let Some(v) = v else { return Ok(None) };
            let mut b = Fields::of(v)?;
            Ok(Some((
                b.long(key)?,
                Moments {
                    n: b.unsigned("n")?,
                    mean: b.double("mean")?,
                    m2: b.double("m2")?,
                },
            )))
        };
        let hour = bucket(f.optional("hour")?, "hour")?;
        let day = bucket(f.optional("day")?, "day")?;
        Ok(Self {
            hour,
            day,
            days: f
                .array("days")?
                .into_iter()
                .map(|v| {
                    let mut d = Fields::of(v)?;
                    Ok((d.long("day")?, d.double("mean")?))
                })
                .collect::<Result<_, CodecError>>()?,
            noise: EwStats::from_value(f.take("noise")?)?,
        })
    }
}

impl ContextState {
    fn from_value(value: Value) -> Result<Self, CodecError> {
        let mut f = Fields::of(value)?;
        let prev_level = match f.optional("prev_level")? {
            None => None,
            Some(Value::Long(l)) => {
                Some(u32::try_from(l).map_err(|_| CodecError::Shape(format!("level {l}")))?)
            }
            Some(other) => return Err(shape("prev_level", &other)),
        };
        let prev = match f.optional("prev")? {
            None => None,
            Some(p) => {
                let mut p = Fields::of(p)?;
                Some((p.long("ts_ms")?, p.double("value")?))
            }
        };
        let mut zero_if_absent = |name: &str| match f.optional(name)? {
            None => Ok(0.0),
            Some(Value::Double(x)) => Ok(x),
            Some(other) => Err(shape(name, &other)),
        };
        let density_recent = zero_if_absent("density_recent")?;
        let density_usual = zero_if_absent("density_usual")?;
        let profiled = match f.optional("profiled")? {
            None => None,
            // The bits of a mask, stored in Avro's signed long.
            Some(Value::Long(bits)) => Some(bits as u64),
            Some(other) => return Err(shape("profiled", &other)),
        };
        let hour_var = f
            .optional("hour_var")?
            .map(EwStats::from_value)
            .transpose()?;
        Ok(Self {
            level: EwStats::from_value(f.take("level")?)?,
            slots: f
                .array("slots")?
                .into_iter()
                .map(EwStats::from_value)
                .collect::<Result<_, _>>()?,
            low: f.double("low")?,
            high: f.double("high")?,
            prev_level,
            transitions: f
                .array("transitions")?
                .into_iter()
                .map(|v| match v {
                    Value::Double(x) => Ok(x),
                    other => Err(shape("a transition count", &other)),
                })
                .collect::<Result<_, _>>()?,
            prev,
            velocity: EwStats::from_value(f.take("velocity")?)?,
            density_recent,
            density_usual,
            profiled,
            hour_var,
            calibrators: f
                .array("calibrators")?
                .into_iter()
                .map(|v| {
                    let mut c = Fields::of(v)?;
                    Ok(Calibrator {
                        short: c.double("short")?,
                        dist: EwStats {
                            mean: c.double("mean")?,
                            var: c.double("var")?,
                            n: c.unsigned("n")?,
                            last_ts_ms: c.long("last_ts_ms")?,
                        },
                    })
                })
                .collect::<Result<_, CodecError>>()?,
        })
    }
}

impl RulePhase {
    fn from_value(value: Value) -> Result<Self, CodecError> {
        let mut f = Fields::of(value)?;
        let rule_id = f.string("rule_id")?;
        let phase = match (f.optional("pending")?, f.optional("active")?) {
            (None, None) => Phase::Idle,
            (Some(p), None) => {
                let mut p = Fields::of(p)?;
                Phase::Pending {
                    since_ms: p.long("since_ms")?,
                    count: p.u32("count")?,
                }
            }
            (None, Some(a)) => {
                let mut a = Fields::of(a)?;
                Phase::Active {
                    alert_id: a.uuid("alert_id")?,
                    raised_ms: a.long("raised_ms")?,
                    peak: a.double("peak")?,
                    off: a.u32("off")?,
                }
            }
            (Some(_), Some(other)) => return Err(shape("pending and active", &other)),
        };
        Ok(Self { rule_id, phase })
    }
}

/// A count as an Avro long: counts never reach 2^63, and were one to, the reinterpretation would be
/// undone on reading.
fn long(n: u64) -> i64 {
    n as i64
}

impl<'a> From<&'a MachineState> for wire::MachineState<'a> {
    fn from(s: &'a MachineState) -> Self {
        Self {
            version: s.version,
            conditions: s.conditions.iter().map(wire_condition).collect(),
            phases: s.phases.iter().map(wire_phase).collect(),
            newest: s
                .newest
                .iter()
                .map(|(metric, ts_ms)| wire::MetricTime {
                    metric,
                    ts_ms: *ts_ms,
                })
                .collect(),
        }
    }
}

macro_rules! wire_stats {
    ($record:ident, $s:expr) => {
        wire::$record {
            mean: $s.mean,
            var: $s.var,
            n: long($s.n),
            last_ts_ms: $s.last_ts_ms,
        }
    };
}

fn wire_condition(c: &ConditionState) -> wire::ConditionState<'_> {
    let (mut ewma, mut baseline, mut rate) = (None, None, None);
    let (mut context, mut drift) = (None, None);
    match &c.detector {
        DetectorState::Stateless => {}
        DetectorState::Ewma { stats } => {
            ewma = Some(wire::EwmaState {
                stats: wire::EwStats {
                    mean: stats.mean,
                    var: stats.var,
                    n: long(stats.n),
                    last_ts_ms: stats.last_ts_ms,
                },
            })
        }
        DetectorState::Baseline { buckets } => {
            baseline = Some(wire::BaselineState {
                buckets: buckets
                    .iter()
                    .map(|b| wire::HourBucket {
                        hour: b.hour,
                        n: long(b.n),
                        mean: b.mean,
                        m2: b.m2,
                    })
                    .collect(),
            })
        }
        DetectorState::Rate { prev, velocity } => {
            rate = Some(wire::RateState {
                prev: prev.map(|(ts_ms, value)| wire::Sample { ts_ms, value }),
                velocity: wire::VelocityStats {
                    mean: velocity.mean,
                    var: velocity.var,
                    n: long(velocity.n),
                    last_ts_ms: velocity.last_ts_ms,
                },
            })
        }
        DetectorState::Context(c) => context = Some(wire_context(c)),
        DetectorState::Drift(d) => {
            drift = Some(wire::DriftState {
                hour: d.hour.map(|(hour, m)| wire::DriftHour {
                    hour,
                    n: long(m.n),
                    mean: m.mean,
                    m2: m.m2,
                }),
                day: d.day.map(|(day, m)| wire::DriftDay {
                    day,
                    n: long(m.n),
                    mean: m.mean,
                    m2: m.m2,
                }),
                days: d
                    .days
                    .iter()
                    .map(|(day, mean)| wire::DayMean {
                        day: *day,
                        mean: *mean,
                    })
                    .collect(),
                noise: wire_stats!(DriftNoise, d.noise),
            })
        }
    }
    wire::ConditionState {
        rule_id: &c.rule_id,
        // Leaf positions count the conditions of one rule: far below 2^31.
        leaf: i32::try_from(c.leaf).unwrap_or(i32::MAX),
        ewma,
        baseline,
        rate,
        last: c.last.map(|l| wire::Last {
            ts_ms: l.ts_ms,
            observed: l.observed,
            expected: l.expected,
            score: l.score,
            limit: l.limit,
            anomalous: l.anomalous,
            reading: l
                .reading
                .map(|(partition, offset)| wire::ReadingRef { partition, offset }),
            why: l.why.as_ref().map(|w| wire::Why {
                reason: w.reason,
                scores: w.scores.to_vec(),
                spread: w.spread,
                detail: w.detail,
                levels: w.levels.to_vec(),
            }),
        }),
        context,
        drift,
    }
}

fn wire_context(c: &ContextState) -> wire::ContextState<'_> {
    wire::ContextState {
        level: wire_stats!(LevelStats, c.level),
        slots: c.slots.iter().map(|s| wire_stats!(SlotStats, s)).collect(),
        low: c.low,
        high: c.high,
        prev_level: c.prev_level.map(i64::from),
        transitions: &c.transitions,
        prev: c
            .prev
            .map(|(ts_ms, value)| wire::ContextSample { ts_ms, value }),
        velocity: wire_stats!(ContextVelocityStats, c.velocity),
        density_recent: Some(c.density_recent),
        density_usual: Some(c.density_usual),
        profiled: c.profiled.map(|bits| bits as i64),
        hour_var: c.hour_var.as_ref().map(|h| wire_stats!(HourVarStats, h)),
        calibrators: c
            .calibrators
            .iter()
            .map(|k| wire::Calibrator {
                short: k.short,
                mean: k.dist.mean,
                var: k.dist.var,
                n: long(k.dist.n),
                last_ts_ms: k.dist.last_ts_ms,
            })
            .collect(),
    }
}

fn wire_phase(p: &RulePhase) -> wire::RulePhase<'_> {
    let (pending, active) = match &p.phase {
        Phase::Idle => (None, None),
        Phase::Pending { since_ms, count } => (
            Some(wire::Pending {
                since_ms: *since_ms,
                count: (*count).into(),
            }),
            None,
        ),
        Phase::Active {
            alert_id,
            raised_ms,
            peak,
            off,
        } => (
            None,
            Some(wire::Active {
                alert_id: alert_id.to_string(),
                raised_ms: *raised_ms,
                peak: *peak,
                off: (*off).into(),
            }),
        ),
    };
    wire::RulePhase {
        rule_id: &p.rule_id,
        pending,
        active,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn stats(mean: f64) -> EwStats {
        EwStats {
            mean,
            var: 0.25,
            n: 60,
            last_ts_ms: 1_795_943_352_599,
        }
    }

    fn condition(rule: &str, leaf: u32, detector: DetectorState) -> ConditionState {
        ConditionState {
            rule_id: rule.into(),
            leaf,
            detector,
            last: Some(Last {
                ts_ms: 1_795_943_352_599,
                observed: 95.179,
                expected: 10.0,
                score: -95.179,
                limit: -10.0,
                anomalous: false,
                reading: Some((1, 5)),
                why: Some(LastWhy {
                    reason: 2,
                    scores: [
                        1.5,
                        f64::from(f32::MIN),
                        7.25,
                        0.0,
                        f64::from(f32::MIN),
                        2.5,
                    ],
                    spread: 0.5,
                    detail: 1e-4,
                    levels: [5, 2, 8],
                }),
            }),
        }
    }

    fn sample() -> MachineState {
        MachineState {
            version: STATE_VERSION,
            conditions: vec![
                condition("cold", 0, DetectorState::Stateless),
                condition("vib", 0, DetectorState::Ewma { stats: stats(1.5) }),
                condition(
                    "drift",
                    0,
                    DetectorState::Baseline {
                        buckets: vec![
                            HourBucket {
                                hour: 498_873,
                                n: 60,
                                mean: 66.4,
                                m2: 11_005.2,
                            },
                            HourBucket {
                                hour: 498_874,
                                n: 2,
                                mean: 60.0,
                                m2: 0.5,
                            },
                        ],
                    },
                ),
                condition(
                    "jump",
                    2,
                    DetectorState::Rate {
                        prev: Some((1_795_943_352_599, 104.5)),
                        velocity: stats(-0.066),
                    },
                ),
                condition(
                    "default:context:temp",
                    0,
                    DetectorState::Context(Box::new(ContextState {
                        level: stats(60.0),
                        slots: vec![stats(59.5), stats(61.0)],
                        low: 55.0,
                        high: 66.5,
                        prev_level: Some(3),
                        transitions: vec![0.5, 1.25, 0.0, 7.0],
                        prev: Some((1_795_943_352_599, 60.5)),
                        velocity: stats(0.0),
                        calibrators: vec![Calibrator {
                            short: 0.8,
                            dist: stats(0.75),
                        }],
                        density_recent: 0.125,
                        density_usual: 0.01,
                        profiled: Some(0b1010),
                        hour_var: Some(stats(4.0)),
                    })),
                ),
                condition(
                    "default:context:temp",
                    1,
                    DetectorState::Drift(DriftState {
                        hour: Some((
                            498_874,
                            Moments {
                                n: 3,
                                mean: 60.1,
                                m2: 0.02,
                            },
                        )),
                        day: None,
                        days: vec![(20_786, 59.5), (20_787, 60.0)],
                        noise: stats(0.01),
                    }),
                ),
                ConditionState {
                    rule_id: "fresh".into(),
                    leaf: 1,
                    detector: DetectorState::Rate {
                        prev: None,
                        velocity: stats(0.0),
                    },
                    last: None,
                },
            ],
            phases: vec![
                RulePhase {
                    rule_id: "cold".into(),
                    phase: Phase::Idle,
                },
                RulePhase {
                    rule_id: "drift".into(),
                    phase: Phase::Pending {
                        since_ms: 1_795_943_344_599,
                        count: 2,
                    },
                },
                RulePhase {
                    rule_id: "hot".into(),
                    phase: Phase::Active {
                        alert_id: Uuid::from_u128(9),
                        raised_ms: 1_795_943_343_599,
                        peak: f64::INFINITY,
                        off: 1,
                    },
                },
            ],
            newest: vec![("temp".into(), 1_795_943_352_599), ("vib".into(), i64::MIN)],
        }
    }

    #[test]
    fn round_trips_every_detector_and_phase() {
        let codec = MachineState::codec().unwrap();
        let bytes = sample().encode(&codec).unwrap();
        assert_eq!(&bytes[..2], &[0xC3, 0x01]);
        assert_eq!(MachineState::decode(&codec, &bytes).unwrap(), sample());
    }

    /// A context detector's state written with version 3 (before the density feature) restores with the
    /// density's shares at 0, and the scores it has.
    #[test]
    fn a_state_of_version_3_restores_without_the_density() {
        let v3 = Codec::new(HISTORY[2], &[], WireFormat::SingleObject).unwrap();
        let mut old = sample();
        for c in &mut old.conditions {
            if let Some(why) = c.last.as_mut().and_then(|l| l.why.as_mut()) {
                why.scores[5] = f64::from(f32::MIN);
            }
        }
        // The state as version 3 wrote it: the same datum without the fields versions 4 and 5 added.
        let now = MachineState::codec().unwrap();
        let value = now.decode_value(&old.encode(&now).unwrap()).unwrap();
        let bytes = v3
            .encode_value(drop_fields(value, &|n| {
                n.starts_with("density_") || n == "profiled" || n == "hour_var"
            }))
            .unwrap();
        let restored = MachineState::decode(&MachineState::codec().unwrap(), &bytes).unwrap();
        let mut want = old.clone();
        for c in &mut want.conditions {
            if let DetectorState::Context(k) = &mut c.detector {
                k.density_recent = 0.0;
                k.density_usual = 0.0;
                k.profiled = None;
                k.hour_var = None;
            }
        }
        assert_ne!(
            want, old,
            "the sample has a context detector with a density"
        );
        assert_eq!(restored, want);
    }

    /// The datum without the record fields `drop` names, at every depth: what an older schema wrote.
    fn drop_fields(v: Value, drop: &dyn Fn(&str) -> bool) -> Value {
        match v {
            Value::Record(fields) => Value::Record(
                fields
                    .into_iter()
                    .filter(|(n, _)| !drop(n))
                    .map(|(n, v)| (n, drop_fields(v, drop)))
                    .collect(),
            ),
            Value::Union(i, inner) => Value::Union(i, Box::new(drop_fields(*inner, drop))),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| drop_fields(v, drop)).collect())
            }
            other => other,
        }
    }

    /// A context detector's state written with version 4 (before the profile's days) restores with the
    /// slots' mask absent, and the rest as it was.
    #[test]
    fn a_state_of_version_4_restores_without_the_profiles_days() {
        let v4 = Codec::new(HISTORY[3], &[], WireFormat::SingleObject).unwrap();
        let old = sample();
        let now = MachineState::codec().unwrap();
        let value = now.decode_value(&old.encode(&now).unwrap()).unwrap();
        let bytes = v4
            .encode_value(drop_fields(value, &|n| n == "profiled" || n == "hour_var"))
            .unwrap();
        let restored = MachineState::decode(&now, &bytes).unwrap();
        let mut want = old.clone();
        for c in &mut want.conditions {
            if let DetectorState::Context(k) = &mut c.detector {
                k.profiled = None;
                k.hour_var = None;
            }
        }
        assert_ne!(want, old, "the sample has a context detector with a mask");
        assert_eq!(restored, want);
    }

    /// What the schema's documentation promises: a new detector is a new optional field, and a state
    /// written before it existed still restores.
    #[test]
    fn a_new_detector_reads_states_written_before_it() {
        let grown = SCHEMA.replacen(
            r#"{"name": "context", "type": ["null", {"#,
            r#"{"name": "cusum", "type": ["null", {"type": "record", "name": "CusumState", "fields": [
                {"name": "high", "type": "double"}, {"name": "low", "type": "double"}]}], "default": null},
               {"name": "context", "type": ["null", {"#,
            1,
        );
        assert_ne!(grown, SCHEMA);
        crate::compat::check_backward(SCHEMA, &grown).unwrap();
        let old = MachineState::codec().unwrap();
        let new = Codec::new(&grown, &[SCHEMA], WireFormat::SingleObject).unwrap();
        let bytes = sample().encode(&old).unwrap();
        assert_eq!(MachineState::decode(&new, &bytes).unwrap(), sample());
    }
}
