//! Rules: AND/OR trees of conditions over the metrics of one machine, optionally held for a time or a number
//! of readings before they raise an alert.

use serde::{Deserialize, Serialize};

use super::baseline::BaselineConfig;
use super::context::ContextConfig;
use super::drift::DriftConfig;
use super::ewma::EwmaConfig;
use super::rate::RateConfig;
use super::settings::DetectionSettings;

pub use haltless_schemas::alerts::Severity;

/// A rule for one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable id; alert ids derive from it. The API generates one when a new rule has none, and refuses
    /// ids starting with `default:`.
    #[schema(required = false, pattern = "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]
    pub id: String,
    /// Human name.
    #[serde(default)]
    pub name: String,
    /// Severity of the alerts it raises: `info`, `warning` (default) or `critical`.
    #[serde(default = "default_severity")]
    #[schema(value_type = String, pattern = "^(info|warning|critical)$")]
    pub severity: Severity,
    /// The condition tree.
    pub when: Expr,
    /// How long the tree must hold before an alert is raised.
    #[serde(default)]
    pub hold: Hold,
    /// Hysteresis of detector conditions: once raised, a condition stays on until its score falls below this
    /// fraction of its limit.
    #[serde(default = "default_clear_ratio")]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub clear_ratio: f64,
    /// Consecutive evaluations with the tree off before the alert resolves.
    #[serde(default = "default_clear_after")]
    pub clear_after: u32,
    /// A condition on another metric counts only while its last reading is at most this old (event time).
    #[serde(default = "default_max_age")]
    pub max_age_secs: u64,
}

fn default_severity() -> Severity {
    Severity::Warning
}
fn default_clear_ratio() -> f64 {
    0.8
}
fn default_clear_after() -> u32 {
    3
}
fn default_max_age() -> u64 {
    300
}

/// How long a rule's tree must be true before it raises.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Hold {
    /// Seconds of event time.
    pub secs: u64,
    /// Consecutive evaluations.
    pub readings: u32,
}

/// A condition tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Expr {
    /// True when every branch is.
    All {
        /// The branches.
        #[schema(no_recursion)]
        all: Vec<Expr>,
    },
    /// True when any branch is.
    Any {
        /// The branches.
        #[schema(no_recursion)]
        any: Vec<Expr>,
    },
    /// A leaf.
    Cond(Condition),
}

/// A test on one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Condition {
    /// The metric it looks at.
    pub metric: String,
    /// The test.
    #[serde(flatten)]
    pub test: Test,
}

/// What a condition tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "detector", rename_all = "snake_case")]
pub enum Test {
    /// The value is above `value`.
    Above {
        /// The limit.
        value: f64,
        /// Once on, stays on until the value falls below `value - hysteresis`.
        #[serde(default)]
        hysteresis: f64,
    },
    /// The value is below `value`.
    Below {
        /// The limit.
        value: f64,
        /// Once on, stays on until the value rises above `value + hysteresis`.
        #[serde(default)]
        hysteresis: f64,
    },
    /// The EWMA detector fires.
    Ewma(EwmaConfig),
    /// The static baseline fires.
    Baseline(BaselineConfig),
    /// The rate-of-change detector fires.
    Rate(RateConfig),
    /// The context detector (calibrated level, profile, transitions, range) fires.
    Context(ContextConfig),
    /// The drift detector fires.
    Drift(DriftConfig),
}

impl Test {
    /// The detector's name in alerts.
    pub fn name(&self) -> &'static str {
        match self {
            Test::Above { .. } => "threshold_above",
            Test::Below { .. } => "threshold_below",
            Test::Ewma(_) => "ewma",
            Test::Baseline(_) => "baseline",
            Test::Rate(_) => "rate_of_change",
            Test::Context(_) => "context",
            Test::Drift(_) => "drift",
        }
    }
}

impl Expr {
    /// The leaves, depth first; their positions identify them in the machine's state.
    pub fn conditions(&self) -> Vec<&Condition> {
        match self {
            Expr::Cond(c) => vec![c],
            Expr::All { all: xs } | Expr::Any { any: xs } => {
                xs.iter().flat_map(|x| x.conditions()).collect()
            }
        }
    }

    /// The leaves of a tree one level deep (a leaf, or `all`/`any` of leaves, as most rules and every
    /// default rule are), in order; `None` for a deeper tree. The engine's per-reading walks take this path
    /// first: a loop the compiler inlines, where the recursive walk cannot be.
    fn flat(&self) -> Option<Flat<'_>> {
        match self {
            Expr::Cond(c) => Some(Flat::One(c)),
            Expr::All { all: xs } | Expr::Any { any: xs } => {
                let all = matches!(self, Expr::All { .. });
                xs.iter()
                    .all(|x| matches!(x, Expr::Cond(_)))
                    .then_some(Flat::Many { all, leaves: xs })
            }
        }
    }

    /// How the tree combines its leaves (one walk of its top level for most rules).
    pub fn shape(&self) -> Shape {
        match self.flat() {
            Some(Flat::One(_)) => Shape::Flat { all: true, n: 1 },
            Some(Flat::Many { all, leaves }) => Shape::Flat {
                all,
                n: leaves.len(),
            },
            None => Shape::Nested {
                n: self.leaf_count(),
            },
        }
    }

    /// Calls `f` with each leaf and its position, depth first (as [`Expr::conditions`], without a `Vec`).
    pub fn visit<'a>(&'a self, f: &mut impl FnMut(usize, &'a Condition)) {
        match self.flat() {
            Some(Flat::One(c)) => return f(0, c),
            Some(Flat::Many { leaves, .. }) => {
                for (i, x) in leaves.iter().enumerate() {
                    if let Expr::Cond(c) = x {
                        f(i, c);
                    }
                }
                return;
            }
            None => {}
        }
        fn go<'a>(e: &'a Expr, i: &mut usize, f: &mut impl FnMut(usize, &'a Condition)) {
            match e {
                Expr::Cond(c) => {
                    f(*i, c);
                    *i += 1;
                }
                Expr::All { all: xs } | Expr::Any { any: xs } => {
                    xs.iter().for_each(|x| go(x, i, f));
                }
            }
        }
        go(self, &mut 0, f);
    }

    /// Whether a leaf looks at `metric`.
    pub fn mentions(&self, metric: &str) -> bool {
        match self {
            Expr::Cond(c) => c.metric == metric,
            Expr::All { all: xs } | Expr::Any { any: xs } => xs.iter().any(|x| x.mentions(metric)),
        }
    }

    /// The number of leaves.
    pub fn leaf_count(&self) -> usize {
        match self {
            Expr::Cond(_) => 1,
            Expr::All { all: xs } | Expr::Any { any: xs } => xs
                .iter()
                .map(|x| match x {
                    Expr::Cond(_) => 1,
                    deeper => deeper.leaf_count(),
                })
                .sum(),
        }
    }

    /// Evaluates the tree given each leaf's truth, `at` its position in [`Expr::conditions`] order.
    pub fn eval(&self, at: impl Fn(usize) -> bool) -> bool {
        fn go(e: &Expr, at: &impl Fn(usize) -> bool, i: &mut usize) -> bool {
            match e {
                Expr::Cond(_) => {
                    let v = at(*i);
                    *i += 1;
                    v
                }
                // Every branch is evaluated (no short cut) so that leaf positions stay aligned.
                Expr::All { all } => {
                    let mut holds = true;
                    for x in all {
                        holds &= go(x, at, i);
                    }
                    holds
                }
                Expr::Any { any } => {
                    let mut holds = false;
                    for x in any {
                        holds |= go(x, at, i);
                    }
                    holds
                }
            }
        }
        go(self, &at, &mut 0)
    }
}

/// How a tree combines its leaves ([`Expr::shape`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// All (or else any) of `n` leaves: a tree one level deep, or a single leaf (all of one).
    Flat { all: bool, n: usize },
    /// A deeper tree of `n` leaves.
    Nested { n: usize },
}

impl Shape {
    /// The number of leaves.
    pub fn leaves(&self) -> usize {
        match self {
            Shape::Flat { n, .. } | Shape::Nested { n } => *n,
        }
    }
}

/// A tree one level deep ([`Expr::flat`]).
enum Flat<'a> {
    /// A single leaf.
    One(&'a Condition),
    /// `all` (or else `any`) of these, every one a leaf.
    Many { all: bool, leaves: &'a [Expr] },
}

pub use super::settings::DEFAULT_CLEAR_AFTER;

impl Rule {
    /// The rule in force under the tenant's `settings`: its context conditions take the tenant's values for
    /// the settings they leave to it.
    pub fn under(&self, settings: &DetectionSettings) -> Rule {
        fn go(e: &Expr, s: &DetectionSettings) -> Expr {
            match e {
                Expr::All { all } => Expr::All {
                    all: all.iter().map(|x| go(x, s)).collect(),
                },
                Expr::Any { any } => Expr::Any {
                    any: any.iter().map(|x| go(x, s)).collect(),
                },
                Expr::Cond(Condition {
                    metric,
                    test: Test::Context(c),
                }) => Expr::Cond(Condition {
                    metric: metric.clone(),
                    test: Test::Context(c.under(s)),
                }),
                Expr::Cond(c) => Expr::Cond(c.clone()),
            }
        }
        Rule {
            when: go(&self.when, settings),
            ..self.clone()
        }
    }
}

/// The rule every metric gets until a rule of the machine names it, under the tenant's `settings`: the
/// context detector or the drift detector (unless `settings.drift` is off), as one rule so that one fault is
/// one alert (rate of change is opt-in, `detection.features.rate`, or a rule condition of its own).
pub fn default_rules(metric: &str, settings: &DetectionSettings) -> Vec<Rule> {
    let cond = |test: Test| {
        Expr::Cond(Condition {
            metric: metric.to_owned(),
            test,
        })
    };
    let context = ContextConfig {
        inherits: super::context::Inherits::ALL,
        ..ContextConfig::default()
    }
    .under(settings);
    let mut any = vec![cond(Test::Context(context))];
    if settings.drift {
        any.push(cond(Test::Drift(DriftConfig::default())));
    }
    vec![Rule {
        id: format!("default:context:{metric}"),
        name: format!("anomaly on {metric}"),
        severity: settings.severity(),
        when: Expr::Any { any },
        hold: Hold::default(),
        clear_ratio: default_clear_ratio(),
        clear_after: settings.rest_readings,
        max_age_secs: default_max_age(),
    }]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_as_users_write_them() {
        let rule: Rule = serde_json::from_str(
            r#"{"id": "overheat", "severity": "critical", "hold": {"secs": 30},
                "when": {"all": [
                    {"metric": "spindle_temp", "detector": "above", "value": 90},
                    {"any": [{"metric": "vibration", "detector": "ewma", "band": 4},
                             {"metric": "vibration", "detector": "rate", "max_per_sec": 0.5}]}]}}"#,
        )
        .unwrap();
        let leaves = rule.when.conditions();
        assert_eq!(leaves.len(), 3);
        assert_eq!(
            leaves[1].test,
            Test::Ewma(EwmaConfig {
                band: 4.0,
                ..EwmaConfig::default()
            })
        );
        assert_eq!(rule.hold.secs, 30);
        let eval = |truth: [bool; 3]| rule.when.eval(|i| truth[i]);
        assert!(eval([true, false, true]));
        assert!(!eval([true, false, false]));
        assert!(!eval([false, true, true]));
        let err = serde_json::from_str::<Rule>(
            r#"{"id": "x", "when": {"metric": "t", "detector": "ewma", "bandd": 4}}"#,
        );
        assert!(err.is_err(), "a misspelt setting is refused");
    }
}
