//! `haltless.rules.v1`: every version of every rule, as events, so that a replay sees the rules in force.
//!
//! These types mirror the Avro records; the detection logic has its own rule types and converts.

use apache_avro::types::Value;
use uuid::Uuid;

use crate::alerts::Severity;
use crate::codec::{Codec, WireFormat};
use crate::error::CodecError;
use crate::fields::{enum_symbol, optional, parse_symbol, record, shape, unsigned, Fields};

/// Topic name of the rule changes.
pub const RULES_TOPIC: &str = "haltless.rules.v1";

/// The schema the platform writes today.
pub const SCHEMA: &str = include_str!("../avro/haltless.rules.v1.avsc");

/// Every released version, oldest first (see `avro/README.md`).
pub const HISTORY: &[&str] = &[
    include_str!("../avro/history/haltless.rules.v1/001.avsc"),
    include_str!("../avro/history/haltless.rules.v1/002.avsc"),
    include_str!("../avro/history/haltless.rules.v1/003.avsc"),
    include_str!("../avro/history/haltless.rules.v1/004.avsc"),
];

/// One version of one rule: one Kafka message.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleChange {
    /// Owning tenant.
    pub tenant_id: Uuid,
    /// Version number, growing per rule.
    pub version: i64,
    /// Event time from which this version applies (ms).
    pub effective_from_ms: i64,
    /// Machine names it applies to; every machine of the tenant when empty.
    pub machines: Vec<String>,
    /// The rule was deleted from `effective_from_ms` on.
    pub deleted: bool,
    /// The rule.
    pub rule: Rule,
    /// Not a rule but a maintenance event that resets detector state (since version 3 of the schema).
    pub reset: Option<StateReset>,
    /// Not a rule but the tenant's detection settings (since version 4 of the schema).
    pub settings: Option<DetectionSettings>,
}

/// A tenant's detection settings, in force from the change's effective time.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionSettings {
    /// Sensitivity: an alert for a reading as unusual as one in this many.
    pub one_in: f64,
    /// Rest period of the default rules, in readings.
    pub rest_readings: u64,
    /// The time-of-day profile takes part.
    pub profile: bool,
    /// Value transitions take part.
    pub transitions: bool,
    /// The rate of change takes part.
    pub rate: bool,
    /// The default rules include the drift detector.
    pub drift: bool,
    /// Severity of the default rules' alerts.
    pub severity: Severity,
}

/// A maintenance event the detectors see in order: they forget what they learned of some metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct StateReset {
    /// The maintenance event.
    pub maintenance_id: Uuid,
    /// replacement, repair or calibration.
    pub kind: String,
    /// The metrics whose detectors start afresh; all when empty.
    pub metrics: Vec<String>,
}

/// A rule for one machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Stable id.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Severity of its alerts.
    pub severity: Severity,
    /// The condition tree.
    pub when: Expr,
    /// Seconds of event time the tree must hold before it raises.
    pub hold_secs: u64,
    /// Consecutive evaluations the tree must hold before it raises.
    pub hold_readings: u32,
    /// Fraction of its limit below which a raised detector condition turns off.
    pub clear_ratio: f64,
    /// Consecutive evaluations with the tree off before the alert resolves.
    pub clear_after: u32,
    /// Age (event time) beyond which a condition's last reading no longer counts.
    pub max_age_secs: u64,
}

/// A node of the condition tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// True when every branch is.
    All(Vec<Expr>),
    /// True when any branch is.
    Any(Vec<Expr>),
    /// A leaf.
    Condition(Condition),
}

/// A test on one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The metric.
    pub metric: String,
    /// The test.
    pub test: Test,
}

/// What a condition tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// The value is above `value`.
    Above {
        /// The limit.
        value: f64,
        /// Hysteresis once on.
        hysteresis: f64,
    },
    /// The value is below `value`.
    Below {
        /// The limit.
        value: f64,
        /// Hysteresis once on.
        hysteresis: f64,
    },
    /// The EWMA detector fires.
    Ewma(EwmaConfig),
    /// The static baseline fires.
    Baseline(BaselineConfig),
    /// The rate-of-change detector fires.
    Rate(RateConfig),
    /// The context detector fires.
    Context(ContextConfig),
    /// The drift detector fires.
    Drift(DriftConfig),
}

/// Settings of the drift detector.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftConfig {
    /// Consecutive day-to-day moves in one direction needed.
    pub days: u64,
    /// Smallest move per day that counts, in noise standard deviations.
    pub min_slope: f64,
    /// Smallest noise standard deviation, relative to the level.
    pub min_rel_std: f64,
    /// Smallest noise standard deviation, absolute.
    pub min_std: f64,
}

/// Settings of the context detector.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextConfig {
    /// `-log10` of how often a reading this unusual is expected.
    pub limit: f64,
    /// Half-life of the level, in seconds of event time.
    pub half_life_secs: f64,
    /// Half-life of the profile, the range and the calibration, in seconds of event time.
    pub memory_secs: f64,
    /// Readings a raw score is averaged over.
    pub average: u64,
    /// Readings learnt from before judging.
    pub learn: u64,
    /// Quantised levels of the transitions feature (0: off).
    pub levels: u64,
    /// The time-of-day profile takes part.
    pub profile: bool,
    /// The rate of change takes part.
    pub rate: bool,
    /// Smallest standard deviation, relative to the mean.
    pub min_rel_std: f64,
    /// Smallest standard deviation, absolute.
    pub min_std: f64,
    /// The settings left to the tenant's detection settings (since version 4).
    pub inherits: Vec<String>,
}

/// Settings of the EWMA detector.
#[derive(Debug, Clone, PartialEq)]
pub struct EwmaConfig {
    /// Half-life of the weights, in seconds of event time.
    pub half_life_secs: f64,
    /// z-score at which it fires.
    pub band: f64,
    /// Samples before it judges.
    pub warmup: u64,
    /// Smallest standard deviation, relative to the mean.
    pub min_rel_std: f64,
    /// Smallest standard deviation, absolute.
    pub min_std: f64,
}

/// Settings of the static baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineConfig {
    /// Window length in hours of event time.
    pub window_hours: i64,
    /// Samples in the window before it judges.
    pub min_samples: u64,
    /// z-score at which it fires.
    pub z_limit: f64,
    /// Smallest standard deviation, relative to the mean.
    pub min_rel_std: f64,
    /// Smallest standard deviation, absolute.
    pub min_std: f64,
}

/// Settings of the rate-of-change detector.
#[derive(Debug, Clone, PartialEq)]
pub struct RateConfig {
    /// A fixed limit on the velocity (per second); a learned band when `None`.
    pub max_per_sec: Option<f64>,
    /// z-score of the learned band.
    pub band: f64,
    /// Half-life of the learned velocity statistics, in seconds.
    pub half_life_secs: f64,
    /// Velocities before the learned band judges.
    pub warmup: u64,
    /// Smallest standard deviation of the velocity.
    pub min_std: f64,
}

const SEVERITIES: [(Severity, &str); 3] = [
    (Severity::Info, "INFO"),
    (Severity::Warning, "WARNING"),
    (Severity::Critical, "CRITICAL"),
];

impl RuleChange {
    /// The record key: `tenant/rule_id/version`, so that compaction keeps every version.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.tenant_id, self.rule.id, self.version)
    }

    /// A codec for this topic (single-object encoding: the topic is the platform's own).
    pub fn codec() -> Result<Codec, CodecError> {
        Codec::new(SCHEMA, HISTORY, WireFormat::SingleObject)
    }

    /// Encodes the change.
    pub fn encode(&self, codec: &Codec) -> Result<Vec<u8>, CodecError> {
        codec.encode_value(record([
            ("tenant_id", Value::Uuid(self.tenant_id)),
            ("version", Value::Long(self.version)),
            (
                "effective_from",
                Value::TimestampMillis(self.effective_from_ms),
            ),
            (
                "machines",
                Value::Array(self.machines.iter().cloned().map(Value::String).collect()),
            ),
            ("deleted", Value::Boolean(self.deleted)),
            ("rule", self.rule.to_value()),
            (
                "reset",
                optional(self.reset.as_ref().map(|r| {
                    record([
                        ("maintenance_id", Value::Uuid(r.maintenance_id)),
                        ("kind", Value::String(r.kind.clone())),
                        (
                            "metrics",
                            Value::Array(r.metrics.iter().cloned().map(Value::String).collect()),
                        ),
                    ])
                })),
            ),
            (
                "settings",
                optional(self.settings.as_ref().map(|d| {
                    record([
                        ("one_in", Value::Double(d.one_in)),
                        ("rest_readings", unsigned(d.rest_readings)),
                        ("profile", Value::Boolean(d.profile)),
                        ("transitions", Value::Boolean(d.transitions)),
                        ("rate", Value::Boolean(d.rate)),
                        ("drift", Value::Boolean(d.drift)),
                        ("severity", enum_symbol(&SEVERITIES, d.severity)),
                    ])
                })),
            ),
        ]))
    }

    /// Decodes a change written with any known version of the schema.
    pub fn decode(codec: &Codec, bytes: &[u8]) -> Result<Self, CodecError> {
        let mut f = Fields::of(codec.decode_value(bytes)?)?;
        let machines = f
            .array("machines")?
            .into_iter()
            .map(|m| match m {
                Value::String(s) => Ok(s),
                other => Err(shape("machines", &other)),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            tenant_id: f.uuid("tenant_id")?,
            version: f.long("version")?,
            effective_from_ms: f.long("effective_from")?,
            machines,
            deleted: f.boolean("deleted")?,
            rule: Rule::from_value(f.take("rule")?)?,
            reset: match f.optional("reset")? {
                None => None,
                Some(v) => {
                    let mut r = Fields::of(v)?;
                    Some(StateReset {
                        maintenance_id: r.uuid("maintenance_id")?,
                        kind: r.string("kind")?,
                        metrics: r
                            .array("metrics")?
                            .into_iter()
                            .map(|m| match m {
                                Value::String(s) => Ok(s),
                                other => Err(shape("metrics", &other)),
                            })
                            .collect::<Result<_, _>>()?,
                    })
                }
            },
            settings: match f.optional("settings")? {
                None => None,
                Some(v) => {
                    let mut d = Fields::of(v)?;
                    Some(DetectionSettings {
                        one_in: d.double("one_in")?,
                        rest_readings: d.unsigned("rest_readings")?,
                        profile: d.boolean("profile")?,
                        transitions: d.boolean("transitions")?,
                        rate: d.boolean("rate")?,
                        drift: d.boolean("drift")?,
                        severity: parse_symbol(&SEVERITIES, &d.symbol("severity")?)?,
                    })
                }
            },
        })
    }
}

fn strings(name: &str, values: Vec<Value>) -> Result<Vec<String>, CodecError> {
    values
        .into_iter()
        .map(|m| match m {
            Value::String(s) => Ok(s),
            other => Err(shape(name, &other)),
        })
        .collect()
}

impl Rule {
    fn to_value(&self) -> Value {
        record([
            ("id", Value::String(self.id.clone())),
            ("name", Value::String(self.name.clone())),
            ("severity", enum_symbol(&SEVERITIES, self.severity)),
            ("when", self.when.to_value()),
            (
                "hold",
                record([
                    ("secs", unsigned(self.hold_secs)),
                    ("readings", Value::Long(self.hold_readings.into())),
                ]),
            ),
            ("clear_ratio", Value::Double(self.clear_ratio)),
            ("clear_after", Value::Long(self.clear_after.into())),
            ("max_age_secs", unsigned(self.max_age_secs)),
        ])
    }

    fn from_value(value: Value) -> Result<Self, CodecError> {
        let mut f = Fields::of(value)?;
        let mut hold = Fields::of(f.take("hold")?)?;
        Ok(Self {
            id: f.string("id")?,
            name: f.string("name")?,
            severity: parse_symbol(&SEVERITIES, &f.symbol("severity")?)?,
            when: Expr::from_value(f.take("when")?)?,
            hold_secs: hold.unsigned("secs")?,
            hold_readings: hold.u32("readings")?,
            clear_ratio: f.double("clear_ratio")?,
            clear_after: f.u32("clear_after")?,
            max_age_secs: f.unsigned("max_age_secs")?,
        })
    }
}

impl Expr {
    fn to_value(&self) -> Value {
        let branches = |xs: &[Expr]| Some(Value::Array(xs.iter().map(Expr::to_value).collect()));
        let (all, any, condition) = match self {
            Expr::All(xs) => (branches(xs), None, None),
            Expr::Any(xs) => (None, branches(xs), None),
            Expr::Condition(c) => (None, None, Some(c.to_value())),
        };
        record([
            ("all", optional(all)),
            ("any", optional(any)),
            ("condition", optional(condition)),
        ])
    }

    fn from_value(value: Value) -> Result<Self, CodecError> {
        let mut f = Fields::of(value)?;
        let branches = |items: Vec<Value>| {
            items
                .into_iter()
                .map(Expr::from_value)
                .collect::<Result<Vec<_>, _>>()
        };
        match (
            f.optional("all")?,
            f.optional("any")?,
            f.optional("condition")?,
        ) {
            (Some(Value::Array(xs)), None, None) => Ok(Expr::All(branches(xs)?)),
            (None, Some(Value::Array(xs)), None) => Ok(Expr::Any(branches(xs)?)),
            (None, None, Some(c)) => Ok(Expr::Condition(Condition::from_value(c)?)),
            _ => Err(CodecError::Shape(
                "an Expr needs exactly one of all, any, condition".into(),
            )),
        }
    }
}

impl Condition {
    fn to_value(&self) -> Value {
        let threshold = |value: f64, hysteresis: f64| {
            Some(record([
                ("value", Value::Double(value)),
                ("hysteresis", Value::Double(hysteresis)),
            ]))
        };
        let (mut above, mut below, mut ewma, mut baseline, mut rate) =
            (None, None, None, None, None);
        let (mut context, mut drift) = (None, None);
        match &self.test {
            Test::Above { value, hysteresis } => above = threshold(*value, *hysteresis),
            Test::Below { value, hysteresis } => below = threshold(*value, *hysteresis),
            Test::Ewma(c) => {
                ewma = Some(record([
                    ("half_life_secs", Value::Double(c.half_life_secs)),
                    ("band", Value::Double(c.band)),
                    ("warmup", unsigned(c.warmup)),
                    ("min_rel_std", Value::Double(c.min_rel_std)),
                    ("min_std", Value::Double(c.min_std)),
                ]))
            }
            Test::Baseline(c) => {
                baseline = Some(record([
                    ("window_hours", Value::Long(c.window_hours)),
                    ("min_samples", unsigned(c.min_samples)),
                    ("z_limit", Value::Double(c.z_limit)),
                    ("min_rel_std", Value::Double(c.min_rel_std)),
                    ("min_std", Value::Double(c.min_std)),
                ]))
            }
            Test::Rate(c) => {
                rate = Some(record([
                    ("max_per_sec", optional(c.max_per_sec.map(Value::Double))),
                    ("band", Value::Double(c.band)),
                    ("half_life_secs", Value::Double(c.half_life_secs)),
                    ("warmup", unsigned(c.warmup)),
                    ("min_std", Value::Double(c.min_std)),
                ]))
            }
            Test::Context(c) => {
                context = Some(record([
                    ("limit", Value::Double(c.limit)),
                    ("half_life_secs", Value::Double(c.half_life_secs)),
                    ("memory_secs", Value::Double(c.memory_secs)),
                    ("average", unsigned(c.average)),
                    ("learn", unsigned(c.learn)),
                    ("levels", unsigned(c.levels)),
                    ("profile", Value::Boolean(c.profile)),
                    ("rate", Value::Boolean(c.rate)),
                    ("min_rel_std", Value::Double(c.min_rel_std)),
                    ("min_std", Value::Double(c.min_std)),
                    (
                        "inherits",
                        Value::Array(c.inherits.iter().cloned().map(Value::String).collect()),
                    ),
                ]))
            }
            Test::Drift(c) => {
                drift = Some(record([
                    ("days", unsigned(c.days)),
                    ("min_slope", Value::Double(c.min_slope)),
                    ("min_rel_std", Value::Double(c.min_rel_std)),
                    ("min_std", Value::Double(c.min_std)),
                ]))
            }
        }
        record([
            ("metric", Value::String(self.metric.clone())),
            ("above", optional(above)),
            ("below", optional(below)),
            ("ewma", optional(ewma)),
            ("baseline", optional(baseline)),
            ("rate", optional(rate)),
            ("context", optional(context)),
            ("drift", optional(drift)),
        ])
    }

    fn from_value(value: Value) -> Result<Self, CodecError> {
        let mut f = Fields::of(value)?;
        let metric = f.string("metric")?;
        let mut tests = Vec::new();
        if let Some(v) = f.optional("above")? {
            let mut t = Fields::of(v)?;
            tests.push(Test::Above {
                value: t.double("value")?,
                hysteresis: t.double("hysteresis")?,
            });
        }
        if let Some(v) = f.optional("below")? {
            let mut t = Fields::of(v)?;
            tests.push(Test::Below {
                value: t.double("value")?,
                hysteresis: t.double("hysteresis")?,
            });
        }
        if let Some(v) = f.optional("ewma")? {
            let mut c = Fields::of(v)?;
            tests.push(Test::Ewma(EwmaConfig {
                half_life_secs: c.double("half_life_secs")?,
                band: c.double("band")?,
                warmup: c.unsigned("warmup")?,
                min_rel_std: c.double("min_rel_std")?,
                min_std: c.double("min_std")?,
            }));
        }
        if let Some(v) = f.optional("baseline")? {
            let mut c = Fields::of(v)?;
            tests.push(Test::Baseline(BaselineConfig {
                window_hours: c.long("window_hours")?,
                min_samples: c.unsigned("min_samples")?,
                z_limit: c.double("z_limit")?,
                min_rel_std: c.double("min_rel_std")?,
                min_std: c.double("min_std")?,
            }));
        }
        if let Some(v) = f.optional("rate")? {
            let mut c = Fields::of(v)?;
            let max_per_sec = match c.optional("max_per_sec")? {
                None => None,
                Some(Value::Double(x)) => Some(x),
                Some(other) => return Err(shape("max_per_sec", &other)),
            };
            tests.push(Test::Rate(RateConfig {
                max_per_sec,
                band: c.double("band")?,
                half_life_secs: c.double("half_life_secs")?,
                warmup: c.unsigned("warmup")?,
                min_std: c.double("min_std")?,
            }));
        }
        if let Some(v) = f.optional("context")? {
            let mut c = Fields::of(v)?;
            tests.push(Test::Context(ContextConfig {
                limit: c.double("limit")?,
                half_life_secs: c.double("half_life_secs")?,
                memory_secs: c.double("memory_secs")?,
                average: c.unsigned("average")?,
                learn: c.unsigned("learn")?,
                levels: c.unsigned("levels")?,
                profile: c.boolean("profile")?,
                rate: c.boolean("rate")?,
                min_rel_std: c.double("min_rel_std")?,
                min_std: c.double("min_std")?,
                inherits: strings("inherits", c.array("inherits")?)?,
            }));
        }
        if let Some(v) = f.optional("drift")? {
            let mut c = Fields::of(v)?;
            tests.push(Test::Drift(DriftConfig {
                days: c.unsigned("days")?,
                min_slope: c.double("min_slope")?,
                min_rel_std: c.double("min_rel_std")?,
                min_std: c.double("min_std")?,
            }));
        }
        match <[Test; 1]>::try_from(tests) {
            Ok([test]) => Ok(Self { metric, test }),
            Err(tests) => Err(CodecError::Shape(format!(
                "condition on {metric}: {} detectors set, exactly one expected",
                tests.len()
            ))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cond(metric: &str, test: Test) -> Expr {
        Expr::Condition(Condition {
            metric: metric.into(),
            test,
        })
    }

    pub(crate) fn sample() -> RuleChange {
        RuleChange {
            tenant_id: Uuid::from_u128(1),
            version: 3,
            effective_from_ms: 1_795_943_292_699,
            machines: vec!["press-01".into(), "press-02".into()],
            deleted: false,
            reset: None,
            settings: None,
            rule: Rule {
                id: "shaky".into(),
                name: "Hot and shaking".into(),
                severity: Severity::Critical,
                when: Expr::All(vec![
                    cond(
                        "temp",
                        Test::Above {
                            value: 70.0,
                            hysteresis: 2.5,
                        },
                    ),
                    Expr::Any(vec![
                        cond(
                            "vib",
                            Test::Ewma(EwmaConfig {
                                half_life_secs: 600.0,
                                band: 4.0,
                                warmup: 5,
                                min_rel_std: 0.01,
                                min_std: 1e-6,
                            }),
                        ),
                        cond(
                            "pressure",
                            Test::Rate(RateConfig {
                                max_per_sec: None,
                                band: 8.0,
                                half_life_secs: 86_400.0,
                                warmup: 5,
                                min_std: 1e-9,
                            }),
                        ),
                        cond(
                            "vib",
                            Test::Context(ContextConfig {
                                limit: 5.0,
                                half_life_secs: 21_600.0,
                                memory_secs: 604_800.0,
                                average: 10,
                                learn: 288,
                                levels: 8,
                                profile: true,
                                rate: false,
                                min_rel_std: 0.01,
                                min_std: 1e-6,
                                inherits: vec!["limit".into(), "profile".into()],
                            }),
                        ),
                        cond(
                            "vib",
                            Test::Drift(DriftConfig {
                                days: 3,
                                min_slope: 0.25,
                                min_rel_std: 1e-4,
                                min_std: 1e-9,
                            }),
                        ),
                        cond(
                            "pressure",
                            Test::Rate(RateConfig {
                                max_per_sec: Some(0.5),
                                band: 32.0,
                                half_life_secs: 86_400.0,
                                warmup: u64::MAX,
                                min_std: 1e-9,
                            }),
                        ),
                    ]),
                    cond(
                        "temp",
                        Test::Baseline(BaselineConfig {
                            window_hours: 168,
                            min_samples: 30,
                            z_limit: 4.0,
                            min_rel_std: 0.01,
                            min_std: 1e-6,
                        }),
                    ),
                    cond(
                        "temp",
                        Test::Below {
                            value: -5.0,
                            hysteresis: 0.0,
                        },
                    ),
                ]),
                hold_secs: 30,
                hold_readings: 2,
                clear_ratio: 0.8,
                clear_after: 3,
                max_age_secs: 300,
            },
        }
    }

    #[test]
    fn round_trips_every_kind_of_node_and_test() {
        let codec = RuleChange::codec().unwrap();
        let bytes = sample().encode(&codec).unwrap();
        assert_eq!(&bytes[..2], &[0xC3, 0x01]);
        assert_eq!(RuleChange::decode(&codec, &bytes).unwrap(), sample());
    }

    #[test]
    fn a_maintenance_reset_round_trips() {
        let codec = RuleChange::codec().unwrap();
        let reset = RuleChange {
            deleted: true,
            reset: Some(StateReset {
                maintenance_id: Uuid::from_u128(9),
                kind: "replacement".into(),
                metrics: vec!["vibration".into()],
            }),
            ..sample()
        };
        let bytes = reset.encode(&codec).unwrap();
        assert_eq!(RuleChange::decode(&codec, &bytes).unwrap(), reset);
    }

    #[test]
    fn detection_settings_round_trip_and_older_rules_inherit_nothing() {
        let codec = RuleChange::codec().unwrap();
        let settings = RuleChange {
            deleted: true,
            settings: Some(DetectionSettings {
                one_in: 1e6,
                rest_readings: 48,
                profile: false,
                transitions: true,
                rate: true,
                drift: false,
                severity: Severity::Critical,
            }),
            ..sample()
        };
        let bytes = settings.encode(&codec).unwrap();
        assert_eq!(RuleChange::decode(&codec, &bytes).unwrap(), settings);
        // A rule written with version 3 of the schema (no `inherits`) reads as setting everything itself.
        let v3 = Codec::new(HISTORY[2], HISTORY, WireFormat::SingleObject).unwrap();
        let mut old = sample();
        let Expr::All(all) = &mut old.rule.when else {
            panic!("the sample is an all")
        };
        let Expr::Any(any) = &mut all[1] else {
            panic!("then an any")
        };
        let Expr::Condition(Condition {
            test: Test::Context(c),
            ..
        }) = &mut any[2]
        else {
            panic!("then a context condition")
        };
        c.inherits.clear();
        let bytes = v3_encode(&v3, &old);
        assert_eq!(RuleChange::decode(&codec, &bytes).unwrap(), old);
    }

    /// Encodes with the version 3 schema: the same record less the fields version 4 added.
    fn v3_encode(v3: &Codec, change: &RuleChange) -> Vec<u8> {
        let codec = RuleChange::codec().unwrap();
        let bytes = change.encode(&codec).unwrap();
        let mut value = codec.decode_value(&bytes).unwrap();
        fn strip(v: &mut Value) {
            match v {
                Value::Record(fields) => {
                    fields.retain(|(n, _)| n != "inherits" && n != "settings");
                    fields.iter_mut().for_each(|(_, v)| strip(v));
                }
                Value::Union(_, inner) => strip(inner),
                Value::Array(items) => items.iter_mut().for_each(strip),
                _ => {}
            }
        }
        strip(&mut value);
        v3.encode_value(value).unwrap()
    }

    #[test]
    fn the_key_keeps_every_version_apart() {
        assert_eq!(
            sample().key(),
            "00000000-0000-0000-0000-000000000001/shaky/3"
        );
    }
}
