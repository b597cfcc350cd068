//! The context detector, every metric's default: features a maintenance engineer understands, each
//! calibrated per series ([`super::calibrate`]) so that one limit means the same on every series.
//!
//! - **level**: the distance from an EWMA of the value, in its own standard deviations;
//! - **profile**: the distance from what this hour of the day usually reads (24 hourly slots, weekdays
//!   apart from weekends, UTC), in that slot's standard deviations or a typical hour's, whichever is larger,
//!   once the hour has been seen on an earlier day;
//! - **transitions**: the value quantised into levels of its learned range; how rarely the step from the
//!   previous level to this one has happened (`-ln` of its smoothed frequency);
//! - **range**: how far the value left its learned range (minimum and maximum, slowly contracting towards
//!   the level), in widths of that range; calibrated reading by reading, not averaged (an event, like the
//!   spatial anomaly of Numenta's NAB detector, which bypasses its likelihood's averaging);
//! - **rate** (opt-in): the velocity between readings, in its own standard deviations;
//! - **density**: how much more often than usual the value has lately been outside the level's band (3 of its
//!   spreads): the binomial surprise of the recent share (about the last 36 readings) against the long-run
//!   share, from two readings outside on, so a burst of spikes counts (one spike is the level's to report).
//!
//! The verdict's score is `-log10` of the smallest calibrated tail probability, multiplied by the number of
//! features judged (so four features do not raise four times as often as one): 5 is "about one reading in
//! 100,000". O(1) per reading; the state is a fixed size (under 3 kB) whatever the sample rate.

use serde::{Deserialize, Serialize};

use super::calibrate::{listed, tail_score, Calibration, Calibrator, MAX_SCORE};
use super::settings::DetectionSettings;
use super::stats::EwStats;
use super::{Detector, Sample, Verdict, Why, FEATURE_COUNT, NOT_JUDGED};

/// Hourly slots of the profile: 24 for weekdays, 24 for weekends.
pub const SLOTS: usize = 48;
/// The largest number of quantised levels of the transitions feature.
pub const MAX_LEVELS: u32 = 16;
/// The features, in the order of [`Context::calibrators`].
pub const FEATURES: [&str; FEATURE_COUNT] = [
    "level",
    "profile",
    "transitions",
    "range",
    "rate",
    "density",
];

const LEVEL: usize = 0;
const PROFILE: usize = 1;
const TRANSITIONS: usize = 2;
const RANGE: usize = 3;
const RATE: usize = 4;
const DENSITY: usize = 5;

/// A slot of the profile judges once it has seen this many readings (and an earlier day: see
/// [`Context::profiled`]).
const SLOT_WARM: u64 = 3;
/// `log10(n)` for the numbers of features that can be judged at once.
const LOG10_COUNT: [f64; 7] = [
    0.0,
    0.0,
    std::f64::consts::LOG10_2,
    0.477_121_254_719_662_4, // log10(3)
    2.0 * std::f64::consts::LOG10_2,
    1.0 - std::f64::consts::LOG10_2,
    0.778_151_250_383_643_6, // log10(6)
];
/// For each number of features judged, `n`: a z at or below which `tail_score(z) < log10(n)`, so the
/// score is 0 (NaN for one feature: any tail counts then). `tail_score` grows with z; each bound leaves a
/// margin of at least 0.01 in the score (`quiet_bounds_give_a_score_of_0`), except for two features, where
/// `z <= 0` gives the tail of 0 exactly (`log10(2)` less 1.3e-8).
const QUIET_Z: [f64; 7] = [f64::NAN, f64::NAN, 0.0, 0.40, 0.64, 0.81, 0.93];
/// Learning clips a reading to this many standard deviations, so a spike does not poison what is learned
/// while a lasting change is still learned, gradually. (Compared at 5, 6, 8, 10 and 12 on the tuning streams
/// of the README's leave-some-out table; 8 scored best there.)
const CLIP: f64 = 8.0;
/// The calibration's learning clips an averaged raw score to this many of its spreads.
const CALIBRATION_CLIP: f64 = 5.0;
/// The weight the transition counts keep per visit of their row (a memory of about 500 visits).
const TRANSITION_KEEP: f64 = 1.0 - 1.0 / 512.0;
/// Pseudo-count of every transition, so an unseen one is rare rather than impossible.
const TRANSITION_PRIOR: f64 = 0.1;
/// The density feature counts a reading outside this many of the level's spreads (as the level judges it).
const DENSITY_BAND: f64 = 3.0;
/// The density feature's recent share is an exponential average over about this many readings (3 hours at
/// one reading in 5 minutes; set before measuring).
const DENSITY_READINGS: f64 = 36.0;
/// A burst: about this many of the recent readings outside the band (two in a row make 1.97, two 30 readings
/// apart 1.43).
const DENSITY_BURST: f64 = 1.5;

/// Settings of the context detector. In a rule, `limit`, `levels`, `profile` and `rate` left out are the
/// tenant's (`detection.one_in` and `detection.features`, see [`super::settings`]); those given override them.
/// Every field may be left out (the others take their defaults); a stored rule shows the inherited ones left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(from = "ContextInput", into = "ContextInput")]
pub struct ContextConfig {
    /// Fires above this score: `-log10` of how often a reading this unusual is expected (5: one in 100,000).
    #[schema(required = false)]
    pub limit: f64,
    /// Half-life of the level's mean and spread, in seconds of event time.
    #[schema(required = false)]
    pub half_life_secs: f64,
    /// Half-life of what is learned slowly (the profile, the range, the calibration), in seconds of event
    /// time: a week, so the weekly routine is remembered.
    #[schema(required = false)]
    pub memory_secs: f64,
    /// Readings a raw score is averaged over before calibration (10, as in Numenta's anomaly likelihood).
    #[schema(required = false)]
    pub average: u32,
    /// Readings to learn from before judging any.
    #[schema(required = false)]
    pub learn: u64,
    /// Quantised levels of the transitions feature (0 turns it off; at most 16).
    #[schema(required = false)]
    pub levels: u32,
    /// The time-of-day profile takes part.
    #[schema(required = false)]
    pub profile: bool,
    /// The rate of change takes part (off by default: on many series a jump is normal).
    #[schema(required = false)]
    pub rate: bool,
    /// Smallest standard deviation assumed, relative to the mean's magnitude (keeps flat signals sane).
    #[schema(required = false)]
    pub min_rel_std: f64,
    /// Smallest standard deviation assumed, absolute.
    #[schema(required = false)]
    pub min_std: f64,
    /// The settings the rule left to the tenant's (they then hold the tenant's values in force).
    #[serde(skip)]
    #[schema(ignore)]
    pub inherits: Inherits,
}

/// Which of a context condition's settings are the tenant's rather than the rule's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inherits {
    /// `limit`, from `detection.one_in`.
    pub limit: bool,
    /// `levels`, from `detection.features.transitions`.
    pub levels: bool,
    /// `profile`, from `detection.features.profile`.
    pub profile: bool,
    /// `rate`, from `detection.features.rate`.
    pub rate: bool,
}

impl Inherits {
    /// Every inheritable setting.
    pub const ALL: Inherits = Inherits {
        limit: true,
        levels: true,
        profile: true,
        rate: true,
    };

    /// The names of the settings inherited, as the rules topic carries them.
    pub fn names(&self) -> Vec<String> {
        [
            (self.limit, "limit"),
            (self.levels, "levels"),
            (self.profile, "profile"),
            (self.rate, "rate"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| (*n).to_owned())
        .collect()
    }

    /// From the names the rules topic carries (unknown ones are ignored).
    pub fn from_names(names: &[String]) -> Self {
        let has = |n: &str| names.iter().any(|x| x == n);
        Self {
            limit: has("limit"),
            levels: has("levels"),
            profile: has("profile"),
            rate: has("rate"),
        }
    }
}

/// The JSON form of [`ContextConfig`]: what a rule leaves out is the default, or the tenant's setting for
/// the inheritable ones.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limit: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    half_life_secs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory_secs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    average: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    learn: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    levels: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    profile: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rate: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_rel_std: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_std: Option<f64>,
}

impl From<ContextInput> for ContextConfig {
    fn from(i: ContextInput) -> Self {
        let d = ContextConfig::default();
        Self {
            inherits: Inherits {
                limit: i.limit.is_none(),
                levels: i.levels.is_none(),
                profile: i.profile.is_none(),
                rate: i.rate.is_none(),
            },
            limit: i.limit.unwrap_or(d.limit),
            half_life_secs: i.half_life_secs.unwrap_or(d.half_life_secs),
            memory_secs: i.memory_secs.unwrap_or(d.memory_secs),
            average: i.average.unwrap_or(d.average),
            learn: i.learn.unwrap_or(d.learn),
            levels: i.levels.unwrap_or(d.levels),
            profile: i.profile.unwrap_or(d.profile),
            rate: i.rate.unwrap_or(d.rate),
            min_rel_std: i.min_rel_std.unwrap_or(d.min_rel_std),
            min_std: i.min_std.unwrap_or(d.min_std),
        }
    }
}

impl From<ContextConfig> for ContextInput {
    fn from(c: ContextConfig) -> Self {
        let own = |inherited: bool| !inherited;
        Self {
            limit: own(c.inherits.limit).then_some(c.limit),
            half_life_secs: Some(c.half_life_secs),
            memory_secs: Some(c.memory_secs),
            average: Some(c.average),
            learn: Some(c.learn),
            levels: own(c.inherits.levels).then_some(c.levels),
            profile: own(c.inherits.profile).then_some(c.profile),
            rate: own(c.inherits.rate).then_some(c.rate),
            min_rel_std: Some(c.min_rel_std),
            min_std: Some(c.min_std),
        }
    }
}

impl Default for ContextConfig {
    fn default() -> Self {
        Self {
            limit: 5.0,
            half_life_secs: 6.0 * 3600.0,
            memory_secs: 7.0 * 86_400.0,
            average: 10,
            learn: 288,
            levels: 8,
            profile: true,
            rate: false,
            min_rel_std: 0.01,
            min_std: 1e-6,
            inherits: Inherits::default(),
        }
    }
}

impl ContextConfig {
    /// The settings in force under the tenant's `settings`: those the rule left to the tenant take its values.
    pub fn under(&self, settings: &DetectionSettings) -> ContextConfig {
        let i = self.inherits;
        let mut c = self.clone();
        if i.limit {
            c.limit = settings.limit();
        }
        if i.levels {
            c.levels = if settings.features.transitions {
                ContextConfig::default().levels
            } else {
                0
            };
        }
        if i.profile {
            c.profile = settings.features.profile;
        }
        if i.rate {
            c.rate = settings.features.rate;
        }
        c
    }

    fn calibration(&self) -> Calibration {
        Calibration {
            average: self.average,
            learn: self.learn,
            memory_secs: self.memory_secs,
            min_spread: 0.05,
            clip: CALIBRATION_CLIP,
        }
    }
}

/// The context detector's state for one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Context {
    /// Mean and variance of the value.
    pub(crate) level: EwStats,
    /// Per hourly slot: mean and variance of the value.
    pub(crate) slots: Vec<EwStats>,
    /// Bit `i` set: slot `i` has been seen on an earlier day than its current visit, so what it learned is
    /// what this hour usually reads. Within its first visit a slot has learned only the minutes before, which
    /// are no profile of the hour: it neither judges nor widens the level's spread until its second day.
    #[serde(default = "all_profiled")]
    pub(crate) profiled: u64,
    /// The variance of a typical hour: the profiled slots' variances, averaged over the readings with the
    /// slow memory (its `mean`; its own `var` is not used). A slot that happened to be calm on the few days it
    /// remembers judges with at least this spread, so an ordinary burst at an hour that never saw one is not
    /// extraordinary.
    #[serde(default)]
    pub(crate) hour_var: EwStats,
    /// The learned range.
    pub(crate) low: f64,
    /// The learned range.
    pub(crate) high: f64,
    /// The previous quantised level, when there was one.
    pub(crate) prev_level: Option<u32>,
    /// Transition counts, `levels × levels`, row = from.
    pub(crate) transitions: Vec<f64>,
    /// The previous sample (for the rate).
    pub(crate) prev: Option<Sample>,
    /// Mean and variance of the velocity.
    pub(crate) velocity: EwStats,
    /// Density: the recent share of readings outside the level's band.
    pub(crate) density_recent: f64,
    /// Density: the long-run share (the slow memory).
    pub(crate) density_usual: f64,
    /// Per feature, in [`FEATURES`] order.
    #[serde(with = "listed")]
    pub(crate) calibrators: [Calibrator; FEATURE_COUNT],
    /// The feature that decided the last verdict (an index into [`FEATURES`]).
    #[serde(skip)]
    pub(crate) last_feature: usize,
    /// Per feature of the last reading: the spread around its expectation (for explanations).
    #[serde(skip)]
    pub(crate) spreads: [f64; FEATURE_COUNT],
    /// The last density judged: the recent share and the usual one.
    #[serde(skip)]
    pub(crate) shares: (f64, f64),
    /// The last transition judged: (from, to, levels), and how often it happened before.
    #[serde(skip)]
    pub(crate) step: ([u8; 3], f64),
    /// The decays of the last time step, reused while the readings come at a steady rate (a pure function of
    /// its key, so leaving it out of the state changes nothing).
    #[serde(skip)]
    pub(crate) decays: Decays,
    /// The hour of the last reading (its first millisecond) and its profile slot, reused while readings
    /// stay in that hour (a pure function of the time, so leaving it out of the state changes nothing).
    #[serde(skip)]
    pub(crate) hour: Option<(i64, usize)>,
}

/// `2^(-dt / half_life)` for the slow memory and the level, for one `dt` (ms) and pair of half-lives.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Decays {
    key: (i64, u64, u64),
    memory: f64,
    level: f64,
}

fn decay(dt_ms: i64, half_life_secs: f64) -> f64 {
    (-(dt_ms.max(0) as f64 / 1000.0) * std::f64::consts::LN_2 / half_life_secs.max(1e-9)).exp()
}

impl Default for Context {
    fn default() -> Self {
        Self {
            level: EwStats::default(),
            slots: vec![EwStats::default(); SLOTS],
            profiled: 0,
            hour_var: EwStats::default(),
            low: 0.0,
            high: 0.0,
            prev_level: None,
            transitions: Vec::new(),
            prev: None,
            velocity: EwStats::default(),
            density_recent: 0.0,
            density_usual: 0.0,
            calibrators: Default::default(),
            last_feature: LEVEL,
            spreads: [0.0; FEATURE_COUNT],
            shares: (0.0, 0.0),
            step: ([0; 3], 1.0),
            decays: Decays::default(),
            hour: None,
        }
    }
}

const HOUR_MS: i64 = 3_600_000;

/// What a state that predates [`Context::profiled`] restores: every slot counts as profiled once warm, as
/// then (a slot judged from its third reading).
pub(crate) fn all_profiled() -> u64 {
    u64::MAX
}

/// The profile's slot of an event time: the hour of the day (UTC), weekends apart.
pub fn slot_of(ts_ms: i64) -> usize {
    let day = ts_ms.div_euclid(86_400_000);
    let hour = ts_ms.rem_euclid(86_400_000) / 3_600_000;
    // 1970-01-01 was a Thursday: day 0 is weekday 3 counting from Monday.
    let weekend = (day + 3).rem_euclid(7) >= 5;
    // `hour` is in 0..24: the cast cannot truncate.
    hour as usize + if weekend { 24 } else { 0 }
}

fn finite_or(x: f64, fallback: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        fallback
    }
}

impl Context {
    /// The name of the feature that decided the last verdict.
    pub fn last_feature(&self) -> &'static str {
        FEATURES.get(self.last_feature).copied().unwrap_or("level")
    }

    fn floor(&self, c: &ContextConfig, mean: f64) -> f64 {
        finite_or(c.min_std.max(c.min_rel_std * mean.abs()), f64::MAX).max(f64::MIN_POSITIVE)
    }

    /// The density's raw score: `n · KL(recent ‖ usual)` for a recent share above the usual one (the
    /// binomial surprise of the recent readings outside the band), 0 otherwise. The usual share is taken as
    /// at least one reading in the slow memory, so a first burst on a calm series is surprising but finite.
    fn density(&mut self, keep: f64) -> f64 {
        let memory = 1.0 / (1.0 - keep).max(1e-9);
        let usual = finite_or(self.density_usual, 0.0).clamp(1.0 / memory.max(2.0), 0.5);
        let recent = finite_or(self.density_recent, 0.0).clamp(0.0, 1.0);
        self.shares = (recent, usual);
        if recent <= usual {
            return 0.0;
        }
        // One reading outside the band is the level's to report; a burst is at least two.
        if recent * DENSITY_READINGS < DENSITY_BURST {
            return 0.0;
        }
        let stay = if recent < 1.0 {
            (1.0 - recent) * ((1.0 - recent) / (1.0 - usual)).ln()
        } else {
            0.0
        };
        finite_or(
            DENSITY_READINGS * (recent * (recent / usual).ln() + stay),
            0.0,
        )
        .max(0.0)
    }

    /// Raw scores of each feature (`None`: not judged), and the expectation each one had. `keep` is the
    /// share of the slow memory that the time since the previous reading leaves (`2^(-dt / memory)`).
    fn features(
        &mut self,
        c: &ContextConfig,
        s: Sample,
        keep: f64,
    ) -> [Option<(f64, f64)>; FEATURE_COUNT] {
        let mut out = [None; FEATURE_COUNT];
        let x = s.value;
        let warm = self.level.n >= 2;
        // Level.
        let floor = self.floor(c, self.level.mean);
        let std = self.level.std(floor);
        let level_z = (x - self.level.mean) / std;
        if warm {
            out[LEVEL] = Some((level_z.abs(), self.level.mean));
            self.spreads[LEVEL] = std;
        }
        let clip = |mean: f64, std: f64, x: f64| {
            if ((x - mean) / std).abs() > CLIP {
                mean + (x - mean).signum() * CLIP * std
            } else {
                x
            }
        };
        let learnt = if warm {
            clip(self.level.mean, std, x)
        } else {
            x
        };
        // Profile.
        if c.profile {
            let slot_floor = floor;
            let slot = match self.hour {
                Some((start, slot)) if (0..HOUR_MS).contains(&s.ts_ms.wrapping_sub(start)) => slot,
                _ => {
                    let slot = slot_of(s.ts_ms);
                    self.hour = Some((s.ts_ms - s.ts_ms.rem_euclid(HOUR_MS), slot));
                    // A reading more than an hour after the slot's last one is a later visit: another day.
                    // A visit begins with a reading in another hour than the last, so only here.
                    if self
                        .slots
                        .get(slot)
                        .is_some_and(|h| h.n > 0 && s.ts_ms - h.last_ts_ms > HOUR_MS)
                    {
                        self.profiled |= 1u64 << slot;
                    }
                    slot
                }
            };
            let bit = 1u64 << slot;
            if let Some(slot) = self.slots.get_mut(slot) {
                let slot_std = slot.std(slot_floor);
                let mut y = x;
                if slot.n >= SLOT_WARM && self.profiled & bit != 0 {
                    // Judged against the larger of this hour's spread and a typical hour's (learned before
                    // this reading); learning clips to the hour's own.
                    let spread = if self.hour_var.n > 0 {
                        slot_std.max(self.hour_var.mean.max(0.0).sqrt())
                    } else {
                        slot_std
                    };
                    self.hour_var.update_by(s.ts_ms, slot.var, 1.0 - keep);
                    out[PROFILE] = Some((((x - slot.mean) / spread).abs(), slot.mean));
                    self.spreads[PROFILE] = spread;
                    y = clip(slot.mean, slot_std, x);
                    // The level is judged against the larger of its own spread and this hour's: a value
                    // that this hour of the day often reaches is not unusual for the level either.
                    if slot_std > std {
                        if let Some(level) = out[LEVEL].as_mut() {
                            level.0 = ((x - self.level.mean) / slot_std).abs();
                            self.spreads[LEVEL] = slot_std;
                        }
                    }
                }
                // Within the hour the slot's step is the series' step, whose decay is known.
                let by = if slot.n == 0 {
                    1.0
                } else if s.ts_ms - slot.last_ts_ms == self.decays.key.0 {
                    1.0 - keep
                } else {
                    1.0 - decay(s.ts_ms - slot.last_ts_ms, c.memory_secs)
                };
                slot.update_by(s.ts_ms, y, by);
            }
        }
        // Density, against the shares learned before this reading.
        if warm {
            let outside = out[LEVEL].is_some_and(|(z, _)| z > DENSITY_BAND);
            out[DENSITY] = Some((self.density(keep), self.level.mean));
            self.spreads[DENSITY] = std;
            let hit = if outside { 1.0 } else { 0.0 };
            self.density_recent += (hit - self.density_recent) / DENSITY_READINGS;
            self.density_usual += (hit - self.density_usual) * (1.0 - keep);
        }
        // Range and transitions, against the range learned before this reading.
        let width = (self.high - self.low).max(4.0 * std);
        if warm {
            let excess = (x - self.high).max(self.low - x).max(0.0) / width;
            let nearest = if x > self.high { self.high } else { self.low };
            out[RANGE] = Some((excess, nearest));
            self.spreads[RANGE] = width;
        }
        let count = c.levels.min(MAX_LEVELS);
        let levels = count as usize;
        if levels > 1 && warm {
            // The level below the value: the cast truncates, saturates (at 0 below, which covers NaN and
            // the values under the range) and takes the top level above the range, as `floor` then a clamp
            // to the levels would, in fewer instructions.
            let q = (((x - self.low) / width * f64::from(count)) as u32).min(count - 1) as usize;
            if self.transitions.len() != levels * levels {
                self.transitions = vec![0.0; levels * levels];
                self.prev_level = None;
            }
            if let Some(p) = self.prev_level.map(|p| p as usize).filter(|p| *p < levels) {
                let row = &mut self.transitions[p * levels..(p + 1) * levels];
                let total: f64 = row.iter().sum();
                let freq =
                    (row[q] + TRANSITION_PRIOR) / (total + TRANSITION_PRIOR * f64::from(count));
                out[TRANSITIONS] = Some((-freq.ln(), self.level.mean));
                // Both below MAX_LEVELS (16): they fit in a byte.
                self.step = ([p as u8, q as u8, levels as u8], freq);
                row.iter_mut().for_each(|n| *n *= TRANSITION_KEEP);
                row[q] += 1.0;
            }
            // `q < levels <= MAX_LEVELS`: it fits.
            self.prev_level = Some(q as u32);
        }
        // Rate.
        if c.rate {
            if let Some(p) = self.prev.filter(|p| s.ts_ms > p.ts_ms) {
                let v = (x - p.value) / ((s.ts_ms - p.ts_ms) as f64 / 1000.0);
                let vstd = self.velocity.std(f64::MIN_POSITIVE.max(1e-12));
                let z = (v - self.velocity.mean) / vstd;
                let y = if self.velocity.n >= 2 {
                    out[RATE] = Some((z.abs(), self.velocity.mean));
                    self.spreads[RATE] = vstd;
                    clip(self.velocity.mean, vstd, v)
                } else {
                    v
                };
                self.velocity.update_by(s.ts_ms, y, 1.0 - keep);
            }
            if self.prev.is_none_or(|p| s.ts_ms > p.ts_ms) {
                self.prev = Some(s);
            }
        }
        // Learn the level and the range.
        let by = if self.level.n == 0 {
            1.0
        } else {
            1.0 - self.decays.level
        };
        self.level.update_by(s.ts_ms, learnt, by);
        if self.level.n == 1 {
            (self.low, self.high) = (x, x);
        } else {
            // The range holds the values seen, spikes included (unclipped): a value reached before is not
            // a new maximum, however far it lies from the level.
            let m = self.level.mean;
            self.high = finite_or(m + (self.high - m) * keep, m).max(x);
            self.low = finite_or(m + (self.low - m) * keep, m).min(x);
        }
        out
    }
}

impl Detector for Context {
    type Config = ContextConfig;

    fn observe(&mut self, c: &ContextConfig, s: Sample) -> Option<Verdict> {
        if !s.value.is_finite() {
            return None;
        }
        if self.slots.len() != SLOTS {
            self.slots = vec![EwStats::default(); SLOTS];
        }
        // One decay for everything with the slow memory: the time since the previous reading.
        let dt = (s.ts_ms - self.level.last_ts_ms).max(0);
        let key = (dt, c.memory_secs.to_bits(), c.half_life_secs.to_bits());
        if self.decays.key != key || self.decays == Decays::default() {
            self.decays = Decays {
                key,
                memory: decay(dt, c.memory_secs),
                level: decay(dt, c.half_life_secs),
            };
        }
        let keep = if self.level.n == 0 {
            0.0
        } else {
            self.decays.memory
        };
        let features = self.features(c, s, keep);
        let calibration = c.calibration();
        let averaged = calibration.weight();
        let (mut best, mut judged, mut expected) = (f64::NEG_INFINITY, 0u32, self.level.mean);
        let mut scores = [NOT_JUDGED; FEATURES.len()];
        let each = features.iter().zip(&mut self.calibrators).zip(&mut scores);
        for (i, ((f, calibrator), score)) in each.enumerate() {
            let Some((raw, expect)) = *f else { continue };
            // The range is an event, judged as it happens: averaging would spread one reading's excess over
            // ten.
            let w = if i == RANGE { 1.0 } else { averaged };
            let Some(z) = calibrator.observe(&calibration, w, s.ts_ms, raw, 1.0 - keep) else {
                continue;
            };
            judged += 1;
            *score = z as f32;
            if z > best {
                (best, expected, self.last_feature) = (z, expect, i);
            }
        }
        if judged == 0 {
            return None;
        }
        // The chance that any of `judged` features is this unusual: at most `judged` times the smallest.
        // Most readings are usual: below `QUIET_Z` the score is 0 whatever the tail, which is not computed.
        let quiet = QUIET_Z.get(judged as usize).is_some_and(|q| best <= *q);
        let score = if quiet {
            0.0
        } else {
            (tail_score(best)
                - LOG10_COUNT
                    .get(judged as usize)
                    .copied()
                    .unwrap_or(f64::from(judged).log10()))
            .clamp(0.0, MAX_SCORE)
        };
        let feature = self.last_feature;
        let (levels, freq) = self.step;
        let detail = match feature {
            TRANSITIONS => freq,
            DENSITY => self.shares.0,
            _ => 0.0,
        };
        let spread = match feature {
            DENSITY => self.shares.1,
            _ => self.spreads.get(feature).copied().unwrap_or(0.0),
        };
        let why = Why {
            reason: super::reason_of_feature(feature),
            scores,
            spread: finite_or(spread, 0.0),
            detail: finite_or(detail, 0.0),
            levels: if feature == TRANSITIONS {
                levels
            } else {
                [0; 3]
            },
        };
        Some(Verdict::new(s.value, finite_or(expected, 0.0), score, c.limit).because(why))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::detection::logic::calibrate::per_feature;
    use crate::detection::logic::testing::{noisy, run};

    #[test]
    fn quiet_bounds_give_a_score_of_0() {
        for (n, q) in QUIET_Z.iter().enumerate() {
            if q.is_nan() {
                continue;
            }
            let margin = LOG10_COUNT[n] - tail_score(*q);
            assert!(margin > 0.0, "{n} features: {margin}");
            assert!(n == 2 || margin > 0.01, "{n} features: {margin}");
            // Every z below the bound, on a fine grid, scores under the count's share too.
            for i in 0..=5_000 {
                let z = q - f64::from(i) * 0.001;
                assert!(tail_score(z) < LOG10_COUNT[n], "{n} features, z {z}");
            }
        }
    }

    #[test]
    fn slots_tell_the_hour_and_the_weekend() {
        // 2026-11-30 was a Monday; 2026-11-29 a Sunday.
        let monday_14h = 1_796_004_000_000 + 14 * 3_600_000 - 1_796_004_000_000 % 86_400_000;
        assert_eq!(slot_of(monday_14h), 14);
        assert_eq!(slot_of(monday_14h - 86_400_000), 24 + 14);
    }

    #[test]
    fn fires_on_a_spike_and_a_step_but_not_on_noise() {
        let c = ContextConfig::default();
        let mut series = noisy(4_000, 50.0, 1.0, 300_000);
        series[2_000].value += 15.0;
        for s in series.iter_mut().skip(3_000) {
            s.value += 8.0;
        }
        let fired = run(&mut Context::default(), &c, &series);
        assert!(fired.contains(&2_000), "{fired:?}");
        assert!(
            fired.iter().any(|i| (3_000..3_010).contains(i)),
            "{fired:?}"
        );
        assert!(
            fired
                .iter()
                .all(|i| (2_000..2_010).contains(i) || *i >= 3_000),
            "{fired:?}"
        );
    }

    #[test]
    fn a_broken_daily_pattern_fires() {
        let c = ContextConfig::default();
        let mut series = noisy(14 * 288, 0.0, 0.5, 300_000);
        for (i, s) in series.iter_mut().enumerate() {
            let hour = (i % 288) / 12;
            s.value += if (8..18).contains(&hour) { 80.0 } else { 20.0 };
        }
        // Day 12's working hours stay at the night's level.
        for s in series.iter_mut().skip(12 * 288 + 8 * 12).take(10 * 12) {
            s.value -= 60.0;
        }
        let fired = run(&mut Context::default(), &c, &series);
        assert!(
            fired
                .iter()
                .any(|i| (12 * 288 + 8 * 12..12 * 288 + 18 * 12).contains(i)),
            "{fired:?}"
        );
        assert!(fired.iter().all(|i| *i >= 12 * 288), "{fired:?}");
    }

    /// Every verdict over `series` is finite and within range.
    fn assert_sane(series: &[Sample], c: &ContextConfig) {
        let mut d = Context::default();
        for s in series {
            if let Some(v) = d.observe(c, *s) {
                assert!(
                    v.score.is_finite() && (0.0..=MAX_SCORE).contains(&v.score),
                    "{s:?}: {v:?}"
                );
                assert!(
                    v.expected.is_finite() && v.observed.is_finite(),
                    "{s:?}: {v:?}"
                );
            }
        }
    }

    /// A deterministic stream of uniform numbers in [0, 1).
    fn uniform(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (*seed >> 11) as f64 / (1u64 << 53) as f64
    }

    #[test]
    fn bad_input_scores_without_panics_infinities_or_nan() {
        let every = |n: i64, step: i64, f: &dyn Fn(i64) -> f64| -> Vec<Sample> {
            (0..n)
                .map(|i| Sample {
                    ts_ms: i * step,
                    value: f(i),
                })
                .collect()
        };
        let c = ContextConfig {
            rate: true,
            learn: 20,
            ..ContextConfig::default()
        };
        let mut seed = 7;
        let noise: Vec<f64> = (0..2_000).map(|_| uniform(&mut seed) - 0.5).collect();
        let cases: Vec<(&str, Vec<Sample>)> = vec![
            ("constant", every(2_000, 60_000, &|_| 42.0)),
            ("single value", every(1, 60_000, &|_| 42.0)),
            ("zero", every(2_000, 60_000, &|_| 0.0)),
            ("huge", every(2_000, 60_000, &|i| 1e300 * noise[i as usize])),
            (
                "huge both signs",
                every(2_000, 60_000, &|i| {
                    if i % 2 == 0 {
                        f64::MAX
                    } else {
                        -f64::MAX
                    }
                }),
            ),
            (
                "sub-normal spread",
                every(2_000, 60_000, &|i| 1e-310 * noise[i as usize]),
            ),
            (
                "tiny around one",
                every(2_000, 60_000, &|i| 1.0 + 1e-300 * noise[i as usize]),
            ),
            (
                "gaps of months",
                every(200, 90 * 86_400_000, &|i| noise[i as usize]),
            ),
            ("same instant", every(2_000, 0, &|i| noise[i as usize])),
            ("backwards", every(2_000, -60_000, &|i| noise[i as usize])),
            (
                "constant then huge",
                every(2_000, 60_000, &|i| if i < 1_000 { 1.0 } else { 1e300 }),
            ),
        ];
        for (name, series) in &cases {
            println!("{name}");
            assert_sane(series, &c);
            assert_sane(series, &ContextConfig::default());
        }
        // Random series: random magnitudes, spreads, steps and clocks.
        for _ in 0..200 {
            let scale = 10f64.powf(uniform(&mut seed) * 600.0 - 300.0);
            let level = 10f64.powf(uniform(&mut seed) * 600.0 - 300.0);
            let step = (uniform(&mut seed) * 4e9) as i64 - 1_000_000_000;
            let n = (uniform(&mut seed) * 500.0) as i64;
            let series: Vec<Sample> = (0..n)
                .map(|i| Sample {
                    ts_ms: i * step,
                    value: level + scale * (uniform(&mut seed) - 0.5),
                })
                .collect();
            assert_sane(&series, &c);
        }
    }

    #[test]
    fn the_state_is_bounded_whatever_the_series() {
        let mut d = Context::default();
        let c = ContextConfig::default();
        for s in noisy(20_000, 50.0, 1.0, 1_000) {
            d.observe(&c, s);
        }
        let heap = d.slots.capacity() * std::mem::size_of::<EwStats>()
            + d.transitions.capacity() * std::mem::size_of::<f64>();
        let bytes = std::mem::size_of::<Context>() + heap;
        println!("context state: {bytes} bytes");
        assert!(bytes < 3_000, "{bytes}");
    }

    #[test]
    fn an_hour_judges_from_its_second_day() {
        let c = ContextConfig::default();
        // Two weekdays (1970-01-01 was a Thursday) of a reading a minute.
        let series = noisy(2 * 1_440, 50.0, 1.0, 60_000);
        let mut d = Context::default();
        for (i, s) in series.iter().enumerate() {
            // Whether the profile judges this reading, asked of a copy so the run is not disturbed.
            let judged = d.clone().features(&c, *s, 0.99)[PROFILE].is_some();
            let (day, minute) = (i / 1_440, i % 1_440);
            // The slot's first visit learns; its second judges from its first reading on.
            assert_eq!(judged, day == 1, "reading {i}");
            d.observe(&c, *s);
            let hour = minute / 60;
            let expected: u64 = if day == 0 {
                0
            } else {
                (1u64 << (hour + 1)) - 1
            };
            assert_eq!(d.profiled, expected, "reading {i}");
        }
    }

    /// A series that bursts about once a day, at a different hour each time (a job every 22 hours): the
    /// hours that never saw a burst judge with a typical hour's spread, so a burst is not extraordinary
    /// to the profile once the series has had a few.
    #[test]
    fn a_burst_the_series_often_has_is_not_unusual_for_the_hour() {
        let c = ContextConfig::default();
        let mut series = noisy(12 * 288, 2.0, 0.3, 300_000);
        for start in (100..series.len()).step_by(267) {
            for s in series.iter_mut().skip(start).take(3) {
                s.value += 60.0;
            }
        }
        let mut d = Context::default();
        let mut by_profile = Vec::new();
        for (i, s) in series.iter().enumerate() {
            if d.observe(&c, *s).is_some_and(|v| v.anomalous)
                && d.last_feature() == "profile"
                && i > 5 * 288
            {
                by_profile.push(i);
            }
        }
        assert!(by_profile.is_empty(), "{by_profile:?}");
        assert!(d.hour_var.n > 0 && d.hour_var.mean > 0.3 * 0.3);
    }

    /// The range is judged reading by reading: one reading well beyond the learned range raises at once,
    /// where averaged over ten readings it would be a tenth as unusual.
    #[test]
    fn one_reading_beyond_the_range_is_a_new_maximum_at_once() {
        let c = ContextConfig::default();
        let mut series = noisy(3_000, 50.0, 1.0, 300_000);
        series[2_500].value = 58.0;
        let mut d = Context::default();
        for s in &series[..2_500] {
            d.observe(&c, *s);
        }
        let v = d.observe(&c, series[2_500]).unwrap();
        assert!(v.anomalous, "{v:?}");
        assert_eq!(d.last_feature(), "range");
        assert!(v.why.unwrap().scores[RANGE] > v.why.unwrap().scores[LEVEL]);
    }

    #[test]
    fn a_burst_of_spikes_is_dense_where_one_spike_is_not() {
        let c = ContextConfig::default();
        let mut series = noisy(4_000, 50.0, 1.0, 300_000);
        // One spike of 6 standard deviations; later five of them within 25 readings.
        series[2_000].value += 6.0;
        for i in [3_000, 3_006, 3_012, 3_018, 3_024] {
            series[i].value += 6.0;
        }
        let mut d = Context::default();
        let mut decided_by_density = Vec::new();
        for (i, s) in series.iter().enumerate() {
            if d.observe(&c, *s).is_some_and(|v| v.anomalous) && d.last_feature() == "density" {
                decided_by_density.push(i);
            }
        }
        assert!(
            decided_by_density
                .iter()
                .all(|i| (3_000..3_100).contains(i)),
            "{decided_by_density:?}"
        );
        assert!(!decided_by_density.is_empty());
    }

    #[test]
    fn a_state_from_before_the_density_learns_it_afresh() {
        let c = ContextConfig::default();
        let series = noisy(1_000, 50.0, 1.0, 300_000);
        let mut d = Context::default();
        for s in &series[..500] {
            d.observe(&c, *s);
        }
        // What a state of version 3 restores: five calibrators, no density.
        d.calibrators = per_feature(d.calibrators[..5].to_vec());
        (d.density_recent, d.density_usual) = (0.0, 0.0);
        let kept = d.calibrators.clone();
        d.observe(&c, series[500]);
        assert_eq!(
            d.calibrators[0].dist.n,
            kept[0].dist.n + 1,
            "the others are kept"
        );
        assert_eq!(d.calibrators[DENSITY].dist.n, 1);
    }

    #[test]
    fn a_stuck_sensor_that_comes_back_fires() {
        let c = ContextConfig::default();
        let series: Vec<Sample> = (0..2_000)
            .map(|i| Sample {
                ts_ms: i * 60_000,
                value: if i < 1_500 { 3.0 } else { 30.0 },
            })
            .collect();
        let fired = run(&mut Context::default(), &c, &series);
        assert_eq!(fired.first(), Some(&1_500), "{fired:?}");
    }
}
