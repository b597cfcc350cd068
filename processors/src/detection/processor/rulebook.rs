//! Rules as events: every change is a versioned record on the rules topic, so a replay sees the rules that
//! were in force. A version applies to readings whose event time is at or after its `effective_from_ms`.
//!
//! On the topic a change is an Avro record (`haltless.rules.v1`, see `haltless_schemas::rules`); changes
//! written before that are JSON, which [`RuleChange::decode`] still reads.

use std::collections::HashMap;
use std::sync::Arc;

use haltless_schemas::rules as avro;
use haltless_schemas::{Codec, CodecError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::detection::logic::baseline::BaselineConfig;
use crate::detection::logic::context::{ContextConfig, Inherits};
use crate::detection::logic::drift::DriftConfig;
use crate::detection::logic::engine::Reset;
use crate::detection::logic::ewma::EwmaConfig;
use crate::detection::logic::rate::RateConfig;
use crate::detection::logic::rules::{Condition, Expr, Hold, Rule, Test};
use crate::detection::logic::settings::{DetectionSettings, Features};

/// One change of one rule: a record of the rules topic, keyed `tenant/rule_id/version` so that compaction
/// keeps every version. (Its serde form is the JSON the topic carried before it had a schema.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleChange {
    /// Owning tenant.
    pub tenant_id: Uuid,
    /// Version number, growing per rule.
    pub version: i64,
    /// Event time from which this version applies (ms).
    pub effective_from_ms: i64,
    /// Machine names it applies to; every machine of the tenant when empty.
    #[serde(default)]
    pub machines: Vec<String>,
    /// The rule; `deleted` versions keep its id only.
    pub rule: Rule,
    /// The rule was deleted from `effective_from_ms` on.
    #[serde(default)]
    pub deleted: bool,
    /// Not a rule but a maintenance event: the machines' detectors forget what they learned of some metrics
    /// at `effective_from_ms` (the rule is then `maintenance:<id>`, deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<StateReset>,
    /// Not a rule but the tenant's detection settings, in force from `effective_from_ms` (the rule is then
    /// `settings:detection`, deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<DetectionSettings>,
}

/// A maintenance event (replacement, repair, calibration) on the rules topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateReset {
    /// The maintenance event.
    pub maintenance_id: Uuid,
    /// replacement, repair or calibration.
    pub kind: String,
    /// The metrics whose detectors start afresh; all when empty.
    #[serde(default)]
    pub metrics: Vec<String>,
}

impl RuleChange {
    /// The rules-topic record of a maintenance event that resets the detectors of `machine` (the metrics
    /// named, all when empty) from event time `at_ms` on.
    pub fn maintenance(
        tenant_id: Uuid,
        machine: &str,
        at_ms: i64,
        reset: StateReset,
    ) -> RuleChange {
        RuleChange {
            tenant_id,
            version: 1,
            effective_from_ms: at_ms,
            machines: vec![machine.to_owned()],
            rule: marker(
                format!("maintenance:{}", reset.maintenance_id),
                format!("{} of {machine}", reset.kind),
                crate::detection::logic::rules::Severity::Info,
            ),
            deleted: true,
            reset: Some(reset),
            settings: None,
        }
    }

    /// The rules-topic record of the tenant's detection settings, in force from event time `at_ms` on
    /// (`at_ms` is also its version: settings are saved one at a time, and a later save is a later time).
    pub fn settings(tenant_id: Uuid, at_ms: i64, settings: DetectionSettings) -> RuleChange {
        RuleChange {
            tenant_id,
            version: at_ms,
            effective_from_ms: at_ms,
            machines: Vec::new(),
            rule: marker(
                "settings:detection".into(),
                "detection settings".into(),
                settings.severity(),
            ),
            deleted: true,
            reset: None,
            settings: Some(settings),
        }
    }

    /// The record key on the rules topic.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.tenant_id, self.rule.id, self.version)
    }

    /// A codec for the rules topic.
    pub fn codec() -> Result<Codec, CodecError> {
        avro::RuleChange::codec()
    }

    /// The change as a message of the rules topic.
    pub fn encode(&self, codec: &Codec) -> Result<Vec<u8>, CodecError> {
        self.to_record().encode(codec)
    }

    /// Reads a message of the rules topic: Avro, or the JSON written before the topic had a schema.
    pub fn decode(codec: &Codec, bytes: &[u8]) -> Result<Self, CodecError> {
        if bytes.first() == Some(&b'{') {
            return serde_json::from_slice(bytes)
                .map_err(|e| CodecError::Shape(format!("legacy JSON rule change: {e}")));
        }
        Ok(Self::from_record(avro::RuleChange::decode(codec, bytes)?))
    }

    fn to_record(&self) -> avro::RuleChange {
        let r = &self.rule;
        avro::RuleChange {
            tenant_id: self.tenant_id,
            version: self.version,
            effective_from_ms: self.effective_from_ms,
            machines: self.machines.clone(),
            deleted: self.deleted,
            reset: self.reset.as_ref().map(|r| avro::StateReset {
                maintenance_id: r.maintenance_id,
                kind: r.kind.clone(),
                metrics: r.metrics.clone(),
            }),
            settings: self.settings.as_ref().map(|d| avro::DetectionSettings {
                one_in: d.one_in,
                rest_readings: d.rest_readings.into(),
                profile: d.features.profile,
                transitions: d.features.transitions,
                rate: d.features.rate,
                drift: d.drift,
                severity: d.severity(),
            }),
            rule: avro::Rule {
                id: r.id.clone(),
                name: r.name.clone(),
                severity: r.severity,
                when: expr_record(&r.when),
                hold_secs: r.hold.secs,
                hold_readings: r.hold.readings,
                clear_ratio: r.clear_ratio,
                clear_after: r.clear_after,
                max_age_secs: r.max_age_secs,
            },
        }
    }

    fn from_record(c: avro::RuleChange) -> Self {
        let r = c.rule;
        Self {
            tenant_id: c.tenant_id,
            version: c.version,
            effective_from_ms: c.effective_from_ms,
            machines: c.machines,
            deleted: c.deleted,
            reset: c.reset.map(|r| StateReset {
                maintenance_id: r.maintenance_id,
                kind: r.kind,
                metrics: r.metrics,
            }),
            settings: c.settings.map(|d| DetectionSettings {
                one_in: d.one_in,
                // A record holding more is clamped to the largest rest period there is.
                rest_readings: u32::try_from(d.rest_readings).unwrap_or(u32::MAX),
                features: Features {
                    profile: d.profile,
                    transitions: d.transitions,
                    rate: d.rate,
                },
                drift: d.drift,
                severity: match d.severity {
                    crate::detection::logic::rules::Severity::Info => "info",
                    crate::detection::logic::rules::Severity::Warning => "warning",
                    crate::detection::logic::rules::Severity::Critical => "critical",
                }
                .into(),
            }),
            rule: Rule {
                id: r.id,
                name: r.name,
                severity: r.severity,
                when: expr_from_record(r.when),
                hold: Hold {
                    secs: r.hold_secs,
                    readings: r.hold_readings,
                },
                clear_ratio: r.clear_ratio,
                clear_after: r.clear_after,
                max_age_secs: r.max_age_secs,
            },
        }
    }
}

/// The rule of a record that is not a rule (a maintenance reset, the tenant's settings): it is deleted on
/// the topic, so a reader that knows no such records sees a rule that never applies.
fn marker(id: String, name: String, severity: crate::detection::logic::rules::Severity) -> Rule {
    Rule {
        id,
        name,
        severity,
        when: Expr::Any { any: Vec::new() },
        hold: Hold::default(),
        clear_ratio: 1.0,
        clear_after: 1,
        max_age_secs: 0,
    }
}

fn expr_record(e: &Expr) -> avro::Expr {
    match e {
        Expr::All { all } => avro::Expr::All(all.iter().map(expr_record).collect()),
        Expr::Any { any } => avro::Expr::Any(any.iter().map(expr_record).collect()),
        Expr::Cond(c) => avro::Expr::Condition(avro::Condition {
            metric: c.metric.clone(),
            test: match &c.test {
                Test::Above { value, hysteresis } => avro::Test::Above {
                    value: *value,
                    hysteresis: *hysteresis,
                },
                Test::Below { value, hysteresis } => avro::Test::Below {
                    value: *value,
                    hysteresis: *hysteresis,
                },
                Test::Ewma(c) => avro::Test::Ewma(avro::EwmaConfig {
                    half_life_secs: c.half_life_secs,
                    band: c.band,
                    warmup: c.warmup,
                    min_rel_std: c.min_rel_std,
                    min_std: c.min_std,
                }),
                Test::Baseline(c) => avro::Test::Baseline(avro::BaselineConfig {
                    window_hours: c.window_hours,
                    min_samples: c.min_samples,
                    z_limit: c.z_limit,
                    min_rel_std: c.min_rel_std,
                    min_std: c.min_std,
                }),
                Test::Context(c) => avro::Test::Context(avro::ContextConfig {
                    limit: c.limit,
                    half_life_secs: c.half_life_secs,
                    memory_secs: c.memory_secs,
                    average: c.average.into(),
                    learn: c.learn,
                    levels: c.levels.into(),
                    profile: c.profile,
                    rate: c.rate,
                    min_rel_std: c.min_rel_std,
                    min_std: c.min_std,
                    inherits: c.inherits.names(),
                }),
                Test::Drift(c) => avro::Test::Drift(avro::DriftConfig {
                    days: c.days.into(),
                    min_slope: c.min_slope,
                    min_rel_std: c.min_rel_std,
                    min_std: c.min_std,
                }),
                Test::Rate(c) => avro::Test::Rate(avro::RateConfig {
                    max_per_sec: c.max_per_sec,
                    band: c.band,
                    half_life_secs: c.half_life_secs,
                    warmup: c.warmup,
                    min_std: c.min_std,
                }),
            },
        }),
    }
}

fn expr_from_record(e: avro::Expr) -> Expr {
    match e {
        avro::Expr::All(xs) => Expr::All {
            all: xs.into_iter().map(expr_from_record).collect(),
        },
        avro::Expr::Any(xs) => Expr::Any {
            any: xs.into_iter().map(expr_from_record).collect(),
        },
        avro::Expr::Condition(c) => Expr::Cond(Condition {
            metric: c.metric,
            test: match c.test {
                avro::Test::Above { value, hysteresis } => Test::Above { value, hysteresis },
                avro::Test::Below { value, hysteresis } => Test::Below { value, hysteresis },
                avro::Test::Ewma(c) => Test::Ewma(EwmaConfig {
                    half_life_secs: c.half_life_secs,
                    band: c.band,
                    warmup: c.warmup,
                    min_rel_std: c.min_rel_std,
                    min_std: c.min_std,
                }),
                avro::Test::Baseline(c) => Test::Baseline(BaselineConfig {
                    window_hours: c.window_hours,
                    min_samples: c.min_samples,
                    z_limit: c.z_limit,
                    min_rel_std: c.min_rel_std,
                    min_std: c.min_std,
                }),
                avro::Test::Context(c) => Test::Context(ContextConfig {
                    limit: c.limit,
                    half_life_secs: c.half_life_secs,
                    memory_secs: c.memory_secs,
                    // Larger settings than these make no sense; a record holding one is clamped.
                    average: u32::try_from(c.average).unwrap_or(u32::MAX),
                    learn: c.learn,
                    levels: u32::try_from(c.levels).unwrap_or(u32::MAX),
                    profile: c.profile,
                    rate: c.rate,
                    min_rel_std: c.min_rel_std,
                    min_std: c.min_std,
                    inherits: Inherits::from_names(&c.inherits),
                }),
                avro::Test::Drift(c) => Test::Drift(DriftConfig {
                    days: u32::try_from(c.days).unwrap_or(u32::MAX),
                    min_slope: c.min_slope,
                    min_rel_std: c.min_rel_std,
                    min_std: c.min_std,
                }),
                avro::Test::Rate(c) => Test::Rate(RateConfig {
                    max_per_sec: c.max_per_sec,
                    band: c.band,
                    half_life_secs: c.half_life_secs,
                    warmup: c.warmup,
                    min_std: c.min_std,
                }),
            },
        }),
    }
}

/// A machine's rules, with how many of its tenant's rule changes and settings they reflect.
type Resolved = ((usize, usize), Arc<Vec<Rule>>);

/// Every rule version seen, by tenant.
#[derive(Debug, Default)]
pub struct RuleBook {
    changes: HashMap<Uuid, Vec<RuleChange>>,
    /// The maintenance resets of each tenant, by event time.
    resets: HashMap<Uuid, Vec<Reset>>,
    /// The detection settings of each tenant, by the event time they take effect.
    settings: HashMap<Uuid, Vec<(i64, Arc<DetectionSettings>)>>,
    /// The rules of a (tenant, machine) given how many of the tenant's changes and settings are in force:
    /// they stay the same between two changes' effective times, so most readings reuse them.
    resolved: HashMap<Uuid, HashMap<String, Resolved>>,
}

impl RuleBook {
    /// Records a change (idempotent: a version seen twice is kept once).
    pub fn apply(&mut self, change: RuleChange) {
        if let Some(reset) = &change.reset {
            let list = self.resets.entry(change.tenant_id).or_default();
            let r = Reset {
                at_ms: change.effective_from_ms,
                machines: change.machines.clone(),
                metrics: reset.metrics.clone(),
            };
            if !list.contains(&r) {
                list.push(r);
                list.sort_by_key(|r| r.at_ms);
            }
            return;
        }
        if let Some(settings) = change.settings {
            let list = self.settings.entry(change.tenant_id).or_default();
            if !list.iter().any(|(at, _)| *at == change.effective_from_ms) {
                list.push((change.effective_from_ms, Arc::new(settings)));
                list.sort_by_key(|(at, _)| *at);
                self.resolved.remove(&change.tenant_id);
            }
            return;
        }
        let list = self.changes.entry(change.tenant_id).or_default();
        if list
            .iter()
            .any(|c| c.rule.id == change.rule.id && c.version == change.version)
        {
            return;
        }
        list.push(change);
        list.sort_by(|a, b| {
            (a.effective_from_ms, a.version).cmp(&(b.effective_from_ms, b.version))
        });
        self.resolved.clear();
    }

    /// The maintenance resets of `tenant`'s machines, by event time.
    pub fn resets(&self, tenant: Uuid) -> &[Reset] {
        self.resets.get(&tenant).map(Vec::as_slice).unwrap_or(&[])
    }

    /// How many of `tenant`'s settings are in force at `ts_ms`, and the last of them.
    fn settings_at(&self, tenant: Uuid, ts_ms: i64) -> (usize, Option<&Arc<DetectionSettings>>) {
        let list = self.settings.get(&tenant).map(Vec::as_slice).unwrap_or(&[]);
        let n = list.partition_point(|(at, _)| *at <= ts_ms);
        (
            n,
            n.checked_sub(1).and_then(|i| list.get(i)).map(|(_, s)| s),
        )
    }

    /// The detection settings of `tenant` in force at event time `ts_ms` (the defaults until it saved any).
    pub fn settings_for(&self, tenant: Uuid, ts_ms: i64) -> Arc<DetectionSettings> {
        static DEFAULT: std::sync::OnceLock<Arc<DetectionSettings>> = std::sync::OnceLock::new();
        match self.settings_at(tenant, ts_ms).1 {
            Some(s) => s.clone(),
            None => DEFAULT.get_or_init(Arc::default).clone(),
        }
    }

    /// The rules of `machine` of `tenant` in force at event time `ts_ms`, their context conditions under the
    /// tenant's settings in force then for what they leave to them.
    pub fn rules_for(&mut self, tenant: Uuid, machine: &str, ts_ms: i64) -> Arc<Vec<Rule>> {
        let Some(list) = self.changes.get(&tenant) else {
            return Arc::default();
        };
        let in_force = list.partition_point(|c| c.effective_from_ms <= ts_ms);
        let (settings_in_force, settings) = self.settings_at(tenant, ts_ms);
        let key = (in_force, settings_in_force);
        let cached = self.resolved.get(&tenant).and_then(|m| m.get(machine));
        if let Some((_, rules)) = cached.filter(|(n, _)| *n == key) {
            return rules.clone();
        }
        let settings = settings.cloned().unwrap_or_default();
        let rules = Arc::new(Self::resolve(&list[..in_force], machine, &settings));
        self.resolved
            .entry(tenant)
            .or_default()
            .insert(machine.to_owned(), (key, rules.clone()));
        rules
    }

    /// The rules of `machine` after `changes`, sorted by id, under `settings`.
    fn resolve(changes: &[RuleChange], machine: &str, settings: &DetectionSettings) -> Vec<Rule> {
        let mut latest: HashMap<&str, &RuleChange> = HashMap::new();
        for c in changes {
            latest.insert(c.rule.id.as_str(), c);
        }
        let mut rules: Vec<Rule> = latest
            .into_values()
            .filter(|c| {
                !c.deleted && (c.machines.is_empty() || c.machines.iter().any(|m| m == machine))
            })
            .map(|c| c.rule.under(settings))
            .collect();
        rules.sort_by(|a, b| a.id.cmp(&b.id));
        rules
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn change(rule: &str, version: i64, from: i64, machines: &[&str], deleted: bool) -> RuleChange {
        RuleChange {
            tenant_id: Uuid::from_u128(1),
            version,
            effective_from_ms: from,
            machines: machines.iter().map(|m| m.to_string()).collect(),
            rule: serde_json::from_value(serde_json::json!({
                "id": rule, "name": format!("{rule} v{version}"),
                "when": {"metric": "t", "detector": "above", "value": version * 10}}))
            .unwrap(),
            deleted,
            reset: None,
            settings: None,
        }
    }

    #[test]
    fn changes_round_trip_through_the_topic_format_and_legacy_json_still_reads() {
        let mut c = change("hot", 4, 100, &["m1", "m2"], false);
        c.rule = serde_json::from_value(serde_json::json!({
            "id": "hot", "name": "Hot and shaking", "severity": "critical",
            "hold": {"secs": 30, "readings": 2}, "clear_ratio": 0.7, "clear_after": 5, "max_age_secs": 60,
            "when": {"all": [{"metric": "t", "detector": "above", "value": 90, "hysteresis": 2},
                             {"any": [{"metric": "v", "detector": "ewma", "band": 4},
                                      {"metric": "v", "detector": "rate", "max_per_sec": 0.5},
                                      {"metric": "p", "detector": "rate"},
                                      {"metric": "t", "detector": "baseline", "z_limit": 3},
                                      {"metric": "t", "detector": "below", "value": -4}]}]}}))
        .unwrap();
        let codec = RuleChange::codec().unwrap();
        let bytes = c.encode(&codec).unwrap();
        assert_eq!(&bytes[..2], &[0xC3, 0x01]);
        assert_eq!(RuleChange::decode(&codec, &bytes).unwrap(), c);
        let legacy = serde_json::to_vec(&c).unwrap();
        assert_eq!(RuleChange::decode(&codec, &legacy).unwrap(), c);
        assert!(RuleChange::decode(&codec, b"{\"tenant_id\": 1}").is_err());
    }

    #[test]
    fn a_reading_sees_the_versions_in_force_at_its_event_time() {
        let mut book = RuleBook::default();
        book.apply(change("hot", 2, 200, &[], false));
        book.apply(change("hot", 1, 100, &[], false));
        book.apply(change("hot", 3, 300, &[], true));
        book.apply(change("m2-only", 1, 0, &["m2"], false));
        book.apply(change("hot", 1, 100, &[], false)); // redelivered
        let tenant = Uuid::from_u128(1);
        let mut names = |ts| {
            book.rules_for(tenant, "m1", ts)
                .iter()
                .map(|r| r.name.clone())
                .collect::<Vec<_>>()
        };
        assert!(names(99).is_empty());
        assert_eq!(names(100), ["hot v1"]);
        assert_eq!(names(250), ["hot v2"]);
        assert!(names(300).is_empty(), "deleted");
        assert_eq!(book.rules_for(tenant, "m2", 150).len(), 2);
        assert!(
            book.rules_for(Uuid::from_u128(2), "m1", 150).is_empty(),
            "other tenants see nothing"
        );
    }

    fn limits(book: &mut RuleBook, ts: i64) -> Vec<(String, f64)> {
        book.rules_for(Uuid::from_u128(1), "m1", ts)
            .iter()
            .map(|r| match &r.when {
                Expr::Cond(Condition {
                    test: Test::Context(c),
                    ..
                }) => (r.id.clone(), c.limit),
                _ => (r.id.clone(), f64::NAN),
            })
            .collect()
    }

    #[test]
    fn the_tenants_settings_apply_from_their_time_and_a_rules_own_setting_wins() {
        let tenant = Uuid::from_u128(1);
        let mut book = RuleBook::default();
        for (id, when) in [
            (
                "inherits",
                serde_json::json!({"metric": "t", "detector": "context"}),
            ),
            (
                "own",
                serde_json::json!({"metric": "t", "detector": "context", "limit": 7}),
            ),
        ] {
            let mut c = change(id, 1, 0, &[], false);
            c.rule.when = serde_json::from_value(when).unwrap();
            book.apply(c);
        }
        let sensitive = DetectionSettings {
            one_in: 1_000.0,
            ..DetectionSettings::default()
        };
        let settings = RuleChange::settings(tenant, 500, sensitive.clone());
        let codec = RuleChange::codec().unwrap();
        let settings = RuleChange::decode(&codec, &settings.encode(&codec).unwrap()).unwrap();
        book.apply(settings.clone());
        book.apply(settings); // redelivered
        assert_eq!(
            limits(&mut book, 499),
            [("inherits".to_owned(), 5.0), ("own".to_owned(), 7.0)]
        );
        assert_eq!(
            limits(&mut book, 500),
            [("inherits".to_owned(), 3.0), ("own".to_owned(), 7.0)]
        );
        assert_eq!(*book.settings_for(tenant, 500), sensitive);
        assert_eq!(
            *book.settings_for(tenant, 499),
            DetectionSettings::default()
        );
        assert_eq!(
            *book.settings_for(Uuid::from_u128(2), 500),
            DetectionSettings::default(),
            "other tenants keep theirs"
        );
        // What a rule leaves to the tenant survives the topic and its JSON form.
        let stored = book.changes[&tenant][0].clone();
        let json = serde_json::to_value(&stored.rule).unwrap();
        assert!(json["when"].get("limit").is_none(), "{json}");
        let again = RuleChange::decode(&codec, &stored.encode(&codec).unwrap()).unwrap();
        assert_eq!(again, stored);
    }
}
