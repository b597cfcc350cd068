//! Static baseline: mean and standard deviation of the last 7 days of event time, kept as hourly buckets
//! (at most 169 of them, whatever the sample rate); fires when the z-score passes the limit.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::stats::Moments;
use super::{Detector, Sample, Verdict};

const HOUR_MS: i64 = 3_600_000;

/// Settings of the static baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineConfig {
    /// Length of the sliding window in hours of event time.
    pub window_hours: i64,
    /// Samples in the window before the baseline judges anything.
    pub min_samples: u64,
    /// z-score above which a sample is anomalous.
    pub z_limit: f64,
    /// Smallest standard deviation assumed, relative to the mean's magnitude.
    pub min_rel_std: f64,
    /// Smallest standard deviation assumed, absolute.
    pub min_std: f64,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self {
            window_hours: 7 * 24,
            min_samples: 30,
            z_limit: 4.0,
            min_rel_std: 0.01,
            min_std: 1e-6,
        }
    }
}

/// Hourly buckets of the window, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub(crate) buckets: VecDeque<(i64, Moments)>,
}

impl Baseline {
    fn window(&self) -> Moments {
        self.buckets
            .iter()
            .fold(Moments::default(), |acc, (_, m)| acc.merge(m))
    }

    fn add(&mut self, c: &BaselineConfig, s: Sample) {
        let hour = s.ts_ms.div_euclid(HOUR_MS);
        let newest = self
            .buckets
            .back()
            .map(|(h, _)| *h)
            .unwrap_or(hour)
            .max(hour);
        if hour <= newest - c.window_hours {
            return; // older than the window: it no longer counts
        }
        match self.buckets.iter().position(|(h, _)| *h >= hour) {
            Some(i) if self.buckets[i].0 == hour => self.buckets[i].1.push(s.value),
            at => {
                let mut m = Moments::default();
                m.push(s.value);
                self.buckets
                    .insert(at.unwrap_or(self.buckets.len()), (hour, m));
            }
        }
        while self
            .buckets
            .front()
            .is_some_and(|(h, _)| *h <= newest - c.window_hours)
        {
            self.buckets.pop_front();
        }
    }
}

impl Detector for Baseline {
    type Config = BaselineConfig;

    fn observe(&mut self, c: &BaselineConfig, s: Sample) -> Option<Verdict> {
        let w = self.window();
        let verdict = (w.n >= c.min_samples).then(|| {
            let std = w.std().max(c.min_std).max(c.min_rel_std * w.mean.abs());
            Verdict::new(s.value, w.mean, ((s.value - w.mean) / std).abs(), c.z_limit)
        });
        self.add(c, s);
        verdict
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::detection::logic::testing::{noisy, run};

    #[test]
    fn catches_a_slow_drift_that_adaptive_detectors_follow() {
        let c = BaselineConfig::default();
        // Two days of a stable signal, then a drift of +1 per hour for a day.
        let mut series = noisy(24 * 12 * 3, 100.0, 1.0, 300_000);
        for (i, s) in series.iter_mut().enumerate().skip(24 * 12 * 2) {
            s.value += (i - 24 * 12 * 2) as f64 / 12.0;
        }
        let fired = run(&mut Baseline::default(), &c, &series);
        let first = *fired.first().unwrap();
        assert!(first > 24 * 12 * 2, "no alarm before the drift: {first}");
        assert!(
            first < 24 * 12 * 2 + 12 * 12,
            "the drift is caught within 12 h: {first}"
        );
    }

    #[test]
    fn state_stays_bounded_by_the_window() {
        let c = BaselineConfig::default();
        let mut d = Baseline::default();
        let series = noisy(60 * 24 * 30, 5.0, 1.0, 60_000); // 30 days, one sample a minute
        run(&mut d, &c, &series);
        assert!(d.buckets.len() <= 168, "{} buckets", d.buckets.len());
        assert_eq!(d.window().n, 168 * 60 - 60 + d.buckets.back().unwrap().1.n);
    }

    #[test]
    fn waits_for_enough_samples() {
        let c = BaselineConfig::default();
        let mut d = Baseline::default();
        for i in 0..30 {
            assert!(d
                .observe(
                    &c,
                    Sample {
                        ts_ms: i * 1000,
                        value: i as f64
                    }
                )
                .is_none());
        }
        assert!(d
            .observe(
                &c,
                Sample {
                    ts_ms: 31_000,
                    value: 1.0
                }
            )
            .is_some());
    }

    #[test]
    fn late_samples_inside_the_window_still_count_and_older_ones_do_not() {
        let c = BaselineConfig::default();
        let mut d = Baseline::default();
        d.add(
            &c,
            Sample {
                ts_ms: 10 * HOUR_MS,
                value: 1.0,
            },
        );
        d.add(
            &c,
            Sample {
                ts_ms: 200 * HOUR_MS,
                value: 1.0,
            },
        );
        d.add(
            &c,
            Sample {
                ts_ms: 199 * HOUR_MS,
                value: 1.0,
            },
        ); // late, inside the window
        d.add(
            &c,
            Sample {
                ts_ms: 20 * HOUR_MS,
                value: 1.0,
            },
        ); // late, outside
        assert_eq!(
            d.buckets.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
            vec![199, 200]
        );
    }
}
