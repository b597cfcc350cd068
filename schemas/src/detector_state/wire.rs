//! The changelog's records as `serde` types shaped like the schema (fields in schema order, structs named
//! like their records), for [`crate::codec::Codec::encode_serde`]; built from the mirror types in
//! `super`.

use serde::Serialize;

#[derive(Serialize)]
pub(super) struct MachineState<'a> {
    pub(super) version: i32,
    pub(super) conditions: Vec<ConditionState<'a>>,
    pub(super) phases: Vec<RulePhase<'a>>,
    pub(super) newest: Vec<MetricTime<'a>>,
}

#[derive(Serialize)]
pub(super) struct ConditionState<'a> {
    pub(super) rule_id: &'a str,
    pub(super) leaf: i32,
    pub(super) ewma: Option<EwmaState>,
    pub(super) baseline: Option<BaselineState>,
    pub(super) rate: Option<RateState>,
    pub(super) last: Option<Last>,
    pub(super) context: Option<ContextState<'a>>,
    pub(super) drift: Option<DriftState>,
}

#[derive(Serialize)]
pub(super) struct DriftState {
    pub(super) hour: Option<DriftHour>,
    pub(super) day: Option<DriftDay>,
    pub(super) days: Vec<DayMean>,
    pub(super) noise: DriftNoise,
}

#[derive(Serialize)]
pub(super) struct DriftHour {
    pub(super) hour: i64,
    pub(super) n: i64,
    pub(super) mean: f64,
    pub(super) m2: f64,
}

#[derive(Serialize)]
pub(super) struct DriftDay {
    pub(super) day: i64,
    pub(super) n: i64,
    pub(super) mean: f64,
    pub(super) m2: f64,
}

#[derive(Serialize)]
pub(super) struct DayMean {
    pub(super) day: i64,
    pub(super) mean: f64,
}

#[derive(Serialize)]
pub(super) struct DriftNoise {
    pub(super) mean: f64,
    pub(super) var: f64,
    pub(super) n: i64,
    pub(super) last_ts_ms: i64,
}

#[derive(Serialize)]
pub(super) struct ContextState<'a> {
    pub(super) level: LevelStats,
    pub(super) slots: Vec<SlotStats>,
    pub(super) low: f64,
    pub(super) high: f64,
    pub(super) prev_level: Option<i64>,
    pub(super) transitions: &'a [f64],
    pub(super) prev: Option<ContextSample>,
    pub(super) velocity: ContextVelocityStats,
    pub(super) calibrators: Vec<Calibrator>,
    pub(super) density_recent: Option<f64>,
    pub(super) density_usual: Option<f64>,
    pub(super) profiled: Option<i64>,
    pub(super) hour_var: Option<HourVarStats>,
}

#[derive(Serialize)]
pub(super) struct Calibrator {
    pub(super) short: f64,
    pub(super) mean: f64,
    pub(super) var: f64,
    pub(super) n: i64,
    pub(super) last_ts_ms: i64,
}

#[derive(Serialize)]
pub(super) struct EwmaState {
    pub(super) stats: EwStats,
}

#[derive(Serialize)]
pub(super) struct EwStats {
    pub(super) mean: f64,
    pub(super) var: f64,
    pub(super) n: i64,
    pub(super) last_ts_ms: i64,
}

#[derive(Serialize)]
pub(super) struct BaselineState {
    pub(super) buckets: Vec<HourBucket>,
}

#[derive(Serialize)]
pub(super) struct HourBucket {
    pub(super) hour: i64,
    pub(super) n: i64,
    pub(super) mean: f64,
    pub(super) m2: f64,
}

#[derive(Serialize)]
pub(super) struct RateState {
    pub(super) prev: Option<Sample>,
    pub(super) velocity: VelocityStats,
}

#[derive(Serialize)]
pub(super) struct Sample {
    pub(super) ts_ms: i64,
    pub(super) value: f64,
}

#[derive(Serialize)]
pub(super) struct VelocityStats {
    pub(super) mean: f64,
    pub(super) var: f64,
    pub(super) n: i64,
    pub(super) last_ts_ms: i64,
}

#[derive(Serialize)]
pub(super) struct Last {
    pub(super) ts_ms: i64,
    pub(super) observed: f64,
    pub(super) expected: f64,
    pub(super) score: f64,
    pub(super) limit: f64,
    pub(super) anomalous: bool,
    pub(super) reading: Option<ReadingRef>,
    pub(super) why: Option<Why>,
}

#[derive(Serialize)]
pub(super) struct Why {
    pub(super) reason: i32,
    pub(super) scores: Vec<f64>,
    pub(super) spread: f64,
    pub(super) detail: f64,
    pub(super) levels: Vec<i32>,
}

#[derive(Serialize)]
pub(super) struct ReadingRef {
    pub(super) partition: i32,
    pub(super) offset: i64,
}

#[derive(Serialize)]
pub(super) struct RulePhase<'a> {
    pub(super) rule_id: &'a str,
    pub(super) pending: Option<Pending>,
    pub(super) active: Option<Active>,
}

#[derive(Serialize)]
pub(super) struct Pending {
    pub(super) since_ms: i64,
    pub(super) count: i64,
}

#[derive(Serialize)]
pub(super) struct Active {
    pub(super) alert_id: String,
    pub(super) raised_ms: i64,
    pub(super) peak: f64,
    pub(super) off: i64,
}

#[derive(Serialize)]
pub(super) struct MetricTime<'a> {
    pub(super) metric: &'a str,
    pub(super) ts_ms: i64,
}

#[derive(Serialize)]
pub(super) struct LevelStats {
    pub(super) mean: f64,
    pub(super) var: f64,
    pub(super) n: i64,
    pub(super) last_ts_ms: i64,
}

#[derive(Serialize)]
pub(super) struct SlotStats {
    pub(super) mean: f64,
    pub(super) var: f64,
    pub(super) n: i64,
    pub(super) last_ts_ms: i64,
}

#[derive(Serialize)]
pub(super) struct HourVarStats {
    pub(super) mean: f64,
    pub(super) var: f64,
    pub(super) n: i64,
    pub(super) last_ts_ms: i64,
}

#[derive(Serialize)]
pub(super) struct ContextVelocityStats {
    pub(super) mean: f64,
    pub(super) var: f64,
    pub(super) n: i64,
    pub(super) last_ts_ms: i64,
}

#[derive(Serialize)]
pub(super) struct ContextSample {
    pub(super) ts_ms: i64,
    pub(super) value: f64,
}
