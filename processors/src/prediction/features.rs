//! Health features: operating conditions found by clustering the settings, sensors normalised per
//! condition (constant ones dropped), and window statistics over each unit's recent cycles.
//!
//! Everything here is fitted on training data and stored in the model, so training, `haltless predict` and
//! the streaming predictor compute the same features through the same [`History`].

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::cmapss::{sensor_name, setting_name, Cycle, Run, SENSORS, SETTINGS};
use super::PredictionError;

/// Cycles of the main window (its mean and least-squares slope).
pub const WINDOW: usize = 30;
/// Cycles of the short window, a smoothed "now".
pub const SHORT: usize = 5;
/// Cycles of the long window, the slower trend.
pub const LONG: usize = 100;
/// The first cycles of a life, averaged as the unit's own baseline (engines start with different wear).
pub const BASELINE: usize = 20;
/// Statistics per sensor, in this order.
const PER_SENSOR: [&str; 6] = ["last", "mean5", "mean30", "slope30", "slope100", "drift"];
/// More operating conditions than this are not looked for.
const MAX_CONDITIONS: usize = 8;
/// A clustering explains the settings when it leaves less than this share of their variance: real
/// conditions (FD002: six, far apart) leave about 1e-8, while merging two of them leaves about 1e-2.
const UNEXPLAINED: f64 = 1e-4;

/// The names of a data set's columns: operational settings (which define operating conditions) and
/// sensors. C-MAPSS has `setting1` … `setting3` and `s1` … `s21`; a platform machine has its metric names
/// and usually no settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Operational settings, in the order of [`Cycle::settings`].
    pub settings: Vec<String>,
    /// Sensors, in the order of [`Cycle::sensors`].
    pub sensors: Vec<String>,
}

impl Default for Layout {
    fn default() -> Self {
        Self::cmapss()
    }
}

impl Layout {
    /// C-MAPSS's 3 settings and 21 sensors.
    pub fn cmapss() -> Self {
        Self {
            settings: (0..SETTINGS).map(setting_name).collect(),
            sensors: (0..SENSORS).map(sensor_name).collect(),
        }
    }
}

/// The operating conditions: clusters of the operational settings (C-MAPSS FD002 and FD004 have six,
/// FD001 and FD003 one, whose settings only jitter; data without settings has one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conditions {
    /// Multiplier per setting that standardises it (0 for a setting that never changes).
    pub scale: Vec<f64>,
    /// Cluster centres in standardised units.
    pub centroids: Vec<Vec<f64>>,
}

impl Conditions {
    /// Finds the fewest clusters (up to eight) that leave under 0.01 % of the settings' variance unexplained;
    /// when none does, the settings are noise around a single condition.
    pub fn fit(settings: &[Vec<f64>]) -> Self {
        let n = settings.len().max(1) as f64;
        let dims = settings.first().map_or(0, Vec::len);
        let scale: Vec<f64> = (0..dims)
            .map(|j| {
                let mean = settings.iter().map(|r| r[j]).sum::<f64>() / n;
                let var = settings.iter().map(|r| (r[j] - mean).powi(2)).sum::<f64>() / n;
                if var.sqrt() > 1e-12 {
                    1.0 / var.sqrt()
                } else {
                    0.0
                }
            })
            .collect();
        let points: Vec<Vec<f64>> = settings.iter().map(|r| scaled(r, &scale)).collect();
        let total = within(&points, &[mean_of(&points, dims)]);
        let mut centroids = vec![mean_of(&points, dims)];
        if total > 0.0 {
            for k in 2..=MAX_CONDITIONS.min(points.len()) {
                let candidate = kmeans(&points, k);
                if within(&points, &candidate) <= UNEXPLAINED * total {
                    centroids = candidate;
                    break;
                }
            }
        }
        Self { scale, centroids }
    }

    /// The condition nearest to these settings.
    pub fn assign(&self, settings: &[f64]) -> usize {
        nearest(&scaled(settings, &self.scale), &self.centroids)
    }
}

fn scaled(r: &[f64], scale: &[f64]) -> Vec<f64> {
    r.iter().zip(scale).map(|(v, s)| v * s).collect()
}

fn mean_of(points: &[Vec<f64>], dims: usize) -> Vec<f64> {
    let mut m = vec![0.0; dims];
    for p in points {
        for (s, v) in m.iter_mut().zip(p) {
            *s += v;
        }
    }
    m.iter().map(|v| v / points.len().max(1) as f64).collect()
}

fn distance2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

fn nearest(p: &[f64], centroids: &[Vec<f64>]) -> usize {
    let mut best = (0, f64::INFINITY);
    for (i, c) in centroids.iter().enumerate() {
        let d = distance2(p, c);
        if d < best.1 {
            best = (i, d);
        }
    }
    best.0
}

fn within(points: &[Vec<f64>], centroids: &[Vec<f64>]) -> f64 {
    points
        .iter()
        .map(|p| distance2(p, &centroids[nearest(p, centroids)]))
        .sum()
}

/// Lloyd's k-means from a farthest-point start: deterministic, and right for well-separated conditions.
fn kmeans(points: &[Vec<f64>], k: usize) -> Vec<Vec<f64>> {
    let dims = points.first().map_or(0, Vec::len);
    let mut centroids = vec![points[0].clone()];
    while centroids.len() < k {
        let far = points
            .iter()
            .map(|p| distance2(p, &centroids[nearest(p, &centroids)]))
            .enumerate()
            .fold(
                (0, -1.0),
                |best, (i, d)| if d > best.1 { (i, d) } else { best },
            );
        centroids.push(points[far.0].clone());
    }
    for _ in 0..50 {
        let mut sums = vec![(vec![0.0; dims], 0usize); k];
        for p in points {
            let c = nearest(p, &centroids);
            for (s, v) in sums[c].0.iter_mut().zip(p) {
                *s += v;
            }
            sums[c].1 += 1;
        }
        let next: Vec<Vec<f64>> = sums
            .iter()
            .zip(&centroids)
            .map(|((sum, n), old)| {
                if *n == 0 {
                    old.clone()
                } else {
                    sum.iter().map(|v| v / *n as f64).collect()
                }
            })
            .collect();
        if next == centroids {
            break;
        }
        centroids = next;
    }
    centroids
}

/// Sensor statistics per operating condition, and which sensors carry information at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normaliser {
    /// The names of the settings and sensors of the data it was fitted on (models written before names
    /// existed were trained on C-MAPSS).
    #[serde(default)]
    pub layout: Layout,
    /// The operating conditions.
    pub conditions: Conditions,
    /// The sensors kept (0-based indices into [`Layout::sensors`]): those that vary within some condition.
    pub sensors: Vec<usize>,
    /// Per condition, per kept sensor: mean and standard deviation in the training data.
    pub stats: Vec<Vec<(f64, f64)>>,
}

impl Normaliser {
    /// Fits conditions and per-condition statistics on training runs whose columns `layout` names; drops
    /// sensors that are constant within every condition.
    pub fn fit(runs: &[&Run], layout: &Layout) -> Result<Self, PredictionError> {
        let rows: Vec<&Cycle> = runs.iter().flat_map(|r| &r.cycles).collect();
        let (n_settings, n_sensors) = (layout.settings.len(), layout.sensors.len());
        if let Some(bad) = rows
            .iter()
            .find(|c| c.settings.len() != n_settings || c.sensors.len() != n_sensors)
        {
            return Err(PredictionError::Model(format!(
                "cycle {} has {} settings and {} sensors; the data names {n_settings} and {n_sensors}",
                bad.cycle,
                bad.settings.len(),
                bad.sensors.len()
            )));
        }
        let settings: Vec<Vec<f64>> = rows.iter().map(|c| c.settings.clone()).collect();
        let conditions = Conditions::fit(&settings);
        let k = conditions.centroids.len();
        let mut sums = vec![(vec![0.0; n_sensors], vec![0.0; n_sensors], 0usize); k];
        for c in &rows {
            let at = &mut sums[conditions.assign(&c.settings)];
            for (j, v) in c.sensors.iter().enumerate() {
                at.0[j] += v;
            }
            at.2 += 1;
        }
        let means: Vec<Vec<f64>> = sums
            .iter()
            .map(|(s, _, n)| s.iter().map(|v| v / (*n).max(1) as f64).collect())
            .collect();
        for c in &rows {
            let cond = conditions.assign(&c.settings);
            for (j, v) in c.sensors.iter().enumerate() {
                sums[cond].1[j] += (v - means[cond][j]).powi(2);
            }
        }
        let stds: Vec<Vec<f64>> = sums
            .iter()
            .map(|(_, ss, n)| ss.iter().map(|v| (v / (*n).max(1) as f64).sqrt()).collect())
            .collect();
        let sensors: Vec<usize> = (0..n_sensors)
            .filter(|&j| {
                (0..k).any(|c| sums[c].2 >= 2 && stds[c][j] > 1e-9 * means[c][j].abs().max(1.0))
            })
            .collect();
        if sensors.is_empty() {
            return Err(PredictionError::AllSensorsConstant);
        }
        let stats = (0..k)
            .map(|c| sensors.iter().map(|&j| (means[c][j], stds[c][j])).collect())
            .collect();
        Ok(Self {
            layout: layout.clone(),
            conditions,
            sensors,
            stats,
        })
    }

    /// The kept sensors of one cycle, each as standard deviations from its condition's mean.
    pub fn normalise(&self, cycle: &Cycle) -> Vec<f64> {
        let stats = &self.stats[self.conditions.assign(&cycle.settings)];
        self.sensors
            .iter()
            .zip(stats)
            .map(|(&j, &(mean, std))| {
                let value = cycle.sensors.get(j).copied().unwrap_or(mean);
                if std > 1e-12 {
                    (value - mean) / std
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// The name of sensor `j` (an index into [`Layout::sensors`]).
    pub fn sensor_name(&self, j: usize) -> String {
        self.layout
            .sensors
            .get(j)
            .cloned()
            .unwrap_or_else(|| sensor_name(j))
    }

    /// The names a cycle needs: every setting and every kept sensor. A machine's readings with these metric
    /// names at one event time make one cycle.
    pub fn inputs(&self) -> Vec<&str> {
        self.layout
            .settings
            .iter()
            .map(String::as_str)
            .chain(
                self.sensors
                    .iter()
                    .filter_map(|&j| self.layout.sensors.get(j).map(String::as_str)),
            )
            .collect()
    }

    /// A cycle from named values (a machine's metrics at one event time) when every input is there;
    /// sensors the model dropped are left at 0 (they take no part).
    pub fn cycle_from(&self, cycle: u32, values: &BTreeMap<String, f64>) -> Option<Cycle> {
        let settings = self
            .layout
            .settings
            .iter()
            .map(|n| values.get(n).copied())
            .collect::<Option<Vec<f64>>>()?;
        let mut sensors = vec![0.0; self.layout.sensors.len()];
        for &j in &self.sensors {
            sensors[j] = *values.get(self.layout.sensors.get(j)?)?;
        }
        Some(Cycle {
            cycle,
            settings,
            sensors,
        })
    }

    /// The names of the features [`History::features`] returns, in order.
    pub fn feature_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .sensors
            .iter()
            .flat_map(|&j| {
                let name = self.sensor_name(j);
                PER_SENSOR.iter().map(move |s| format!("{name}.{s}"))
            })
            .collect();
        names.push("cycles".into());
        names
    }

    /// The sensor (0-based index into [`Layout::sensors`]) feature `f` describes, if any.
    pub fn sensor_of_feature(&self, f: usize) -> Option<usize> {
        self.sensors.get(f / PER_SENSOR.len()).copied()
    }
}

/// A unit's life so far, as much as its features need: the cycle count, its baseline and its recent
/// normalised cycles. The streaming predictor keeps one per machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Cycles seen since the start of life.
    pub cycles: u64,
    /// Sums of the first [`BASELINE`] normalised cycles.
    pub baseline_sum: Vec<f64>,
    /// How many cycles the baseline holds.
    pub baseline_n: usize,
    /// The last [`LONG`] normalised cycles, oldest first.
    pub recent: VecDeque<Vec<f64>>,
}

impl History {
    /// An empty life over `sensors` normalised sensors.
    pub fn new(sensors: usize) -> Self {
        Self {
            cycles: 0,
            baseline_sum: vec![0.0; sensors],
            baseline_n: 0,
            recent: VecDeque::with_capacity(LONG),
        }
    }

    /// Adds a normalised cycle.
    pub fn push(&mut self, z: Vec<f64>) {
        self.cycles += 1;
        if self.baseline_n < BASELINE {
            for (s, v) in self.baseline_sum.iter_mut().zip(&z) {
                *s += v;
            }
            self.baseline_n += 1;
        }
        if self.recent.len() == LONG {
            self.recent.pop_front();
        }
        self.recent.push_back(z);
    }

    /// The features after the last pushed cycle (see [`Normaliser::feature_names`]); all zero before any.
    pub fn features(&self) -> Vec<f64> {
        let sensors = self.baseline_sum.len();
        let mut out = Vec::with_capacity(sensors * PER_SENSOR.len() + 1);
        let n = self.recent.len();
        for j in 0..sensors {
            let series = |len: usize| self.recent.iter().skip(n - len.min(n)).map(move |z| z[j]);
            let last = self.recent.back().map_or(0.0, |z| z[j]);
            let mean30 = mean(series(WINDOW));
            let baseline = self.baseline_sum[j] / self.baseline_n.max(1) as f64;
            out.extend([
                last,
                mean(series(SHORT)),
                mean30,
                slope(series(WINDOW)),
                slope(series(LONG)),
                mean30 - baseline,
            ]);
        }
        out.push(self.cycles as f64);
        out
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// Least-squares slope per cycle; 0 for fewer than two points.
fn slope(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let n = values.clone().count();
    if n < 2 {
        return 0.0;
    }
    let x_mean = (n - 1) as f64 / 2.0;
    let y_mean = mean(values.clone());
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, y) in values.enumerate() {
        let dx = i as f64 - x_mean;
        sxy += dx * (y - y_mean);
        sxx += dx * dx;
    }
    sxy / sxx
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cycle(cycle: u32, settings: [f64; 3], sensors: [f64; SENSORS]) -> Cycle {
        Cycle {
            cycle,
            settings: settings.to_vec(),
            sensors: sensors.to_vec(),
        }
    }

    /// Six operating conditions like FD002's, each with its own sensor levels and a little jitter.
    fn six_condition_runs() -> Vec<Run> {
        let conditions = [
            [0.0, 0.0, 100.0],
            [10.0, 0.25, 100.0],
            [20.0, 0.7, 100.0],
            [25.0, 0.62, 60.0],
            [35.0, 0.84, 100.0],
            [42.0, 0.84, 100.0],
        ];
        let mut runs = Vec::new();
        let mut jitter = 0.0f64;
        for unit in 1..=3 {
            let mut cycles = Vec::new();
            for t in 1..=60u32 {
                jitter = (jitter + 0.37) % 1.0;
                let c = conditions[(t as usize * 7 + unit) % 6];
                let mut sensors = [5.0; SENSORS];
                sensors[1] = 100.0 * c[1] + 500.0 + jitter + 0.1 * f64::from(t);
                sensors[2] = c[0] * 3.0 + jitter * 2.0;
                let settings = [c[0] + jitter * 1e-3, c[1] + jitter * 1e-4, c[2]];
                cycles.push(cycle(t, settings, sensors));
            }
            runs.push(Run {
                unit: unit as u32,
                cycles,
            });
        }
        runs
    }

    #[test]
    fn six_operating_conditions_are_found_and_one_when_settings_only_jitter() {
        let runs = six_condition_runs();
        let settings: Vec<_> = runs
            .iter()
            .flat_map(|r| &r.cycles)
            .map(|c| c.settings.clone())
            .collect();
        assert_eq!(Conditions::fit(&settings).centroids.len(), 6);
        let noise: Vec<Vec<f64>> = (0..500)
            .map(|i| {
                let x = ((i * 7919) % 1000) as f64 / 1000.0 - 0.5;
                let y = ((i * 104_729) % 997) as f64 / 997.0 - 0.5;
                vec![x * 0.002, y * 0.0003, 100.0]
            })
            .collect();
        assert_eq!(Conditions::fit(&noise).centroids.len(), 1);
    }

    #[test]
    fn constant_sensors_are_dropped_and_the_rest_normalised_per_condition() {
        let runs = six_condition_runs();
        let norm = Normaliser::fit(&runs.iter().collect::<Vec<_>>(), &Layout::cmapss()).unwrap();
        // s1, s4 … s21 are 5.0 everywhere; s2 and s3 vary within their conditions.
        assert_eq!(norm.sensors, vec![1, 2]);
        // Per condition, the normalised sensors average to zero: the condition's level is gone.
        let mut per_condition = vec![(0.0, 0usize); 6];
        for c in runs.iter().flat_map(|r| &r.cycles) {
            let z = norm.normalise(c);
            let at = &mut per_condition[norm.conditions.assign(&c.settings)];
            at.0 += z[0];
            at.1 += 1;
        }
        for (sum, n) in per_condition {
            assert!(n > 0 && (sum / n as f64).abs() < 1e-9);
        }
        assert_eq!(norm.feature_names().len(), 2 * 6 + 1);
        assert_eq!(norm.feature_names()[3], "s2.slope30");
    }

    #[test]
    fn a_training_set_of_constant_sensors_is_refused() {
        let cycles = (1..=10)
            .map(|t| cycle(t, [0.0, 0.0, 100.0], [1.0; SENSORS]))
            .collect();
        let err = Normaliser::fit(&[&Run { unit: 1, cycles }], &Layout::cmapss()).unwrap_err();
        assert!(matches!(err, PredictionError::AllSensorsConstant));
    }

    #[test]
    fn window_features_follow_a_linear_trend() {
        let mut history = History::new(1);
        for t in 0..40 {
            history.push(vec![f64::from(t) * 0.5]);
        }
        let f = history.features();
        // last, mean5, mean30, slope30, slope100, drift, cycles
        assert_eq!(f[0], 19.5);
        assert!((f[1] - 18.5).abs() < 1e-12);
        assert!((f[2] - 12.25).abs() < 1e-12);
        assert!((f[3] - 0.5).abs() < 1e-12 && (f[4] - 0.5).abs() < 1e-12);
        assert!((f[5] - (12.25 - 4.75)).abs() < 1e-12);
        assert_eq!(f[6], 40.0);
        let mut one = History::new(1);
        one.push(vec![2.0]);
        assert_eq!(one.features(), vec![2.0, 2.0, 2.0, 0.0, 0.0, 0.0, 1.0]);
    }
}
