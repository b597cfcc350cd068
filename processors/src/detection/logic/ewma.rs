//! EWMA: an adaptive mean and variance that follow gradual drift; fires outside a band of `band` standard
//! deviations around the mean.

use serde::{Deserialize, Serialize};

use super::stats::EwStats;
use super::{Detector, Sample, Verdict};

/// Settings of the EWMA detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EwmaConfig {
    /// Half-life of the mean and variance in seconds of event time: how fast they forget.
    pub half_life_secs: f64,
    /// Band half-width in standard deviations; a sample outside it is anomalous.
    pub band: f64,
    /// Samples to learn from before judging any.
    pub warmup: u64,
    /// Smallest standard deviation assumed, relative to the mean's magnitude (keeps flat signals sane).
    pub min_rel_std: f64,
    /// Smallest standard deviation assumed, absolute.
    pub min_std: f64,
}

impl Default for EwmaConfig {
    fn default() -> Self {
        Self {
            half_life_secs: 6.0 * 3600.0,
            band: 5.0,
            warmup: 30,
            min_rel_std: 0.01,
            min_std: 1e-6,
        }
    }
}

/// The EWMA detector's state for one series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ewma {
    pub(crate) stats: EwStats,
}

impl Detector for Ewma {
    type Config = EwmaConfig;

    fn observe(&mut self, c: &EwmaConfig, s: Sample) -> Option<Verdict> {
        let warm = self.stats.n >= c.warmup;
        let std = self
            .stats
            .std(c.min_std.max(c.min_rel_std * self.stats.mean.abs()));
        let expected = self.stats.mean;
        let z = (s.value - expected) / std;
        // An outlier moves the baseline only as far as the band's edge, so a spike does not poison it,
        // while a lasting step is still learned, gradually.
        let clipped = if warm {
            expected + z.clamp(-c.band, c.band) * std
        } else {
            s.value
        };
        self.stats.update(s.ts_ms, clipped, c.half_life_secs);
        warm.then(|| Verdict::new(s.value, expected, z.abs(), c.band))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::detection::logic::testing::{noisy, run};

    #[test]
    fn fires_on_a_spike_but_not_on_noise_or_slow_drift() {
        let c = EwmaConfig::default();
        let mut series = noisy(2_000, 50.0, 1.0, 300_000);
        // A slow drift of +10 over the last 1,000 samples (3.5 days) stays inside the band.
        for (i, s) in series.iter_mut().enumerate().skip(1_000) {
            s.value += (i - 1_000) as f64 * 0.01;
        }
        series[1_500].value += 30.0;
        let fired = run(&mut Ewma::default(), &c, &series);
        assert_eq!(fired, vec![1_500]);
    }

    #[test]
    fn learns_a_lasting_step_and_stops_firing() {
        let c = EwmaConfig::default();
        let mut series = noisy(1_000, 10.0, 0.5, 60_000);
        for s in series.iter_mut().skip(500) {
            s.value += 20.0;
        }
        let fired = run(&mut Ewma::default(), &c, &series);
        assert_eq!(fired.first(), Some(&500));
        assert!(
            fired.iter().all(|&i| i < 900),
            "still firing long after the step: {fired:?}"
        );
    }

    #[test]
    fn is_silent_during_warmup_and_on_a_flat_line() {
        let c = EwmaConfig::default();
        let series: Vec<Sample> = (0..500)
            .map(|i| Sample {
                ts_ms: i * 1000,
                value: 3.0,
            })
            .collect();
        let mut d = Ewma::default();
        assert!(d.observe(&c, series[0]).is_none());
        assert!(run(&mut d, &c, &series[1..]).is_empty());
    }
}
