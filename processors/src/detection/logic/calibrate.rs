//! Calibration: turns a feature's raw score into "how unusual is this for this series", after the anomaly
//! likelihood of Numenta's work. The raw score is averaged over the last few readings; the distribution of
//! those averages is learned online (mean and spread over event time), and the current average's upper
//! tail probability under it, on a log scale, is the calibrated score. One limit then means the same thing
//! on a calm series and on a spiky one: a series whose raw scores are often high learns that they are.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::stats::{at_most, EwStats};

/// The calibrated scores are `-log10` of a probability, capped here: one in 10^30 readings is already
/// beyond anything a limit would be set to, and the cap keeps every score finite.
pub const MAX_SCORE: f64 = 30.0;

/// Settings of a calibration, shared by the features of one detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// Readings the raw score is averaged over (an exponential average with weight `1 / average`).
    pub average: u32,
    /// Averages to learn from before judging any.
    pub learn: u64,
    /// Half-life of the learned distribution, in seconds of event time.
    pub memory_secs: f64,
    /// Smallest spread assumed for the averages, in the raw score's units (keeps a flat history sane).
    pub min_spread: f64,
    /// Learning clips an average to this many spreads above the learned mean.
    pub clip: f64,
}

impl Calibration {
    /// The short average's weight: `1 / average`.
    pub fn weight(&self) -> f64 {
        1.0 / f64::from(self.average.max(1))
    }
}

/// What one feature's calibration remembers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Calibrator {
    /// The short average of the raw score.
    pub(crate) short: f64,
    /// The learned distribution of the short averages.
    pub(crate) dist: EwStats,
}

impl Calibrator {
    /// Learns from `raw` seen at `ts_ms` and returns the current average's z against the distribution
    /// learned before it; `None` while learning. Non-finite raw scores count as the largest finite one.
    /// `by_time` is the weight the time since the previous reading earns over `memory_secs`
    /// (`1 - 2^(-dt / memory)`), shared by the features of a reading; `w` is the short average's weight
    /// ([`Calibration::weight`], or 1 for a feature judged reading by reading).
    ///
    /// Inlined, with the weight given: a detector calibrates several features a reading with one `c`, and
    /// what depends on `c` alone (the average's weight, the spread's floor) is then worked out once for all.
    #[inline]
    pub fn observe(
        &mut self,
        c: &Calibration,
        w: f64,
        ts_ms: i64,
        raw: f64,
        by_time: f64,
    ) -> Option<f64> {
        let raw = if raw.is_nan() {
            0.0
        } else {
            raw.clamp(0.0, f64::MAX)
        };
        self.short = if self.dist.n == 0 {
            raw
        } else {
            self.short + w * (raw - self.short)
        };
        if !self.short.is_finite() {
            self.short = f64::MAX;
        }
        let warm = self.dist.n >= c.learn;
        let spread = self.dist.std(c.min_spread.max(1e-300));
        let z = (self.short - self.dist.mean) / spread;
        // Learning clips the average at `clip` spreads above the mean learned so far: one huge event must
        // not widen the distribution so much that nothing after it looks unusual for weeks, while scores
        // that stay high are still learned, gradually.
        // The bound is a number: the mean is kept finite, the spread is at least `min_spread`.
        let learnt = if self.dist.n >= 2 {
            at_most(self.short, self.dist.mean + c.clip * spread)
        } else {
            self.short
        };
        self.dist.update_by(ts_ms, learnt, by_time);
        if !self.dist.mean.is_finite() || !self.dist.var.is_finite() {
            // Magnitudes near f64's limits: start over rather than carry an infinity.
            self.dist = EwStats {
                n: self.dist.n,
                last_ts_ms: self.dist.last_ts_ms,
                ..EwStats::default()
            };
        }
        match (warm, z.is_nan()) {
            (false, _) => None,
            (true, true) => Some(0.0),
            (true, false) => Some(z),
        }
    }
}

/// A detector's calibrators, one per feature, from a stored list: a list of another length (a state from
/// before a feature was added) keeps what it has, and the features it lacks learn afresh.
pub fn per_feature<const N: usize>(list: Vec<Calibrator>) -> [Calibrator; N] {
    let mut list = list.into_iter();
    std::array::from_fn(|_| list.next().unwrap_or_default())
}

/// Serde of a detector's calibrators as a list (`#[serde(with = "listed")]`), read by [`per_feature`].
pub(crate) mod listed {
    use super::*;

    pub fn serialize<S: Serializer, const N: usize>(
        c: &[Calibrator; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(c)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[Calibrator; N], D::Error> {
        Vec::deserialize(d).map(per_feature)
    }
}

/// `-log10` of the standard normal's upper tail beyond `z` (0 for `z <= 0` is not returned: the tail of
/// a non-positive z is at least a half), capped at [`MAX_SCORE`]. Computed in logarithms, so the far tail
/// neither underflows nor loses precision (Numerical Recipes' `erfcc`, relative error below 1.2e-7).
pub fn tail_score(z: f64) -> f64 {
    if z.is_nan() {
        return 0.0;
    }
    let x = z.max(0.0) / std::f64::consts::SQRT_2;
    if x > 1e6 {
        return MAX_SCORE;
    }
    let t = 1.0 / (1.0 + 0.5 * x);
    let poly = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    // ln Q(z) = ln(erfc(x) / 2)
    let ln_q = t.ln() - x * x + poly - std::f64::consts::LN_2;
    (-ln_q / std::f64::consts::LN_10).clamp(0.0, MAX_SCORE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_scores_match_the_normal_distribution() {
        // Q(0) = 0.5, Q(1.96) = 0.025, Q(4.265) = 1e-5, Q(7.94) = 1e-15.
        for (z, p) in [
            (0.0, 0.5),
            (1.96, 0.025),
            (4.264_89, 1e-5),
            (7.941_35, 1e-15),
        ] {
            let want = -f64::log10(p);
            assert!(
                (tail_score(z) - want).abs() < 0.01,
                "z {z}: {}",
                tail_score(z)
            );
        }
        assert_eq!(tail_score(-3.0), tail_score(0.0));
        assert_eq!(tail_score(f64::INFINITY), MAX_SCORE);
        assert_eq!(tail_score(f64::NAN), 0.0);
        assert_eq!(tail_score(1e200), MAX_SCORE);
    }

    #[test]
    fn a_spiky_history_makes_a_spike_less_unusual() {
        let c = Calibration {
            average: 5,
            learn: 100,
            memory_secs: 7.0 * 86_400.0,
            min_spread: 0.05,
            clip: 5.0,
        };
        let (mut calm, mut spiky) = (Calibrator::default(), Calibrator::default());
        let w = 1.0 - (-60.0 * std::f64::consts::LN_2 / c.memory_secs).exp();
        for i in 0..2_000 {
            let ts = i * 60_000;
            calm.observe(&c, c.weight(), ts, 0.8, w);
            spiky.observe(&c, c.weight(), ts, if i % 20 == 0 { 8.0 } else { 0.8 }, w);
        }
        let a = calm
            .observe(&c, c.weight(), 2_000 * 60_000, 8.0, w)
            .unwrap_or(0.0);
        let b = spiky
            .observe(&c, c.weight(), 2_000 * 60_000, 8.0, w)
            .unwrap_or(0.0);
        assert!(tail_score(a) > 5.0 && tail_score(b) < 3.0, "{a} {b}");
    }
}
