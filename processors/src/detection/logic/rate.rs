//! Rate of change: velocity per second between consecutive readings, correct for irregular spacing; fires
//! above an absolute limit, or outside its own learned band of velocities.

use serde::{Deserialize, Serialize};

use super::stats::EwStats;
use super::{Detector, Sample, Verdict};

/// Settings of the rate-of-change detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RateConfig {
    /// Absolute limit on |velocity| (units per second). When unset, the learned band is used.
    pub max_per_sec: Option<f64>,
    /// Learned band: half-width in standard deviations of the velocity.
    pub band: f64,
    /// Half-life of the learned velocity statistics, in seconds of event time.
    pub half_life_secs: f64,
    /// Velocities to learn from before judging with the band.
    pub warmup: u64,
    /// Smallest velocity standard deviation assumed (units per second).
    pub min_std: f64,
}

impl Default for RateConfig {
    fn default() -> Self {
        Self {
            max_per_sec: None,
            band: 32.0,
            half_life_secs: 24.0 * 3600.0,
            warmup: 30,
            min_std: 1e-9,
        }
    }
}

/// The previous reading and the learned velocity statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub(crate) prev: Option<Sample>,
    pub(crate) velocity: EwStats,
}

impl Detector for Rate {
    type Config = RateConfig;

    fn observe(&mut self, c: &RateConfig, s: Sample) -> Option<Verdict> {
        let prev = match self.prev {
            Some(p) if s.ts_ms > p.ts_ms => p,
            Some(_) => return None, // same or earlier event time: no velocity to speak of
            None => {
                self.prev = Some(s);
                return None;
            }
        };
        self.prev = Some(s);
        let v = (s.value - prev.value) / ((s.ts_ms - prev.ts_ms) as f64 / 1000.0);
        if let Some(max) = c.max_per_sec {
            self.velocity.update(s.ts_ms, v, c.half_life_secs);
            return Some(Verdict::new(v, 0.0, v.abs(), max));
        }
        let warm = self.velocity.n >= c.warmup;
        let std = self.velocity.std(c.min_std);
        let expected = self.velocity.mean;
        let z = (v - expected) / std;
        let clipped = if warm {
            expected + z.clamp(-c.band, c.band) * std
        } else {
            v
        };
        self.velocity.update(s.ts_ms, clipped, c.half_life_secs);
        warm.then(|| Verdict::new(v, expected, z.abs(), c.band))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::detection::logic::testing::{noisy, run};

    #[test]
    fn velocity_accounts_for_irregular_spacing() {
        let c = RateConfig {
            max_per_sec: Some(1.0),
            ..RateConfig::default()
        };
        let mut d = Rate::default();
        assert!(d
            .observe(
                &c,
                Sample {
                    ts_ms: 0,
                    value: 0.0
                }
            )
            .is_none());
        // +10 over 20 s is 0.5/s: fine. +10 over 5 s is 2/s: too fast.
        let slow = d
            .observe(
                &c,
                Sample {
                    ts_ms: 20_000,
                    value: 10.0,
                },
            )
            .unwrap();
        assert_eq!((slow.observed, slow.anomalous), (0.5, false));
        let fast = d
            .observe(
                &c,
                Sample {
                    ts_ms: 25_000,
                    value: 20.0,
                },
            )
            .unwrap();
        assert_eq!((fast.observed, fast.anomalous), (2.0, true));
        assert!(
            d.observe(
                &c,
                Sample {
                    ts_ms: 25_000,
                    value: 99.0
                }
            )
            .is_none(),
            "same instant"
        );
    }

    #[test]
    fn learned_band_catches_a_step_once() {
        let c = RateConfig::default();
        let mut series = noisy(1_000, 20.0, 0.2, 10_000);
        for s in series.iter_mut().skip(600) {
            s.value += 15.0;
        }
        assert_eq!(run(&mut Rate::default(), &c, &series), vec![600]);
    }
}
