//! Running statistics the detectors share.

use serde::{Deserialize, Serialize};

/// `x.max(bound)` for a `bound` that is never NaN, in one instruction where `f64::max` takes several to
/// allow for a NaN bound. A NaN `x` gives `bound`, as `f64::max` does.
#[inline(always)]
pub(crate) fn at_least(x: f64, bound: f64) -> f64 {
    if x > bound {
        x
    } else {
        bound
    }
}

/// `x.min(bound)` for a `bound` that is never NaN (see [`at_least`]).
#[inline(always)]
pub(crate) fn at_most(x: f64, bound: f64) -> f64 {
    if x < bound {
        x
    } else {
        bound
    }
}

/// Exponentially weighted mean and variance over event time.
///
/// The weight of a new sample depends on the time since the previous one (`1 - 2^(-dt / half_life)`), so
/// irregular spacing is handled: a long gap lets the new sample count more.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EwStats {
    /// Weighted mean.
    pub mean: f64,
    /// Weighted variance.
    pub var: f64,
    /// Samples seen.
    pub n: u64,
    /// Event time of the last sample (ms).
    pub last_ts_ms: i64,
}

impl EwStats {
    /// Adds `x` seen at `ts_ms`, weighting by the time since the previous sample.
    pub fn update(&mut self, ts_ms: i64, x: f64, half_life_secs: f64) {
        let by_time = if self.n == 0 {
            1.0
        } else {
            let dt = ((ts_ms - self.last_ts_ms).max(0) as f64) / 1000.0;
            1.0 - (-dt * std::f64::consts::LN_2 / half_life_secs.max(1e-9)).exp()
        };
        self.update_by(ts_ms, x, by_time);
    }

    /// Adds `x` seen at `ts_ms` with the weight `by_time` that the time since the previous sample earned
    /// (`1 - 2^(-dt / half_life)`), computed once by a caller that updates several statistics at a time.
    pub fn update_by(&mut self, ts_ms: i64, x: f64, by_time: f64) {
        if self.n == 0 {
            self.mean = x;
            self.var = 0.0;
        } else {
            // During warm-up every sample counts like an ordinary mean, so the start is not noisy.
            // (`by_time` at least twice `1 / (n + 1)` is surely the larger: no division needed for it.)
            // Through `i64`, which converts in one instruction (`u64` takes several without AVX-512); a
            // count past `i64::MAX` cannot be reached.
            let n1 = self.n as i64 as f64 + 1.0;
            let alpha = if by_time * n1 >= 2.0 {
                by_time
            } else {
                at_least(by_time, 1.0 / n1)
            }
            .clamp(1e-6, 1.0);
            let diff = x - self.mean;
            let incr = alpha * diff;
            self.mean += incr;
            self.var = (1.0 - alpha) * (self.var + diff * incr);
        }
        self.n += 1;
        self.last_ts_ms = self.last_ts_ms.max(ts_ms);
    }

    /// Standard deviation, never below `floor`.
    pub fn std(&self, floor: f64) -> f64 {
        at_least(self.var, 0.0).sqrt().max(floor)
    }
}

/// Count, mean and sum of squared deviations (Welford), mergeable across buckets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    /// Samples.
    pub n: u64,
    /// Mean.
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
}

impl Moments {
    /// Adds one sample.
    pub fn push(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as i64 as f64; // through `i64`, as in `EwStats::update_by`
        self.m2 += d * (x - self.mean);
    }

    /// Combines two sets of moments (Chan et al.).
    pub fn merge(&self, other: &Moments) -> Moments {
        if self.n == 0 {
            return *other;
        }
        if other.n == 0 {
            return *self;
        }
        let n = self.n + other.n;
        let d = other.mean - self.mean;
        let mean = self.mean + d * other.n as f64 / n as f64;
        let m2 = self.m2 + other.m2 + d * d * (self.n as f64 * other.n as f64) / n as f64;
        Moments { n, mean, m2 }
    }

    /// Sample standard deviation (0 below two samples).
    pub fn std(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            (self.m2 / (self.n - 1) as f64).max(0.0).sqrt()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_merge_like_one_pass() {
        let xs = [3.0, 7.5, -2.0, 10.0, 4.25, 4.25, 100.0];
        let mut all = Moments::default();
        xs.iter().for_each(|x| all.push(*x));
        let (mut a, mut b) = (Moments::default(), Moments::default());
        xs[..3].iter().for_each(|x| a.push(*x));
        xs[3..].iter().for_each(|x| b.push(*x));
        let merged = a.merge(&b);
        assert_eq!(merged.n, all.n);
        assert!((merged.mean - all.mean).abs() < 1e-12);
        assert!((merged.std() - all.std()).abs() < 1e-9);
    }

    #[test]
    fn ew_stats_follow_a_level_shift_at_the_half_life() {
        let mut s = EwStats::default();
        for i in 0..100 {
            s.update(i * 60_000, 10.0, 600.0);
        }
        assert!((s.mean - 10.0).abs() < 1e-9);
        // One half-life after a shift to 20, the mean is about half way there.
        for i in 100..110 {
            s.update(i * 60_000, 20.0, 600.0);
        }
        assert!((s.mean - 15.0).abs() < 0.6, "{}", s.mean);
    }

    #[test]
    fn irregular_spacing_weighs_by_elapsed_time() {
        let (mut dense, mut sparse) = (EwStats::default(), EwStats::default());
        for i in 0..50 {
            dense.update(i * 1_000, 0.0, 60.0);
            sparse.update(i * 1_000, 0.0, 60.0);
        }
        dense.update(51_000, 10.0, 60.0); // 1 s later
        sparse.update(50_000 + 600_000, 10.0, 60.0); // 10 min later: the old level is forgotten
        assert!(dense.mean < 1.0);
        assert!(sparse.mean > 9.9);
    }
}
