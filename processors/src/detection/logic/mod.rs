//! Anomaly detection as pure logic: no I/O, bounded state per (tenant, machine, metric), event time only.
//!
//! - [`ewma`], [`baseline`], [`rate`]: the detectors; each turns a [`Sample`] into a [`Verdict`].
//! - [`context`]: the default detector: level, time-of-day profile, transitions and range (rate opt-in),
//!   each calibrated per series by [`calibrate`].
//! - [`drift`]: a slow degradation: daily means moving one way, day after day.
//! - [`stats`]: the running statistics they share.
//! - [`rules`]: rules (conditions on metrics, AND/OR, holds) and the default detectors as rules.
//! - [`settings`]: a tenant's detection settings: its default rules, and what its rules leave to them.
//! - [`lifecycle`]: an alert's raise, updates and resolve, and its stable id.
//! - [`engine`]: one machine's state: its series, the rules in force, and the alerts they raise.

pub mod baseline;
pub mod calibrate;
pub mod context;
pub mod drift;
pub mod engine;
pub mod ewma;
pub mod explain;
pub mod lifecycle;
pub mod rate;
pub mod rules;
pub mod settings;
pub mod stats;

use serde::{Deserialize, Serialize};

/// One reading of one series, as the detectors see it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Event time, ms since the Unix epoch.
    pub ts_ms: i64,
    /// The value.
    pub value: f64,
}

/// What a detector concluded about one sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The observed quantity (the value, or the velocity for rate of change).
    pub observed: f64,
    /// What the detector expected it to be.
    pub expected: f64,
    /// How unusual it is, on the detector's scale (a z-score, or |velocity|).
    pub score: f64,
    /// The score at which the detector fires.
    pub limit: f64,
    /// `score > limit`.
    pub anomalous: bool,
    /// What decided it, for the detectors that explain themselves (context and drift).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<Why>,
}

/// The reasons a verdict can give, in [`Why::reason`] order: the context detector's first five features,
/// drift, then the features added later (so a reason kept in a state of an older version keeps its meaning).
pub const REASONS: [&str; 7] = [
    "level",
    "profile",
    "transitions",
    "range",
    "rate",
    "drift",
    "density",
];

/// The number of the context detector's features ([`context::FEATURES`]).
pub const FEATURE_COUNT: usize = 6;

/// The drift detector's reason, in [`REASONS`].
pub const DRIFT_REASON: u8 = 5;

/// The reason of the context detector's feature `feature` (an index into [`context::FEATURES`]).
pub fn reason_of_feature(feature: usize) -> u8 {
    let reason = if feature < usize::from(DRIFT_REASON) {
        feature
    } else {
        feature + 1
    };
    // At most `FEATURE_COUNT`, 6: it fits.
    reason.min(REASONS.len() - 1) as u8
}

/// The context detector's feature of the reason `reason`, or `None` for drift and unknown reasons.
pub fn feature_of_reason(reason: u8) -> Option<usize> {
    match reason {
        DRIFT_REASON => None,
        r if r < DRIFT_REASON => Some(usize::from(r)),
        r => Some(usize::from(r) - 1).filter(|f| *f < FEATURE_COUNT),
    }
}

/// A feature that was not judged (still learning, or switched off), in [`Why::scores`].
pub const NOT_JUDGED: f32 = f32::MIN;

/// What decided a verdict, in numbers an explanation is written from.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Why {
    /// The deciding reason, an index into [`REASONS`].
    pub reason: u8,
    /// Per feature of the context detector (in [`context::FEATURES`] order): its calibrated z (how many
    /// learned spreads its averaged raw score lies above the usual; [`calibrate::tail_score`] turns it into
    /// `-log10` of a probability), or [`NOT_JUDGED`].
    pub scores: [f32; FEATURE_COUNT],
    /// The spread around the expectation (a standard deviation, or the range's width).
    pub spread: f64,
    /// Reason-specific: for transitions how often the step happened before (a share of the steps from that
    /// level), for drift the latest whole day's mean.
    pub detail: f64,
    /// For transitions: the quantised level stepped from, the level stepped to, and the number of levels.
    pub levels: [u8; 3],
}

impl Verdict {
    /// A verdict that is anomalous when `score` passes `limit`.
    pub fn new(observed: f64, expected: f64, score: f64, limit: f64) -> Self {
        Self {
            observed,
            expected,
            score,
            limit,
            anomalous: score > limit,
            why: None,
        }
    }

    /// The verdict with what decided it.
    pub fn because(self, why: Why) -> Self {
        Self {
            why: Some(why),
            ..self
        }
    }

    /// The score relative to the limit: above 1.0 fires.
    pub fn severity_ratio(&self) -> f64 {
        if self.limit > 0.0 {
            self.score / self.limit
        } else {
            f64::INFINITY
        }
    }
}

/// A detector: bounded state for one series, updated one sample at a time.
pub trait Detector {
    /// Its settings.
    type Config;

    /// Learns from `sample` and judges it; `None` while the detector is still warming up.
    fn observe(&mut self, config: &Self::Config, sample: Sample) -> Option<Verdict>;
}

#[cfg(test)]
pub(crate) mod testing {
    use super::{Detector, Sample};

    /// A deterministic noisy series: `n` samples every `step_ms`, around `level`, noise of std `sigma`.
    pub fn noisy(n: usize, level: f64, sigma: f64, step_ms: i64) -> Vec<Sample> {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..n)
            .map(|i| {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let u = (seed >> 11) as f64 / (1u64 << 53) as f64; // uniform in [0, 1)
                Sample {
                    ts_ms: i as i64 * step_ms,
                    value: level + (u - 0.5) * sigma * 12f64.sqrt(),
                }
            })
            .collect()
    }

    /// Runs `detector` over `series`, returning the indices where it fired.
    pub fn run<D: Detector>(detector: &mut D, config: &D::Config, series: &[Sample]) -> Vec<usize> {
        series
            .iter()
            .enumerate()
            .filter(|(_, s)| detector.observe(config, **s).is_some_and(|v| v.anomalous))
            .map(|(i, _)| i)
            .collect()
    }
}
