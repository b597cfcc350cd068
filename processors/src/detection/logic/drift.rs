//! Drift: a slow degradation, which adaptive detectors learn as the new normal. The long-run level is the
//! mean of each whole day of event time (a daily pattern cancels out in it); the noise is the spread within
//! hours (a daily pattern barely enters it). The detector fires while each of the last `days` daily means
//! moved the same way as the one before by at least `min_slope` noise standard deviations, and stays on as
//! long as that goes on: one alert for a drift, open until it stops. A step moves at most two daily means
//! and does not fire (the context detector reports steps). O(1) per reading, fixed-size state.

use serde::{Deserialize, Serialize};

use super::stats::{EwStats, Moments};
use super::{Detector, Sample, Verdict, Why, DRIFT_REASON, FEATURE_COUNT, NOT_JUDGED};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// The most daily means kept.
pub const MAX_DAYS: usize = 8;

/// Settings of the drift detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DriftConfig {
    /// Consecutive day-to-day moves in one direction needed (2 to 7).
    pub days: u32,
    /// Smallest move per day that counts, in standard deviations of the noise.
    pub min_slope: f64,
    /// Smallest noise standard deviation assumed, relative to the level's magnitude.
    pub min_rel_std: f64,
    /// Smallest noise standard deviation assumed, absolute.
    pub min_std: f64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            days: 3,
            min_slope: 0.25,
            min_rel_std: 1e-4,
            min_std: 1e-9,
        }
    }
}

/// The drift detector's state for one series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// The hour being filled: (hours since the epoch, its moments).
    pub(crate) hour: Option<(i64, Moments)>,
    /// The day being filled: (days since the epoch, its moments).
    pub(crate) day: Option<(i64, Moments)>,
    /// Means of the last whole days, oldest first: (day, mean).
    pub(crate) days: Vec<(i64, f64)>,
    /// Average variance within an hour.
    pub(crate) noise: EwStats,
}

impl Drift {
    /// Closes the hour and the day that `ts_ms` has left behind.
    fn roll(&mut self, ts_ms: i64) {
        let (hour, day) = (ts_ms.div_euclid(HOUR_MS), ts_ms.div_euclid(DAY_MS));
        if let Some((h, m)) = self.hour {
            if h < hour {
                if m.n >= 2 {
                    // The average variance of about the last week of hours.
                    let n = self.noise.n.min(167) as f64;
                    self.noise.mean += (m.std().powi(2) - self.noise.mean) / (n + 1.0);
                    self.noise.n += 1;
                    self.noise.last_ts_ms = h;
                }
                self.hour = None;
            }
        }
        if let Some((d, m)) = self.day {
            if d < day {
                if m.n > 0 && m.mean.is_finite() {
                    if self.days.last().is_some_and(|(last, _)| *last != d - 1) {
                        self.days.clear(); // a gap: start the run over
                    }
                    self.days.push((d, m.mean));
                    if self.days.len() > MAX_DAYS {
                        self.days.remove(0);
                    }
                }
                self.day = None;
            }
        }
    }
}

impl Detector for Drift {
    type Config = DriftConfig;

    fn observe(&mut self, c: &DriftConfig, s: Sample) -> Option<Verdict> {
        if !s.value.is_finite() {
            return None;
        }
        // Most readings fall in the hour being filled (so in its day too): nothing to close.
        if let (Some((h, hour)), Some((_, day))) = (self.hour.as_mut(), self.day.as_mut()) {
            if (0..HOUR_MS).contains(&s.ts_ms.wrapping_sub(h.wrapping_mul(HOUR_MS))) {
                hour.push(s.value);
                day.push(s.value);
                return self.verdict(c, s.value);
            }
        }
        let (hour, day) = (s.ts_ms.div_euclid(HOUR_MS), s.ts_ms.div_euclid(DAY_MS));
        // A reading from an hour already closed is learnt by nothing: the daily means are fixed.
        if self.hour.is_some_and(|(h, _)| hour < h) || self.day.is_some_and(|(d, _)| day < d) {
            return self.verdict(c, s.value);
        }
        self.roll(s.ts_ms);
        self.hour
            .get_or_insert((hour, Moments::default()))
            .1
            .push(s.value);
        self.day
            .get_or_insert((day, Moments::default()))
            .1
            .push(s.value);
        self.verdict(c, s.value)
    }
}

impl Drift {
    fn verdict(&self, c: &DriftConfig, value: f64) -> Option<Verdict> {
        let need = (c.days.clamp(2, MAX_DAYS as u32 - 1) + 1) as usize;
        if self.noise.n == 0 || self.days.len() < need {
            return None;
        }
        let recent = &self.days[self.days.len() - need..];
        let level = recent[need - 1].1;
        let floor = c.min_std.max(c.min_rel_std * level.abs());
        let sigma = self.noise.mean.max(0.0).sqrt().max(floor);
        let (mut up, mut down, mut weakest) = (true, true, f64::INFINITY);
        for w in recent.windows(2) {
            let m = (w[1].1 - w[0].1) / sigma;
            up &= m > 0.0;
            down &= m < 0.0;
            weakest = weakest.min(m.abs());
        }
        // The weakest move of a run in one direction, in noise standard deviations per day.
        let score = if up || down { weakest } else { 0.0 };
        let score = if score.is_finite() { score } else { 0.0 };
        let expected = recent[0].1;
        let why = Why {
            reason: DRIFT_REASON,
            scores: [NOT_JUDGED; FEATURE_COUNT],
            spread: sigma,
            detail: if level.is_finite() { level } else { 0.0 },
            levels: [0; 3],
        };
        Some(
            Verdict::new(
                value,
                if expected.is_finite() { expected } else { 0.0 },
                score,
                c.min_slope,
            )
            .because(why),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_scores_without_panics_infinities_or_nan() {
        let c = DriftConfig::default();
        type Case = (&'static str, i64, fn(i64) -> f64);
        let cases: [Case; 5] = [
            ("constant", 300_000, |_| 5.0),
            ("huge", 300_000, |i| {
                if i % 2 == 0 {
                    f64::MAX
                } else {
                    -f64::MAX
                }
            }),
            ("sub-normal", 300_000, |i| 1e-310 * (i % 7) as f64),
            ("months apart", 60 * 86_400_000, |i| i as f64),
            ("backwards", -300_000, |i| i as f64),
        ];
        for (name, step, f) in cases {
            let mut d = Drift::default();
            for i in 0..5_000 {
                let s = Sample {
                    ts_ms: 1_793_000_000_000 + i * step,
                    value: f(i),
                };
                if let Some(v) = d.observe(&c, s) {
                    assert!(
                        v.score.is_finite() && v.expected.is_finite(),
                        "{name}: {v:?}"
                    );
                }
            }
        }
    }
}
